"""What the benchmarks train on: an image (``camera`` or a file) at a size, or K distinct crops of
it as a K-signal dataset, or the first K signals of a prepared dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from implicit2.tasks import imaging
from implicit2.tasks.base import PreparedData
from implicit2.tasks.grids import image_coords
from implicit2.tasks.image import read_images


def read_image(name: str) -> np.ndarray:
    """``camera`` (skimage) or an image file → (H, W, C) float32 in [0, 1], full resolution, read
    as the image tasks read it (16-bit depth, alpha and CMYK handled; a stack gives its first)."""
    if name == "camera":
        import skimage.data

        return imaging.to_unit(imaging.as_stack(skimage.data.camera(), name), name)[0]
    path = Path(name)
    if not path.is_file():
        raise FileNotFoundError(f"--image {name}: neither 'camera' nor an existing image file")
    return read_images(path, {})[0][0]


def load_image(name: str, size: int) -> np.ndarray:
    """``camera`` (skimage) or an image path → (size, size, C) float32 in [0, 1].

    Downsamples by block means when ``size`` divides the side, else resizes with anti-aliasing.
    """
    import skimage.transform

    image = read_image(name)
    side = min(image.shape[:2])
    image = image[:side, :side]
    if side % size == 0:
        factor = side // size
        image = image.reshape(size, factor, size, factor, -1).mean(axis=(1, 3))
    else:
        image = skimage.transform.resize(image, (size, size), anti_aliasing=True)
    return image.astype(np.float32)


def image_crops(name: str, size: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct ``size``×``size`` crops of the full-resolution image → (K, size, size, C).

    Top-left corners are drawn without replacement from every position (``seed`` fixes them).
    """
    image = read_image(name)
    rows, cols = image.shape[0] - size + 1, image.shape[1] - size + 1
    if rows < 1 or cols < 1:
        raise ValueError(
            f"--size {size} is larger than the image ({image.shape[0]}×{image.shape[1]})"
        )
    if count < 1 or count > rows * cols:
        raise ValueError(f"--signals must be between 1 and {rows * cols}, got {count}")
    corners = np.random.default_rng(seed).choice(rows * cols, size=count, replace=False)
    crops = [image[c // cols : c // cols + size, c % cols : c % cols + size] for c in corners]
    return np.stack(crops).astype(np.float32)


def crop_dataset(crops: np.ndarray, name: str = "crops") -> PreparedData:
    """K images (K, size, size, C) in [0, 1] → an image_representation dataset of K signals."""
    count, size = crops.shape[0], crops.shape[1]
    coords = image_coords(size, size)
    targets = (crops.reshape(count, size * size, -1) * 2.0 - 1.0).astype(np.float32)
    names = [f"{name}{k}" for k in range(count)]
    return PreparedData("image_representation", name, coords, targets, coords, targets, names)


def subset(data: PreparedData, count: int) -> PreparedData:
    """The first ``count`` signals of ``data``."""
    if not 1 <= count <= data.num_signals:
        raise ValueError(f"--signals must be between 1 and {data.num_signals}, got {count}")
    return dataclasses.replace(
        data,
        train_targets=data.train_targets[:count],
        test_targets=data.test_targets[:count],
        signal_names=data.signal_names[:count],
    )
