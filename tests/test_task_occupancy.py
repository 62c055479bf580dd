"""Occupancy task on the shared Stanford bunny scan and the demo shape; bad meshes."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh

from implicit2.data import demo
from implicit2.data.registry import resolve_dataset
from implicit2.tasks import get_task, render
from implicit2.tasks.containment import contains
from implicit2.tasks.occupancy import load_mesh, normalise

SMALL = {"train_points": 4096, "test_points": 4096, "render_size": 24, "mesh_resolution": 24}


def _mesh_field(path):
    """predict() from the mesh itself: logit +5 inside, -5 outside (normalised coordinates)."""
    mesh = load_mesh(path)
    normalise(mesh)

    def predict(coords: torch.Tensor) -> torch.Tensor:
        inside = contains(mesh, coords.numpy())
        return torch.from_numpy(np.where(inside, 5.0, -5.0).astype(np.float32))[:, None]

    return mesh, predict


def test_bunny_scan_needs_the_flag(shared_data, tmp_path):
    bunny = shared_data / "mesh" / "bunny.ply"
    task = get_task("occupancy")
    with pytest.raises(ValueError, match=r"bunny\.ply: the mesh is not watertight"):
        task.prepare(bunny, tmp_path / "bunny.npz", SMALL)
    assert not (tmp_path / "bunny.npz").exists()

    # The paper's registry entry takes the scan as it is, as the authors did.
    registry_options = dict(resolve_dataset("bunny").prepare)
    assert registry_options == {"allow_non_watertight": True}
    task.prepare(bunny, tmp_path / "bunny.npz", {**SMALL, **registry_options})
    data = task.load(tmp_path / "bunny.npz")
    assert trimesh.ray.has_embree  # containment uses embree, not the slow fallback
    assert data.train_coords.shape == (4096, 3) and data.train_targets.shape == (1, 4096, 1)
    assert data.test_coords.shape == data.extra["hard_coords"].shape == (4096, 3)
    assert set(np.unique(data.train_targets)) == {0.0, 1.0}
    assert task.loss_kind == "bce" and not task.full_batch
    low, high = np.array(data.meta["bounds"])
    assert np.all(data.train_coords >= low) and np.all(data.train_coords <= high)
    assert low.min() == pytest.approx(-1e-3, abs=1e-9) or high.max() == pytest.approx(1.001)
    assert data.meta["watertight"] is False

    mesh, predict = _mesh_field(bunny)
    assert np.allclose(np.abs(mesh.vertices * 2 - 1).max(), 1.0)
    metrics, predictions = task.evaluate(predict, data)
    assert metrics["iou_easy"] == 1.0 and metrics["iou_hard"] == 1.0
    assert predictions.shape == (1, 4096, 1)
    metrics, _ = task.evaluate(lambda c: torch.full((c.shape[0], 1), 1.0), data)
    assert metrics["iou_easy"] == pytest.approx(data.test_targets.mean())  # all occupied
    assert metrics["iou_hard"] == pytest.approx(data.extra["hard_targets"].mean())
    metrics, _ = task.evaluate(lambda c: torch.zeros(c.shape[0], 1), data)
    assert metrics["iou_easy"] == 0.0  # logit 0 is not occupied

    files = task.export(predictions, data, tmp_path / "recon", predict)
    assert [f.name for f in files] == ["preview.png", "mesh.ply"]
    assert iio.imread(files[0]).shape == (3 * 26 + 2, 4 * 26 + 2, 3)
    recon = trimesh.load(files[1])
    assert len(recon.faces) > 100
    assert np.all(recon.bounds[0] >= low - 1e-6) and np.all(recon.bounds[1] <= high + 1e-6)


def test_demo_shape_round_trip(tmp_path):
    raw = demo.generate("demo_shape", tmp_path / "raw")
    task = get_task("occupancy")
    task.prepare(raw, tmp_path / "shape.npz", SMALL)
    data = task.load(tmp_path / "shape.npz")
    assert data.meta["watertight"] is True
    depth = data.extra["gt_depth"]
    assert depth.shape == (3, 24, 24) and (depth >= 0).any() and (depth < 0).any()

    # a sphere of radius 0.3 at the box centre: marching cubes gives a closed, outward mesh
    centre = torch.tensor(np.mean(data.meta["bounds"], axis=0), dtype=torch.float32)
    low, high = np.array(data.meta["bounds"])
    radius = float(np.min(high - low)) / 2 - 0.02

    def sphere(coords: torch.Tensor) -> torch.Tensor:
        return (radius - (coords - centre).norm(dim=-1, keepdim=True)) * 10

    metrics, predictions = task.evaluate(sphere, data)
    assert 0.0 < metrics["iou_easy"] < 1.0
    files = task.export(predictions, data, tmp_path / "recon", sphere)
    mesh = trimesh.load(files[-1])
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.05)
    assert task.export(predictions, data, tmp_path / "none", None) == []


def test_ray_marching_a_sphere():
    low, high = np.zeros(3), np.ones(3)
    centre, radius = np.full(3, 0.5), 0.3

    def sphere(points: np.ndarray) -> np.ndarray:
        return radius - np.linalg.norm(points - centre, axis=-1)

    depth, normal = render.render_field(sphere, low, high, size=25, samples=64)
    half_diagonal = np.sqrt(3) / 2
    for view, direction in enumerate(render.VIEWS.values()):
        # the centre pixel's ray passes through the sphere's centre
        assert depth[view, 12, 12] == pytest.approx(half_diagonal - radius, abs=1e-3)
        unit = np.asarray(direction) / np.linalg.norm(direction)
        assert np.allclose(normal[view, 12, 12], -unit, atol=1e-2)
        assert depth[view, 0, 0] == -1.0  # the corner ray misses
    truth_depth, _ = render.render_mesh(
        trimesh.creation.icosphere(subdivisions=5, radius=radius).apply_translation(centre),
        low,
        high,
        25,
    )
    hit = truth_depth >= 0
    assert np.array_equal(hit, depth >= 0)
    assert np.abs(truth_depth[hit] - depth[hit]).max() < 5e-3


def test_bad_meshes_name_the_file(tmp_path):
    task = get_task("occupancy")
    empty = tmp_path / "empty.ply"
    trimesh.Trimesh().export(empty)
    with pytest.raises(ValueError, match=r"empty\.ply: the mesh is empty"):
        task.prepare(empty, tmp_path / "out.npz", SMALL)
    open_box = trimesh.creation.box()
    open_box.update_faces(np.arange(len(open_box.faces) - 2))  # drop one side
    open_path = tmp_path / "open_box.obj"
    open_box.export(open_path)
    with pytest.raises(ValueError, match=r"open_box\.obj: the mesh is not watertight"):
        task.prepare(open_path, tmp_path / "out.npz", SMALL)
    junk = tmp_path / "junk.stl"
    junk.write_bytes(b"solid junk\nthis is not an stl\n")
    with pytest.raises(ValueError, match=r"junk\.stl"):
        task.prepare(junk, tmp_path / "out.npz", SMALL)
    with pytest.raises(ValueError, match="unknown prepare option"):
        task.prepare(junk, tmp_path / "out.npz", {"points": 5})
    assert not (tmp_path / "out.npz").exists()


def test_prepare_is_deterministic(tmp_path):
    raw = demo.generate("demo_shape", tmp_path / "raw")
    task = get_task("occupancy")
    options = {**SMALL, "train_points": 512, "test_points": 512}
    task.prepare(raw, tmp_path / "a.npz", options)
    task.prepare(raw, tmp_path / "b.npz", options)
    first, second = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert all(np.array_equal(first[key], second[key]) for key in first.files)
    task.prepare(raw, tmp_path / "c.npz", {**options, "seed": 1})
    assert not np.array_equal(first["train_points"], np.load(tmp_path / "c.npz")["train_points"])


def test_solver_steps_eval_counts_the_scoring_passes_only(tmp_path, monkeypatch):
    """The export's renders and mesh run the same predictor; they must not skew the metric."""
    from implicit2.training.runs import evaluate_dir, train_to_dir
    from implicit2.training.settings import TrainSettings

    raw = demo.generate("demo_shape", tmp_path / "raw")
    task = get_task("occupancy")
    task.prepare(raw, tmp_path / "shape.npz", {**SMALL, "render_size": 12, "mesh_resolution": 8})
    data = task.load(tmp_path / "shape.npz")
    settings = TrainSettings(steps=10, batch_size=512, lr=5e-4, input_scale=16.0, log_every=5)
    train_to_dir("occupancy", data, "deq-fourier-1L16D", 0, settings, tmp_path / "run")
    scoring: list[int] = []
    evaluate = type(task).evaluate

    def spy(self, predict, data):
        result = evaluate(self, predict, data)
        scoring.extend(predict.solver_steps)
        return result

    monkeypatch.setattr(type(task), "evaluate", spy)
    metrics = evaluate_dir("occupancy", data, tmp_path / "run", tmp_path / "m.json", "cpu")
    assert scoring and metrics["solver_steps_eval"] == pytest.approx(np.mean(scoring))


def test_hard_points_lie_near_the_surface_and_easy_points_fill_the_box(tmp_path):
    from scipy.spatial import cKDTree

    raw = demo.generate("demo_shape", tmp_path / "raw")
    task = get_task("occupancy")
    task.prepare(raw, tmp_path / "shape.npz", SMALL)
    data = task.load(tmp_path / "shape.npz")
    mesh = load_mesh(raw)
    normalise(mesh)
    surface = cKDTree(trimesh.sample.sample_surface(mesh, 200_000, seed=0)[0])
    hard_distance = surface.query(data.extra["hard_coords"])[0]
    easy_distance = surface.query(data.test_coords)[0]
    assert np.quantile(hard_distance, 0.99) < 0.01  # surface samples + N(0, 0.001) noise
    assert np.median(easy_distance) > 5 * np.quantile(hard_distance, 0.99)
    assert 0.3 < data.extra["hard_targets"].mean() < 0.7  # about half inside, half outside
    low, high = np.array(data.meta["bounds"])
    assert (data.test_coords >= low - 1e-6).all() and (data.test_coords <= high + 1e-6).all()
