"""The project's names, in one torch-free module: the task table and the model-name grammar.

Tasks: :data:`TASKS` (name, title, full batch or not, headline metrics, file suffixes), in the
paper's order. Models: ``deq-{filter}-{L}L{D}D``, ``mfn-{filter}-{L}L{D}D``, ``siren-{L}L{D}D``
and ``ffn-{L}L{D}D`` with filter ∈ {fourier, gabor, siren}.

The config, the Snakefile, the data registry, the torch-side task classes and the paper's tables
all read these definitions; standard library only, so the Snakefile imports it without torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off", ".glb", ".gltf")


@dataclass(frozen=True)
class TaskInfo:
    """The facts of one task that the workflow, the library and the tables share.

    Attributes:
        name: the task name (config key, path component, wildcard).
        title: the heading of its table and figures.
        full_batch: every step sees every training coordinate (the amortized DEQ schedule);
            False: random minibatches from a finite pool of points.
        metrics: headline metrics, higher is better (``psnr``, ``iou_easy``, ``iou_hard``).
        suffixes: file suffixes whose type alone names this task (``implicit2 fit PATH``).
    """

    name: str
    title: str
    full_batch: bool
    metrics: tuple[str, ...]
    suffixes: tuple[str, ...] = ()


#: The paper's tasks, in the order tables and figures list them. ``image_generalization`` reads
#: images too, but a file never names it: it is a choice of protocol, not of file.
TASKS: tuple[TaskInfo, ...] = (
    TaskInfo("image_representation", "Image representation", True, ("psnr",), IMAGE_SUFFIXES),
    TaskInfo("image_generalization", "Image generalization", True, ("psnr",)),
    TaskInfo("audio", "Audio representation", True, ("psnr",), AUDIO_SUFFIXES),
    TaskInfo("video", "Video representation", False, ("psnr",), VIDEO_SUFFIXES),
    TaskInfo("occupancy", "3D occupancy", False, ("iou_easy", "iou_hard"), MESH_SUFFIXES),
)
TASK_NAMES: tuple[str, ...] = tuple(task.name for task in TASKS)
TASK_INFO: dict[str, TaskInfo] = {task.name: task for task in TASKS}
#: Tasks trained full batch (every coordinate every step): the amortized DEQ schedule applies.
FULL_BATCH_TASKS: frozenset[str] = frozenset(task.name for task in TASKS if task.full_batch)
TASK_OF_SUFFIX: dict[str, str] = {suffix: task.name for task in TASKS for suffix in task.suffixes}


def task_of_suffix(path: str | os.PathLike[str]) -> str | None:
    """The task a file's suffix alone names (None for npy/npz and unknown suffixes)."""
    return TASK_OF_SUFFIX.get(Path(path).suffix.lower())


#: ``{L}L{D}D``: L ≥ 1 layers of width D ≥ 1.
SIZE_PATTERN = r"[1-9][0-9]*L[1-9][0-9]*D"
#: The grammar as a regex without groups or anchors (the Snakemake wildcard constraint).
MODEL_NAME_REGEX = rf"(?:(?:deq|mfn)-(?:fourier|gabor|siren)|siren|ffn)-{SIZE_PATTERN}"
MODEL_NAME_PATTERN = re.compile(
    r"^(?:(?P<family>deq|mfn)-(?P<filter>fourier|gabor|siren)|(?P<baseline>siren|ffn))"
    r"-(?P<layers>[1-9][0-9]*)L(?P<width>[1-9][0-9]*)D$"
)
MODEL_GRAMMAR = (
    "deq-{fourier|gabor|siren}-{L}L{D}D, mfn-{fourier|gabor|siren}-{L}L{D}D, siren-{L}L{D}D or "
    "ffn-{L}L{D}D (L, D ≥ 1), e.g. deq-fourier-1L256D"
)


class ModelSpec(NamedTuple):
    """A parsed model name."""

    family: str  # deq, mfn, siren or ffn
    filter: str | None  # fourier, gabor or siren for deq/mfn, else None
    layers: int
    width: int

    @property
    def is_deq(self) -> bool:
        """True for the implicit (DEQ) family."""
        return self.family == "deq"


def parse_model_name(name: str) -> ModelSpec:
    """Parse a model name of the grammar :data:`MODEL_GRAMMAR`.

    Raises:
        ValueError: the name does not match; the message gives the grammar.
    """
    match = MODEL_NAME_PATTERN.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"{name!r} is not a model name; valid: {MODEL_GRAMMAR}")
    family = match["family"] or match["baseline"]
    return ModelSpec(family, match["filter"], int(match["layers"]), int(match["width"]))
