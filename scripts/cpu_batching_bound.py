"""How much can batching signals speed up CPU training? Measures the two parts of a step.

A training step of one signal costs F (per-step fixed cost: Python, dispatch, Adam, spectral
norm, the same for any batch) plus a (per-signal arithmetic: products, sines, element-wise passes,
which a batch of S signals pays S times). Batching S signals therefore speeds training up by
(F + a) / (a + F / S) at most, and by (F + a_min) / a_min as S grows, where a_min counts only the
four (points × width × width) matrix products of an amortized DEQ step and one sine pass per
filter (a fused sin/cos, every other element-wise pass free). A batch's own per-signal
arithmetic (``batched_arithmetic_seconds``) is larger than a lone signal's when its activations
no longer fit the cache. Writes the figures to --out (JSON):

    python scripts/cpu_batching_bound.py --threads 2 --out bound.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from implicit2.bench.inputs import crop_dataset, image_crops
from implicit2.tasks import get_task
from implicit2.training.allocator import keep_freed_memory
from implicit2.training.loop import train
from implicit2.training.settings import TrainSettings

MODEL = "deq-fourier-1L64D"
WIDTH = 64


def step_seconds(size: int, signals: int, steps: int) -> float:
    """Median seconds of an amortized training step of ``signals`` ``size``² crops at once."""
    data = crop_dataset(image_crops("camera", size, signals))
    settings = TrainSettings(
        steps=steps,
        lr=1e-3,
        input_scale=64.0,
        spectral_norm=True,
        log_every=10,
        checkpoint_every=steps,
        signal_batch=signals,
    )
    task, cpu = get_task(data.task), torch.device("cpu")
    train(task, data, MODEL, 0, settings, cpu)  # warm-up: allocator, thread pool
    result = train(task, data, MODEL, 0, settings, cpu)
    return statistics.median(result.chunks[0].interval_seconds)


def op_seconds(op: Callable[[], torch.Tensor], repeats: int = 200) -> float:
    """Best-of-three mean seconds of ``op`` over ``repeats`` calls (cache-resident operands)."""
    op()
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            op()
        runs.append((time.perf_counter() - start) / repeats)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="crop side of the signals")
    parser.add_argument("--batch", type=int, default=8, help="signals per batched step")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()

    fixed = step_seconds(8, 1, args.steps)  # 64 points: the step is all fixed cost
    alone = step_seconds(args.size, 1, args.steps)
    batched = step_seconds(args.size, args.batch, args.steps) / args.batch
    arithmetic = alone - fixed

    points = args.size * args.size
    h, w = torch.randn(1, points, WIDTH), torch.randn(1, WIDTH, WIDTH) / WIDTH
    product = op_seconds(lambda: torch.bmm(h, w))
    sine = op_seconds(lambda: torch.sin(h))
    floor = 4 * product + 2 * sine
    figures = {
        "model": MODEL,
        "size": args.size,
        "threads": args.threads,
        "fixed_seconds": fixed,
        "alone_step_seconds": alone,
        "arithmetic_seconds": arithmetic,
        "batch": args.batch,
        "batched_step_seconds_per_signal": batched,
        "batched_arithmetic_seconds": batched - fixed / args.batch,
        "measured_step_speedup": alone / batched,
        "model_speedup": (fixed + arithmetic) / (arithmetic + fixed / args.batch),
        "limit_speedup": (fixed + arithmetic) / arithmetic,
        "product_seconds": product,
        "sine_seconds": sine,
        "arithmetic_floor_seconds": floor,
        "floor_limit_speedup": (fixed + floor) / floor,
    }
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:34s} {value:.4g}" if isinstance(value, float) else f"{key:34s} {value}")


if __name__ == "__main__":
    main()
