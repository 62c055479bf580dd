"""Training curves: PSNR (occupancy: loss) against step, one panel per dataset × model size.

Each line is the mean over the seeds that have a ``curve.csv`` beside their metrics.json, with the
min–max band over seeds shaded; colour = filter, solid = DEQ, dashed = explicit twin.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from implicit2.paper import figstyle, palette
from implicit2.paper.collect import Collection
from implicit2.paper.names import ModelName, model_sort_key, parse_model

log = logging.getLogger(__name__)

CURVE_COLUMNS: tuple[str, ...] = ("step", "loss", "psnr", "seconds")
LOSS_TASKS: frozenset[str] = frozenset({"occupancy"})


def curve_path(metrics_path: str | Path) -> Path:
    """``curve.csv`` beside a run's metrics.json."""
    return Path(metrics_path).parent / "curve.csv"


def read_curve(path: Path) -> pd.DataFrame | None:
    """A run's curve (numeric columns), or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        curve = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        log.warning("%s: unreadable curve (%s); skipped", path, error)
        return None
    if "step" not in curve.columns:
        log.warning("%s: no 'step' column; skipped", path)
        return None
    for column in CURVE_COLUMNS:
        if column in curve.columns:
            curve[column] = pd.to_numeric(curve[column], errors="coerce")
        else:
            curve[column] = np.nan
    return curve


def _size_key(size: str) -> tuple[int, int, str]:
    parsed = parse_model(f"ffn-{size}")
    if parsed.family == "other":
        return (1 << 30, 1 << 30, size)
    return (parsed.layers or 0, parsed.width or 0, size)


def _metric(task: str, curves: pd.DataFrame) -> str:
    if task in LOSS_TASKS or curves.empty or curves["psnr"].notna().sum() == 0:
        return "loss"
    return "psnr"


def load_curves(collection: Collection, task: str) -> pd.DataFrame:
    """All curves of a task in one frame with ``dataset, model, seed`` columns."""
    frames = []
    runs = collection.runs[collection.runs["task"] == task]
    for run in runs.itertuples(index=False):
        curve = read_curve(curve_path(run.path))
        if curve is None:
            log.info("%s: no curve; left out of the plot", run.path)
            continue
        frames.append(curve.assign(dataset=run.dataset, model=run.model, seed=run.seed))
    columns = [*CURVE_COLUMNS, "dataset", "model", "seed"]
    return (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )


def _draw(axes: Axes, curve: pd.DataFrame, model: ModelName, metric: str) -> None:
    finite = curve.replace([np.inf, -np.inf], np.nan).dropna(subset=[metric])
    if finite.empty:
        return
    stats = finite.groupby("step")[metric].agg(["mean", "min", "max"]).reset_index()
    colour = palette.colour_for(model)
    axes.plot(
        stats["step"], stats["mean"], color=colour, linestyle=palette.linestyle_for(model), lw=1.4
    )
    if finite["seed"].nunique() > 1:
        axes.fill_between(stats["step"], stats["min"], stats["max"], color=colour, alpha=0.15, lw=0)


def _legend(models: list[ModelName]) -> tuple[list[Line2D], list[str]]:
    handles: list[Line2D] = []
    labels: list[str] = []
    for model in models:  # one colour entry per filter / baseline
        label = palette.colour_label(model)
        if label not in labels:
            handles.append(Line2D([], [], color=palette.colour_for(model), lw=2.5))
            labels.append(label)
    for model in models:  # one line-style entry per layer kind
        label = palette.layer_label(model)
        if label not in labels:
            handles.append(Line2D([], [], color="0.2", linestyle=palette.linestyle_for(model)))
            labels.append(label)
    return handles, labels


def plot_curves(collection: Collection, task: str) -> Figure:
    """The curves figure of one task (an empty panel says so when there are no curves)."""
    curves = load_curves(collection, task)
    runs = collection.runs[collection.runs["task"] == task]
    datasets = list(dict.fromkeys(runs["dataset"])) or ["(no runs)"]
    models = [parse_model(m) for m in sorted(dict.fromkeys(runs["model"]), key=model_sort_key)]
    sizes = sorted({m.size for m in models}, key=_size_key) or ["(none)"]
    metric = _metric(task, curves)
    figure = figstyle.new_figure(len(datasets), len(sizes), figstyle.CURVE_PANEL, legend=True)
    grid = figure.subplots(len(datasets), len(sizes), squeeze=False)
    for row, dataset in enumerate(datasets):
        for col, size in enumerate(sizes):
            axes = grid[row][col]
            axes.set_title(f"{dataset} · {size}")
            axes.set_xlabel("training step")
            axes.set_ylabel("PSNR (dB)" if metric == "psnr" else "training loss (BCE)")
            drawn = False
            for model in (m for m in models if m.size == size):
                curve = curves[(curves["dataset"] == dataset) & (curves["model"] == model.name)]
                if not curve.empty:
                    _draw(axes, curve, model, metric)
                    drawn = True
            if not drawn:
                figstyle.message(axes, "no curves")
            elif metric == "loss":
                axes.set_yscale("log")
    figstyle.add_legend(figure, *_legend(models))
    return figure
