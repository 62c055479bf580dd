"""`python -m implicit2 fit PATH --model M --out DIR`: a user's own file, no Snakemake."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from implicit2.cli import main
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
    assert metrics["hparams"]["input_scale"] == 25000.0
    assert metrics["hparams"]["spectral_norm"] is False
    assert np.isfinite(metrics["psnr"])


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
    tmp_path: Path, caplog: pytest.LogCaptureFixture
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
