"""The grid's bill before it runs: one predicted cost per training and evaluation job, totals,
and the cluster requests (``runtime``, ``mem_mb``) sized from them.

Standard library only: the Snakefile sizes the train and evaluate jobs with :func:`predict_job`,
:func:`first_request` and :func:`attempt_request`; ``implicit2 plan`` writes :func:`plan_rows` to
``results/plan/jobs.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from implicit2.names import FULL_BATCH_TASKS
from implicit2.pipeline.cost import (
    Calibration,
    Prediction,
    Workload,
    load_calibration,
    predict_evaluation,
    predict_training,
)
from implicit2.pipeline.grid import Run, expand_grid
from implicit2.pipeline.run_settings import dataset_spec, resolve_hparams
from implicit2.pipeline.shapes import DataShape, dataset_shape

#: ``results/plan/jobs.csv``: one row per job.
JOBS_CSV = "results/plan/jobs.csv"
#: Its columns, in order.
JOB_COLUMNS: tuple[str, ...] = (
    "rule",
    "task",
    "dataset",
    "model",
    "seed",
    "predicted_seconds",
    "predicted_memory_bytes",
    "device",
    "predicted_compute_seconds",
    "predicted_host_bytes",
    "predicted_flops",
    "steps",
    "signals",
)
#: Rules whose jobs the plan predicts.
PLANNED_RULES: tuple[str, ...] = ("train", "evaluate")
#: The prepared data of (task, dataset).
DATA_PATH = "results/data/{task}/{dataset}.npz"


def run_shape(
    config: Mapping[str, Any], task: str, dataset: str, root: str | Path = "."
) -> DataShape:
    """The data shape of (task, dataset): the prepared npz under ``root`` if present, else the
    registry's raw shape with the config's and the registry's ``prepare`` options."""
    from implicit2.data.registry import DATASETS

    prepare: dict[str, Any] = {}
    if dataset in DATASETS:
        prepare.update(DATASETS[dataset].prepare)
    prepare.update(dataset_spec(config, dataset).get("prepare", {}))
    path = Path(root) / DATA_PATH.format(task=task, dataset=dataset)
    return dataset_shape(task, dataset, prepare, path)


def workload(
    config: Mapping[str, Any], task: str, dataset: str, model: str, shape: DataShape
) -> Workload:
    """The cost-relevant settings of one run, from its resolved ``--hparams`` and data shape."""
    hparams = resolve_hparams(config, task, dataset, model)
    full_batch = task in FULL_BATCH_TASKS and hparams["batch_size"] is None
    step_points = shape.train_points if full_batch else int(hparams["batch_size"])
    iterations = min(float(config["plan"]["solver_iterations"]), hparams["max_iter"])
    # A fixed-point iteration gains a constant factor per step: iterations grow as log(tol).
    eval_iterations = iterations * math.log(hparams["eval_tol"]) / math.log(hparams["tol"])
    return Workload(
        model=model,
        signals=shape.signals,
        step_points=step_points,
        eval_points=shape.eval_points,
        in_dim=shape.in_dim,
        out_dim=shape.out_dim,
        steps=hparams["steps"],
        full_batch_amortized=full_batch and bool(hparams["amortize"]),
        solver_iterations=iterations,
        eval_solver_iterations=min(eval_iterations, hparams["max_iter"]),
        signal_batch=hparams["signal_batch"],
        checkpoint_every=hparams["checkpoint_every"],
        data_bytes=shape.array_bytes,
        task=task,
    )


def predict_job(
    config: Mapping[str, Any],
    calibration: Calibration,
    rule: str,
    task: str,
    dataset: str,
    model: str,
    root: str | Path = ".",
) -> Prediction:
    """The predicted cost of one ``train`` or ``evaluate`` job.

    Raises:
        implicit2.pipeline.shapes.UnknownShapeError: the dataset is neither prepared nor known.
    """
    work = workload(config, task, dataset, model, run_shape(config, task, dataset, root))
    if rule == "train":
        return predict_training(calibration, work)
    if rule == "evaluate":
        return predict_evaluation(calibration, work)
    raise ValueError(f"rule {rule!r}: the plan predicts only {', '.join(PLANNED_RULES)}")


def plan_rows(
    config: Mapping[str, Any], calibration: Calibration, root: str | Path = "."
) -> list[dict[str, Any]]:
    """One row (:data:`JOB_COLUMNS`) per training and evaluation job of the selected grid."""
    rows = []
    shapes: dict[tuple[str, str], DataShape] = {}
    for run in expand_grid(config):
        key = (run.task, run.dataset)
        if key not in shapes:
            shapes[key] = run_shape(config, run.task, run.dataset, root)
        work = workload(config, run.task, run.dataset, run.model, shapes[key])
        for rule, prediction in (
            ("train", predict_training(calibration, work)),
            ("evaluate", predict_evaluation(calibration, work)),
        ):
            rows.append(_row(rule, run, prediction, calibration, work))
    return rows


def _row(
    rule: str, run: Run, prediction: Prediction, calibration: Calibration, work: Workload
) -> dict[str, Any]:
    return {
        "rule": rule,
        "task": run.task,
        "dataset": run.dataset,
        "model": run.model,
        "seed": run.seed,
        "predicted_seconds": round(prediction.seconds, 3),
        "predicted_memory_bytes": int(prediction.memory_bytes),
        "device": f"{calibration.device}: {calibration.device_name}",
        "predicted_compute_seconds": round(prediction.compute_seconds, 3),
        "predicted_host_bytes": int(prediction.host_bytes),
        "predicted_flops": f"{prediction.flops:.4g}",
        "steps": work.steps if rule == "train" else 0,
        "signals": work.signals,
    }


def totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per task, then for the whole grid (key ``all``, last): jobs, predicted seconds of the
    train and of the evaluate jobs, and the largest predicted memory."""
    rows = list(rows)
    summary: dict[str, dict[str, float]] = {}
    for key in [*dict.fromkeys(row["task"] for row in rows), "all"]:
        chosen = [row for row in rows if key in (row["task"], "all")]
        summary[key] = {
            "jobs": len(chosen),
            "train_seconds": _seconds(chosen, "train"),
            "evaluate_seconds": _seconds(chosen, "evaluate"),
            "max_memory": max((int(row["predicted_memory_bytes"]) for row in chosen), default=0),
        }
    return summary


def _seconds(rows: Iterable[Mapping[str, Any]], rule: str) -> float:
    return sum(float(row["predicted_seconds"]) for row in rows if row["rule"] == rule)


def calibration_of(config: Mapping[str, Any]) -> Calibration | None:
    """The calibration that ``plan.calibration`` names, or None."""
    path = config["plan"]["calibration"]
    return load_calibration(path) if path else None


def first_request(plan: Mapping[str, Any], prediction: Prediction) -> dict[str, int]:
    """``runtime`` (minutes) and ``mem_mb`` of a job's first submission: ``safety_factor`` × the
    prediction, at least ``min_runtime`` / ``min_mem_mb``, at most ``max_runtime`` /
    ``max_mem_mb``."""
    factor = float(plan["safety_factor"])
    runtime = max(int(plan["min_runtime"]), math.ceil(factor * prediction.seconds / 60))
    mem_mb = max(int(plan["min_mem_mb"]), math.ceil(factor * prediction.host_bytes / 1e6))
    return {
        "runtime": min(runtime, int(plan["max_runtime"])),
        "mem_mb": min(mem_mb, int(plan["max_mem_mb"])),
    }


def attempt_request(
    plan: Mapping[str, Any], first: Mapping[str, int], attempt: int
) -> dict[str, int]:
    """The request of the ``attempt``-th submission: ``attempt`` × the first one's walltime and
    memory (a job killed at its time or memory limit gets more), never above
    ``partition_max_runtime`` or ``max_mem_mb``."""
    runtime = int(first["runtime"]) * attempt
    if plan["partition_max_runtime"] is not None:
        runtime = min(runtime, int(plan["partition_max_runtime"]))
    mem_mb = min(int(first["mem_mb"]) * attempt, max(int(plan["max_mem_mb"]), int(first["mem_mb"])))
    return {"runtime": runtime, "mem_mb": mem_mb}
