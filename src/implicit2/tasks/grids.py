"""Coordinate grids in [-1, 1], following the authors' code.

- images: ``meshgrid(linspace(-1, 1, W), linspace(-1, 1, H))`` (``xy`` indexing), columns (x, y),
  flattened row-major so that ``reshape(H, W)`` gives the image back;
- audio: ``linspace(-1, 1, T)`` as a column;
- video: ``meshgrid(t, y, x)`` with ``ij`` indexing, columns (t, y, x), flattened frame-major.
"""

from __future__ import annotations

import numpy as np


def _axis(count: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, count, dtype=np.float32)


def image_coords(height: int, width: int) -> np.ndarray:
    """float32 (H·W, 2) with columns (x, y)."""
    x, y = np.meshgrid(_axis(width), _axis(height), indexing="xy")
    return np.stack([x, y], axis=-1).reshape(-1, 2)


def audio_coords(count: int) -> np.ndarray:
    """float32 (T, 1)."""
    return _axis(count)[:, None]


def video_coords(frames: int, height: int, width: int) -> np.ndarray:
    """float32 (T·H·W, 3) with columns (t, y, x)."""
    coords = np.empty((frames, height, width, 3), dtype=np.float32)  # filled by broadcasting:
    coords[..., 0] = _axis(frames)[:, None, None]  # no meshgrid temporaries for long videos
    coords[..., 1] = _axis(height)[None, :, None]
    coords[..., 2] = _axis(width)[None, None, :]
    return coords.reshape(-1, 3)
