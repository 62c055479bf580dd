"""Image tasks on real data (a camera crop, the demo photos): prepare → load → evaluate → export."""

from __future__ import annotations

import logging

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.data
import skimage.transform
import torch

from implicit2.data import demo
from implicit2.tasks import get_task
from implicit2.tasks.grids import image_coords


def _truth(data):
    targets = torch.from_numpy(data.test_targets)
    return lambda coords: targets.clone()


def _zeros(data):
    return lambda coords: torch.zeros(data.num_signals, coords.shape[0], data.out_dim)


@pytest.fixture()
def camera_crop(tmp_path):
    path = tmp_path / "camera.png"
    iio.imwrite(path, skimage.data.camera())
    return path


def test_camera_crop_representation(camera_crop, tmp_path):
    task = get_task("image_representation")
    out = tmp_path / "camera.npz"
    task.prepare(camera_crop, out, {"crop": 64})
    data = task.load(out)
    expected = skimage.data.camera()[224:288, 224:288].astype(np.float32) / 255.0
    assert data.train_coords.shape == (4096, 2) and data.train_coords.dtype == np.float32
    assert data.train_targets.shape == (1, 4096, 1)
    assert np.allclose(data.train_targets[0, :, 0], 2 * expected.ravel() - 1, atol=1e-6)
    assert np.array_equal(data.test_coords, data.train_coords)
    assert data.train_coords[1].tolist() == pytest.approx([-1 + 2 / 63, -1.0])  # (x, y) order
    assert data.signal_names == ["camera"] and task.full_batch and task.model_range == 2.0

    metrics, predictions = task.evaluate(_truth(data), data)
    assert metrics["psnr"] == pytest.approx(120.0)  # MSE floored at 1e-12
    metrics, predictions = task.evaluate(_zeros(data), data)
    by_hand = -10 * np.log10(np.mean((expected.astype(np.float64) - 0.5) ** 2))
    assert metrics["psnr"] == pytest.approx(by_hand, rel=1e-6)
    assert metrics["psnr_per_signal"] == [pytest.approx(by_hand, rel=1e-6)]

    files = task.export(predictions, data, tmp_path / "recon", None)
    names = sorted(path.name for path in files)
    assert names == ["00_camera.png", "preview.png"]
    recon = iio.imread(tmp_path / "recon" / "00_camera.png")
    assert recon.shape == (64, 64) and np.all(recon == 128)  # zeros → 0.5 gray
    assert iio.imread(tmp_path / "recon" / "preview.png").shape == (2 * 66 + 2, 66 + 2, 3)


def test_demo_faces_resized_and_clamped_psnr(tmp_path):
    raw = demo.generate("demo_faces", tmp_path / "raw")
    task = get_task("image_representation")
    task.prepare(raw, tmp_path / "faces.npz", {"size": 32, "limit": 3})
    data = task.load(tmp_path / "faces.npz")
    assert data.train_targets.shape == (3, 1024, 3) and data.num_signals == 3
    faces = demo.demo_faces()[:3].astype(np.float64) / 255.0
    blocks = faces.reshape(3, 32, 4, 32, 4, 3).mean(axis=(2, 4))  # exact block means
    assert np.allclose((data.train_targets + 1) / 2, blocks.reshape(3, -1, 3), atol=1e-6)
    assert data.signal_names == ["faces_000", "faces_001", "faces_002"]

    # outputs beyond [-1, 1] are clamped before scoring: +3 everywhere scores like +1 (white)
    metrics, _ = task.evaluate(lambda c: torch.full((3, c.shape[0], 3), 3.0), data)
    white = -10 * np.log10(np.mean((blocks - 1.0) ** 2, axis=(1, 2, 3)))
    assert metrics["psnr_per_signal"] == pytest.approx(white.tolist(), rel=1e-6)
    assert metrics["psnr_std"] == pytest.approx(white.std(), rel=1e-6)

    _, predictions = task.evaluate(_truth(data), data)
    files = task.export(predictions, data, tmp_path / "recon", None)
    assert len(files) == 4
    for path in files[:3]:
        assert iio.imread(path).shape == (32, 32, 3)


def test_generalization_even_odd_split(tmp_path):
    raw = demo.generate("demo_nature", tmp_path / "raw")
    task = get_task("image_generalization")
    task.prepare(raw, tmp_path / "nature.npz", {"size": 64, "limit": 2})
    data = task.load(tmp_path / "nature.npz")
    full = image_coords(64, 64).reshape(64, 64, 2)
    assert np.array_equal(data.train_coords, full[::2, ::2].reshape(-1, 2))
    assert np.array_equal(data.test_coords, full[1::2, 1::2].reshape(-1, 2))
    assert data.train_targets.shape == data.test_targets.shape == (2, 1024, 3)
    assert data.meta["test_shape"] == [32, 32]
    # predicting the training (even) pixels for the odd ones scores by hand
    train = torch.from_numpy(data.train_targets)
    metrics, predictions = task.evaluate(lambda c: train.clone(), data)
    truth, guess = (data.test_targets + 1) / 2, (data.train_targets + 1) / 2
    by_hand = -10 * np.log10(np.mean((truth - guess).astype(np.float64) ** 2, axis=(1, 2)))
    assert metrics["psnr_per_signal"] == pytest.approx(by_hand.tolist(), rel=1e-6)
    files = task.export(predictions, data, tmp_path / "recon", None)
    assert iio.imread(files[0]).shape == (32, 32, 3)

    with pytest.raises(ValueError, match="even height and width"):
        task.prepare(raw, tmp_path / "odd.npz", {"size": 63})


def test_resize_without_integer_factor_and_options(tmp_path, camera_crop):
    task = get_task("image_representation")
    task.prepare(camera_crop, tmp_path / "c.npz", {"crop": [0, 0, 100, 100], "size": [30, 40]})
    data = task.load(tmp_path / "c.npz")
    assert data.meta["image_shape"] == [30, 40, 1] and data.train_coords.shape == (1200, 2)
    crop = skimage.data.camera()[:100, :100] / 255.0
    expected = skimage.transform.resize(crop, (30, 40), order=1, anti_aliasing=True)
    assert np.allclose((data.train_targets[0, :, 0] + 1) / 2, expected.ravel(), atol=1e-6)
    with pytest.raises(ValueError, match="unknown prepare option"):
        task.prepare(camera_crop, tmp_path / "x.npz", {"sise": 64})
    with pytest.raises(ValueError, match="crop 600 does not fit"):
        task.prepare(camera_crop, tmp_path / "x.npz", {"crop": 600})
    assert not (tmp_path / "x.npz").exists()


def test_npz_keys_and_value_ranges(tmp_path):
    task = get_task("image_representation")
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "two.npz", train_data=images[:1], test_data=images)
    task.prepare(tmp_path / "two.npz", tmp_path / "two_p.npz", {})
    assert task.load(tmp_path / "two_p.npz").num_signals == 2  # test_data, as the authors use
    np.save(tmp_path / "floats.npy", images.astype(np.float32))  # 0…255 floats
    with pytest.raises(ValueError, match="value_scale: 255") as caught:
        task.prepare(tmp_path / "floats.npy", tmp_path / "f.npz", {})
    assert "floats.npy" in str(caught.value)
    task.prepare(tmp_path / "floats.npy", tmp_path / "f.npz", {"value_scale": 255})
    assert task.load(tmp_path / "f.npz").train_targets.max() <= 1.0
    np.savez(tmp_path / "many.npz", a=images, b=images)
    with pytest.raises(ValueError, match="key"):
        task.prepare(tmp_path / "many.npz", tmp_path / "m.npz", {})


def test_a_0_1_integer_mask_is_named_and_value_scale_1_reads_it(tmp_path, caplog):
    task = get_task("image_representation")
    mask = np.zeros((1, 8, 8, 1), dtype=np.uint8)
    mask[:, 2:6, 2:6] = 1
    np.save(tmp_path / "mask.npy", mask)
    with caplog.at_level(logging.WARNING, logger="implicit2"):
        task.prepare(tmp_path / "mask.npy", tmp_path / "m.npz", {})
    assert "mask.npy" in caplog.text and "value_scale: 1" in caplog.text
    as_255 = task.load(tmp_path / "m.npz").train_targets
    assert np.isclose(as_255.max(), 2 / 255 - 1)  # 1/255 in [0, 1], then to [-1, 1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="implicit2"):
        task.prepare(tmp_path / "mask.npy", tmp_path / "m1.npz", {"value_scale": 1})
    assert "value_scale" not in caplog.text
    assert task.load(tmp_path / "m1.npz").train_targets.max() == 1.0
    images = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "photo.npy", images)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="implicit2"):
        task.prepare(tmp_path / "photo.npy", tmp_path / "p.npz", {})
    assert "mask" not in caplog.text


def test_gray_alpha_and_cmyk_pictures_are_one_image_with_their_colours(tmp_path):
    from PIL import Image

    task = get_task("image_representation")
    gray = np.arange(30, dtype=np.uint8).reshape(6, 5) * 8
    Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), mode="LA").save(
        tmp_path / "la.png"
    )
    task.prepare(tmp_path / "la.png", tmp_path / "la.npz", {})
    data = task.load(tmp_path / "la.npz")
    assert data.num_signals == 1 and data.out_dim == 1  # one gray image, alpha dropped
    assert np.allclose((data.train_targets[0, :, 0] + 1) / 2, gray.reshape(-1) / 255, atol=1e-6)
    Image.new("RGB", (8, 6), (200, 50, 0)).convert("CMYK").save(tmp_path / "ink.jpg")
    task.prepare(tmp_path / "ink.jpg", tmp_path / "ink.npz", {})
    pixels = (task.load(tmp_path / "ink.npz").train_targets[0] + 1) / 2 * 255
    assert np.allclose(pixels, [200, 50, 0], atol=6)  # RGB, not the ink channels


def test_bad_image_files_name_the_file(tmp_path):
    task = get_task("image_representation")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        task.prepare(corrupt, tmp_path / "out.npz", {})
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        task.load(corrupt)
    broken = tmp_path / "broken.png"
    broken.write_bytes(np.random.default_rng(1).bytes(300))
    with pytest.raises(ValueError, match=r"broken\.png"):
        task.prepare(broken, tmp_path / "out.npz", {})
    nan = np.full((4, 4), np.nan, dtype=np.float32)
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ValueError, match=r"nan\.npy.*non-finite"):
        task.prepare(tmp_path / "nan.npy", tmp_path / "out.npz", {})


def test_load_rejects_wrong_task_and_tampered_arrays(tmp_path, camera_crop):
    task = get_task("image_representation")
    good = tmp_path / "good.npz"
    task.prepare(camera_crop, good, {"crop": 16})
    with pytest.raises(ValueError, match="not image_generalization"):
        get_task("image_generalization").load(good)
    arrays = dict(np.load(good))
    arrays["images"] = np.full((1, 16, 16, 1), 2.0, dtype=np.float32)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"bad\.npz: images: values in"):
        task.load(tmp_path / "bad.npz")
    del arrays["images"]
    np.savez(tmp_path / "nokey.npz", **arrays)
    with pytest.raises(ValueError, match=r"nokey\.npz: missing images"):
        task.load(tmp_path / "nokey.npz")
    data = task.load(good)
    with pytest.raises(ValueError, match="predict returned shape"):
        task.evaluate(lambda c: torch.zeros(c.shape[0], 3), data)
