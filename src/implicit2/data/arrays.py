"""Reading raw ``.npy``/``.npz`` files (images, image stacks, videos) with clear errors."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

NUMPY_SUFFIXES = (".npy", ".npz")


def npz_key(keys: Sequence[str], key: str | None, preferred: Sequence[str], path: Path) -> str:
    """Choose the array of an npz: ``key`` if given, else the only one, else a preferred name."""
    if key is not None:
        if key not in keys:
            raise ValueError(f"{path}: no array {key!r} (it has {', '.join(keys)})")
        return key
    if len(keys) == 1:
        return keys[0]
    for name in preferred:
        if name in keys:
            return name
    raise ValueError(
        f"{path}: several arrays ({', '.join(keys)}); say which with the prepare option key"
    )


def read_array(path: Path, key: str | None = None, preferred: Sequence[str] = ()) -> np.ndarray:
    """The array in a ``.npy`` file, or one array of a ``.npz`` (see :func:`npz_key`)."""
    try:
        if path.suffix.lower() == ".npy":  # memory-mapped: a later slice reads only what it keeps
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as handle:
            return handle[npz_key(list(handle.files), key, preferred, path)]
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable numpy file ({error})") from error
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{path}: not a readable numpy file ({error})") from error


def array_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Shapes of the arrays in a ``.npy``/``.npz`` without reading their data."""
    try:
        if path.suffix.lower() == ".npy":
            return {"": tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)}
        shapes = {}
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                with archive.open(name) as handle:
                    version = np.lib.format.read_magic(handle)
                    header = (
                        np.lib.format.read_array_header_1_0(handle)
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0(handle)
                    )
                shapes[name[: -len(".npy")]] = tuple(header[0])
        return shapes
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable numpy file ({error})") from error
