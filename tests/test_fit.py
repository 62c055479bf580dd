"""`python -m implicit2 fit PATH --model M --out DIR`: a user's own file, no Snakemake."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from implicit2.cli import main
from implicit2.pipeline.scale_rule import SHORT_RUN_MAX_LR
from implicit2.tasks import get_task

REQUIRED = ("task", "model", "steps", "status", "params", "train_seconds")


def write_tone(path: Path, rate: int = 8000, seconds: float = 0.25) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.5 * np.sin(2 * np.pi * 330 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    return path


def write_crop(path: Path) -> Path:
    skimage_data = pytest.importorskip("skimage.data")
    imageio = pytest.importorskip("imageio.v3")
    imageio.imwrite(path, skimage_data.camera()[200:232, 240:272])
    return path


def test_fit_an_image_from_the_command_line(tmp_path: Path) -> None:
    image = write_crop(tmp_path / "crop.png")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "implicit2", "fit", str(image), "--model"]
    command += ["deq-fourier-1L32D", "--steps", "60", "--input-scale", "32", "--lr", "3e-3"]
    command += ["--device", "cpu", "--out", str(out), "--no-progress"]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {key: metrics[key] for key in ("task", "model", "steps", "status")} == {
        "task": "image_representation",
        "model": "deq-fourier-1L32D",
        "steps": 60,
        "status": "ok",
    }
    assert metrics["params"] == 2 * (2 * 32 + 32) + (32 * 32 + 32) + (32 + 1)  # filters, W, out
    assert metrics["train_seconds"] > 0
    assert metrics["hparams"]["input_scale"] == 32.0
    assert metrics["hparams"]["lr"] == 3e-3
    assert metrics["hparams"]["spectral_norm"] is True  # the image task's default for deq
    curve = (out / "curve.csv").read_text().splitlines()
    first_psnr, last_psnr = (float(line.split(",")[2]) for line in (curve[1], curve[-1]))
    assert last_psnr > first_psnr + 3
    assert metrics["psnr"] > 15
    assert (out / "recon").is_dir() and any((out / "recon").iterdir())


def test_fit_audio_uses_the_audio_defaults(tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.wav")
    out = tmp_path / "audio"
    argv = ["fit", str(tone), "--model", "mfn-fourier-1L16D", "--steps", "5", "--device", "cpu"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "audio"
    assert all(key in metrics for key in REQUIRED)
    assert metrics["hparams"]["spectral_norm"] is False
    assert np.isfinite(metrics["psnr"])
    # 0.25 s at 8 kHz: the paper's 25000 for bach (308207 samples at 44.1 kHz) × √(N·T) ratio
    expected = 25000.0 * (2000 / 8000**0.5) / (308207 / 44100**0.5)
    assert metrics["hparams"]["input_scale"] == pytest.approx(expected)
    chosen = metrics["fit_settings"]
    assert chosen["input_scale"]["source"] == "signal"
    assert chosen["input_scale"]["value"] == pytest.approx(expected)
    assert "2000 samples at 8000 Hz" in chosen["input_scale"]["reason"]
    assert chosen["steps"] == {"value": 5, "source": "command line"}
    assert chosen["lr"] == {"value": 1e-3, "source": "task default"}


def test_fit_derives_the_scale_from_the_image_size_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    imageio = pytest.importorskip("imageio.v3")
    # 16-bit, not square, detail up to the Nyquist frequency: the sampling bound binds
    grain = np.random.default_rng(0).integers(0, 65536, size=(24, 40), dtype=np.uint16)
    image = tmp_path / "grain.png"
    imageio.imwrite(image, grain)
    argv = ["fit", str(image), "--model", "mfn-fourier-1L16D", "--steps", "3", "--device", "cpu"]
    argv += ["--lr", "1e-3"]  # the task's rate: the bounds as the paper tuned them
    caplog.set_level(logging.INFO, logger="implicit2")
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    expected = 0.5 * 24  # half the samples along the shorter axis
    assert metrics["hparams"]["input_scale"] == pytest.approx(expected)
    assert metrics["fit_settings"]["input_scale"]["source"] == "signal"
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("settings:"))
    assert f"input_scale {expected:.4g} (sampling of the signal: 24×40 samples" in line, line
    assert "steps 3 (command line)" in line
    given = ["--input-scale", "7", "--out", str(tmp_path / "given"), "--no-progress"]
    assert main([*argv, *given]) == 0
    metrics = json.loads((tmp_path / "given" / "metrics.json").read_text())
    assert metrics["fit_settings"]["input_scale"] == {"value": 7.0, "source": "command line"}


def test_a_short_fit_of_a_picture_gets_a_higher_rate_and_scale_and_fits_better(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = write_crop(tmp_path / "crop.png")
    argv = ["fit", str(image), "--model", "mfn-fourier-1L16D", "--steps", "60", "--device", "cpu"]
    caplog.set_level(logging.INFO, logger="implicit2")
    assert main([*argv, "--out", str(tmp_path / "short"), "--no-progress"]) == 0
    short = json.loads((tmp_path / "short" / "metrics.json").read_text())
    cap = SHORT_RUN_MAX_LR["image_representation"]  # 1e-3 × 5000 / 60 is above it
    assert short["fit_settings"]["lr"] == {
        "value": cap,
        "source": "short run",
        "reason": f"the task's 0.001 × 5000 steps kept over 60 steps, capped at {cap:g}",
    }
    assert short["hparams"]["lr"] == cap
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("settings:"))
    assert f"lr {cap:g} (the task's 0.001 × 5000 steps" in line, line
    # the rate raises the scale's bounds too: here the capacity, 16 × √2 instead of 16
    assert short["hparams"]["input_scale"] == pytest.approx(16 * 2**0.5)
    assert "g = 2 for 20× the task's rate" in short["fit_settings"]["input_scale"]["reason"]
    paper = ["--lr", "1e-3", "--out", str(tmp_path / "paper"), "--no-progress"]
    assert main([*argv, *paper]) == 0
    at_paper_rate = json.loads((tmp_path / "paper" / "metrics.json").read_text())
    assert at_paper_rate["hparams"]["input_scale"] == pytest.approx(16.0)
    assert short["psnr"] > at_paper_rate["psnr"] + 3


def test_fit_tune_tries_scales_around_the_derived_one_and_keeps_the_best(tmp_path: Path) -> None:
    image = write_crop(tmp_path / "crop.png")
    argv = ["fit", str(image), "--model", "mfn-fourier-1L16D", "--steps", "20", "--tune"]
    argv += ["--device", "cpu", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    chosen = metrics["fit_settings"]
    trials = chosen["tune"]
    start = 16.0 * 2**0.5  # 32², 20 steps: the capacity bound at the short run's rate
    assert [t["input_scale"] for t in trials] == pytest.approx([start, start / 2, start * 2])
    best = min(trials, key=lambda t: t["loss"])
    assert chosen["input_scale"]["source"] == "tune"
    assert chosen["input_scale"]["start"]["value"] == pytest.approx(start)
    assert metrics["hparams"]["input_scale"] == best["input_scale"]
    assert len({t["loss"] for t in trials}) == 3  # each scale really trained


def test_fit_trains_a_signal_too_large_for_memory_on_minibatches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from implicit2.training import batch_fallback

    monkeypatch.setattr(batch_fallback, "available_bytes", lambda device: 8_000_000)
    tone = write_tone(tmp_path / "tone.wav", rate=16000, seconds=1.0)
    argv = ["fit", str(tone), "--model", "deq-fourier-1L32D", "--steps", "4", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    points = metrics["hparams"]["batch_size"]
    assert points is not None and 1024 <= points < 16000
    assert points & (points - 1) == 0  # a power of two
    assert metrics["fit_settings"]["batch_size"]["source"] == "memory"
    assert metrics["fit_settings"]["batch_size"]["full_batch_bytes"] > 4_000_000
    assert "training on random minibatches of" in caplog.text
    assert metrics["status"] == "ok" and np.isfinite(metrics["psnr"])


def test_fit_task_option_overrides_the_guess(tmp_path: Path) -> None:
    clip = tmp_path / "clip.npy"  # 4-D, no "video" in the name: guessed an image stack
    np.save(clip, np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 3)).astype(np.float32))
    argv = ["fit", str(clip), "--model", "mfn-fourier-1L8D", "--steps", "3", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "guessed"), "--no-progress"]) == 0
    guessed = json.loads((tmp_path / "guessed" / "metrics.json").read_text())
    assert guessed["task"] == "image_representation"
    assert main([*argv, "--task", "video", "--out", str(tmp_path / "video"), "--no-progress"]) == 0
    video = json.loads((tmp_path / "video" / "metrics.json").read_text())
    assert video["task"] == "video" and len(video["psnr_per_signal"]) == 3  # one PSNR a frame


def test_fit_refuses_unknown_files_and_models_with_clear_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a signal")
    assert main(["fit", str(notes), "--model", "deq-fourier-1L8D", "--out", str(tmp_path)]) == 2
    assert "cannot tell the task from '.txt'" in caplog.text
    missing = tmp_path / "missing.png"
    assert main(["fit", str(missing), "--model", "deq-fourier-1L8D", "--out", str(tmp_path)]) == 2
    assert f"{missing} does not exist" in caplog.text
    tone = write_tone(tmp_path / "tone.wav")
    assert main(["fit", str(tone), "--model", "deq-cosine-1L8D", "--out", str(tmp_path)]) == 2
    assert "deq-{fourier|gabor|siren}-{L}L{D}D" in caplog.text
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                str(tone),
                "--model",
                "deq-fourier-1L8D",
                "--out",
                str(tmp_path),
                "--tune",
                "--tune-seconds",
                "0",
            ]
        )
    assert "'0' is not a positive number of seconds" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_fit_takes_an_indexed_cuda_device_and_names_a_missing_gpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tone = write_tone(tmp_path / "tone.wav")
    argv = ["fit", str(tone), "--model", "mfn-fourier-1L8D", "--out", str(tmp_path / "run")]
    assert main([*argv, "--device", "cuda:1", "--no-progress"]) == 2
    assert "device 'cuda:1' requested but CUDA is not available" in caplog.text
    with pytest.raises(SystemExit):
        main([*argv, "--device", "gpu"])
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_fitting_another_file_into_the_same_folder_prepares_it_again(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--model", "mfn-fourier-1L8D", "--steps", "2", "--device", "cpu", "--no-progress"]
    first = write_tone(tmp_path / "first.wav", seconds=0.25)
    assert main(["fit", str(first), *argv, "--out", str(out)]) == 0
    prepared = (out / "data.npz").stat().st_mtime_ns
    assert main(["fit", str(first), *argv, "--out", str(out)]) == 0
    assert (out / "data.npz").stat().st_mtime_ns == prepared  # same file: kept
    second = write_tone(tmp_path / "second.wav", seconds=0.5)
    assert main(["fit", str(second), *argv, "--out", str(out)]) == 0
    assert get_task("audio").load(out / "data.npz").train_coords.shape == (4000, 1)  # 0.5 s


def test_fit_takes_a_mesh_with_holes_only_when_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Scans such as the Stanford bunny have holes: refused by default with the flag named in the
    message, fitted with --allow-non-watertight; the flag is refused for a non-mesh."""
    trimesh = pytest.importorskip("trimesh")
    box = trimesh.creation.box()
    mesh = tmp_path / "open.ply"
    trimesh.Trimesh(box.vertices, box.faces[:-1]).export(mesh)  # one face missing
    argv = ["fit", str(mesh), "--model", "mfn-fourier-1L8D", "--steps", "2", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "refused")]) == 2
    assert "not watertight" in caplog.text and "--allow-non-watertight" in caplog.text
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out), "--allow-non-watertight"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and 0.0 <= metrics["iou_easy"] <= 1.0
    tone = write_tone(tmp_path / "tone.wav")
    tone_argv = ["fit", str(tone), "--model", "mfn-fourier-1L8D", "--out", str(tmp_path / "t")]
    assert main([*tone_argv, "--allow-non-watertight"]) == 2
    assert "applies to meshes (occupancy), not to audio" in caplog.text


def test_fit_bounds_a_smooth_picture_by_its_bandwidth_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A picture sampled far above its content (one slow cosine over 48×64 pixels): the
    bandwidth bound sets the scale, below the sampling bound (24), and the line names it."""
    imageio = pytest.importorskip("imageio.v3")
    y, x = np.meshgrid(np.linspace(-1, 1, 48), np.linspace(-1, 1, 64), indexing="ij")
    smooth = 0.5 + 0.4 * np.cos(3.0 * x) * np.cos(2.0 * y)
    image = tmp_path / "smooth.png"
    imageio.imwrite(image, (smooth * 255).round().astype(np.uint8))
    argv = ["fit", str(image), "--model", "mfn-fourier-1L16D", "--steps", "2", "--device", "cpu"]
    caplog.set_level(logging.INFO, logger="implicit2")
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    scale = metrics["hparams"]["input_scale"]
    assert 0 < scale < 24
    reason = metrics["fit_settings"]["input_scale"]["reason"]
    assert reason.startswith("bandwidth of the signal: 99.9% of its energy below")
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("settings:"))
    assert f"input_scale {scale:.4g} (bandwidth of the signal" in line
