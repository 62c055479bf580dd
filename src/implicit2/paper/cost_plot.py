"""Cost bars: time per training step and peak training memory per model, one row per dataset.

Colour = filter (or baseline); a DEQ bar is filled plain, its explicit twin hatched, so the pair
reads side by side in colour and in grey print. Values are means over finished runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from implicit2.paper import figstyle, palette
from implicit2.paper.collect import Collection
from implicit2.paper.names import ModelName, model_sort_key, parse_model
from implicit2.paper.reference import Reference
from implicit2.paper.summary import summarize

#: (summary column, axis label, scale to the unit of the label)
QUANTITIES: tuple[tuple[str, str, float], ...] = (
    ("step_seconds_median", "time per training step (ms)", 1e3),
    ("peak_memory_bytes", "peak training memory (MiB)", 1.0 / 2**20),
)


def _legend(models: list[ModelName]) -> tuple[list[Patch], list[str]]:
    handles: list[Patch] = []
    labels: list[str] = []
    for model in models:
        label = palette.colour_label(model)
        if label not in labels:
            handles.append(Patch(facecolor=palette.colour_for(model), edgecolor="0.2"))
            labels.append(label)
    for model in models:
        label = palette.layer_label(model)
        if label not in labels:
            handles.append(
                Patch(facecolor="white", edgecolor="0.2", hatch=palette.hatch_for(model))
            )
            labels.append(label)
    return handles, labels


def _bars(axes: Axes, rows: pd.DataFrame, column: str, scale: float) -> None:
    models = [parse_model(m) for m in rows["model"]]
    heights = [v * scale if not math.isnan(v) else 0.0 for v in rows[column].astype(float)]
    positions = np.arange(len(models))
    bars = axes.bar(
        positions,
        heights,
        color=[palette.colour_for(m) for m in models],
        edgecolor="0.2",
        linewidth=0.6,
    )
    for bar, model in zip(bars, models, strict=True):
        bar.set_hatch(palette.hatch_for(model))
    for position, value in zip(positions, rows[column].astype(float), strict=True):
        if math.isnan(value):
            axes.text(float(position), 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    axes.set_xticks(positions, [m.name for m in models], rotation=60, ha="right", fontsize=7)


def plot_cost(collection: Collection, task: str) -> Figure:
    """The cost figure of one task (``no runs`` panels when the task has none)."""
    summary = summarize(collection, task, Reference())
    datasets = list(dict.fromkeys(summary["dataset"])) or ["(no runs)"]
    figure = figstyle.new_figure(len(datasets), len(QUANTITIES), figstyle.COST_PANEL, legend=True)
    grid = figure.subplots(len(datasets), len(QUANTITIES), squeeze=False)
    for row, dataset in enumerate(datasets):
        rows = summary[summary["dataset"] == dataset]  # already in the paper's model order
        for col, (column, label, scale) in enumerate(QUANTITIES):
            axes = grid[row][col]
            axes.set_title(dataset)
            axes.set_ylabel(label)
            axes.grid(axis="x", visible=False)
            if rows.empty or rows[column].isna().all():
                figstyle.message(axes, "no data")
                axes.set_xticks([])
                axes.set_yticks([])
                continue
            _bars(axes, rows, column, scale)
    models = [parse_model(m) for m in sorted(dict.fromkeys(summary["model"]), key=model_sort_key)]
    figstyle.add_legend(figure, *_legend(models))
    return figure
