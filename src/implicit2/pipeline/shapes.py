"""The shape of a prepared dataset (signals, points, dimensions), without loading it.

The cost model needs how many coordinates a run trains and evaluates on. Once
``results/data/{task}/{dataset}.npz`` exists its array headers say so (read with the standard
library: the Snakefile imports this module). Before the data is prepared the shape comes from
:data:`RAW_SHAPES`, the canonical arrays a registry dataset's prepare step writes, with the simple
``prepare`` options of the config applied (image ``size``/``limit``, audio ``max_seconds``, video
``frames``/``stride``/``size``, occupancy ``train_points``/``test_points``).

Standard library only.
"""

from __future__ import annotations

import ast
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Canonical array shape of each registry dataset's prepared data at its raw resolution, before
#: ``prepare`` options: images (N, H, W, C), audio (samples, rate), video (T, H, W, C), occupancy
#: (training pool, each test set). The paper's files are described in
#: :mod:`implicit2.data.registry`; DIV2K and text hold 16 images each (the FFN paper's test set).
RAW_SHAPES: dict[str, tuple[int, ...]] = {
    "camera": (1, 512, 512, 1),
    "celeba": (100, 128, 128, 3),
    "nature": (16, 512, 512, 3),
    "text": (16, 512, 512, 3),
    "bach": (308_700, 44_100),
    "counting": (529_200, 44_100),
    "cat": (300, 512, 512, 3),
    "bikes": (250, 272, 640, 3),
    "dragon": (2**22, 2**20),
    "buddha": (2**22, 2**20),
    "bunny": (2**22, 2**20),
    "armadillo": (2**22, 2**20),
    "lucy": (2**22, 2**20),
    "demo_faces": (4, 128, 128, 3),
    "demo_nature": (4, 256, 256, 3),
    "demo_chirp": (16_000, 16_000),
    "demo_shape": (2**22, 2**20),
}


class UnknownShapeError(ValueError):
    """A dataset that is neither prepared nor in :data:`RAW_SHAPES`: its size is unknown."""


@dataclass(frozen=True)
class DataShape:
    """What a run's cost depends on in its data.

    Attributes:
        signals: signals fitted (one model each, trained together in batches).
        train_points: training coordinates per signal (the pool that minibatches come from).
        eval_points: coordinates evaluated per signal.
        in_dim: coordinate dimension.
        out_dim: channels per coordinate.
    """

    signals: int
    train_points: int
    eval_points: int
    in_dim: int
    out_dim: int

    @property
    def array_bytes(self) -> int:
        """Bytes of the float32 coordinates and targets held in memory (train and test)."""
        per_point = self.in_dim + self.signals * self.out_dim
        return 4 * per_point * (self.train_points + self.eval_points)


def dataset_shape(
    task: str, dataset: str, prepare: Mapping[str, Any], data_path: str | Path | None = None
) -> DataShape:
    """The shape of (task, dataset): from the prepared npz at ``data_path`` when it exists, else
    from :data:`RAW_SHAPES` and the ``prepare`` options.

    Raises:
        UnknownShapeError: the dataset is neither prepared nor in the table.
        ValueError: the npz cannot be read.
    """
    if data_path is not None and Path(data_path).exists():
        return shape_from_npz(task, data_path)
    raw = RAW_SHAPES.get(dataset)
    if raw is None:
        raise UnknownShapeError(
            f"dataset {dataset!r}: its size is unknown until it is prepared; run "
            f"`snakemake results/data/{task}/{dataset}.npz` first, then plan again"
        )
    return _shape_from_raw(task, raw, prepare)


def shape_from_npz(task: str, path: str | Path) -> DataShape:
    """Read a prepared npz's array headers (no data) and derive the shape of ``task``'s data."""
    arrays = npz_shapes(path)
    try:
        return _shape_from_arrays(task, arrays)
    except KeyError as missing:
        raise ValueError(
            f"{path}: no array {missing} for {task} data; prepare it again "
            f"(delete the file and rerun its prepare job)"
        ) from None


def npz_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Array name → shape of every ``.npy`` member of an npz, from the headers alone."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    with archive.open(member) as handle:
                        shapes[member[:-4]] = _npy_shape(handle.read(4096))
    except (OSError, zipfile.BadZipFile, ValueError, SyntaxError) as error:
        raise ValueError(f"{path}: not a readable npz ({error}); prepare it again") from None
    return shapes


def _npy_shape(head: bytes) -> tuple[int, ...]:
    if not head.startswith(b"\x93NUMPY"):
        raise ValueError("an npz member is not an .npy array")
    major = head[6]
    size_bytes = 2 if major == 1 else 4
    length = int.from_bytes(head[8 : 8 + size_bytes], "little")
    start = 8 + size_bytes
    header = ast.literal_eval(head[start : start + length].decode("latin1"))
    return tuple(int(n) for n in header["shape"])


def _shape_from_arrays(task: str, arrays: Mapping[str, tuple[int, ...]]) -> DataShape:
    if task in ("image_representation", "image_generalization"):
        count, height, width, channels = arrays["images"]
        if task == "image_generalization":
            train = ((height + 1) // 2) * ((width + 1) // 2)
            return DataShape(count, train, (height // 2) * (width // 2), 2, channels)
        return DataShape(count, height * width, height * width, 2, channels)
    if task == "audio":
        samples = arrays["waveform"][-1]
        return DataShape(1, samples, samples, 1, 1)
    if task == "video":
        frames, height, width, *colour = arrays["frames"]
        points = frames * height * width
        return DataShape(1, points, points, 3, colour[0] if colour else 1)
    if task == "occupancy":
        test = arrays["easy_points"][0] + arrays["hard_points"][0]
        return DataShape(1, arrays["train_points"][0], test, 3, 1)
    raise ValueError(f"task {task!r}: unknown")


def _shape_from_raw(task: str, raw: tuple[int, ...], prepare: Mapping[str, Any]) -> DataShape:
    arrays: dict[str, tuple[int, ...]]
    if task in ("image_representation", "image_generalization"):
        count, height, width, channels = raw
        if prepare.get("limit") is not None:
            count = min(count, int(prepare["limit"]))
        if prepare.get("size") is not None:
            height = width = int(prepare["size"])
        arrays = {"images": (count, height, width, channels)}
    elif task == "audio":
        samples, rate = raw
        if prepare.get("max_seconds") is not None:
            samples = min(samples, int(float(prepare["max_seconds"]) * rate))
        arrays = {"waveform": (samples,)}
    elif task == "video":
        frames, height, width, channels = raw
        frames = math.ceil(frames / int(prepare.get("stride", 1)))
        if prepare.get("frames") is not None:
            frames = min(frames, int(prepare["frames"]))
        size = prepare.get("size")
        if isinstance(size, int):
            scale = size / min(height, width)
            height, width = round(height * scale), round(width * scale)
        elif isinstance(size, list | tuple):
            height, width = int(size[0]), int(size[1])
        arrays = {"frames": (frames, height, width, channels)}
    else:
        pool, test = raw
        pool = int(prepare.get("train_points", pool))
        test = int(prepare.get("test_points", test))
        arrays = {"train_points": (pool, 3), "easy_points": (test, 3), "hard_points": (test, 3)}
    return _shape_from_arrays(task, arrays)
