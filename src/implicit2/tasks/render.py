"""Looking at occupancy fields: orthographic depth/normal renderings and marching-cubes meshes.

A field is a function ``logits(points (M, 3)) -> (M,)``, occupied where the logit is > 0; outside
the data's bounding box it counts as empty (as in the authors' renderer). Rays are marched at
evenly spaced samples; the first occupied sample is refined by bisection; normals are
the normalised negative gradient of the logit (central differences). The ground-truth mesh is ray
cast exactly (:mod:`implicit2.tasks.raycast`). Depth is the distance along the ray (-1 where
nothing is hit); normals are flipped to face the camera so that both renderings shade alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from implicit2.tasks.raycast import ParallelRays

if TYPE_CHECKING:
    import trimesh

logger = logging.getLogger(__name__)

Field = Callable[[np.ndarray], np.ndarray]

#: View directions (camera → object) of the preview: front, side, and an oblique view from above.
VIEWS: dict[str, tuple[float, float, float]] = {
    "front": (0.0, 0.0, -1.0),
    "side": (-1.0, 0.0, 0.0),
    "oblique": (-1.0, -0.7, -1.0),
}
BISECTION_STEPS = 8


def orthographic_rays(
    direction: tuple[float, float, float], low: np.ndarray, high: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Rays of a size×size orthographic camera that sees the box [low, high] along
    ``direction``: origins (size², 3), unit directions (size², 3) and the ray length."""
    view = np.asarray(direction, dtype=np.float64)
    view /= np.linalg.norm(view)
    up = np.array([0.0, 1.0, 0.0]) if abs(view[1]) < 0.99 else np.array([0.0, 0.0, 1.0])
    right = np.cross(view, up)
    right /= np.linalg.norm(right)
    image_up = np.cross(right, view)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    centre, radius = (low + high) / 2.0, float(np.linalg.norm(high - low)) / 2.0
    steps = np.linspace(-radius, radius, size)
    across, down = np.meshgrid(steps, steps[::-1], indexing="xy")
    origins = centre - view * radius + across[..., None] * right + down[..., None] * image_up
    directions = np.broadcast_to(view, origins.shape)
    return origins.reshape(-1, 3), np.ascontiguousarray(directions.reshape(-1, 3)), 2.0 * radius


def render_mesh(
    mesh: trimesh.Trimesh, low: np.ndarray, high: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact depth (V, size, size) and normals (V, size, size, 3) of a trimesh for ``VIEWS``."""
    depths, normals = [], []
    for direction in VIEWS.values():
        origins, directions, _ = orthographic_rays(direction, low, high, size)
        depth, faces = ParallelRays(mesh.vertices, mesh.faces, directions[0]).first_hits(origins)
        normal = np.zeros((len(origins), 3))
        hit = faces >= 0
        normal[hit] = _facing(mesh.face_normals[faces[hit]], directions[hit])
        depths.append(depth.reshape(size, size))
        normals.append(normal.reshape(size, size, 3))
    return np.stack(depths).astype(np.float32), np.stack(normals).astype(np.float32)


def render_field(
    logits: Field, low: np.ndarray, high: np.ndarray, size: int, samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (V, size, size) and normals (V, size, size, 3) of ``logits > 0`` for ``VIEWS``.

    As in the authors' renderer, space outside the box [low, high] counts as empty (the field is
    not trained there), and is not evaluated.
    """
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)

    def boxed(points: np.ndarray) -> np.ndarray:
        values = np.full(len(points), -1.0)
        inside = np.all((points >= low) & (points <= high), axis=1)
        if inside.any():
            values[inside] = logits(points[inside])
        return values

    depths, normals = [], []
    for direction in VIEWS.values():
        origins, directions, length = orthographic_rays(direction, low, high, size)
        depth, normal = _march(boxed, logits, origins, directions, length, samples)
        depths.append(depth.reshape(size, size))
        normals.append(normal.reshape(size, size, 3))
    return np.stack(depths).astype(np.float32), np.stack(normals).astype(np.float32)


def _march(
    boxed: Field,
    logits: Field,
    origins: np.ndarray,
    directions: np.ndarray,
    length: float,
    samples: int,
) -> tuple[np.ndarray, np.ndarray]:
    """First crossing of ``boxed > 0`` along each ray (bisection-refined); normals from the
    gradient of ``logits``."""
    steps = np.linspace(0.0, length, samples)
    points = origins[:, None, :] + steps[None, :, None] * directions[:, None, :]
    inside = boxed(points.reshape(-1, 3)).reshape(len(origins), samples) > 0
    hit = inside.any(axis=1)
    first = inside.argmax(axis=1)
    near = steps[np.maximum(first - 1, 0)][hit]
    far = steps[first][hit]
    ray_o, ray_d = origins[hit], directions[hit]
    for _ in range(BISECTION_STEPS):
        middle = (near + far) / 2.0
        occupied = boxed(ray_o + middle[:, None] * ray_d) > 0
        far = np.where(occupied, middle, far)
        near = np.where(occupied, near, middle)
    depth = np.full(len(origins), -1.0)
    depth[hit] = far
    normal = np.zeros((len(origins), 3))
    if hit.any():
        surface = ray_o + far[:, None] * ray_d
        epsilon = max(length / samples / 4.0, 1e-4)
        gradient = np.stack(
            [
                logits(surface + epsilon * axis) - logits(surface - epsilon * axis)
                for axis in np.eye(3)
            ],
            axis=-1,
        )
        normal[hit] = _facing(-gradient, ray_d)
    return depth, normal


def _facing(normals: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Unit normals flipped, where needed, to point back at the camera."""
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    unit = normals / np.maximum(length, 1e-12)
    flip = np.einsum("ij,ij->i", unit, directions) > 0
    unit[flip] *= -1.0
    return unit


def marching_cubes(
    logits: Field, low: np.ndarray, high: np.ndarray, resolution: int
) -> trimesh.Trimesh | None:
    """A ``trimesh.Trimesh`` of the level set ``logit = 0`` on a resolution³ grid over
    [low, high], or None when the field does not cross zero inside the box."""
    import trimesh
    from skimage.measure import marching_cubes as skimage_marching_cubes

    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    axes = [np.linspace(low[i], high[i], resolution) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    volume = logits(grid).reshape(resolution, resolution, resolution)
    if volume.min() > 0 or volume.max() <= 0:
        logger.warning("the field does not cross logit 0 inside the box: no mesh")
        return None
    spacing = tuple((high - low) / (resolution - 1))
    vertices, faces, _, _ = skimage_marching_cubes(
        volume.astype(np.float32), level=0.0, spacing=spacing, gradient_direction="ascent"
    )
    return trimesh.Trimesh(vertices=vertices + low, faces=faces, process=False)


def shade_depth(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth → gray in [0, 1]: near is bright, far is dim, background (-1) black."""
    span = max(far - near, 1e-9)
    shade = 1.0 - 0.8 * np.clip((depth - near) / span, 0.0, 1.0)
    return np.where(depth >= 0, shade, 0.0)


def shade_normals(normals: np.ndarray) -> np.ndarray:
    """Unit normals → RGB in [0, 1], background black."""
    hit = np.linalg.norm(normals, axis=-1, keepdims=True) > 0
    return np.where(hit, (normals + 1.0) / 2.0, 0.0)
