"""Video task on a few downsampled frames of bikes.mp4, on npy videos, and on empty videos."""

from __future__ import annotations

import av
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from implicit2.tasks import get_task
from implicit2.tasks.grids import video_coords


def _first_frames(path, count):
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return np.stack(frames)
    raise AssertionError("too few frames")


def test_bikes_frames_downsampled(bikes_mp4, tmp_path):
    task = get_task("video")
    out = tmp_path / "bikes.npz"
    task.prepare(bikes_mp4, out, {"frames": 3, "size": [34, 80]})
    data = task.load(out)
    assert not task.full_batch and task.loss_kind == "mse"
    assert data.meta["video_shape"] == [3, 34, 80, 3] and data.meta["fps"] == 25.0
    assert data.train_coords.shape == (3 * 34 * 80, 3)
    assert np.array_equal(data.train_coords, video_coords(3, 34, 80))
    assert data.train_coords[1].tolist() == pytest.approx([-1.0, -1.0, -1 + 2 / 79])  # (t, y, x)
    frames = _first_frames(bikes_mp4, 3).astype(np.float64) / 255.0
    blocks = frames.reshape(3, 34, 8, 80, 8, 3).mean(axis=(2, 4))  # 272x640 → 34x80 exactly
    assert np.allclose((data.train_targets[0] + 1) / 2, blocks.reshape(-1, 3), atol=1e-6)

    index = task.sample_index(data, 500, torch.Generator().manual_seed(0))
    coords, targets = task.batch_at(data, index)
    assert coords.shape == (500, 3) and targets.shape == (1, 500, 3)

    metrics, predictions = task.evaluate(lambda c: torch.zeros(1, c.shape[0], 3), data)
    by_hand = -10 * np.log10(np.mean((blocks - 0.5) ** 2, axis=(1, 2, 3)))
    assert metrics["psnr_per_signal"] == pytest.approx(by_hand.tolist(), rel=1e-6)
    assert metrics["psnr"] == pytest.approx(by_hand.mean(), rel=1e-6)
    assert metrics["psnr_std"] == pytest.approx(by_hand.std(), rel=1e-6)
    assert metrics["frames"] == 3

    truth = torch.from_numpy(data.test_targets)
    metrics, predictions = task.evaluate(lambda c: truth.clone(), data)
    assert metrics["psnr_per_signal"] == pytest.approx([120.0] * 3)
    files = task.export(predictions, data, tmp_path / "recon", None)
    assert [f.name for f in files] == ["preview.png", "reconstruction.mp4"]
    assert iio.imread(files[0]).shape == (2 * 36 + 2, 3 * 82 + 2, 3)
    with av.open(str(files[1])) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 3 and decoded[0].shape == (34, 80, 3)


def test_stride_and_shorter_side_size(bikes_mp4, tmp_path):
    task = get_task("video")
    task.prepare(bikes_mp4, tmp_path / "b.npz", {"frames": 2, "stride": 5, "size": 17})
    data = task.load(tmp_path / "b.npz")
    assert data.meta["video_shape"] == [2, 17, 40, 3] and data.meta["fps"] == 5.0


def test_npy_video(tmp_path):
    video = np.random.default_rng(0).integers(0, 256, (4, 6, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "clip_video.npy", video)
    task = get_task("video")
    task.prepare(tmp_path / "clip_video.npy", tmp_path / "v.npz", {"stride": 2})
    data = task.load(tmp_path / "v.npz")
    assert data.meta["video_shape"] == [2, 6, 8, 3]
    expected = video[::2].astype(np.float32) / 255 * 2 - 1
    assert np.allclose(data.train_targets[0], expected.reshape(-1, 3), atol=1e-6)


def test_npy_video_of_floats_in_0_255_takes_value_scale(tmp_path):
    video = np.random.default_rng(0).uniform(0, 255, (2, 4, 5, 3)).astype(np.float32)
    np.save(tmp_path / "floats_video.npy", video)
    task = get_task("video")
    with pytest.raises(ValueError, match="set value_scale: 255"):
        task.prepare(tmp_path / "floats_video.npy", tmp_path / "v.npz", {})
    task.prepare(tmp_path / "floats_video.npy", tmp_path / "v.npz", {"value_scale": 255})
    targets = task.load(tmp_path / "v.npz").train_targets[0]
    assert np.allclose(targets, (video / 255 * 2 - 1).reshape(-1, 3), atol=2 / 255)


def test_empty_videos_name_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()  # write the header although no frame follows
        for packet in stream.encode():
            container.mux(packet)
    task = get_task("video")
    with pytest.raises(ValueError, match=r"empty\.mp4: no video stream \(zero frames\)"):
        task.prepare(empty, tmp_path / "out.npz", {})
    np.save(tmp_path / "none.npy", np.zeros((0, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"none\.npy: expected a video"):
        task.prepare(tmp_path / "none.npy", tmp_path / "out.npz", {})
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match=r"junk\.mp4: not a readable video"):
        task.prepare(junk, tmp_path / "out.npz", {})
    assert not (tmp_path / "out.npz").exists()
