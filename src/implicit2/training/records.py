"""What a run records: each signal batch's result, the run's merged curve, the timing and memory
summary that train.json holds, and the run folder's curve.csv, train.json and model.pt."""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from implicit2 import io as atomic
from implicit2.tasks.base import Task
from implicit2.training import model_file
from implicit2.training.profiling import peak_memory_bytes

CURVE_COLUMNS = ("step", "loss", "psnr", "seconds")


@dataclass
class ChunkResult:
    """What training one batch of signals produced."""

    first: int
    count: int
    state: dict[str, Tensor]
    curve: list[dict[str, Any]]  # curve.csv rows (curve_row)
    interval_seconds: list[float]
    first_step_seconds: float
    solver_steps_first: int
    saved_bytes: int
    diverged_step: int | None = None
    seconds: float = 0.0
    steps_done: int = 0
    solver_steps_total: int = 0  # forward solver iterations summed over the steps done
    solver_steps_intervals: list[float] = field(default_factory=list)  # mean per log interval
    warm_cache_bytes: int = 0


@dataclass
class TrainResult:
    """Everything ``train`` records about a run."""

    chunks: list[ChunkResult] = field(default_factory=list)
    seconds: float = 0.0
    device_options: dict[str, bool] = field(default_factory=dict)

    @property
    def diverged_step(self) -> int | None:
        steps = [c.diverged_step for c in self.chunks if c.diverged_step is not None]
        return min(steps) if steps else None


def curve_row(task: Task, step: int, mean_loss: Tensor, seconds: float) -> dict[str, Any]:
    """One row of curve.csv: the mean loss since the last log point and, for MSE tasks, its PSNR."""
    loss = float(mean_loss.mean())
    psnr: float | None = None
    if task.loss_kind == "mse":
        values = [10 * math.log10(task.model_range**2 / max(v, 1e-30)) for v in mean_loss.tolist()]
        psnr = statistics.fmean(values) if all(map(math.isfinite, values)) else None
    return {"step": step, "loss": loss, "psnr": psnr, "seconds": round(seconds, 6)}


def merged_curve(result: TrainResult) -> list[dict[str, Any]]:
    """One curve for the run: per step, the signal-weighted mean over chunks."""
    rows: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for chunk in result.chunks:
        for row in chunk.curve:
            rows.setdefault(int(row["step"]), []).append((chunk.count, row))
    merged = []
    for step in sorted(rows):
        entries = rows[step]
        total = sum(n for n, _ in entries)
        loss = sum(n * r["loss"] for n, r in entries) / total
        psnrs = [(n, r["psnr"]) for n, r in entries]
        psnr = None
        if all(p is not None for _, p in psnrs):
            psnr = sum(n * p for n, p in psnrs) / total
        seconds = sum(r["seconds"] for _, r in entries)
        merged.append({"step": step, "loss": loss, "psnr": psnr, "seconds": seconds})
    return merged


def write_outputs(
    out_dir: Path,
    result: TrainResult,
    record: dict[str, Any],
    model_meta: dict[str, Any],
) -> None:
    """Write curve.csv, train.json and — last, atomically — model.pt into ``out_dir``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in merged_curve(result):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    atomic.write_text(out_dir / "curve.csv", buffer.getvalue())
    atomic.write_json(out_dir / "train.json", record)
    chunks = [(c.first, c.count, c.state) for c in result.chunks]
    model_file.save_models(out_dir / "model.pt", model_meta, chunks)


def summary(result: TrainResult, device: torch.device, held_elsewhere: int = 0) -> dict[str, Any]:
    """Timing and memory figures of a run for train.json (``held_elsewhere``: device bytes that
    other code kept allocated throughout, left out of the peak)."""
    intervals = [s for c in result.chunks for s in c.interval_seconds]
    saved = max((c.saved_bytes for c in result.chunks), default=0)
    return {
        "train_seconds": round(result.seconds, 4),
        "step_seconds_median": statistics.median(intervals) if intervals else None,
        "first_step_seconds": sum(c.first_step_seconds for c in result.chunks),
        "saved_bytes_per_step": saved,
        "peak_memory_bytes": peak_memory_bytes(device, saved, held_elsewhere),
        "solver_steps_first": max((c.solver_steps_first for c in result.chunks), default=0),
        "solver_steps_mean": solver_steps_mean(result),
        "warm_cache_bytes": max((c.warm_cache_bytes for c in result.chunks), default=0),
        "signal_chunks": [(c.first, c.count) for c in result.chunks],
        "signal_batch_size": max((c.count for c in result.chunks), default=0),
        **result.device_options,
    }


def solver_steps_mean(result: TrainResult) -> float:
    """Forward solver iterations per training step, over every step of every signal batch."""
    steps = sum(c.steps_done for c in result.chunks)
    return sum(c.solver_steps_total for c in result.chunks) / steps if steps else 0.0
