"""Long full-batch signals: the whole-batch training step against the blocked one.

Usage (CPU, 2 threads; the figures in docs/benchmarks.md, "Long full-batch signals"):

    python scripts/long_signal_bench.py train --data bach.npz --model deq-fourier-1L128D \
        --steps 300 --rows 4096 --out results/bench/long_bach_deq.json
    python scripts/long_signal_bench.py profile --data bach.npz --model deq-fourier-1L128D
    python scripts/long_signal_bench.py memory --data bach.npz --model deq-fourier-1L128D \
        --path blocked --steps 3

``train`` trains one model per variant from the same initialisation: ``whole`` (the trainer's
whole-batch step, :func:`training_forward` then :func:`apply_update`; ``whole-unwrapped``: with the
filters' plain sine, the step before the long-signal work), ``blocked:R``
(:func:`blocked_update` in blocks of R points) and ``blocked-autograd:R`` (the same with autograd
in every block instead of the hand-written one-layer block of
:mod:`implicit2.training.fused_block`), advancing the variants one step each in turn
(interleaved, so machine load hits them alike); it records each step's wall time and loss, then
scores every model (PSNR on the task's test set). ``profile`` times the parts of an amortized
step (filters, f with the one-step gradient, decoder and loss, backward, Adam) whole-batch and per
block, and prints ``torch.profiler``'s operator table for both. ``memory`` runs ``--steps`` steps
of one path (``--solve``: the solving step 0 alone; else amortized steps from a held state) in
this process and reports the growth of the peak resident set (VmHWM) over the loaded data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from implicit2.deq.gradients import attach_backward
from implicit2.models import INR
from implicit2.models.deq import DEQINR, ExplicitMFN
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData, Task
from implicit2.training import step as step_module
from implicit2.training.allocator import keep_freed_memory
from implicit2.training.evaluate import Predictor
from implicit2.training.fused_block import fused_block
from implicit2.training.settings import TrainSettings
from implicit2.training.step import (
    apply_update,
    blocked_update,
    make_model,
    make_optimizer,
    make_scheduler,
    training_forward,
)

CPU = torch.device("cpu")


def no_fused_block(*args: Any) -> None:
    """``fused_block`` for the ``blocked-autograd`` variant: autograd in every block."""
    return None


class Variant:
    """One model trained step by step, whole-batch (``rows`` None) or in blocks of ``rows``."""

    def __init__(
        self,
        name: str,
        task: Task,
        data: PreparedData,
        model_name: str,
        settings: TrainSettings,
        rows: int | None,
        wrap: bool = True,
        fused: bool = True,
    ) -> None:
        torch.manual_seed(0)
        self.name, self.task, self.rows, self.settings = name, task, rows, settings
        self.fused = fused
        self.model = make_model(model_name, data, settings, 0, 0, data.num_signals, CPU)
        self.model.train()
        if not wrap:  # the filters as before this change: sin of the unwrapped argument
            for module in self.model.modules():
                if hasattr(module, "wrap"):
                    module.wrap = False
        self.optimizer = make_optimizer(self.model, settings.lr, CPU)
        self.scheduler = make_scheduler(self.optimizer, settings)
        self.forward = training_forward(self.model, task, compile_step=False)
        self.x = torch.from_numpy(data.train_coords).unsqueeze(0)
        self.y = torch.from_numpy(data.train_targets)
        self.z: torch.Tensor | None = None
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []  # process CPU time: what machine load does not inflate
        self.losses: list[float] = []

    def step(self) -> None:
        """One training step as the loop takes it (amortized: solve at step 0 only), timed."""
        solve = self.z is None
        step_module.fused_block = fused_block if self.fused else no_fused_block
        started, cpu = time.perf_counter(), time.process_time()
        if self.rows is None:
            per_signal, z, _ = self.forward(self.x, self.y, self.z, solve)
            loss = per_signal.sum()
            apply_update(loss, self.model, self.optimizer, self.scheduler, None)
        else:
            blocked = blocked_update(
                self.model,
                self.task,
                self.x,
                self.y,
                self.z,
                solve,
                self.rows,
                self.optimizer,
                self.scheduler,
                None,
            )
            loss, z = blocked.loss.sum(), blocked.z
        self.seconds.append(time.perf_counter() - started)
        self.cpu_seconds.append(time.process_time() - cpu)
        self.losses.append(float(loss.detach()))
        self.z = z if self.model.state_dim > 0 else None


def load(args: argparse.Namespace) -> tuple[Task, PreparedData, TrainSettings]:
    task = get_task(args.task)
    data = task.load(Path(args.data))
    values = {"steps": args.steps, "input_scale": args.input_scale, "lr": args.lr}
    return task, data, TrainSettings.from_dict(values | {"device": "cpu"})


def score(task: Task, data: PreparedData, model: INR) -> float:
    model.eval()
    metrics, _ = task.evaluate(Predictor([model], CPU), data)
    model.train()
    return float(metrics["psnr"])


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    task, data, settings = load(args)
    variants = []
    for name in args.variants:
        rows = None if name.startswith("whole") else int(name.split(":")[1])
        wrap = name != "whole-unwrapped"
        fused = not name.startswith("blocked-autograd")
        variants.append(Variant(name, task, data, args.model, settings, rows, wrap, fused))
    started = time.perf_counter()
    loads = [os.getloadavg()[0]]
    for step in range(args.steps):
        for variant in variants:
            variant.step()
        if (step + 1) % 25 == 0:
            loads.append(os.getloadavg()[0])
            times = {v.name: round(v.seconds[-1], 3) for v in variants}
            print(f"step {step + 1}: {time.perf_counter() - started:.0f} s {times}", flush=True)
    first = statistics.median(variants[0].seconds[1:])
    first_cpu = statistics.median(variants[0].cpu_seconds[1:])
    results = {}
    for variant in variants:
        median = statistics.median(variant.seconds[1:])
        results[variant.name] = {
            "first_step_s": variant.seconds[0],
            "step_s_median": median,
            "ratio_to_first": median / first,
            "cpu_s_median": statistics.median(variant.cpu_seconds[1:]),
            "cpu_ratio_to_first": statistics.median(variant.cpu_seconds[1:]) / first_cpu,
            "loss_last": variant.losses[-1],
            "psnr": score(task, data, variant.model),
        }
    return {
        "args": vars(args),
        "points": len(data.train_coords),
        "threads": torch.get_num_threads(),
        "load_average": {"min": min(loads), "max": max(loads), "mean": statistics.fmean(loads)},
        "results": results,
    }


def timed_parts(
    variant: Variant, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor | None
) -> dict[str, float]:
    """Seconds of each part of one amortized step of ``variant``'s model on points ``x``."""
    model, task = variant.model, variant.task
    assert isinstance(model, DEQINR | ExplicitMFN), "profile needs a DEQ or explicit MFN"
    core = model.core
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = times.get(name, 0.0) + now - clock
        clock = now

    context = core.prepare(x)
    lap("filters and weights (prepare)")
    if isinstance(model, DEQINR) and z is not None:
        h0 = core.enter(z, context)
        z_next = attach_backward("onestep", core.layers(h0, context), h0)
    else:
        z_next = core.step(None, context)
    lap("f (one application)")
    loss = task.loss(core.decode(z_next), y).sum() * (x.shape[1] / variant.x.shape[1])
    lap("decoder and loss")
    loss.backward()
    lap("backward (with the one-step VJP)")
    return times


def run_profile(args: argparse.Namespace) -> dict[str, Any]:
    task, data, settings = load(args)
    variant = Variant("whole", task, data, args.model, settings, None, wrap=False)
    variant.step()  # step 0: the solve
    rows = args.rows[0]
    report: dict[str, Any] = {"args": vars(args), "load_average": os.getloadavg()[0]}
    for label, block in (("whole", None), (f"blocks of {rows}", rows)):
        parts: list[dict[str, float]] = []
        for _ in range(args.repeats):
            variant.optimizer.zero_grad(set_to_none=True)
            started = time.perf_counter()
            points = variant.x.shape[1]
            size = points if block is None else block
            totals: dict[str, float] = {}
            for first in range(0, points, size):
                cut = slice(first, min(first + size, points))
                z = None if variant.z is None else variant.z[:, cut]
                for name, seconds in timed_parts(
                    variant, variant.x[:, cut], variant.y[:, cut], z
                ).items():
                    totals[name] = totals.get(name, 0.0) + seconds
            clock = time.perf_counter()
            variant.optimizer.step()
            totals["Adam"] = time.perf_counter() - clock
            totals["step"] = time.perf_counter() - started
            parts.append(totals)
        report[label] = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
        print(label, json.dumps({k: round(v, 3) for k, v in report[label].items()}), flush=True)
    for label, block in (("whole", None), (f"blocks of {rows}", rows)):
        profiled = Variant(label, task, data, args.model, settings, block, block is not None)
        profiled.step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            profiled.step()
        print(f"--- {label}: one amortized step")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
    return report


def peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    task, data, settings = load(args)
    rows = None if args.path == "whole" else args.rows[0]
    variant = Variant(args.path, task, data, args.model, settings, rows, rows is not None)
    if not args.solve and variant.model.state_dim > 0:  # amortized steps from a held state
        shape = (data.num_signals, variant.x.shape[1], variant.model.state_dim)
        variant.z = variant.x.new_zeros(shape)
    steps = 1 if args.solve else args.steps
    base = peak_rss_mb()
    for _ in range(steps):
        variant.step()
    return {
        "args": vars(args),
        "before_mb": base,
        "peak_growth_mb": peak_rss_mb() - base,
        "step_s": variant.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("train", "profile", "memory"))
    parser.add_argument("--task", default="audio")
    parser.add_argument("--data", required=True, help="a prepared .npz")
    parser.add_argument("--model", default="deq-fourier-1L128D")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--input-scale", type=float, default=25000.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rows", type=int, nargs="+", default=[2048], help="points per block")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["whole-unwrapped", "blocked:2048"],
        help="train: whole-unwrapped (the step before the long-signal work), whole, blocked:ROWS, "
        "blocked-autograd:ROWS",
    )
    parser.add_argument("--repeats", type=int, default=3, help="profile: steps timed")
    parser.add_argument("--path", choices=("whole", "blocked"), default="blocked")
    parser.add_argument("--solve", action="store_true", help="memory: the solving step alone")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    run = {"train": run_train, "profile": run_profile, "memory": run_memory}[args.command]
    report = run(args)
    print(json.dumps({k: v for k, v in report.items() if k != "args"}, indent=2, default=str))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temp = args.out.with_suffix(".tmp")
        temp.write_text(json.dumps(report, indent=2, default=str))
        temp.replace(args.out)


if __name__ == "__main__":
    main()
