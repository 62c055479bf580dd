"""The training loop: amortized full-batch DEQ training or minibatch training, many signals at once.

Full-batch tasks (images, audio) keep the equilibrium state z of every training coordinate: step 0
solves z* = f(z*, x) from zero; every later step applies f once to the cached state and stores the
result (the (Implicit)² schedule: after the first step a DEQ step costs about one layer).
Minibatch tasks (video, occupancy) draw points from a finite pool and solve every step, each point
warm-started from the last fixed point found for it (:mod:`implicit2.training.warm_cache`; z = 0
for a point never drawn or not cached).

Every parameter has a leading signal axis, so all the signals of a dataset (``signal_batch`` at a
time) train in one model pass; the loss is the sum of per-signal means, so each signal gets the
gradient it would get alone. The loop never syncs with the host except at log points.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from implicit2.models import INR, parse_model_name
from implicit2.tasks.base import PreparedData, Task
from implicit2.training.batching import (
    auto_signal_batch,
    minibatch_points,
    signal_chunks,
    step_bytes_per_signal,
)
from implicit2.training.checkpoint import Checkpointer, RunIdentity, data_fingerprint
from implicit2.training.profiling import SavedTensorMeter, synchronize
from implicit2.training.records import ChunkResult, TrainResult, curve_row
from implicit2.training.settings import TrainSettings, apply_device_options
from implicit2.training.step import (
    apply_update,
    blocked_update,
    check_finite_inputs,
    make_model,
    make_optimizer,
    make_scheduler,
    step_block_points,
    training_forward,
)
from implicit2.training.warm_cache import WarmStartCache, default_budget_bytes

log = logging.getLogger(__name__)


@dataclass
class ChunkProgress:
    """What the training loop of one signal batch carries from step to step; a checkpoint saves
    it (as :meth:`to_dict`) and a resumed run starts from it."""

    loss_sum: Tensor  # per-signal sum of the losses since the last log point
    first_bad: Tensor  # the first step whose loss was not finite, or -1 (a 0-d tensor)
    step: int = 0  # steps done
    cache: Tensor | None = None  # the amortized warm-start state z (full-batch DEQs)
    warm_cache: Tensor | None = None  # the pool points' cached states (minibatch DEQs)
    curve: list[dict[str, Any]] = field(default_factory=list)
    intervals: list[float] = field(default_factory=list)  # mean seconds per step, per interval
    first_step_seconds: float = 0.0
    solver_steps_first: int = 0
    solver_steps_total: int = 0  # forward solver iterations, all steps so far
    solver_steps_intervals: list[float] = field(default_factory=list)  # mean per log interval
    interval_solver_steps: int = 0  # solver iterations since the last log point
    saved_bytes: int = 0  # bytes saved for backward by one amortized step
    seconds: float = 0.0  # training seconds so far
    loss_count: int = 0  # steps summed in loss_sum

    @classmethod
    def start(cls, count: int, device: torch.device) -> ChunkProgress:
        """The progress of a batch of ``count`` signals before its first step."""
        return cls(
            loss_sum=torch.zeros((count,), device=device),
            first_bad=torch.full((), -1, dtype=torch.long, device=device),
        )

    @classmethod
    def from_dict(cls, saved: dict[str, Any], device: torch.device) -> ChunkProgress:
        """Progress restored from a checkpoint's ``state``, whose tensors
        :meth:`Checkpointer.load` has put on ``device``; a field it lacks keeps its start value."""
        progress = cls.start(len(saved["loss_sum"]), device)
        for name in (f.name for f in fields(cls)):
            if name in saved:
                setattr(progress, name, saved[name])
        return progress

    def to_dict(self) -> dict[str, Any]:
        """The fields by name, for a checkpoint (no copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def train(
    task: Task,
    data: PreparedData,
    model_name: str,
    seed: int,
    settings: TrainSettings,
    device: torch.device,
    checkpointer: Checkpointer | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train one model per signal of ``data`` (in batches of ``settings.signal_batch``)."""
    spec = parse_model_name(model_name)
    check_finite_inputs(data)
    result = TrainResult(device_options=apply_device_options(settings, device))
    started = time.perf_counter()
    points = minibatch_points(task, settings) or len(data.train_coords)
    batch = settings.signal_batch
    if batch == 0 and data.num_signals > 1:
        remembered = checkpointer.remembered_signal_batch() if checkpointer is not None else None
        if remembered is None:
            remembered = auto_signal_batch(
                device,
                points,
                spec.width,
                lambda: step_bytes_per_signal(task, data, model_name, settings, points),
            )
            if checkpointer is not None:
                checkpointer.remember_signal_batch(remembered)
        batch = remembered
    for first, count in signal_chunks(data.num_signals, batch):
        chunk = _train_chunk(
            task, data, model_name, seed, settings, device, first, count, checkpointer, progress
        )
        result.chunks.append(chunk)
        if chunk.diverged_step is not None:
            break
    result.seconds = time.perf_counter() - started
    return result


def _train_chunk(
    task: Task,
    data: PreparedData,
    model_name: str,
    seed: int,
    settings: TrainSettings,
    device: torch.device,
    first: int,
    count: int,
    checkpointer: Checkpointer | None,
    progress: bool,
) -> ChunkResult:
    torch.manual_seed(seed)
    # Not keyed by ``first``: every signal sees the same minibatches however it is batched.
    generator = torch.Generator().manual_seed(seed * 1_000_003)
    model = make_model(model_name, data, settings, seed, first, count, device)
    model.train()
    optimizer = make_optimizer(model, settings.lr, device)
    scheduler = make_scheduler(optimizer, settings)
    minibatch = minibatch_points(task, settings)
    amortize = settings.amortize and minibatch is None and model.state_dim > 0
    warm = None
    if minibatch is not None and model.state_dim > 0:
        warm = make_warm_cache(settings, count, len(data.train_coords), model.state_dim, device)
    full_x = torch.from_numpy(data.train_coords).to(device).unsqueeze(0)
    full_y = torch.from_numpy(data.train_targets[first : first + count]).to(device)
    state = ChunkProgress.start(count, device)
    identity = None
    if checkpointer is not None:
        fingerprint = data_fingerprint(data.train_coords, data.train_targets[first : first + count])
        identity = RunIdentity(model_name, seed, first, count, settings.to_dict(), fingerprint)
        restored = checkpointer.load(
            identity, model, optimizer, scheduler, generator, total_steps=settings.steps
        )
        if restored is not None:
            state = ChunkProgress.from_dict(restored, device)
    if warm is not None and state.warm_cache is not None:
        warm.load(state.warm_cache)
    state.warm_cache = warm.states if warm is not None else None
    meter = SavedTensorMeter()
    rows = None  # points per block of a blocked full-batch step (None: whole batch)
    if minibatch is None:
        width = parse_model_name(model_name).width
        rows = step_block_points(model, device, len(data.train_coords), width, settings.compile)
    eager = training_forward(model, task, compile_step=False)
    forward = training_forward(model, task, compile_step=settings.compile)
    clock = time.perf_counter()
    interval_start, interval_step = clock, state.step
    bar = _progress(progress, settings.steps, state.step, f"{model_name} signals {first}+{count}")
    start = state.step
    for step in range(start, settings.steps):
        slots = None
        if minibatch is None:
            x, y = full_x, full_y
            z0 = state.cache if amortize else None
        else:
            index = task.sample_index(data, minibatch, generator)
            coords, targets = task.batch_at(data, index)
            x = _to_device(coords, device).unsqueeze(0)
            y = _to_device(targets[first : first + count], device)
            slots = warm.slots(index) if warm is not None else None
            z0 = warm.start(slots) if warm is not None and slots is not None else None
        solve = z0 is None or not amortize
        measure = step == start + 1 and state.saved_bytes == 0
        if rows is not None:
            blocked = blocked_update(
                model,
                task,
                x,
                y,
                z0,
                solve,
                rows,
                optimizer,
                scheduler,
                settings.grad_clip,
                measure,
            )
            per_signal, z_next, solver_steps = blocked.loss, blocked.z, blocked.solver_steps
            loss = per_signal.sum()
            if measure:
                state.saved_bytes = blocked.saved_bytes
        else:
            with meter.track() if measure else contextlib.nullcontext():
                per_signal, z_next, solver_steps = (eager if measure else forward)(x, y, z0, solve)
                loss = per_signal.sum()
            if measure:
                state.saved_bytes = meter.bytes
            apply_update(loss, model, optimizer, scheduler, settings.grad_clip)
        if amortize:
            state.cache = z_next
        elif warm is not None and slots is not None and z_next is not None:
            warm.store(slots, z_next)
        state.solver_steps_total += solver_steps
        state.interval_solver_steps += solver_steps
        state.first_bad = torch.where(
            (state.first_bad < 0) & ~torch.isfinite(loss.detach()),
            torch.full_like(state.first_bad, step),
            state.first_bad,
        )
        state.loss_sum += per_signal.detach()
        state.loss_count += 1
        if step == 0:
            synchronize(device)
            state.first_step_seconds = time.perf_counter() - clock
            state.solver_steps_first = solver_steps
            interval_start, interval_step = time.perf_counter(), 1
        done = state.step = step + 1
        if done % settings.log_every == 0 or done == settings.steps:
            synchronize(device)
            now = time.perf_counter()
            if done > interval_step:
                state.intervals.append((now - interval_start) / (done - interval_step))
            state.solver_steps_intervals.append(state.interval_solver_steps / state.loss_count)
            state.interval_solver_steps = 0
            state.seconds += now - clock
            clock = now
            interval_start, interval_step = now, done
            mean_loss = (state.loss_sum / state.loss_count).cpu()
            state.curve.append(curve_row(task, done, mean_loss, state.seconds))
            state.loss_sum.zero_()
            state.loss_count = 0
            bar.update(done - bar.n)
            bad = int(state.first_bad.item())
            if bad >= 0:
                log.warning("loss became non-finite at step %d: stopping this run", bad)
                bar.close()
                return _chunk_result(first, count, model, state, diverged_step=bad)
        last = done == settings.steps
        due = checkpointer is not None and checkpointer.due(done, settings.checkpoint_every, last)
        if due and checkpointer is not None and identity is not None:
            checkpointer.save(identity, model, optimizer, scheduler, generator, state.to_dict())
    bar.close()
    if not bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()):
        # The loss of the last step was finite but its update was not (an inf gradient).
        log.warning("the last update left non-finite parameters: this run diverged")
        return _chunk_result(first, count, model, state, diverged_step=settings.steps - 1)
    return _chunk_result(first, count, model, state, diverged_step=None)


def make_warm_cache(
    settings: TrainSettings, signals: int, pool_points: int, width: int, device: torch.device
) -> WarmStartCache | None:
    """The warm-start cache of one signal batch within ``warm_cache_mb`` (None: the device's
    default budget); None when the budget is 0 or holds no point."""
    mb = settings.warm_cache_mb
    budget = default_budget_bytes(device) if mb is None else mb << 20
    cache = WarmStartCache(signals, pool_points, width, budget, device) if budget > 0 else None
    return cache if cache is not None and cache.capacity > 0 else None


def _to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """Copy a host batch to ``device`` without a host sync (pageable copies to CUDA sync)."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _chunk_result(
    first: int, count: int, model: INR, state: ChunkProgress, diverged_step: int | None
) -> ChunkResult:
    return ChunkResult(
        first=first,
        count=count,
        state={k: v.detach().cpu() for k, v in model.state_dict().items()},
        curve=state.curve,
        interval_seconds=state.intervals,
        first_step_seconds=state.first_step_seconds,
        solver_steps_first=state.solver_steps_first,
        saved_bytes=state.saved_bytes,
        diverged_step=diverged_step,
        seconds=state.seconds,
        steps_done=state.step,
        solver_steps_total=state.solver_steps_total,
        solver_steps_intervals=state.solver_steps_intervals,
        warm_cache_bytes=0 if state.warm_cache is None else state.warm_cache.nbytes,
    )


class _NoBar:
    n = 0

    def update(self, amount: int) -> None:
        self.n += amount

    def close(self) -> None:
        return None


def _progress(enabled: bool, total: int, initial: int, label: str) -> Any:
    if not enabled:
        bar = _NoBar()
        bar.n = initial
        return bar
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=label, unit="step", mininterval=2.0)
