"""Pixel arrays shared by the image and video tasks: value scaling, crops, resizing, packing.

Arrays here are stacks (N, H, W, C) of intensities in [0, 1] (float32).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def to_unit(array: np.ndarray, what: str, value_scale: float | None = None) -> np.ndarray:
    """Intensities → float32 in [0, 1].

    Unsigned integers are divided by their dtype's maximum (uint8: 255), other integers holding
    0…255 by 255, booleans map to {0, 1}; floats must already lie in [0, 1]. ``value_scale``
    overrides all of this: values are divided by it and must then lie in [0, 1].
    """
    array = np.asarray(array)
    if array.size == 0:
        raise ValueError(f"{what}: no pixels (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{what}: dtype {array.dtype} is not an image dtype")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{what}: non-finite pixel values (NaN or inf)")
    if value_scale is not None:
        scaled = array.astype(np.float64) / float(value_scale)
    elif array.dtype.kind == "b":
        scaled = array.astype(np.float64)
    elif array.dtype in (np.uint8, np.uint16):
        _warn_if_mask(array, what)
        scaled = array.astype(np.float64) / np.iinfo(array.dtype).max
    elif array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise ValueError(
                f"{what}: integer values in [{array.min()}, {array.max()}]; set the prepare "
                "option value_scale (the value that means white)"
            )
        _warn_if_mask(array, what)
        scaled = array.astype(np.float64) / 255.0
    else:
        scaled = array.astype(np.float64)
    low, high = float(scaled.min()), float(scaled.max())
    if low < -1e-6 or high > 1 + 1e-6:
        hint = " (looks like 0…255: set value_scale: 255)" if high <= 255 and low >= 0 else ""
        raise ValueError(f"{what}: values in [{low:g}, {high:g}], expected [0, 1]{hint}")
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def _warn_if_mask(array: np.ndarray, what: str) -> None:
    """Integer pixels that are all 0 or 1 are most likely a mask: scaled as 0…255 they would be
    an almost black image."""
    if int(array.max()) == 1:
        logger.warning(
            "%s: integer pixels are all 0 or 1 (a mask?); they are read as 0…%d, i.e. almost "
            "black: set the prepare option value_scale: 1 if 1 means white",
            what,
            np.iinfo(array.dtype).max if array.dtype in (np.uint8, np.uint16) else 255,
        )


def crop(stack: np.ndarray, box: Any, what: str) -> np.ndarray:
    """Crop (N, H, W, C): ``box`` is an int (centred square) or [top, left, height, width]."""
    height, width = stack.shape[1:3]
    if isinstance(box, int) and not isinstance(box, bool):
        if box <= 0 or box > min(height, width):
            raise ValueError(f"{what}: crop {box} does not fit a {height}x{width} image")
        top, left, ch, cw = (height - box) // 2, (width - box) // 2, box, box
    elif _int_list(box, 4):
        top, left, ch, cw = box
        if top < 0 or left < 0 or ch <= 0 or cw <= 0 or top + ch > height or left + cw > width:
            raise ValueError(f"{what}: crop box {list(box)} is outside the {height}x{width} image")
    else:
        raise ValueError(f"{what}: crop must be an int or [top, left, height, width], got {box!r}")
    return stack[:, top : top + ch, left : left + cw]


def target_shape(size: Any, height: int, width: int, what: str) -> tuple[int, int]:
    """``size`` → (h, w): an int sets the shorter side (aspect kept), [h, w] is exact."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    if _int_list(size, 2) and min(size) > 0:
        return int(size[0]), int(size[1])
    raise ValueError(f"{what}: size must be a positive int or [height, width], got {size!r}")


def resize(stack: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize (N, H, W, C) to ``shape``: block means when the factors are integers (exact
    down-sampling), otherwise scikit-image's resize with anti-aliasing."""
    count, height, width, channels = stack.shape
    new_h, new_w = shape
    if (new_h, new_w) == (height, width):
        return stack
    if height % new_h == 0 and width % new_w == 0:
        fh, fw = height // new_h, width // new_w
        blocks = stack.reshape(count, new_h, fh, new_w, fw, channels).astype(np.float64)
        return blocks.mean(axis=(2, 4)).astype(np.float32)
    from skimage.transform import resize as sk_resize

    out = [
        sk_resize(image, (new_h, new_w), order=1, anti_aliasing=new_h < height or new_w < width)
        for image in stack.astype(np.float64)
    ]
    return np.clip(np.stack(out), 0.0, 1.0).astype(np.float32)


def pack_unit(stack: np.ndarray) -> np.ndarray:
    """Store [0, 1] intensities compactly: uint8 when they are exact multiples of 1/255."""
    scaled = stack.astype(np.float64) * 255.0
    rounded = np.rint(scaled)
    if np.abs(scaled - rounded).max() < 1e-4:
        return rounded.astype(np.uint8)
    return stack.astype(np.float32)


def unpack_unit(array: np.ndarray, what: str) -> np.ndarray:
    """Inverse of :func:`pack_unit`: float32 in [0, 1], checked."""
    if array.dtype == np.uint8:
        unit = array.astype(np.float32)
        unit /= np.float32(255.0)
        return unit
    if array.dtype != np.float32:
        raise ValueError(f"{what}: dtype {array.dtype}, expected uint8 or float32")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: non-finite values (NaN or inf)")
    if array.min() < 0 or array.max() > 1:
        raise ValueError(f"{what}: values in [{array.min()}, {array.max()}], expected [0, 1]")
    return array


def as_stack(array: np.ndarray, what: str) -> np.ndarray:
    """An image or stack → (N, H, W, C) with C ∈ {1, 3} (an alpha channel is dropped).

    2-D: one gray image. 3-D: one (H, W, C) image when the last axis has 1 to 4 entries (gray,
    gray + alpha, RGB, RGBA), else N gray images. 4-D: N images.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None, :, :, None]
    elif array.ndim == 3:
        array = array[None] if array.shape[-1] in (1, 2, 3, 4) else array[..., None]
    elif array.ndim != 4:
        raise ValueError(
            f"{what}: expected an image (H, W[, C]) or a stack (N, H, W[, C]), "
            f"got shape {array.shape}"
        )
    channels = array.shape[-1]
    if channels == 4:
        logger.info("%s: dropping the alpha channel", what)
        array = array[..., :3]
    elif channels == 2:
        logger.info("%s: dropping the alpha channel", what)
        array = array[..., :1]
    elif channels not in (1, 3):
        raise ValueError(f"{what}: {channels} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if min(array.shape[1:3]) < 2:
        raise ValueError(f"{what}: images of {array.shape[1]}x{array.shape[2]} are too small")
    return array


def _int_list(value: Any, length: int) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == length
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
