"""Audio task on the paper's Bach clip (a slice) and the demo chirp."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from implicit2.data import demo
from implicit2.tasks import get_task


def test_bach_slice_prepare_evaluate_export(shared_data, tmp_path):
    source = shared_data / "audio" / "gt_bach.wav"
    task = get_task("audio")
    out = tmp_path / "bach.npz"
    task.prepare(source, out, {"offset_seconds": 1.0, "max_seconds": 0.25})
    data = task.load(out)
    raw, rate = soundfile.read(source, dtype="float64")
    piece = raw[44100 : 44100 + 11025]
    expected = piece / np.abs(piece).max()
    assert rate == 44100 and data.meta["sample_rate"] == 44100
    assert data.train_coords.shape == (11025, 1) and data.train_targets.shape == (1, 11025, 1)
    assert data.train_coords[0, 0] == -1.0 and data.train_coords[-1, 0] == 1.0
    assert np.allclose(data.train_targets[0, :, 0], expected, atol=1e-6)
    assert np.abs(data.train_targets).max() == pytest.approx(1.0)
    assert task.model_range == 1.0 and task.full_batch

    metrics, predictions = task.evaluate(lambda c: torch.zeros(c.shape[0], 1), data)
    by_hand = -10 * np.log10(np.mean(expected**2))
    assert metrics["psnr"] == pytest.approx(by_hand, rel=1e-5)
    truth = torch.from_numpy(data.test_targets)
    metrics, predictions = task.evaluate(lambda c: truth.clone(), data)
    assert metrics["psnr"] == pytest.approx(120.0)

    files = task.export(predictions, data, tmp_path / "recon", None)
    assert [f.name for f in files] == ["reconstruction.wav", "preview.png"]
    info = soundfile.info(files[0])
    assert info.samplerate == 44100 and info.frames == 11025 and info.channels == 1
    written, _ = soundfile.read(files[0], dtype="float32")
    assert np.allclose(written, data.test_targets[0, :, 0])
    import imageio.v3 as iio

    assert iio.imread(files[1]).ndim == 3


def test_demo_chirp_with_resampling(tmp_path):
    raw = demo.generate("demo_chirp", tmp_path / "raw")
    task = get_task("audio")
    task.prepare(raw, tmp_path / "chirp.npz", {"resample": 8000})
    data = task.load(tmp_path / "chirp.npz")
    assert data.meta["sample_rate"] == 8000 and data.train_coords.shape == (8000, 1)
    # a constant half-amplitude guess scores by hand
    metrics, predictions = task.evaluate(lambda c: torch.full((c.shape[0], 1), 0.5), data)
    wave = data.test_targets[0, :, 0].astype(np.float64)
    assert metrics["psnr"] == pytest.approx(-10 * np.log10(np.mean((wave - 0.5) ** 2)), rel=1e-6)
    files = task.export(predictions, data, tmp_path / "recon", None)
    assert soundfile.info(files[0]).frames == 8000


def test_bad_audio_files_name_the_file(tmp_path):
    task = get_task("audio")
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError, match=r"noise\.wav: not a readable audio file"):
        task.prepare(noise, tmp_path / "out.npz", {})
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(1000, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match=r"silent\.wav: the audio is silent"):
        task.prepare(silent, tmp_path / "out.npz", {})
    bad = tmp_path / "nan.wav"
    soundfile.write(bad, np.array([0.1, np.nan, 0.2], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav.*non-finite"):
        task.prepare(bad, tmp_path / "out.npz", {})
    short = tmp_path / "short.wav"
    soundfile.write(short, np.ones(100, dtype=np.float32) * 0.5, 8000)
    with pytest.raises(ValueError, match=r"short\.wav: fewer than 2 samples"):
        task.prepare(short, tmp_path / "out.npz", {"offset_seconds": 1.0})
    pair = tmp_path / "pair.wav"
    soundfile.write(pair, np.array([0.5, -0.5], dtype=np.float32), 8000)
    with pytest.raises(ValueError, match=r"pair\.wav: fewer than 2 samples left after resample"):
        task.prepare(pair, tmp_path / "out.npz", {"resample": 4000})
    with pytest.raises(ValueError, match="max_seconds must be a number"):
        task.prepare(short, tmp_path / "out.npz", {"max_seconds": "all"})
    assert not (tmp_path / "out.npz").exists()
