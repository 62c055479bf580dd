"""The bandwidth of a mesh's occupancy against its sampling (docs/fit_defaults.md, occupancy).

Each mesh is normalised as the occupancy task does (into the unit cube) and its inside/outside
labels are computed on a regular grid; the bandwidth is :func:`signal_bandwidth` of those labels
(radians per unit of a [-1, 1] span, as for images). An icosphere at two subdivisions (the same
shape, 16× the triangles) and the Stanford bunny show what the bandwidth follows.

    python scripts/fit_occupancy_band.py --bunny bunny.ply --grid 64
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import trimesh

from implicit2.pipeline.scale_rule import signal_bandwidth
from implicit2.tasks.containment import contains
from implicit2.tasks.occupancy import load_mesh, normalise


def occupancy_bandwidth(mesh: trimesh.Trimesh, grid: int, share: float) -> float | None:
    """The bandwidth of ``mesh``'s occupancy sampled on ``grid``³ points of the unit cube."""
    normalise(mesh)
    axis = (np.arange(grid) + 0.5) / grid
    points = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    labels = contains(mesh, points).astype(np.float64).reshape(1, grid, grid, grid, 1)
    return signal_bandwidth(labels, share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bunny", type=Path, required=True)
    parser.add_argument("--grid", type=int, default=64)
    args = parser.parse_args()
    meshes = {
        "icosphere, 2 subdivisions": trimesh.creation.icosphere(subdivisions=2),
        "icosphere, 4 subdivisions": trimesh.creation.icosphere(subdivisions=4),
        "bunny": load_mesh(args.bunny),
    }
    print(f"| mesh | triangles | bandwidth, 99 % | 99.9 % ({args.grid}³ grid) |")
    print("|---|---|---|---|")
    for name, mesh in meshes.items():
        triangles = len(mesh.faces)
        bands = [occupancy_bandwidth(mesh.copy(), args.grid, share) for share in (0.99, 0.999)]
        shown = " | ".join("—" if b is None else f"{b:.0f}" for b in bands)
        print(f"| {name} | {triangles} | {shown} |")


if __name__ == "__main__":
    main()
