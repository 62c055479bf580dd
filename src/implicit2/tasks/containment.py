"""Deterministic inside/outside labels for points, by ray parity.

A point is inside when the ray from it along a fixed direction d crosses the surface an odd number
of times. Both rays of the line (+d and -d) are counted: where their parities disagree (a line
through a hole of an open scan, or exactly through an edge) a second fixed direction decides, and
a point whose two rays still disagree is outside. For a watertight mesh this is the usual
containment (``trimesh.Trimesh.contains``, which instead re-tests along a *random* direction, so
two of its calls can label a few points differently). The rays are cast by
:mod:`implicit2.tasks.raycast`, the same on every machine, with or without embree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from implicit2.tasks.raycast import ParallelRays

if TYPE_CHECKING:
    import trimesh

FIRST = np.array([0.4395064455, 0.617598629942, 0.652231566745])
SECOND = np.array([-0.5746957711, 0.3255681900, -0.7507700312])
#: Points tested at once (bounds the memory of their (point, triangle) candidate pairs).
CHUNK = 1 << 17


def contains(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Boolean (N,): which ``points`` lie inside ``mesh`` (odd number of crossings)."""
    return Containment(mesh)(points)


class Containment:
    """The inside/outside test of one mesh: its ray grids are built once, for any number of
    point sets."""

    def __init__(self, mesh: trimesh.Trimesh) -> None:
        self.vertices = np.asarray(mesh.vertices, dtype=np.float64)
        self.low, self.high = mesh.bounds
        # A face listed twice (scans have some, in either orientation) is one surface, crossed once.
        self.faces = np.unique(np.sort(np.asarray(mesh.faces), axis=1), axis=0)
        self.first = ParallelRays(self.vertices, self.faces, FIRST)
        self.second: ParallelRays | None = None  # built only if some point needs it

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Boolean (N,): which ``points`` lie inside the mesh."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        inside = np.zeros(len(points), dtype=bool)
        within = np.all((points >= self.low) & (points <= self.high), axis=1)
        candidates = np.flatnonzero(within)
        for start in range(0, len(candidates), CHUNK):
            index = candidates[start : start + CHUNK]
            labels, ambiguous = _parity(self.first, points[index])
            if ambiguous.any():
                # disagreeing rays that both hit something: ask a second, fixed direction
                if self.second is None:
                    self.second = ParallelRays(self.vertices, self.faces, SECOND)
                labels[ambiguous], _ = _parity(self.second, points[index[ambiguous]])
            inside[index] = labels
        return inside


def _parity(rays: ParallelRays, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels (inside where both rays of the line cross an odd number of times) and which
    points are ambiguous (the two rays disagree and both hit something)."""
    hits = rays.crossings(points)
    odd = hits % 2 == 1
    agree = odd[0] == odd[1]
    return np.where(agree, odd[0], False), ~agree & (hits > 0).all(axis=0)
