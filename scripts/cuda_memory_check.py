"""Measure the peak CUDA memory of short training runs against ``signal_batch: 0``'s estimate.

For each case (model, crop size, signals, solver) it trains 20 steps on crops of the cameraman
with every signal in one pass, reads ``torch.cuda.max_memory_allocated`` above what was held
before, and prints one JSON line: the estimate
(:func:`implicit2.training.batching.step_bytes_per_signal` × signals), the peak, their ratio,
and the peak's workspace in activations beyond what autograd saves and the parameters with their
gradients and Adam moments (what ``WORKSPACE_ACTIVATIONS`` stands for).
Usage: python scripts/cuda_memory_check.py [OUT.jsonl]
"""

from __future__ import annotations

import json
import sys

import torch

from implicit2.bench.inputs import crop_dataset, image_crops
from implicit2.models import parse_model_name
from implicit2.tasks import get_task
from implicit2.training.batching import saved_bytes_per_signal, step_bytes_per_signal
from implicit2.training.loop import train
from implicit2.training.settings import TrainSettings
from implicit2.training.step import make_model

CASES = (
    ("deq-fourier-1L256D", 256, 1, "fixed_point"),
    ("mfn-fourier-1L256D", 256, 1, "fixed_point"),
    ("mfn-fourier-4L256D", 256, 1, "fixed_point"),
    ("deq-fourier-1L256D", 256, 1, "anderson"),
    ("deq-fourier-1L256D", 512, 1, "fixed_point"),
    ("deq-gabor-1L256D", 512, 1, "fixed_point"),
    ("deq-siren-1L256D", 512, 1, "fixed_point"),
    ("mfn-gabor-4L256D", 512, 1, "fixed_point"),
    ("deq-fourier-1L256D", 128, 100, "fixed_point"),
)


def measure(model_name: str, size: int, signals: int, solver: str) -> dict[str, object]:
    """One case's estimate and measured peak (bytes) and the peak's workspace in activations."""
    task, device = get_task("image_representation"), torch.device("cuda")
    data = crop_dataset(image_crops("camera", size, signals))
    settings = TrainSettings(
        steps=20, log_every=10, checkpoint_every=20, signal_batch=signals, solver=solver
    )
    points, width = len(data.train_coords), parse_model_name(model_name).width
    estimate = signals * step_bytes_per_signal(task, data, model_name, settings, points)
    cpu_model = make_model(model_name, data, settings, 0, 0, 1, torch.device("cpu"))
    saved = saved_bytes_per_signal(task, data, cpu_model, points)
    parameters = sum(p.numel() * p.element_size() for p in cpu_model.parameters())
    torch.cuda.empty_cache()
    held = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    train(task, data, model_name, 0, settings, device)
    peak = torch.cuda.max_memory_allocated(device) - held
    activation = signals * points * width * 4
    return {
        "model": model_name,
        "points": points,
        "signals": signals,
        "solver": solver,
        "estimate_bytes": int(estimate),
        "peak_bytes": int(peak),
        "estimate_over_peak": round(estimate / peak, 3),
        "workspace_activations": round((peak - signals * (saved + 4 * parameters)) / activation, 2),
    }


def main(out: str | None = None) -> None:
    lines = []
    for case in CASES:
        line = json.dumps(measure(*case))
        print(line, flush=True)
        lines.append(line)
    if out is not None:
        with open(out, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:2])
