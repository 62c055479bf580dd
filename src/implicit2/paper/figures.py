"""One task's figures: ``curves``, ``cost`` and ``reconstructions``, each as PDF and PNG.

Missing and diverged runs never stop the figures: their curves are drawn as far as they exist and
their previews become "missing" panels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from implicit2.paper import figstyle
from implicit2.paper.collect import collect
from implicit2.paper.cost_plot import plot_cost
from implicit2.paper.curves import plot_curves
from implicit2.paper.recon_grid import plot_reconstructions

log = logging.getLogger(__name__)

FIGURES: tuple[str, ...] = ("curves", "cost", "reconstructions")
_PLOTS = {"curves": plot_curves, "cost": plot_cost, "reconstructions": plot_reconstructions}


def write_figures(task: str, metrics: Iterable[str | Path], out_dir: str | Path) -> list[Path]:
    """Write ``{out_dir}/{curves,cost,reconstructions}.{pdf,png}`` for one task.

    Runs of other tasks among ``metrics`` are left out with a warning.

    Raises:
        ValueError: a malformed metrics.json (the message names it).
    """
    collection = collect(metrics)
    others = collection.runs[collection.runs["task"] != task]
    for path in others["path"]:
        log.warning("%s: not a run of task %s; left out of its figures", path, task)
    written: list[Path] = []
    with figstyle.style():
        for name in FIGURES:
            figure = _PLOTS[name](collection, task)
            written += figstyle.save_figure(figure, out_dir, name)
    return written
