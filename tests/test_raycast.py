"""Ray casting (implicit2.tasks.raycast) and the containment labels built on it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from implicit2.data import demo
from implicit2.tasks import get_task, render
from implicit2.tasks.containment import FIRST, contains
from implicit2.tasks.occupancy import load_mesh, normalise
from implicit2.tasks.raycast import ParallelRays


def test_crossings_and_first_hits_of_a_box():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))  # [-0.5, 0.5]^3
    rays = ParallelRays(box.vertices, box.faces, np.array([0.0, 0.0, 1.0]))
    origins = np.array([[0.1, 0.2, 0.0], [0.1, 0.2, -2.0], [0.1, 0.2, 2.0], [0.9, 0.0, 0.0]])
    assert rays.crossings(origins).T.tolist() == [[1, 1], [2, 0], [0, 2], [0, 0]]
    distance, face = rays.first_hits(origins)
    assert distance[:3] == pytest.approx([0.5, 1.5, -1.0]) and distance[3] == -1.0
    assert face[2] == -1 and face[3] == -1
    assert box.face_normals[face[0]] == pytest.approx([0.0, 0.0, 1.0])
    assert box.face_normals[face[1]] == pytest.approx([0.0, 0.0, -1.0])


def test_a_ray_through_an_edge_hits_with_edges_only():
    """Along the box's face diagonal the line meets the edge shared by two triangles: with
    ``edges`` both count (a first hit is never lost); without, neither (parity stays even)."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    rays = ParallelRays(box.vertices, box.faces, np.array([0.0, 0.0, 1.0]))
    hits = rays.hits(np.zeros((1, 3)), edges=True)
    assert len(hits.ray) == 4 and sorted(np.sign(hits.distance)) == [-1, -1, 1, 1]
    assert len(rays.hits(np.zeros((1, 3))).ray) == 0


def test_contains_matches_trimesh_on_a_watertight_mesh():
    shape = demo.demo_shape()
    points = np.random.default_rng(3).uniform(-1.0, 1.0, (20_000, 3))
    inside = contains(shape, points)
    assert 0.05 < inside.mean() < 0.5
    assert np.array_equal(inside, shape.contains(points))


def test_a_face_listed_twice_is_one_surface():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    doubled = trimesh.Trimesh(box.vertices, np.vstack([box.faces, box.faces[:1, ::-1]]))
    points = np.random.default_rng(4).uniform(-0.6, 0.6, (5_000, 3))
    expected = np.all(np.abs(points) < 0.5, axis=1)
    assert np.array_equal(contains(box, points), expected)
    assert np.array_equal(contains(doubled, points), expected)


def test_preview_depth_matches_trimesh_ray_casting():
    shape = demo.demo_shape()
    normalise(shape)
    low, high = shape.bounds
    depth, normals = render.render_mesh(shape, low, high, 32)
    for view, direction in enumerate(render.VIEWS.values()):
        origins, directions, _ = render.orthographic_rays(direction, low, high, 32)
        locations, index, _ = shape.ray.intersects_location(origins, directions, False)
        expected = np.full(len(origins), -1.0)
        expected[index] = np.einsum("ij,ij->i", locations - origins[index], directions[index])
        assert depth[view].ravel() == pytest.approx(expected, abs=1e-5)
        facing = np.einsum("ij,ij->i", normals[view].reshape(-1, 3)[index], directions[index])
        assert (facing <= 0).all()


def test_bunny_labels_agree_with_trimesh_rays(shared_data):
    """The open bunny scan: the parity counts along FIRST equal trimesh's own ray casts (embree
    where installed) for points away from the surface."""
    mesh = load_mesh(shared_data / "mesh" / "bunny.ply")
    normalise(mesh)
    low, high = mesh.bounds
    points = np.random.default_rng(5).uniform(low, high, (3_000, 3))
    direction = FIRST / np.linalg.norm(FIRST)
    ours = ParallelRays(mesh.vertices, np.unique(np.sort(mesh.faces, axis=1), axis=0), direction)
    counts = ours.crossings(points)
    both = np.broadcast_to(direction, points.shape)
    _, index, _ = mesh.ray.intersects_location(
        np.vstack([points, points]), np.vstack([both, -both]), multiple_hits=True
    )
    theirs = np.bincount(index, minlength=2 * len(points)).reshape(2, -1)
    assert np.array_equal(counts, theirs)
    assert 0.1 < contains(mesh, points).mean() < 0.5


def test_occupancy_prepare_needs_neither_embree_nor_rtree(tmp_path):
    """Platforms without an embreex wheel (macOS arm64, Linux aarch64) prepare the same data."""
    raw = demo.generate("demo_shape", tmp_path)
    options = {"train_points": 4096, "test_points": 2048, "render_size": 16, "mesh_resolution": 16}
    code = (
        "import json, sys; sys.modules['embreex'] = None; sys.modules['rtree'] = None\n"
        "from pathlib import Path\n"
        "from implicit2.tasks import get_task\n"
        "options = json.loads(sys.argv[3])\n"
        "get_task('occupancy').prepare(Path(sys.argv[1]), Path(sys.argv[2]), options)\n"
    )
    out = tmp_path / "without.npz"
    command = [sys.executable, "-c", code, str(raw), str(out), json.dumps(options)]
    subprocess.run(command, check=True)
    task = get_task("occupancy")
    task.prepare(raw, tmp_path / "with.npz", options)
    without, with_ = task.load(out), task.load(tmp_path / "with.npz")
    assert np.array_equal(without.train_targets, with_.train_targets)
    assert np.array_equal(without.test_targets, with_.test_targets)
    assert np.array_equal(without.extra["gt_depth"], with_.extra["gt_depth"])
