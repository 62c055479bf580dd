"""Minibatches for a full-batch signal too large for memory (``implicit2 fit``).

A full-batch task (image, audio) trains every coordinate every step; a long recording or a huge
picture can need more memory for one step than the machine has, and would fail or swap. When the
estimated step (:func:`implicit2.training.batching.step_bytes_per_signal`; for a step the CPU runs
in blocks of points, :func:`~implicit2.training.batching.blocked_step_bytes_per_signal`) exceeds
:data:`MEMORY_SHARE` of the available memory, the run trains on random minibatches of the largest
power-of-two point count that fits instead.
"""

from __future__ import annotations

import os

import torch

from implicit2.models import parse_model_name
from implicit2.tasks.base import PreparedData, Task
from implicit2.training.batching import blocked_step_bytes_per_signal, step_bytes_per_signal
from implicit2.training.settings import TrainSettings
from implicit2.training.step import make_model, step_block_points

#: The share of the available memory a training step may take.
MEMORY_SHARE = 0.5
#: The smallest minibatch the fallback picks.
MIN_POINTS = 1024


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device``: CUDA's free memory, or the host's available memory (None when
    the platform does not tell)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fallback_batch(
    task: Task, data: PreparedData, model: str, settings: TrainSettings, device: torch.device
) -> tuple[int, float, int] | None:
    """(minibatch points, estimated full-batch bytes, available bytes) when one signal's full
    batch does not fit; None when it fits, the task trains on minibatches anyway or the memory
    is unknown."""
    if not task.full_batch or settings.batch_size is not None:
        return None
    free = available_bytes(device)
    if free is None:
        return None
    points = len(data.train_coords)
    probe = make_model(model, data, settings, 0, 0, 1, torch.device("cpu"))
    width = parse_model_name(model).width
    rows = step_block_points(probe, device, points, width, settings.compile)
    whole: float | None = None
    if rows is None:
        need = whole = step_bytes_per_signal(task, data, model, settings, points)
    else:
        need = blocked_step_bytes_per_signal(data, model, probe, settings, points, rows)
    budget = MEMORY_SHARE * free
    if need <= budget:
        return None
    # A minibatch step runs whole-batch: size it by the whole-batch step's bytes per point.
    if whole is None:
        whole = step_bytes_per_signal(task, data, model, settings, points)
    fitting = max(MIN_POINTS, int(points * budget / whole))
    return min(points, 1 << (fitting.bit_length() - 1)), need, free
