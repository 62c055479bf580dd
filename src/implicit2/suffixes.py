"""File suffixes each task reads, and the task a suffix alone names.

Torch-free, so that the config (imported by the Snakefile) can infer a dataset's task.
"""

from __future__ import annotations

import os
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off", ".glb", ".gltf")

TASK_OF_SUFFIX = {
    **dict.fromkeys(IMAGE_SUFFIXES, "image_representation"),
    **dict.fromkeys(AUDIO_SUFFIXES, "audio"),
    **dict.fromkeys(VIDEO_SUFFIXES, "video"),
    **dict.fromkeys(MESH_SUFFIXES, "occupancy"),
}


def task_of_suffix(path: str | os.PathLike[str]) -> str | None:
    """The task a file's suffix alone names (None for npy/npz and unknown suffixes)."""
    return TASK_OF_SUFFIX.get(Path(path).suffix.lower())
