"""Each task on small real data: prepare, train briefly, score in range, exports that open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as imageio
import numpy as np
import pytest
import soundfile
import torch
import trimesh

from implicit2.tasks import get_task
from implicit2.training.runs import evaluate_dir, load_data, train_to_dir
from implicit2.training.settings import TrainSettings


def short_run(
    tmp_path: Path, task: str, source: Path, options: dict[str, Any], model: str, **train: Any
) -> tuple[dict[str, Any], Path]:
    """Prepare ``source``, train ``model`` briefly on CPU, evaluate; (metrics, run dir)."""
    prepared = tmp_path / "data.npz"
    get_task(task).prepare(source, prepared, options)
    data = load_data(task, prepared)
    settings = TrainSettings.from_dict({"device": "cpu", "log_every": 10, **train})
    run = tmp_path / "run"
    train_to_dir(task, data, model, 0, settings, run, progress=False)
    metrics = evaluate_dir(task, data, run, run / "metrics.json", "cpu")
    assert metrics["status"] == "ok"
    return metrics, run


def first_psnr(run: Path) -> float:
    return float((run / "curve.csv").read_text().splitlines()[1].split(",")[2])


def test_camera_crop_learns(tmp_path: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    crop = tmp_path / "crop.png"
    imageio.imwrite(crop, skimage_data.camera()[180:244, 220:284])
    metrics, run = short_run(
        tmp_path,
        "image_representation",
        crop,
        {},
        "deq-fourier-1L32D",
        steps=80,
        lr=3e-3,
        input_scale=32.0,
        spectral_norm=True,
    )
    assert 18 < metrics["psnr"] < 60
    assert metrics["psnr"] > first_psnr(run) + 4
    preview = imageio.imread(run / "recon" / "preview.png")
    assert preview.ndim >= 2 and preview.shape[0] >= 2 * 64


def test_batch_size_makes_a_full_batch_task_train_on_minibatches(monkeypatch) -> None:
    """``batch_size`` on an image task: every step draws that many pixels (no amortization)."""
    from implicit2.bench.inputs import crop_dataset, image_crops
    from implicit2.tasks.base import Task
    from implicit2.training.loop import train

    pytest.importorskip("skimage.data")
    drawn: list[int] = []
    original = Task.sample_index

    def spy(self, data, batch_size, generator):
        index = original(self, data, batch_size, generator)
        drawn.append(len(index))
        return index

    monkeypatch.setattr(Task, "sample_index", spy)
    data = crop_dataset(image_crops("camera", 32, 1))
    task = get_task(data.task)
    common = {"steps": 12, "lr": 3e-3, "input_scale": 32.0, "log_every": 4}
    settings = TrainSettings.from_dict({**common, "batch_size": 256, "amortize": False})
    result = train(task, data, "deq-fourier-1L16D", 0, settings, torch.device("cpu"))
    assert drawn == [256] * 12
    full = train(
        task, data, "deq-fourier-1L16D", 0, TrainSettings.from_dict(common), torch.device("cpu")
    )
    assert drawn == [256] * 12  # full batch: no draws
    # A quarter of the pixels per step saves about a quarter of full-batch's bytes for backward.
    ratio = result.chunks[0].saved_bytes / full.chunks[0].saved_bytes
    assert 0.15 < ratio < 0.4


@pytest.mark.slow
def test_bach_slice_learns_and_exports_a_wav(shared_data: Path, tmp_path: Path) -> None:
    options = {"offset_seconds": 1.0, "max_seconds": 0.1}
    metrics, run = short_run(
        tmp_path,
        "audio",
        shared_data / "audio" / "gt_bach.wav",
        options,
        "deq-fourier-1L64D",
        steps=100,
        lr=3e-3,
        input_scale=3000.0,
    )
    assert 10 < metrics["psnr"] < 80
    assert metrics["psnr"] > first_psnr(run) + 3
    info = soundfile.info(str(run / "recon" / "reconstruction.wav"))
    assert (info.samplerate, info.frames, info.channels) == (44100, 4410, 1)


def test_bikes_frames_learn(bikes_mp4: Path, tmp_path: Path) -> None:
    metrics, run = short_run(
        tmp_path,
        "video",
        bikes_mp4,
        {"frames": 3, "size": 16},
        "deq-fourier-1L32D",
        steps=60,
        lr=3e-3,
        input_scale=16.0,
        batch_size=512,
        grad_clip=0.1,
    )
    assert 12 < metrics["psnr"] < 60
    assert len(metrics["psnr_per_signal"]) == 3  # one PSNR per frame
    assert metrics["psnr_std"] == pytest.approx(np.std(metrics["psnr_per_signal"]))
    preview = imageio.imread(run / "recon" / "preview.png")
    assert preview.shape[0] >= 2 * 16


@pytest.mark.slow
def test_bunny_occupancy_learns_and_exports_a_mesh(shared_data: Path, tmp_path: Path) -> None:
    options = {
        "train_points": 20000,
        "test_points": 8192,
        "render_size": 24,
        "mesh_resolution": 24,
        "allow_non_watertight": True,
    }
    metrics, run = short_run(
        tmp_path,
        "occupancy",
        shared_data / "mesh" / "bunny.ply",
        options,
        "deq-fourier-1L32D",
        steps=150,
        lr=5e-3,
        input_scale=8.0,
        spectral_norm=True,
        batch_size=4096,
    )
    assert 0.5 < metrics["iou_easy"] <= 1.0
    assert 0.2 < metrics["iou_hard"] <= 1.0
    mesh = trimesh.load(run / "recon" / "mesh.ply")
    assert len(mesh.vertices) > 100 and len(mesh.faces) > 100
    assert imageio.imread(run / "recon" / "preview.png").size > 0
