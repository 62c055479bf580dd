"""Minibatch DEQ training with and without the warm-start cache, next to the explicit twin.

Usage (CPU; the figures in docs/benchmarks.md, "Minibatch warm starts and long signals"):

    python scripts/warm_start_bench.py train --task occupancy \
        --data results/data/occupancy/bunny.npz --model deq-fourier-1L128D --steps 2000 \
        --hparams '{"lr": 5e-4, "batch_size": 50000}' \
        --variants cached uncached explicit --out results/bench/bunny_128.json
    python scripts/warm_start_bench.py profile --task occupancy --data ... --model ... --out ...

``train`` advances every variant one step in turn (interleaved, so machine load hits them alike),
each step as the training loop takes it: the same minibatches (one generator per variant, seeded
as the loop seeds it), the same forward, backward, Adam step and cache update. It records per
step the wall time and the forward solver iterations, then scores each model on the task's test
set (``--test-points`` of each test set). ``profile`` times the parts of one step from z = 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from implicit2.models import INR
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData, Task
from implicit2.training.allocator import keep_freed_memory
from implicit2.training.evaluate import Predictor
from implicit2.training.loop import make_warm_cache
from implicit2.training.settings import TrainSettings
from implicit2.training.step import (
    apply_update,
    make_model,
    make_optimizer,
    make_scheduler,
    training_forward,
)
from implicit2.training.warm_cache import WarmStartCache

CPU = torch.device("cpu")


class Variant:
    """One model trained step by step: the loop's state for one signal batch."""

    def __init__(
        self,
        name: str,
        model: INR,
        settings: TrainSettings,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        cache: WarmStartCache | None,
    ) -> None:
        self.name, self.model, self.settings = name, model, settings
        self.optimizer, self.generator, self.cache = optimizer, generator, cache
        self.scheduler = make_scheduler(optimizer, settings)
        self.seconds: list[float] = []
        self.iterations: list[int] = []
        self.losses: list[float] = []


def make_variant(
    name: str, task: Task, data: PreparedData, model_name: str, settings: TrainSettings, seed: int
) -> Variant:
    torch.manual_seed(seed)
    model = make_model(model_name, data, settings, seed, 0, data.num_signals, CPU)
    model.train()
    cache = None
    if model.state_dim > 0:
        cache = make_warm_cache(
            settings, data.num_signals, len(data.train_coords), model.state_dim, CPU
        )
    return Variant(
        name,
        model,
        settings,
        make_optimizer(model, settings.lr, CPU),
        torch.Generator().manual_seed(seed * 1_000_003),
        cache,
    )


def train_step(task: Task, data: PreparedData, variant: Variant) -> None:
    """One training step as :func:`implicit2.training.loop._train_chunk` takes it (the trainer's
    forward and :func:`~implicit2.training.step.apply_update`), timed."""
    settings, model = variant.settings, variant.model
    forward = training_forward(model, task, compile_step=False)
    started = time.perf_counter()
    index = task.sample_index(data, settings.batch_size, variant.generator)
    coords, targets = task.batch_at(data, index)
    x, y = coords.unsqueeze(0), targets
    slots = variant.cache.slots(index) if variant.cache is not None else None
    z0 = variant.cache.start(slots) if slots is not None else None
    per_signal, z_next, steps = forward(x, y, z0, True)
    loss = per_signal.sum()
    apply_update(loss, model, variant.optimizer, variant.scheduler, settings.grad_clip)
    if slots is not None and z_next is not None:
        variant.cache.store(slots, z_next)
    variant.seconds.append(time.perf_counter() - started)
    variant.iterations.append(steps)
    variant.losses.append(float(loss.detach()))


def subsampled(data: PreparedData, points: int | None) -> PreparedData:
    """The data with at most ``points`` of each test set (the first ones)."""
    if points is None:
        return data
    extra = dict(data.extra)
    for key in ("hard_coords", "hard_targets"):
        if key in extra:
            extra[key] = extra[key][:, :points] if key.endswith("targets") else extra[key][:points]
    return PreparedData(
        data.task,
        data.dataset,
        data.train_coords,
        data.train_targets,
        data.test_coords[:points],
        data.test_targets[:, :points],
        data.signal_names,
        data.meta,
        extra,
    )


def score(task: Task, data: PreparedData, model: INR) -> dict[str, Any]:
    model.eval()
    predictor = Predictor([model], CPU)
    metrics, _ = task.evaluate(predictor, data)
    model.train()
    keep = ("psnr", "iou_easy", "iou_hard")
    return {k: metrics[k] for k in keep if k in metrics} | {
        "solver_steps_eval": float(np.mean(predictor.solver_steps))
    }


def summarise(variant: Variant, after: int) -> dict[str, Any]:
    late = slice(after, None)
    return {
        "step_ms_median": 1e3 * statistics.median(variant.seconds[1:]),
        "step_ms_median_after": 1e3 * statistics.median(variant.seconds[late]),
        "iterations_first": variant.iterations[0],
        "iterations_mean": statistics.fmean(variant.iterations),
        "iterations_mean_after": statistics.fmean(variant.iterations[late]),
        "iterations_per_100": [
            statistics.fmean(variant.iterations[i : i + 100])
            for i in range(0, len(variant.iterations), 100)
        ],
        "step_ms_median_by_iterations": {
            count: 1e3
            * statistics.median(
                seconds
                for seconds, steps in zip(
                    variant.seconds[late], variant.iterations[late], strict=True
                )
                if steps == count
            )
            for count in sorted(set(variant.iterations[late]))
        },
        "loss_last_100": statistics.fmean(variant.losses[-100:]),
        "cache_bytes": variant.cache.nbytes if variant.cache is not None else 0,
        "cache_points": variant.cache.capacity if variant.cache is not None else 0,
    }


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    task = get_task(args.task)
    data = task.load(Path(args.data))
    base = json.loads(args.hparams) | {"steps": args.steps, "device": "cpu"}
    variants = []
    for name in args.variants:
        values = dict(base)
        model = args.model
        if name == "explicit":
            model = args.model.replace("deq-", "mfn-", 1)
            values["spectral_norm"] = args.explicit_spectral_norm
        elif name.startswith("uncached"):
            values["warm_cache_mb"] = 0
        if "-" in name and name != "explicit":
            values["solver"] = name.split("-", 1)[1]
        settings = TrainSettings.from_dict(values)
        variants.append((model, make_variant(name, task, data, model, settings, args.seed)))
    started = time.perf_counter()
    for step in range(args.steps):
        for _, variant in variants:
            train_step(task, data, variant)
        if (step + 1) % 25 == 0:
            done = {v.name: v.iterations[-1] for _, v in variants}
            print(f"step {step + 1}: {time.perf_counter() - started:.0f} s, {done}", flush=True)
    train_seconds = time.perf_counter() - started
    test = subsampled(data, args.test_points)
    results: dict[str, Any] = {}
    for model, variant in variants:
        results[variant.name] = {"model": model, **summarise(variant, args.after)}
        results[variant.name] |= score(task, test, variant.model)
    return {
        "args": vars(args),
        "threads": torch.get_num_threads(),
        "train_seconds": train_seconds,
        "results": results,
    }


def run_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Median seconds of the parts of a DEQ step from z = 0 and of the explicit twin's step."""
    task = get_task(args.task)
    data = task.load(Path(args.data))
    settings = TrainSettings.from_dict(json.loads(args.hparams) | {"device": "cpu"})
    deq = make_model(args.model, data, settings, args.seed, 0, 1, CPU)
    twin_settings = TrainSettings.from_dict(
        json.loads(args.hparams) | {"device": "cpu", "spectral_norm": args.explicit_spectral_norm}
    )
    twin_name = args.model.replace("deq-", "mfn-", 1)
    twin = make_model(twin_name, data, twin_settings, args.seed, 0, 1, CPU)
    generator = torch.Generator().manual_seed(args.seed)
    parts: dict[str, list[float]] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        started = time.perf_counter()
        out = fn(*args)
        parts.setdefault(name, []).append(time.perf_counter() - started)
        return out

    iterations = []
    for _ in range(args.repeats):
        index = task.sample_index(data, settings.batch_size, generator)
        coords, targets = task.batch_at(data, index)
        x = coords.unsqueeze(0)
        timed("prepare (filters, spectral norm)", deq.core.prepare, x)
        with torch.no_grad():
            ctx = deq.core.prepare(x)
            z = torch.zeros(1, x.shape[1], deq.state_dim)
            timed("f(z) once, no grad", deq.core.step, z, ctx)
            solved = timed("solve from 0 (solver + prepare)", deq.run, x, None, True)
        iterations.append(solved.solver_steps)
        out = timed("DEQ forward (prepare, solve, one f with grad)", deq.run, x, None, True)
        loss = task.loss(out.y, targets).sum()
        timed("DEQ backward", loss.backward)
        deq.zero_grad(set_to_none=True)
        out = timed("explicit forward", twin.run, x, None, False)
        loss = task.loss(out.y, targets).sum()
        timed("explicit backward", loss.backward)
        twin.zero_grad(set_to_none=True)
    return {
        "args": vars(args),
        "threads": torch.get_num_threads(),
        "iterations_from_zero": iterations,
        "ms_median": {k: 1e3 * statistics.median(v) for k, v in parts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["train", "profile"])
    parser.add_argument("--task", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--hparams", default="{}", help="training settings as JSON")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["cached", "uncached", "explicit"],
        help="cached, uncached, explicit; cached-SOLVER / uncached-SOLVER pick the solver",
    )
    parser.add_argument("--after", type=int, default=200, help="steps left out of *_after")
    parser.add_argument("--test-points", type=int, default=None, help="points per test set")
    parser.add_argument("--explicit-spectral-norm", action="store_true")
    parser.add_argument("--repeats", type=int, default=10, help="profile: steps timed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the CLI does
    payload = run_train(args) if args.mode == "train" else run_profile(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in payload.items() if k != "args"}, indent=1))


if __name__ == "__main__":
    main()
