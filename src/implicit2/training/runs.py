"""One run directory end to end: train into it, then evaluate it (`train`, `evaluate`, `fit`)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from implicit2 import io as atomic
from implicit2.models import count_parameters
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData
from implicit2.tasks.scores import NonFinitePrediction
from implicit2.training import provenance
from implicit2.training.checkpoint import Checkpointer
from implicit2.training.evaluate import evaluate_run
from implicit2.training.loop import train
from implicit2.training.profiling import reset_peak_memory
from implicit2.training.records import summary, write_outputs
from implicit2.training.settings import TrainSettings, resolve_device, set_matmul_precision

log = logging.getLogger(__name__)

#: Keys of train.json that metrics.json repeats, so a table needs one file per run.
CARRIED = (
    "task",
    "dataset",
    "model",
    "seed",
    "status",
    "diverged_step",
    "steps",
    "params",
    "train_seconds",
    "step_seconds_median",
    "first_step_seconds",
    "saved_bytes_per_step",
    "peak_memory_bytes",
    "solver_steps_first",
    "solver_steps_mean",
    "warm_cache_bytes",
    "hparams",
)


def load_data(task_name: str, data_path: Path) -> PreparedData:
    """Load prepared data and check it belongs to ``task_name``."""
    data = get_task(task_name).load(data_path)
    if data.task != task_name:
        raise ValueError(
            f"{data_path} holds {data.task} data, not {task_name}; check the rule inputs"
        )
    return data


def train_to_dir(
    task_name: str,
    data: PreparedData,
    model: str,
    seed: int,
    settings: TrainSettings,
    out_dir: Path,
    checkpoint_every: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and write model.pt, curve.csv, train.json; resumes from ``out_dir/ckpt``."""
    task = get_task(task_name)
    device = resolve_device(settings.device)
    reset_peak_memory(device)
    started = provenance.now()
    checkpointer = Checkpointer(out_dir / "ckpt", every=checkpoint_every)
    checkpointer.install_signal_handlers()
    try:
        result = train(task, data, model, seed, settings, device, checkpointer, progress)
    finally:
        checkpointer.restore_signal_handlers()
    diverged = result.diverged_step
    run_config = {"task": task_name, "dataset": data.dataset, "model": model, "seed": seed}
    run_config |= {"checkpoint_every": checkpoint_every, "hparams": settings.to_dict()}
    record = {
        "task": task_name,
        "dataset": data.dataset,
        "model": model,
        "seed": seed,
        "status": "diverged" if diverged is not None else "ok",
        "diverged_step": diverged,
        "steps": settings.steps if diverged is None else diverged,
        "params": count_parameters(model, data.in_dim, data.out_dim),
        "num_signals": data.num_signals,
        "signal_names": data.signal_names,
        "hparams": settings.to_dict(),
        **summary(result, device),
        "provenance": provenance.collect(device, started, run_config),
    }
    record["provenance"]["resumed"] = [
        {"first_signal": first, "step": step} for first, step in checkpointer.resumed
    ]
    meta = {
        "model": model,
        "task": task_name,
        "dataset": data.dataset,
        "in_dim": data.in_dim,
        "out_dim": data.out_dim,
        "seed": seed,
        "build": settings.model_kwargs(),
    }
    write_outputs(out_dir, result, record, meta)
    checkpointer.clear()  # a later re-run trains again instead of returning these weights
    log.info("trained %s on %s/%s: %s", model, task_name, data.dataset, record["status"])
    return record


def evaluate_dir(
    task_name: str, data: PreparedData, run_dir: Path, out: Path, device_name: str = "auto"
) -> dict[str, Any]:
    """Evaluate ``run_dir`` and write ``out`` (metrics.json) and ``run_dir/recon/``."""
    record = atomic.read_json(run_dir / "train.json")
    device = resolve_device(device_name)
    # Evaluate with the matmul precision the run trained with (as `fit` does, in one process).
    set_matmul_precision(bool((record.get("hparams") or {}).get("tf32", True)), device)
    started = provenance.now()
    metrics: dict[str, Any] = {key: record.get(key) for key in CARRIED}
    metrics["signal_names"] = data.signal_names
    recon = run_dir / "recon"
    shutil.rmtree(recon, ignore_errors=True)  # no reconstruction of an earlier evaluation stays
    reason = f"{record['model']}: diverged at step {record['diverged_step']}"
    if record["status"] == "ok":
        try:
            metrics |= evaluate_run(get_task(task_name), data, run_dir / "model.pt", recon, device)
        except NonFinitePrediction as error:
            # Unusable weights, or a DEQ whose solve from z = 0 blows up: a diverged run, which
            # the tables report, rather than a failed job that holds back every table.
            log.warning("%s: %s: recording the run as diverged", run_dir, error)
            metrics |= {"status": "diverged", "diverged_step": record["steps"]}
            reason = f"{record['model']}: non-finite predictions at evaluation"
    if metrics["status"] != "ok":
        metrics |= {"psnr": None, "psnr_std": None, "psnr_per_signal": None}
        metrics |= {"iou_easy": None, "iou_hard": None}
        metrics |= {"inference_seconds": None, "solver_steps_eval": None}
        write_placeholder(recon / "preview.png", reason)
    config = (record.get("provenance") or {}).get("config") or record.get("hparams", {})
    metrics["provenance"] = provenance.collect(device, started, config)
    metrics["provenance"]["train"] = record.get("provenance")
    atomic.write_json(out, metrics)
    return metrics


def write_placeholder(path: Path, message: str) -> None:
    """A small PNG that says why there is no reconstruction."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=8)
    with atomic.atomic_path(path) as temp:
        figure.savefig(temp, format="png")
