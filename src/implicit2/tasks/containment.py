"""Deterministic inside/outside labels for points, by ray parity (embree through trimesh).

``trimesh.Trimesh.contains`` re-tests ambiguous points (rays that disagree, typical near holes of an
open scan) along a *random* direction, so two calls can label a few points differently. Here the
second test uses a fixed direction, so the same points always get the same labels; for a
watertight mesh the result is the usual one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import trimesh

FIRST = np.array([0.4395064455, 0.617598629942, 0.652231566745])
SECOND = np.array([-0.5746957711, 0.3255681900, -0.7507700312])
CHUNK = 1 << 20


def contains(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Boolean (N,): which ``points`` lie inside ``mesh`` (odd number of crossings)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    inside = np.zeros(len(points), dtype=bool)
    low, high = mesh.bounds
    candidates = np.flatnonzero(np.all((points >= low) & (points <= high), axis=1))
    for start in range(0, len(candidates), CHUNK):
        index = candidates[start : start + CHUNK]
        inside[index] = _parity(mesh, points[index])
    return inside


def _crossings(mesh: trimesh.Trimesh, points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Hit counts (2, N) of rays from ``points`` along +direction and -direction."""
    count = len(points)
    directions = np.tile(direction / np.linalg.norm(direction), (count, 1))
    _, rays, _ = mesh.ray.intersects_location(
        np.vstack((points, points)), np.vstack((directions, -directions)), multiple_hits=True
    )
    return np.bincount(rays, minlength=2 * count).reshape(2, count)


def _parity(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    hits = _crossings(mesh, points, FIRST)
    odd = hits % 2 == 1
    agree = odd[0] == odd[1]
    result = np.where(agree, odd[0], False)
    # disagreeing rays that both hit something are ambiguous: ask a second, fixed direction
    broken = ~agree & (hits > 0).all(axis=0)
    if broken.any():
        again = _crossings(mesh, points[broken], SECOND)
        odd_again = again % 2 == 1
        result[broken] = np.where(odd_again[0] == odd_again[1], odd_again[0], False)
    return result
