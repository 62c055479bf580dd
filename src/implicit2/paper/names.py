"""Model, task and run-path names: parse them once, order and label them the paper's way.

Model names follow ``deq-{filter}-{L}L{D}D`` (implicit), ``mfn-{filter}-{L}L{D}D`` (its explicit
twin), ``siren-{L}L{D}D`` and ``ffn-{L}L{D}D`` (baselines). Names that match none of these are kept
as family ``other`` so that a new kind of model still shows up, at the end of every table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from implicit2.names import MODEL_NAME_PATTERN, TASK_INFO, TASK_NAMES

#: Headline metrics of a task that :data:`implicit2.names.TASK_INFO` does not know.
DEFAULT_METRICS: tuple[str, ...] = ("psnr",)

METRIC_LABELS: dict[str, str] = {"psnr": "PSNR", "iou_easy": "easy", "iou_hard": "hard"}

FILTER_ORDER: tuple[str, ...] = ("fourier", "gabor", "siren")
FILTER_LABELS: dict[str, str] = {"fourier": "Fourier", "gabor": "Gabor", "siren": "SIREN-like"}
BASELINE_ORDER: tuple[str, ...] = ("siren", "ffn")
BASELINE_LABELS: dict[str, str] = {"siren": "SIREN", "ffn": "FFN"}
FAMILY_ORDER: dict[str, int] = {"deq": 0, "mfn": 1, "siren": 2, "ffn": 2, "other": 3}

_RUN_PATH = re.compile(r"^seed(?P<seed>-?\d+)$")


@dataclass(frozen=True)
class ModelName:
    """A parsed model name.

    Attributes:
        name: the name as written.
        family: ``deq``, ``mfn``, ``siren``, ``ffn`` or ``other``.
        filter: the filter of a deq/mfn model (``fourier`` …), else None.
        layers: L, or None for ``other``.
        width: D, or None for ``other``.
    """

    name: str
    family: str
    filter: str | None
    layers: int | None
    width: int | None

    @property
    def size(self) -> str:
        """``{L}L{D}D``, or ``other`` when the name does not carry a size."""
        if self.layers is None or self.width is None:
            return "other"
        return f"{self.layers}L{self.width}D"

    @property
    def is_baseline(self) -> bool:
        return self.family in BASELINE_ORDER

    @property
    def label(self) -> str:
        """What the table's *Model* column shows (the filter, the baseline, or the raw name)."""
        if self.family in ("deq", "mfn") and self.filter is not None:
            return FILTER_LABELS.get(self.filter, self.filter)
        if self.is_baseline:
            return BASELINE_LABELS[self.family]
        return self.name

    @property
    def layer_kind(self) -> str:
        """``DEQ`` (implicit), ``explicit`` (the mfn twin), ``baseline`` or ``other``."""
        return {"deq": "DEQ", "mfn": "explicit"}.get(
            self.family, "baseline" if self.is_baseline else "other"
        )

    @property
    def group(self) -> str:
        """The block of rows this model belongs to: its size, ``baselines`` or ``other``."""
        if self.is_baseline:
            return "baselines"
        return self.size

    def sort_key(self) -> tuple[int, int, int, int, int, str]:
        """Paper order: size blocks (L, then D), filter, DEQ before explicit; baselines last."""
        block = {"deq": 0, "mfn": 0}.get(self.family, 1 if self.is_baseline else 2)
        layers = self.layers if self.layers is not None else 1 << 30
        width = self.width if self.width is not None else 1 << 30
        if self.is_baseline:
            kind = BASELINE_ORDER.index(self.family)
        elif self.filter in FILTER_ORDER:
            kind = FILTER_ORDER.index(self.filter)
        else:
            kind = len(FILTER_ORDER)
        # Unknown filters sort by name after the known ones (the str tiebreak does that).
        return (block, layers, width, kind, FAMILY_ORDER[self.family], self.name)


def parse_model(name: str) -> ModelName:
    """Parse a model name; names outside the grammar become family ``other`` (never an error)."""
    match = MODEL_NAME_PATTERN.match(name)
    if match is None:
        return ModelName(name, "other", None, None, None)
    family = match["family"] or match["baseline"]
    return ModelName(
        name=name,
        family=family,
        filter=match["filter"],
        layers=int(match["layers"]),
        width=int(match["width"]),
    )


def model_sort_key(name: str) -> tuple[int, int, int, int, int, str]:
    """Sort key of a model name in the paper's row order."""
    return parse_model(name).sort_key()


def task_sort_key(task: str) -> tuple[int, str]:
    """Sort key of a task in the paper's order (unknown tasks last, alphabetically)."""
    return (TASK_NAMES.index(task) if task in TASK_NAMES else len(TASK_NAMES), task)


def task_title(task: str) -> str:
    """A human title for a task (``image_representation`` → ``Image representation``)."""
    info = TASK_INFO.get(task)
    return info.title if info is not None else task.replace("_", " ").capitalize()


def headline_metrics(task: str) -> tuple[str, ...]:
    """The metrics a task's table reports (``psnr``, or ``iou_easy``/``iou_hard``)."""
    info = TASK_INFO.get(task)
    return info.metrics if info is not None else DEFAULT_METRICS


def parse_run_path(path: str | Path) -> tuple[str, str, str, int]:
    """``…/{task}/{dataset}/{model}/seed{seed}/metrics.json`` → (task, dataset, model, seed).

    Raises:
        ValueError: the path does not end in that pattern.
    """
    parts = Path(path).parts
    match = _RUN_PATH.match(parts[-2]) if len(parts) >= 5 else None
    if match is None:
        raise ValueError(
            f"{path}: cannot tell the run from the path; expected "
            "results/runs/{task}/{dataset}/{model}/seed{seed}/metrics.json"
        )
    task, dataset, model = parts[-5], parts[-4], parts[-3]
    return task, dataset, model, int(match["seed"])
