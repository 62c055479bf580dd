"""Guess a file's task from its type (``implicit2 fit PATH`` and config blocks without ``task``).

Rule:
- picture (png, jpg, bmp, tif, webp) → ``image_representation``;
- sound (wav, flac, ogg, aiff, au, mp3) → ``audio``;
- movie (mp4, m4v, mov, avi, mkv, webm) → ``video``;
- mesh (ply, obj, stl, off, glb, gltf) → ``occupancy``;
- ``.npz``: an array named ``video`` or ``frames`` → ``video``; otherwise the image array
  (``test_data``, ``images``, ``image`` or the only one) of 2-4 dimensions →
  ``image_representation``;
- ``.npy``: 2-D (H, W), 3-D (H, W, C) or (N, H, W) → ``image_representation``; 4-D → ``video``
  when the file name contains "video", else an image stack (N, H, W, C) → ``image_representation``.
Anything else (1-D arrays, 5-D arrays, unknown suffixes) raises ValueError: say ``task:`` in config
(``fit --task``).
``image_generalization`` is never guessed: it is a choice of protocol, not of file.
"""

from __future__ import annotations

import os
from pathlib import Path

from implicit2.data.arrays import array_shapes, npz_key
from implicit2.names import TASK_OF_SUFFIX


def infer_task(path: str | os.PathLike[str]) -> str:
    """The task a file most likely feeds (see the module docstring for the rule).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the type is unknown or ambiguous.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in TASK_OF_SUFFIX:
        return TASK_OF_SUFFIX[suffix]
    if suffix not in (".npy", ".npz"):
        known = ", ".join([*sorted(TASK_OF_SUFFIX), ".npy", ".npz"])
        raise ValueError(
            f"{path}: cannot tell the task from {suffix or 'no suffix'!r}; known: {known}"
        )
    shapes = array_shapes(path)
    if suffix == ".npz":
        for name in ("video", "frames"):
            if name in shapes and len(shapes[name]) in (3, 4):
                return "video"
        if not shapes:
            raise ValueError(f"{path}: the npz holds no arrays")
        shape = shapes[npz_key(list(shapes), None, ("test_data", "images", "image"), path)]
    else:
        shape = shapes[""]
        if len(shape) == 4 and "video" in path.stem.lower():
            return "video"
    if len(shape) in (2, 3, 4):
        return "image_representation"
    raise ValueError(
        f"{path}: an array of shape {shape} is ambiguous; give the task explicitly (config "
        "`task:`, `fit --task`; a 1-D waveform is best saved as a WAV file)"
    )
