"""Is a run at the paper's scale? What it recorded against the paper's resolved config.

The paper's settings are written once, in ``config/config.yaml`` (the paper's grid) merged with the
built-in per-task defaults of :mod:`implicit2.config`; the runs were configured by the same code,
so a run's recorded ``hparams`` compare like for like with the paper's resolved ones. A run is at
the paper's scale when its dataset is in the paper's grid for its task, its model (size) is in the
paper's grid for that dataset, it trained at least the paper's steps, and with the paper's batch
(full batch, or at least as many points per step). The prepared data's resolution is not in
metrics.json, so data is judged by the dataset's name only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from implicit2.config import ConfigError, load_config
from implicit2.config_grid import expand_grid, task_datasets
from implicit2.config_settings import resolve_hparams
from implicit2.paper.names import parse_model

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
