"""How a run is cut up: the points of a step (every coordinate, or a minibatch) and how many signals
train in one model pass (``signal_batch: 0``: as many as fit the CPU's cache or the GPU's free
memory, from an estimate of one signal's step memory)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from implicit2.deq.solvers import EXTRA_STATE_COPIES
from implicit2.models import INR, parse_model_name
from implicit2.tasks.base import PreparedData, Task
from implicit2.training.profiling import SavedTensorMeter
from implicit2.training.settings import TrainSettings
from implicit2.training.step import make_model, training_forward

log = logging.getLogger(__name__)


#: On CPU, ``signal_batch: 0`` batches at most this many activation elements (8 MiB of float32).
CPU_SIGNAL_ELEMENTS = 1 << 21


#: On CUDA, ``signal_batch: 0`` fills at most this share of the free device memory.
DEVICE_MEMORY_SHARE = 0.8


#: Besides what autograd saves, a step's peak holds up to this many activations of points ×
#: width floats (warm-start state, solver iterates, gradients in flight): measured on an H200,
#: 5–6 for the paper's DEQs with the fixed-point solver and 2 for explicit MFNs, so 8 keeps the
#: estimate 17–28 % above every DEQ peak (docs/benchmarks.md, scripts/cuda_memory_check.py).
WORKSPACE_ACTIVATIONS = 8


#: Point counts of the two probe steps that measure a model's saved bytes per point.
PROBE_POINTS = (256, 512)


#: Points per step of a minibatch task whose settings give no ``batch_size``.
DEFAULT_BATCH_POINTS = 65536


def minibatch_points(task: Task, settings: TrainSettings) -> int | None:
    """Points drawn per step, or None for full-batch training (every coordinate, every step).

    A full-batch task (image, audio) trains on minibatches too when ``batch_size`` is set.
    """
    if task.full_batch and settings.batch_size is None:
        return None
    return settings.batch_size or DEFAULT_BATCH_POINTS


def signal_chunks(num_signals: int, signal_batch: int) -> list[tuple[int, int]]:
    """(first, count) of each batch of signals trained together; 0 = all at once."""
    size = num_signals if signal_batch <= 0 else min(signal_batch, num_signals)
    return [(first, min(size, num_signals - first)) for first in range(0, num_signals, size)]


def auto_signal_batch(
    device: torch.device, points: int, width: int, step_bytes: Callable[[], float]
) -> int:
    """The batch size that ``signal_batch: 0`` means.

    On CPU, as many signals as keep one activation (signals × points × width floats) within
    ``CPU_SIGNAL_ELEMENTS``: the elementwise ops of a step are memory-bound, and once a batch's
    activations leave the cache a batched step costs more per signal than one signal alone
    (measured in docs/benchmarks.md). On CUDA, as many as fit ``DEVICE_MEMORY_SHARE`` of the
    free memory at ``step_bytes()`` bytes per signal. Elsewhere 0: all at once.
    """
    if device.type == "cpu":
        return max(1, CPU_SIGNAL_ELEMENTS // max(1, points * width))
    if device.type != "cuda":
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    per_signal = max(1.0, step_bytes())
    batch = max(1, int(DEVICE_MEMORY_SHARE * free // per_signal))
    log.info(
        "signal_batch 0: %d signals per pass (%.2f GB free, ≈ %.1f MB per signal)",
        batch,
        free / 1e9,
        per_signal / 1e6,
    )
    return batch


def step_bytes_per_signal(
    task: Task,
    data: PreparedData,
    model_name: str,
    settings: TrainSettings,
    points: int,
) -> float:
    """Device bytes one signal's training step at ``points`` points needs (an estimate): the bytes
    autograd saves (:func:`saved_bytes_per_signal`), ``WORKSPACE_ACTIVATIONS`` activations, the
    solver's history (``EXTRA_STATE_COPIES``) for a DEQ, and the parameters with their gradients
    and Adam moments."""
    model = make_model(model_name, data, settings, 0, 0, 1, torch.device("cpu"))
    saved = saved_bytes_per_signal(task, data, model, points)
    workspace = WORKSPACE_ACTIVATIONS * points * parse_model_name(model_name).width * 4
    workspace += EXTRA_STATE_COPIES[settings.solver] * points * model.state_dim * 4
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return saved + workspace + 4 * parameter_bytes


#: Whole-batch activations of a blocked CPU step's peak besides two per layer (its filter term and
#: its output within an iteration) and the solver's history: a DEQ's solving step holds the start,
#: the first layer's entry, the iterate, its image and their difference
#: (``MultiplicativeFilterNetwork.blocked_solver_map``, ``fixed_point``), then the state and its
#: successor; an amortized step, only these two. Over a solving step the process's resident set
#: grew by 7.5 activations for a 1L32D DEQ and 9.9 for a 2L32D one (tests/test_blocked_step.py
#: measures the first): 7 leaves some room.
BLOCKED_SOLVE_ACTIVATIONS = 7

#: Activations of one block in flight per thread of a blocked step (filters, products, their
#: gradients: 11 in the fused one-layer block), with room for the allocator.
BLOCK_ACTIVATIONS = 24


def blocked_step_bytes_per_signal(
    data: PreparedData,
    model_name: str,
    model: INR,
    settings: TrainSettings,
    points: int,
    rows: int,
) -> float:
    """Host bytes one signal's blocked CPU step (:func:`implicit2.training.step.blocked_update`,
    ``rows`` points a block) needs at ``points`` points: a DEQ's whole-batch solve (two
    activations a layer, ``BLOCKED_SOLVE_ACTIVATIONS`` more and the solver's history), the blocks in
    flight (one per thread), the coordinates and targets, and the parameters of ``model`` (built
    for ``model_name`` and ``data``) with their gradients and Adam moments."""
    spec = parse_model_name(model_name)
    whole = 0.0
    if spec.is_deq:
        copies = 2 * spec.layers + BLOCKED_SOLVE_ACTIVATIONS + EXTRA_STATE_COPIES[settings.solver]
        whole = copies * points * spec.width * 4
    blocks = torch.get_num_threads() * BLOCK_ACTIVATIONS * rows * spec.width * 4
    signal = points * (data.in_dim + data.out_dim) * 4
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return whole + blocks + signal + 4 * parameter_bytes


def saved_bytes_per_signal(task: Task, data: PreparedData, model: INR, points: int) -> float:
    """Bytes a training step of the one-signal CPU ``model`` saves for backward at ``points``
    points, extrapolated from two forward passes at ``PROBE_POINTS`` points (the same count on
    every device)."""
    model.train()
    forward = training_forward(model, task, compile_step=False)
    saved = []
    for count in PROBE_POINTS:
        take = np.arange(count) % len(data.train_coords)
        x = torch.from_numpy(data.train_coords[take]).unsqueeze(0)
        y = torch.from_numpy(data.train_targets[:1, take])
        z0 = x.new_zeros((1, count, model.state_dim)) if model.state_dim > 0 else None
        meter = SavedTensorMeter()
        with meter.track():
            forward(x, y, z0, False)
        saved.append(meter.bytes)
    (low, high), (small, large) = PROBE_POINTS, saved
    return small + (large - small) / (high - low) * (points - low)
