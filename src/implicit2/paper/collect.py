"""Read ``metrics.json`` files into two pandas frames: one row per run, one row per metric value.

A path that does not exist is a *missing* run (its task, dataset, model and seed come from the
path); a run whose ``status`` is ``diverged`` keeps its row but contributes no metric values.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from implicit2.io import read_json
from implicit2.paper.names import headline_metrics, parse_run_path

log = logging.getLogger(__name__)

#: Run-level numbers copied from metrics.json (null → NaN).
COST_KEYS: tuple[str, ...] = (
    "params",
    "step_seconds_median",
    "peak_memory_bytes",
    "solver_steps_first",
    "solver_steps_eval",
    "train_seconds",
    "inference_seconds",
)
#: Run-level numbers that only the claims read (not in the per-task CSV); runs that predate a key
#: leave it NaN. ``solver_steps_mean``: mean forward solver iterations per training step.
CLAIM_KEYS: tuple[str, ...] = ("solver_steps_mean",)
STATUSES: tuple[str, ...] = ("ok", "diverged", "missing")
_REQUIRED: tuple[str, ...] = ("task", "dataset", "model", "seed", "status")

RUN_COLUMNS: tuple[str, ...] = (
    "task",
    "dataset",
    "model",
    "seed",
    "status",
    "path",
    "n_signals",
    *COST_KEYS,
    *CLAIM_KEYS,
    "hparams",
)
VALUE_COLUMNS: tuple[str, ...] = ("task", "dataset", "model", "seed", "metric", "signal", "value")


@dataclass(frozen=True)
class Collection:
    """Everything the tables and figures need from a set of runs.

    Attributes:
        runs: one row per run; columns :data:`RUN_COLUMNS`, ``status`` ∈ :data:`STATUSES`;
            ``hparams`` is the run's recorded training settings (a dict, empty when missing).
        values: one row per (run, headline metric, signal) of the finished runs; columns
            :data:`VALUE_COLUMNS`.
    """

    runs: pd.DataFrame
    values: pd.DataFrame

    def tasks(self) -> list[str]:
        """Tasks present, in first-seen order."""
        return list(dict.fromkeys(self.runs["task"]))


def _number(value: Any) -> float:
    """A finite float, or NaN for null / non-numeric / non-finite values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _metric_values(payload: dict[str, Any], metric: str) -> list[float]:
    """Per-signal values of a metric: ``{metric}_per_signal`` when given, else the scalar."""
    per_signal = payload.get(f"{metric}_per_signal")
    if isinstance(per_signal, list) and per_signal:
        return [_number(v) for v in per_signal]
    scalar = payload.get(metric)
    if isinstance(scalar, list):  # tolerate a list where a scalar was expected
        return [_number(v) for v in scalar]
    return [_number(scalar)]


def _read_run(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run row and its value rows from an existing metrics.json."""
    payload = read_json(path)
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    for key in _REQUIRED:
        if key not in payload:
            raise ValueError(f"{path}: missing key '{key}'; re-run `implicit2 evaluate`")
    status = payload["status"]
    if status not in ("ok", "diverged"):
        raise ValueError(f"{path}: key 'status' is {status!r}; expected 'ok' or 'diverged'")
    task = str(payload["task"])
    signal_names = payload.get("signal_names") or []
    row: dict[str, Any] = {
        "task": task,
        "dataset": str(payload["dataset"]),
        "model": str(payload["model"]),
        "seed": int(payload["seed"]),
        "status": status,
        "path": str(path),
        "n_signals": len(signal_names) if isinstance(signal_names, list) else 0,
    }
    row.update({key: _number(payload.get(key)) for key in (*COST_KEYS, *CLAIM_KEYS)})
    hparams = payload.get("hparams")
    row["hparams"] = hparams if isinstance(hparams, dict) else {}
    values: list[dict[str, Any]] = []
    if status == "ok":
        for metric in headline_metrics(task):
            numbers = _metric_values(payload, metric)
            finite = [v for v in numbers if not math.isnan(v)]
            if len(finite) < len(numbers):
                log.warning("%s: %s has null or non-finite values; they are left out", path, metric)
            names = signal_names if len(signal_names) == len(numbers) else range(len(numbers))
            ident = {k: row[k] for k in ("task", "dataset", "model", "seed")}
            values += [
                {**ident, "metric": metric, "signal": str(name), "value": value}
                for name, value in zip(names, numbers, strict=True)
                if not math.isnan(value)
            ]
    return row, values


def _missing_run(path: Path) -> dict[str, Any]:
    task, dataset, model, seed = parse_run_path(path)
    log.warning("%s: no such file; counted as a missing run", path)
    row: dict[str, Any] = {
        "task": task,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "status": "missing",
        "path": str(path),
        "n_signals": 0,
    }
    row.update(dict.fromkeys((*COST_KEYS, *CLAIM_KEYS), math.nan))
    row["hparams"] = {}
    return row


def collect(paths: Iterable[str | Path]) -> Collection:
    """Read every metrics.json (missing paths become missing runs).

    Raises:
        ValueError: a malformed file, a path that names no run, or two files for the same run.
    """
    rows: list[dict[str, Any]] = []
    values: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str, int], str] = {}
    for raw in dict.fromkeys(str(p) for p in paths):
        path = Path(raw)
        if path.exists():
            row, run_values = _read_run(path)
        else:
            row, run_values = _missing_run(path), []
        key = (row["task"], row["dataset"], row["model"], row["seed"])
        if key in seen:
            raise ValueError(f"{path}: the same run as {seen[key]} ({'/'.join(map(str, key))})")
        seen[key] = str(path)
        rows.append(row)
        values += run_values
    runs = pd.DataFrame.from_records(rows, columns=list(RUN_COLUMNS))
    runs["seed"] = runs["seed"].astype("int64")
    runs["n_signals"] = runs["n_signals"].astype("int64")
    frame = pd.DataFrame.from_records(values, columns=list(VALUE_COLUMNS))
    frame["value"] = frame["value"].astype("float64")
    return Collection(runs=runs, values=frame)


def count_statuses(runs: pd.DataFrame) -> dict[str, int]:
    """How many runs are ok, diverged and missing."""
    counts = runs["status"].value_counts()
    return {status: int(counts.get(status, 0)) for status in STATUSES}
