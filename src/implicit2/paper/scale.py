"""Is a run at the paper's scale? What it recorded against the paper's resolved config.

The paper's settings are written once, in ``config/config.yaml`` (the paper's grid) merged with the
built-in per-task defaults of :mod:`implicit2.pipeline.defaults`; the runs were configured by the
same code, so a run's recorded ``hparams`` compare like for like with the paper's resolved ones.
A run is at the paper's scale when its dataset is in the paper's grid for its task, its model
(size) is in the paper's grid for that dataset, it trained at least the paper's steps, and with
the paper's batch (full batch, or at least as many points per step). The prepared data's
resolution is not in metrics.json, so data is judged by the dataset's name only.

:func:`summarize_scale` checks a set of runs; its :class:`ScaleSummary` gives the ``scale`` claim's
verdict and evidence, and the note that opens every other claim's evidence.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from implicit2.paper.names import parse_model
from implicit2.pipeline.config import ConfigError, load_config
from implicit2.pipeline.grid import expand_grid, task_datasets
from implicit2.pipeline.run_settings import resolve_hparams

log = logging.getLogger(__name__)

#: The paper's config in a source checkout (what ``implicit2 tables`` uses without
#: ``--paper-config``).
DEFAULT_PAPER_CONFIG = Path(__file__).resolve().parents[3] / "config" / "config.yaml"


@dataclass(frozen=True)
class Shortfall:
    """One way a run falls short of the paper's scale.

    Attributes:
        kind: ``task``, ``dataset``, ``size``, ``steps`` or ``batch``.
        text: what was run against what the paper ran (``200 < 5000``, ``demo_faces`` …).
    """

    kind: str
    text: str


class PaperScale:
    """The paper's grid and schedules, from a validated paper config."""

    def __init__(self, config: Mapping[str, Any], source: Path) -> None:
        self.source = source
        #: The config as the evidence names it: relative to the working directory when inside it.
        self.name = source.as_posix()
        if source.is_absolute() and source.is_relative_to(Path.cwd()):
            self.name = source.relative_to(Path.cwd()).as_posix()
        self._config = config
        self._grid = {
            (r.task, r.dataset, r.model) for r in expand_grid(config, apply_filters=False)
        }

    def shortfalls(
        self, task: str, dataset: str, model: str, hparams: Mapping[str, Any]
    ) -> list[Shortfall]:
        """How one run falls short of the paper's scale (empty: at the paper's scale).

        Args:
            task, dataset, model: the run.
            hparams: the training settings the run recorded.
        """
        datasets = task_datasets(self._config, task) if task in self._config["tasks"] else []
        if not datasets:
            return [Shortfall("task", task)]
        try:  # a dataset outside the paper's grid is held to its task's first dataset
            paper = resolve_hparams(
                self._config, task, dataset if dataset in datasets else datasets[0], model
            )
        except ConfigError:  # not a model name of the grammar
            return [Shortfall("size", model)]
        found: list[Shortfall] = []
        if dataset not in datasets:
            found.append(Shortfall("dataset", dataset))
        # The model is held to its dataset's grid, or to any of the task's for a foreign dataset.
        places = [dataset] if dataset in datasets else datasets
        if not any((task, place, model) in self._grid for place in places):
            found.append(Shortfall("size", parse_model(model).size))
        steps = hparams.get("steps")
        if not isinstance(steps, int):
            found.append(Shortfall("steps", "not recorded"))
        elif steps < paper["steps"]:
            found.append(Shortfall("steps", f"{steps} < {paper['steps']}"))
        if "batch_size" not in hparams:
            found.append(Shortfall("batch", "not recorded"))
        elif hparams["batch_size"] is not None:  # full batch is at least any batch
            batch, paper_batch = hparams["batch_size"], paper["batch_size"]
            if paper_batch is None:
                found.append(Shortfall("batch", f"{batch} points, not full batch"))
            elif not isinstance(batch, int) or batch < paper_batch:
                found.append(Shortfall("batch", f"{batch} < {paper_batch} points"))
        return found


#: How the evidence names each kind of shortfall, in the order it lists them.
SHORTFALL_WORDS: dict[str, str] = {
    "task": "task not in the paper",
    "dataset": "dataset not in the paper's grid",
    "size": "model size not in the paper's grid",
    "steps": "steps",
    "batch": "batch",
}


@dataclass(frozen=True)
class ScaleSummary:
    """The paper-scale check of a set of runs (one task's, or all).

    Attributes:
        source: the paper config as the evidence names it; None when the scale was not judged.
        existing: runs with a metrics.json (finished or diverged).
        at_scale: how many of them are at the paper's scale.
        missing: runs without a metrics.json.
        shortfalls: (kind, text) → how many runs fall short that way.
    """

    source: str | None
    existing: int
    at_scale: int
    missing: int
    shortfalls: Counter[tuple[str, str]]

    def verdict(self) -> str:
        """``supported`` when every run is at the paper's scale, ``not supported`` when none is,
        ``mixed`` in between, ``not enough runs`` without runs or without a paper config."""
        if self.source is None or not self.existing:
            return "not enough runs"
        if self.at_scale == self.existing:
            return "supported"
        return "not supported" if self.at_scale == 0 else "mixed"

    def evidence(self) -> str:
        """How many runs are at the paper's scale, and how the others fall short."""
        if self.source is None:
            return (
                "No paper config given, so the paper's scale was not judged "
                "(implicit2 tables --paper-config config/config.yaml)."
            )
        parts = [
            f"{self.at_scale} of {self.existing} runs at the paper's scale "
            f"(against {self.source}; data judged by dataset name)"
        ]
        for kind, words in SHORTFALL_WORDS.items():
            items = [
                f"{text} ({count} run{'s' if count > 1 else ''})"
                for (found, text), count in sorted(self.shortfalls.items())
                if found == kind
            ]
            if items:
                parts.append(f"{words}: {', '.join(items)}")
        if self.missing:
            parts.append(f"{self.missing} runs missing")
        return "; ".join(parts) + "."

    def note(self) -> str:
        """The opening words of every other claim's evidence about the same runs."""
        if self.source is None:
            return "Paper scale not judged (no paper config). "
        if not self.existing:
            return "No run to judge the paper's scale by. "
        if self.at_scale == self.existing:
            return "At the paper's scale. "
        if self.at_scale == 0:
            return "Below the paper's scale: a verdict on these runs, not on the paper. "
        return (
            f"Only {self.at_scale} of {self.existing} runs at the paper's scale: a verdict on "
            "these runs, not on the paper. "
        )


def summarize_scale(runs: pd.DataFrame, scale: PaperScale | None) -> ScaleSummary:
    """Check every run of a :class:`~implicit2.paper.collect.Collection` runs frame against the
    paper's scale (``scale`` None: not judged)."""
    existing = runs[runs["status"] != "missing"]
    shortfalls: Counter[tuple[str, str]] = Counter()
    at_scale = 0
    if scale is not None:
        for run in existing.itertuples(index=False):
            found = scale.shortfalls(run.task, run.dataset, run.model, run.hparams)
            at_scale += not found
            shortfalls.update((shortfall.kind, shortfall.text) for shortfall in found)
    source = None if scale is None else scale.name
    return ScaleSummary(source, len(existing), at_scale, len(runs) - len(existing), shortfalls)


def load_paper_scale(path: str | Path | None) -> PaperScale | None:
    """The paper's scale from its config; ``None`` looks for :data:`DEFAULT_PAPER_CONFIG` and
    gives None when there is none (the scale is then not judged).

    Raises:
        FileNotFoundError: an explicit ``path`` that does not exist.
        ValueError: the file is not a valid config (the message names it).
    """
    if path is None:
        if not DEFAULT_PAPER_CONFIG.is_file():
            log.warning(
                "no paper config (%s): the paper's scale is not judged", DEFAULT_PAPER_CONFIG
            )
            return None
        path = DEFAULT_PAPER_CONFIG
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: paper config not found; pass the repository's config/config.yaml"
        )
    try:
        config = load_config(path)
    except ConfigError as error:
        raise ValueError(f"{path}: not a valid paper config: {error}") from error
    return PaperScale(config, path)
