"""Aggregate runs into one row per dataset × model (the per-task CSV).

Headline metrics pool every signal of every finished seed: mean, sample standard deviation
(``ddof=1``; empty for a single value) and count. Cost numbers are means over the finished runs.
"""

from __future__ import annotations

import pandas as pd

from implicit2.paper.collect import COST_KEYS, STATUSES, Collection
from implicit2.paper.names import headline_metrics, model_sort_key, parse_model
from implicit2.paper.reference import Reference

ID_COLUMNS: tuple[str, ...] = (
    "task",
    "dataset",
    "model",
    "family",
    "filter",
    "layer",
    "size",
    "layers",
    "width",
)
STATUS_COLUMNS: tuple[str, ...] = (
    "n_runs",
    "n_ok",
    "n_diverged",
    "n_missing",
    "seeds",
    "diverged_seeds",
    "missing_seeds",
    "n_signals",
)
METRIC_SUFFIXES: tuple[str, ...] = ("mean", "std", "count", "ref", "diff")


def summary_columns(task: str) -> list[str]:
    """The CSV columns of a task, in order."""
    metric_columns = [f"{m}_{s}" for m in headline_metrics(task) for s in METRIC_SUFFIXES]
    return [*ID_COLUMNS, *STATUS_COLUMNS, *metric_columns, *COST_KEYS]


def _seeds(frame: pd.DataFrame, status: str | None = None) -> str:
    if status is not None:
        frame = frame[frame["status"] == status]
    return " ".join(str(seed) for seed in sorted(frame["seed"]))


def _values_per_run(values: pd.DataFrame, dataset: str, model: str, ok: pd.DataFrame) -> int:
    """Values one finished run contributes (signals, or frames): the most over its seeds."""
    cell = values[(values["dataset"] == dataset) & (values["model"] == model)]
    if len(cell):
        first = cell[cell["metric"] == cell["metric"].iloc[0]]
        return int(first.groupby("seed").size().max())
    return int(ok["n_signals"].max()) if len(ok) else 0


def summarize(collection: Collection, task: str, reference: Reference) -> pd.DataFrame:
    """One row per (dataset, model) of ``task``: statuses, metric statistics, reference, cost."""
    runs = collection.runs[collection.runs["task"] == task]
    values = collection.values[collection.values["task"] == task]
    datasets = list(dict.fromkeys(runs["dataset"]))
    rows: list[dict[str, object]] = []
    for dataset in datasets:
        in_dataset = runs[runs["dataset"] == dataset]
        for model in sorted(dict.fromkeys(in_dataset["model"]), key=model_sort_key):
            cell = in_dataset[in_dataset["model"] == model]
            ok = cell[cell["status"] == "ok"]
            parsed = parse_model(model)
            row: dict[str, object] = {
                "task": task,
                "dataset": dataset,
                "model": model,
                "family": parsed.family,
                "filter": parsed.filter or "",
                "layer": parsed.layer_kind,
                "size": parsed.size,
                "layers": parsed.layers,
                "width": parsed.width,
                "n_runs": len(cell),
                "seeds": _seeds(cell),
                "diverged_seeds": _seeds(cell, "diverged"),
                "missing_seeds": _seeds(cell, "missing"),
                "n_signals": _values_per_run(values, dataset, model, ok),
            }
            for status in STATUSES:
                row[f"n_{status}"] = int((cell["status"] == status).sum())
            cell_values = values[(values["dataset"] == dataset) & (values["model"] == model)]
            for metric in headline_metrics(task):
                numbers = cell_values.loc[cell_values["metric"] == metric, "value"]
                mean = numbers.mean() if len(numbers) else float("nan")
                ref = reference.get(task, dataset, model, metric)
                row[f"{metric}_mean"] = mean
                row[f"{metric}_std"] = numbers.std(ddof=1) if len(numbers) > 1 else float("nan")
                row[f"{metric}_count"] = len(numbers)
                row[f"{metric}_ref"] = float("nan") if ref is None else ref
                row[f"{metric}_diff"] = float("nan") if ref is None else mean - ref
            for key in COST_KEYS:
                row[key] = ok[key].mean() if len(ok) else float("nan")
            rows.append(row)
    frame = pd.DataFrame.from_records(rows, columns=summary_columns(task))
    for column in ("layers", "width"):
        frame[column] = frame[column].astype("Int64")
    return frame
