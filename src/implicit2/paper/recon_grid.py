"""Reconstruction grid: every run's ``recon/preview.png`` (ground truth beside reconstruction).

Panels are labelled dataset / model / seed and ordered dataset, model (paper order), seed. A run
without a readable preview gets a placeholder panel that says "missing" and why.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image as mpimg
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from implicit2.paper import figstyle
from implicit2.paper.collect import Collection
from implicit2.paper.names import model_sort_key

log = logging.getLogger(__name__)

PREVIEW = Path("recon") / "preview.png"
#: Most grid rows that stay under Agg's 2**16-pixel image limit.
MAX_ROWS = int(2**16 // (figstyle.RECON_PANEL[1] * figstyle.DPI)) - 1


def preview_path(metrics_path: str | Path) -> Path:
    """``recon/preview.png`` beside a run's metrics.json."""
    return Path(metrics_path).parent / PREVIEW


def read_preview(path: Path) -> np.ndarray | None:
    """The preview image as an array, or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        return np.asarray(mpimg.imread(path))
    except (OSError, ValueError, SyntaxError) as error:
        log.warning("%s: unreadable preview (%s)", path, error)
        return None


def grid_shape(panels: int) -> tuple[int, int]:
    """(rows, cols) of the grid: at most :data:`figstyle.RECON_COLUMNS` columns, one panel min."""
    cols = max(1, min(figstyle.RECON_COLUMNS, panels))
    return max(1, math.ceil(panels / cols)), cols


def _placeholder(axes: Axes, status: str) -> None:
    reason = {"missing": "run missing", "diverged": "run diverged"}.get(status, "no preview")
    figstyle.message(axes, f"missing\n({reason})")
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_color("0.7")
        spine.set_linestyle("--")


def plot_reconstructions(collection: Collection, task: str) -> Figure:
    """The reconstruction grid of one task (one "no runs" panel when there are none)."""
    runs = collection.runs[collection.runs["task"] == task]
    datasets = list(dict.fromkeys(runs["dataset"]))
    records = sorted(
        runs.to_dict("records"),
        key=lambda r: (datasets.index(r["dataset"]), model_sort_key(r["model"]), r["seed"]),
    )
    if grid_shape(len(records))[0] > MAX_ROWS:  # Agg cannot draw images over 2**16 pixels
        first: dict[tuple[str, str], dict[str, Any]] = {}
        for record in records:
            first.setdefault((record["dataset"], record["model"]), record)
        log.warning(
            "%d previews do not fit one image; showing the first seed of each", len(records)
        )
        records = list(first.values())[: MAX_ROWS * figstyle.RECON_COLUMNS]
    rows, cols = grid_shape(len(records))
    figure = figstyle.new_figure(rows, cols, figstyle.RECON_PANEL, legend=False)
    grid = figure.subplots(rows, cols, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    if not records:
        grid[0][0].set_axis_on()
        figstyle.message(grid[0][0], "no runs")
    for axes, record in zip(grid.flat, records, strict=False):  # spare panels stay blank
        axes.set_axis_on()
        axes.grid(False)
        title = f"{record['dataset']} / {record['model']} / seed {record['seed']}"
        if record["status"] != "ok":
            title += f" ({record['status']})"
        axes.set_title(title, fontsize=8)
        image = read_preview(preview_path(record["path"]))
        if image is None:
            _placeholder(axes, record["status"])
            continue
        cmap = "gray" if image.ndim == 2 else None
        axes.imshow(image, cmap=cmap, interpolation="nearest")
        axes.set_axis_off()
    return figure
