"""Deterministic demo signals, made locally without network: the same bytes on every run.

- ``demo_faces``: 4 RGB photos from scikit-image (astronaut, chelsea, coffee, rocket),
  centre-cropped to a square and block-mean resized to 128x128 → ``faces.npy`` uint8
  (4, 128, 128, 3).
- ``demo_nature``: 4 other photos (immunohistochemistry, stereo motorcycle (left), retina, Hubble
  deep field) at 256x256 → ``nature.npy`` uint8 (4, 256, 256, 3).
- ``demo_chirp``: 1 s at 16 kHz, three harmonics of 220 Hz plus a linear 300→3000 Hz chirp and a
  little seeded noise → ``chirp.wav`` float32 mono, 16,000 samples.
- ``demo_shape``: a torus (radii 0.6 and 0.25) with a sphere (radius 0.3) in its hole, two disjoint
  watertight trimesh primitives → ``shape.ply`` (binary PLY).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from implicit2.io import write_bytes

if TYPE_CHECKING:
    import trimesh

logger = logging.getLogger(__name__)

FACES = ("astronaut", "chelsea", "coffee", "rocket")
NATURE = ("immunohistochemistry", "stereo_motorcycle", "retina", "hubble_deep_field")
CHIRP_RATE = 16_000
SEED = 0


def square_block_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``image`` (H, W, C) to the largest square whose side is a multiple of ``size``,
    then average ``side/size`` × ``side/size`` blocks; returns uint8 (size, size, C)."""
    height, width = image.shape[:2]
    side = (min(height, width) // size) * size
    if side == 0:
        raise ValueError(f"image of {height}x{width} is smaller than {size}x{size}")
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top : top + side, left : left + side].astype(np.float64)
    factor = side // size
    blocks = crop.reshape(size, factor, size, factor, -1).mean(axis=(1, 3))
    return np.clip(np.rint(blocks), 0, 255).astype(np.uint8)


def _skimage_rgb(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        image = image[0]
    return np.asarray(image)[..., :3]


def demo_faces(size: int = 128) -> np.ndarray:
    """uint8 (4, size, size, 3): the ``FACES`` photos, square and block-mean resized."""
    return np.stack([square_block_mean(_skimage_rgb(name), size) for name in FACES])


def demo_nature(size: int = 256) -> np.ndarray:
    """uint8 (4, size, size, 3): the ``NATURE`` photos, square and block-mean resized."""
    return np.stack([square_block_mean(_skimage_rgb(name), size) for name in NATURE])


def demo_chirp(seconds: float = 1.0, rate: int = CHIRP_RATE) -> tuple[np.ndarray, int]:
    """A float32 mono clip in [-1, 1] and its sample rate: harmonics + chirp + seeded noise."""
    t = np.arange(round(seconds * rate), dtype=np.float64) / rate
    wave = 0.5 * np.sin(2 * np.pi * 220 * t)
    wave += 0.25 * np.sin(2 * np.pi * 440 * t + 0.3)
    wave += 0.125 * np.sin(2 * np.pi * 660 * t + 1.1)
    f0, f1 = 300.0, 3000.0  # linear chirp: phase = 2π (f0 t + (f1 - f0) t² / (2 T))
    envelope = np.sin(np.pi * t / seconds) ** 2
    wave += 0.4 * envelope * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    wave += 0.01 * np.random.default_rng(SEED).standard_normal(t.shape)
    wave /= np.abs(wave).max()
    return (0.9 * wave).astype(np.float32), rate


def demo_shape() -> trimesh.Trimesh:
    """A watertight ``trimesh.Trimesh``: a torus around the z axis with a sphere in its hole."""
    import trimesh

    torus = trimesh.creation.torus(
        major_radius=0.6, minor_radius=0.25, major_sections=48, minor_sections=24
    )
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    ball.apply_translation([0.0, 0.0, 0.15])
    mesh = cast("trimesh.Trimesh", trimesh.util.concatenate([torus, ball]))
    if not mesh.is_watertight:  # pragma: no cover - guards a change in trimesh's primitives
        raise RuntimeError("demo shape is not watertight")
    return mesh


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _wav_bytes() -> bytes:
    import soundfile

    wave, rate = demo_chirp()
    buffer = io.BytesIO()
    soundfile.write(buffer, wave, rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def _ply_bytes() -> bytes:
    data = demo_shape().export(file_type="ply", encoding="binary")
    if not isinstance(data, bytes):  # pragma: no cover - trimesh returns bytes for binary PLY
        raise TypeError(f"trimesh exported {type(data).__name__}, not bytes, for a binary PLY")
    return data


#: generator name → (file name, bytes maker)
GENERATORS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "demo_faces": ("faces.npy", lambda: _npy_bytes(demo_faces())),
    "demo_nature": ("nature.npy", lambda: _npy_bytes(demo_nature())),
    "demo_chirp": ("chirp.wav", _wav_bytes),
    "demo_shape": ("shape.ply", _ply_bytes),
}


def generate(name: str, dest_dir: str | os.PathLike[str]) -> Path:
    """Write demo dataset ``name`` into ``dest_dir`` (atomically) and return the file's path."""
    if name not in GENERATORS:
        raise ValueError(f"unknown demo dataset {name!r}; known: {', '.join(sorted(GENERATORS))}")
    file, make = GENERATORS[name]
    target = Path(dest_dir) / file
    payload = make()
    if target.is_file() and target.read_bytes() == payload:
        logger.info("%s is up to date", target)
    else:
        write_bytes(target, payload)
        logger.info("generated %s (%d bytes)", target, len(payload))
    return target
