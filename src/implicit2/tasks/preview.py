"""Writing what a person looks at: PNGs and tiled previews (ground truth beside reconstruction)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from implicit2.io import atomic_path

PAD = 2


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8 (H, W) or (H, W, 3); a single channel is squeezed."""
    image = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return np.rint(image * 255.0).astype(np.uint8)


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Atomically write a [0, 1] float or uint8 image as PNG."""
    import imageio.v3 as iio

    data = image if image.dtype == np.uint8 else to_uint8(image)
    with atomic_path(path) as temp:
        iio.imwrite(temp, data, extension=".png")
    return Path(path)


def tile(rows: list[list[np.ndarray]], pad: int = PAD) -> np.ndarray:
    """Tile [0, 1] images (H, W), (H, W, 1) or (H, W, 3) into one RGB uint8 picture.

    Images are placed top-left in equal cells sized by the largest one, on a white background.
    """
    cells = [[_rgb(image) for image in row] for row in rows]
    height = max(image.shape[0] for row in cells for image in row)
    width = max(image.shape[1] for row in cells for image in row)
    columns = max(len(row) for row in cells)
    canvas = np.full(
        (len(cells) * (height + pad) + pad, columns * (width + pad) + pad, 3), 255, dtype=np.uint8
    )
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            top, left = pad + r * (height + pad), pad + c * (width + pad)
            canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
    return canvas


def safe_name(name: str) -> str:
    """A file-name-safe version of a signal name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "signal"


def _rgb(image: np.ndarray) -> np.ndarray:
    data = to_uint8(image)
    return np.repeat(data[..., None], 3, axis=-1) if data.ndim == 2 else data
