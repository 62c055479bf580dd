"""The prepared ``.npz``: writing it atomically and reading it back with checks.

Every prepared file holds ``format``, ``task``, ``dataset``, ``meta`` (a JSON string) and the task's
own arrays (images, waveform, frames, point sets …); ``Task.load`` turns those into coordinates and
targets. Read prepared files only through ``get_task(task).load(path)``.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from implicit2.io import write_npz

FORMAT = 1


def save_prepared(
    out: str | os.PathLike[str], task: str, dataset: str, meta: dict[str, Any], **arrays: Any
) -> None:
    """Atomically write a prepared npz (``meta`` must be JSON-serialisable)."""
    write_npz(
        out,
        format=np.int64(FORMAT),
        task=np.str_(task),
        dataset=np.str_(dataset),
        meta=np.str_(json.dumps(meta, sort_keys=True)),
        **arrays,
    )


def open_prepared(
    npz: str | os.PathLike[str], task: str, keys: Iterable[str]
) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """Read a prepared npz written for ``task``; returns (arrays, meta, dataset name).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, another task's file, or missing ``keys``.
    """
    path = Path(npz)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `python -m implicit2 prepare` first")
    try:
        with np.load(path, allow_pickle=False) as handle:
            arrays = {key: handle[key] for key in handle.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path}: not a readable .npz ({type(error).__name__}: {error}); delete it and run "
            "prepare again"
        ) from error
    missing = [key for key in ("format", "task", "dataset", "meta", *keys) if key not in arrays]
    if missing:
        raise ValueError(
            f"{path}: missing {', '.join(missing)} (has {', '.join(sorted(arrays))}); this is not "
            f"a prepared {task} file — run prepare again"
        )
    stored = str(arrays.pop("task"))
    if stored != task:
        raise ValueError(f"{path} holds prepared {stored} data, not {task}")
    version = int(arrays.pop("format"))
    if version != FORMAT:
        raise ValueError(f"{path}: format {version}, expected {FORMAT}; run prepare again")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: 'meta' is not valid JSON ({error})") from error
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'meta' must be a JSON object")
    return arrays, meta, str(arrays.pop("dataset"))


def check_array(
    array: np.ndarray,
    what: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    kinds: str = "fiub",
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """Check an array's rank, dtype kind, size, finiteness and range; ``what`` names it in errors.

    Returns the array unchanged.
    """
    array = np.asarray(array)
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if ranks is not None and array.ndim not in ranks:
        raise ValueError(f"{what}: expected {' or '.join(map(str, ranks))}-D, got {array.shape}")
    if array.dtype.kind not in kinds:
        raise ValueError(f"{what}: unsupported dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{what}: empty array of shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(f"{what}: {bad} non-finite values (NaN or inf)")
    if low is not None and array.min() < low:
        raise ValueError(f"{what}: minimum {array.min()} is below {low}")
    if high is not None and array.max() > high:
        raise ValueError(f"{what}: maximum {array.max()} is above {high}")
    return array


def signal_names(arrays: dict[str, np.ndarray], count: int, path: Path) -> list[str]:
    """The ``signal_names`` array as strings, checked against the number of signals."""
    names = [str(name) for name in np.atleast_1d(arrays.get("signal_names", np.array([])))]
    if len(names) != count:
        raise ValueError(f"{path}: {len(names)} signal names for {count} signals")
    return names
