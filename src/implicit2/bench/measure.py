"""Speed and memory of full-batch training, measured on the trainer's own step.

All models are measured in one process on the same image, next to a plain matmul of the same
shape (the machine's attainable GFLOP/s), so the figures are comparable:
step time (median), bytes saved for backward, peak memory, matmul FLOPs per step (counted by
``torch.utils.flop_counter``), achieved GFLOP/s, PSNR after the run, solver steps at step 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from implicit2.bench.inputs import crop_dataset, image_crops, load_image, subset
from implicit2.models import INR, count_parameters, parse_model_name
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData, Task
from implicit2.tasks.scores import unit_psnr
from implicit2.training.loop import train
from implicit2.training.profiling import (
    SavedTensorMeter,
    peak_memory_bytes,
    reset_peak_memory,
    synchronize,
)
from implicit2.training.records import TrainResult, summary
from implicit2.training.settings import TrainSettings, apply_device_options, resolve_device
from implicit2.training.step import (
    apply_update,
    check_finite_inputs,
    make_model,
    make_optimizer,
    make_scheduler,
    training_forward,
)

log = logging.getLogger(__name__)

#: Steps between two reference matmuls timed during a model's run (see ``bench_model``).
PROBE_EVERY = 10

#: Row cap of the reference matmul (a K-signal batch of large images would not fit twice).
MATMUL_MAX_ROWS = 1 << 20


def per_signal_psnr(
    task: Task,
    data: PreparedData,
    model_name: str,
    seed: int,
    settings: TrainSettings,
    result: TrainResult,
    device: torch.device,
) -> list[float]:
    """PSNR (dB) on the training coordinates of each signal's trained model, solved from z = 0.

    Like curve.csv's ``psnr``: in model space over ``task.model_range``, unclamped, so it sees
    every difference between two fits. ``evaluate`` clamps images to [0, 1] first, which can only
    raise it.
    """
    coords = torch.from_numpy(data.train_coords).to(device).unsqueeze(0)
    values: list[float] = []
    for chunk in result.chunks:
        model = make_model(model_name, data, settings, seed, chunk.first, chunk.count, device)
        model.load_state_dict(chunk.state)
        model.eval()
        target = torch.from_numpy(data.train_targets[chunk.first : chunk.first + chunk.count])
        with torch.no_grad():
            y = model(coords).y
        mse = (y.cpu() - target).square().mean(dim=(1, 2)).double()
        values += (10.0 * torch.log10(task.model_range**2 / mse.clamp_min(1e-30))).tolist()
    return values


def compare_batched(
    name: str,
    data: PreparedData,
    steps: int,
    lr: float,
    input_scale: float,
    device: torch.device,
    sequential: bool,
    seed: int = 0,
    sequential_signals: int | None = None,
    tf32: bool = True,
    compile_steps: bool = False,
    held_elsewhere: int = 0,
) -> dict[str, Any]:
    """Train one ``name`` model per signal with the pipeline's trainer, at once (and one by one).

    Both runs start from the same per-signal initialisations, so their per-signal PSNRs agree up
    to float rounding; ``psnr_max_abs_diff`` measures that. ``sequential_signals`` = M < K
    trains only the first M signals one by one (a GPU budget) and scales their time by K / M:
    ``sequential_seconds`` is then that estimate, ``sequential_seconds_measured`` the clock.
    ``held_elsewhere``: device bytes other code holds throughout, left out of the peak memory.
    """
    task = get_task(data.task)
    base = bench_settings(name, steps, lr, input_scale, device, tf32, compile_steps)
    warm = dataclasses.replace(base, steps=4, log_every=4)  # thread pools, lazy init: untimed
    train(task, subset(data, 1), name, seed, warm, device)
    if compile_steps:  # compile the batched shapes too, so neither timed run pays for it
        train(task, data, name, seed, warm, device)
    figures: dict[str, Any] = {"signals": data.num_signals, "points": len(data.train_coords)}
    one_by_one = subset(data, sequential_signals or data.num_signals)
    runs = [("batched", 0, data)] + ([("sequential", 1, one_by_one)] if sequential else [])
    psnrs = {}
    for label, signal_batch, run_data in runs:
        settings = dataclasses.replace(base, signal_batch=signal_batch)
        reset_peak_memory(device)
        synchronize(device)
        start = time.perf_counter()
        result = train(task, run_data, name, seed, settings, device)
        synchronize(device)
        seconds = time.perf_counter() - start
        record = summary(result, device, held_elsewhere)
        psnrs[label] = per_signal_psnr(task, run_data, name, seed, settings, result, device)
        if run_data.num_signals < data.num_signals:
            figures |= {
                "sequential_signals": run_data.num_signals,
                "sequential_seconds_measured": seconds,
            }
            seconds *= data.num_signals / run_data.num_signals
        figures |= {
            f"{label}_seconds": seconds,
            f"{label}_step_seconds_median": record["step_seconds_median"],
            f"{label}_peak_memory_bytes": record["peak_memory_bytes"],
            f"{label}_saved_bytes_per_step": record["saved_bytes_per_step"],
            f"{label}_signal_batch_size": record["signal_batch_size"],
            f"psnr_{label}": psnrs[label],
        }
    figures["psnr_batched_mean"] = statistics.fmean(psnrs["batched"])
    if sequential:
        figures["speedup"] = figures["sequential_seconds"] / figures["batched_seconds"]
        figures["psnr_max_abs_diff"] = max(
            abs(a - b) for a, b in zip(psnrs["batched"], psnrs["sequential"], strict=False)
        )
    figures["params_per_signal"] = count_parameters(name, data.in_dim, data.out_dim)
    figures["tf32"] = record["tf32"]
    figures["compile"] = record["compile"]
    return figures


class MatmulProbe:
    """Times a plain (points × width) @ (width × width) float32 matmul: the attainable GFLOP/s."""

    def __init__(self, points: int, width: int, device: torch.device) -> None:
        self.device = device
        self.a = torch.randn(points, width, device=device)
        self.b = torch.randn(width, width, device=device)
        self.out = torch.empty(points, width, device=device)
        self.flop = 2.0 * points * width * width

    @property
    def nbytes(self) -> int:
        """Device bytes the probe holds while models run (left out of their peak memory)."""
        return self.a.nbytes + self.b.nbytes + self.out.nbytes

    def seconds(self) -> float:
        """One timed product."""
        synchronize(self.device)
        start = time.perf_counter()
        torch.mm(self.a, self.b, out=self.out)
        synchronize(self.device)
        return time.perf_counter() - start

    def gflops(self, repeats: int = 20) -> float:
        """Median over ``repeats`` products, after two untimed ones."""
        times = [self.seconds() for _ in range(repeats + 2)][2:]
        return self.flop / statistics.median(times) / 1e9


def bench_settings(
    name: str,
    steps: int,
    lr: float,
    input_scale: float,
    device: torch.device,
    tf32: bool = True,
    compile_steps: bool = False,
) -> TrainSettings:
    """The training settings of a benchmark run of ``name``: the image tasks' (spectral norm on the
    DEQ and its explicit twin), one log point and checkpoint at the end, on ``device``."""
    return TrainSettings(
        steps=steps,
        lr=lr,
        input_scale=input_scale,
        spectral_norm=parse_model_name(name).family in ("deq", "mfn"),
        log_every=steps,
        checkpoint_every=steps,
        device=str(device),
        tf32=tf32,
        compile=compile_steps,
    )


def bench_model(
    name: str,
    data: PreparedData,
    settings: TrainSettings,
    device: torch.device,
    seed: int = 0,
    probe: MatmulProbe | None = None,
) -> dict[str, Any]:
    """Train ``name`` full batch on the one-signal ``data`` with the trainer's own step
    (:func:`~implicit2.training.step.training_forward`, then
    :func:`~implicit2.training.step.apply_update`; amortized for a DEQ) and measure every step.

    With ``probe``, a reference matmul is also timed after every ``PROBE_EVERY``-th step, so the
    model's GFLOP/s can be compared with the matmul's over the same minutes
    (``matmul_gflops_during``): this machine's speed drifts by up to 2× between minutes.
    """
    task = get_task(data.task)
    check_finite_inputs(data)
    torch.manual_seed(seed)
    model = make_model(name, data, settings, seed, 0, 1, device)
    model.train()
    optimizer = make_optimizer(model, settings.lr, device)
    scheduler = make_scheduler(optimizer, settings)
    forward = training_forward(model, task, compile_step=False)
    x = torch.from_numpy(data.train_coords).to(device).unsqueeze(0)
    y = torch.from_numpy(data.train_targets).to(device)
    cache = None
    times: list[float] = []
    probe_times: list[float] = []
    flops = saved = first_solver_steps = 0
    reset_peak_memory(device)
    for step in range(settings.steps):
        counter = FlopCounterMode(display=False) if step == 1 else None
        meter = SavedTensorMeter() if step == 2 else None
        synchronize(device)
        start = time.perf_counter()
        with (
            counter or contextlib.nullcontext(),
            meter.track() if meter else contextlib.nullcontext(),
        ):
            per_signal, cache, solver_steps = forward(x, y, cache, cache is None)
            loss = per_signal.sum()
            apply_update(loss, model, optimizer, scheduler, settings.grad_clip)
        synchronize(device)
        elapsed = time.perf_counter() - start
        if step == 0:
            first_solver_steps = solver_steps
        if counter is not None:
            flops = counter.get_total_flops()
        if meter is not None:
            saved = meter.bytes
        if step >= 3:
            times.append(elapsed)
            if probe is not None and step % PROBE_EVERY == 0:
                probe_times.append(probe.seconds())
    median = statistics.median(times) if times else float("nan")
    during = probe.flop / statistics.median(probe_times) / 1e9 if probe and probe_times else None
    return {
        "step_seconds_median": median,
        "saved_bytes_per_step": saved,
        "peak_memory_bytes": peak_memory_bytes(device, saved, probe.nbytes if probe else 0),
        "step_gflop": flops / 1e9,
        "gflops": flops / 1e9 / median if times else None,
        "psnr": psnr(model, x, data.train_targets[0]),
        "params": count_parameters(name, data.in_dim, data.out_dim),
        "solver_steps_first": first_solver_steps,
        "final_loss": float(loss.detach()),
        "matmul_gflops_during": during,
        "matmul_fraction_during": flops / 1e9 / median / during if during and times else None,
    }


def psnr(model: INR, coords: torch.Tensor, target: np.ndarray) -> float:
    """PSNR (dB) of the one-signal model's reconstruction of the model-space ``target``, solved
    from z = 0 in eval mode, scored as ``evaluate`` scores images
    (:func:`implicit2.tasks.scores.unit_psnr`)."""
    model.eval()
    with torch.no_grad():
        out = model(coords).y
    model.train()
    return float(unit_psnr(out[0].cpu().numpy(), target, axis=(0, 1)))


def run_benchmark(
    models: list[str],
    image_name: str,
    size: int,
    steps: int,
    lr: float,
    input_scale: float,
    threads: int | None,
    device_name: str = "auto",
    *,
    signals: int | None = None,
    compare_sequential: bool = False,
    sequential_signals: int | None = None,
    crop_seed: int = 0,
    tf32: bool = True,
    compile_steps: bool = False,
    data_path: Path | None = None,
    task_name: str = "image_representation",
) -> dict[str, Any]:
    """Benchmark every model; returns the bench.json payload.

    Without ``signals``: each model trains on the image resized to ``size``² (step time, memory,
    FLOPs, PSNR). With ``signals`` = K: each model trains one copy per crop on K distinct
    ``size``² crops of the full-resolution image (or the first K signals of the prepared
    ``data_path`` of ``task_name``), all at once with the pipeline's trainer and, with
    ``compare_sequential``, one by one (``batched_seconds``, ``sequential_seconds``,
    ``psnr_max_abs_diff``); ``compile_steps`` runs both through ``torch.compile``.
    """
    for name in models:
        parse_model_name(name)
    if steps < 4:
        raise ValueError(f"--steps must be at least 4 (3 warm-up/measurement steps), got {steps}")
    if compare_sequential and not signals:
        raise ValueError("--compare-sequential needs --signals K (the number of crops)")
    if compile_steps and not signals:
        raise ValueError("--compile applies to the trainer's runs: it needs --signals K")
    if sequential_signals is not None and not (
        compare_sequential and signals and 1 <= sequential_signals <= signals
    ):
        raise ValueError(
            "--sequential-signals M needs --signals K --compare-sequential and 1 <= M <= K"
        )
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    options = apply_device_options(TrainSettings(tf32=tf32), device)
    width = max(parse_model_name(name).width for name in models)
    rows = min(size * size * (signals or 1), MATMUL_MAX_ROWS)
    probe = MatmulProbe(rows, width, device)
    reference = [probe.gflops()]
    machine = {
        "matmul_shape": [rows, width, width],
        "device": str(device),
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "tf32": options["tf32"],
    }
    settings: dict[str, Any] = {
        "image": image_name,
        "size": size,
        "steps": steps,
        "lr": lr,
        "input_scale": input_scale,
    }
    results = {}
    if signals:
        if data_path is None:
            data = crop_dataset(image_crops(image_name, size, signals, seed=crop_seed))
            settings |= {"signals": signals, "crop_seed": crop_seed}
        else:
            from implicit2.training.runs import load_data

            data = subset(load_data(task_name, data_path), signals)
            settings |= {"signals": signals, "data": str(data_path), "task": task_name}
            settings["image"] = settings["size"] = None
        settings["compare_sequential"] = compare_sequential
        settings["compile"] = compile_steps
        settings["sequential_signals"] = sequential_signals
        for name in models:
            log.info("benchmarking %s on %d signals", name, signals)
            results[name] = compare_batched(
                name,
                data,
                steps,
                lr,
                input_scale,
                device,
                compare_sequential,
                sequential_signals=sequential_signals,
                tf32=tf32,
                compile_steps=compile_steps,
                held_elsewhere=probe.nbytes,
            )
    else:
        data = crop_dataset(load_image(image_name, size)[np.newaxis], image_name)
        for name in models:
            log.info("benchmarking %s", name)
            settings_of = bench_settings(name, steps, lr, input_scale, device, tf32)
            results[name] = bench_model(name, data, settings_of, device, probe=probe)
    # The reference is timed before and after the models (the machine's speed drifts); the
    # faster reading is the attainable rate, so the ratio to it is the conservative one.
    reference.append(probe.gflops())
    machine["matmul_gflops"] = max(reference)
    machine["matmul_gflops_readings"] = reference
    for figures in results.values():
        if figures.get("gflops") is not None:
            figures["matmul_fraction"] = figures["gflops"] / machine["matmul_gflops"]
    return {"machine": machine, "settings": settings, "models": results}


def _device_name(device: torch.device) -> str:
    from implicit2.training.provenance import device_name

    return device_name(device)
