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
import csv
import io
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from implicit2 import io as atomic
from implicit2.deq.solvers import EXTRA_STATE_COPIES
from implicit2.models import INR, build_model, parse_model_name
from implicit2.tasks.base import PreparedData, Task
from implicit2.training import model_file
from implicit2.training.checkpoint import Checkpointer, RunIdentity, data_fingerprint
from implicit2.training.profiling import SavedTensorMeter, peak_memory_bytes, synchronize
from implicit2.training.settings import TrainSettings, apply_device_options
from implicit2.training.warm_cache import WarmStartCache, default_budget_bytes

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

#: (x, y, z0, solve) → (per-signal loss, new state or None, solver steps): one training forward.
Forward = Callable[[Tensor, Tensor, Tensor | None, bool], tuple[Tensor, Tensor | None, int]]

CURVE_COLUMNS = ("step", "loss", "psnr", "seconds")


@dataclass
class ChunkResult:
    """What training one batch of signals produced."""

    first: int
    count: int
    state: dict[str, Tensor]
    curve: list[dict[str, float | int | None]]
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


def make_model(
    model_name: str,
    data: PreparedData,
    settings: TrainSettings,
    seed: int,
    first: int,
    count: int,
    device: torch.device,
) -> INR:
    """Build the model of one signal batch, initialised from (seed, signal index)."""
    model = build_model(
        model_name,
        data.in_dim,
        data.out_dim,
        num_signals=count,
        seed=seed,
        first_signal=first,
        **settings.model_kwargs(),
    )
    return model.to(device)


def make_optimizer(model: INR, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam over ``model``'s parameters; on CPU and CUDA its fused kernel (one pass over the
    parameters instead of a dozen per-tensor ops: the per-step fixed cost of a small CPU step
    drops from ≈ 2.4–3.2 to ≈ 2.0–2.2 ms, docs/benchmarks.md)."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=device.type in ("cpu", "cuda"))


def make_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings
) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule: linear from ``lr`` to ``lr × lr_decay`` over the run."""
    decay = 1.0 - settings.lr_decay

    def lr_factor(step: int) -> float:
        return 1.0 - decay * step / settings.steps

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)


def apply_update(
    loss: Tensor,
    model: INR,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float | None,
) -> None:
    """The second half of a training step, after :func:`training_forward`: gradients of the summed
    per-signal loss, element-wise clipping (``grad_clip``), the Adam step and the schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        clip_gradient_values(model, grad_clip)
    optimizer.step()
    scheduler.step()


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
        batch = checkpointer.remembered_signal_batch() if checkpointer is not None else None
        if batch is None:
            batch = auto_signal_batch(
                device,
                points,
                spec.width,
                lambda: step_bytes_per_signal(task, data, model_name, settings, points),
            )
            if checkpointer is not None:
                checkpointer.remember_signal_batch(batch)
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
            z0 = warm.start(slots) if slots is not None else None
        solve = z0 is None or not amortize
        measure = step == start + 1 and state.saved_bytes == 0
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
            state.curve.append(_curve_row(task, done, mean_loss, state.seconds))
            state.loss_sum.zero_()
            state.loss_count = 0
            bar.update(done - bar.n)
            bad = int(state.first_bad.item())
            if bad >= 0:
                log.warning("loss became non-finite at step %d: stopping this run", bad)
                bar.close()
                return _chunk_result(first, count, model, state, diverged_step=bad)
        last = done == settings.steps
        if checkpointer is not None and checkpointer.due(done, settings.checkpoint_every, last):
            checkpointer.save(identity, model, optimizer, scheduler, generator, state.to_dict())
    bar.close()
    if not bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()):
        # The loss of the last step was finite but its update was not (an inf gradient).
        log.warning("the last update left non-finite parameters: this run diverged")
        return _chunk_result(first, count, model, state, diverged_step=settings.steps - 1)
    return _chunk_result(first, count, model, state, diverged_step=None)


def training_forward(model: INR, task: Task, compile_step: bool) -> Forward:
    """The forward pass of a training step: (x, y, z0, solve) → (per-signal loss, new state,
    solver steps); a DEQ solves from ``z0`` (None: zero) when ``solve``, else applies f once.

    Calls ``model.run``: ``check_finite_inputs`` has checked the coordinates once, where the
    per-call check of ``model(x)`` would sync with the host every step. With ``compile_step``,
    the steps that skip the solver (amortized DEQ steps, explicit models) run through
    ``torch.compile``; solves (data-dependent loops) stay eager.
    """

    def eager(
        x: Tensor, y: Tensor, z0: Tensor | None, solve: bool
    ) -> tuple[Tensor, Tensor | None, int]:
        out = model.run(x, z0=z0, solve=solve)
        return task.loss(out.y, y), out.z, out.solver_steps

    if not compile_step:
        return eager

    def no_solve(x: Tensor, y: Tensor, z0: Tensor | None) -> tuple[Tensor, Tensor | None]:
        out = model.run(x, z0=z0, solve=False)
        return task.loss(out.y, y), out.z

    compiled = torch.compile(no_solve, dynamic=False)

    def forward(
        x: Tensor, y: Tensor, z0: Tensor | None, solve: bool
    ) -> tuple[Tensor, Tensor | None, int]:
        if solve and model.state_dim > 0:
            return eager(x, y, z0, solve)
        loss, z = compiled(x, y, z0)
        return loss, z, 0

    return forward


def make_warm_cache(
    settings: TrainSettings, signals: int, pool_points: int, width: int, device: torch.device
) -> WarmStartCache | None:
    """The warm-start cache of one signal batch within ``warm_cache_mb`` (None: the device's
    default budget); None when the budget is 0 or holds no point."""
    mb = settings.warm_cache_mb
    budget = default_budget_bytes(device) if mb is None else mb << 20
    cache = WarmStartCache(signals, pool_points, width, budget, device) if budget > 0 else None
    return cache if cache is not None and cache.capacity > 0 else None


def check_finite_inputs(data: PreparedData) -> None:
    """Reject non-finite training coordinates or targets once, before any step."""
    for name, array in (("coordinates", data.train_coords), ("targets", data.train_targets)):
        if not np.isfinite(array).all():
            raise ValueError(f"training {name} contain NaN or infinite values; check the data")


def _to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """Copy a host batch to ``device`` without a host sync (pageable copies to CUDA sync)."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def clip_gradient_values(model: INR, clip: float) -> None:
    """Clamp every gradient element to [−clip, clip], as the authors' video script does
    (``clip_grad_value_``). Element-wise, so the signals of a batch stay independent."""
    torch.nn.utils.clip_grad_value_(model.parameters(), clip)


def _curve_row(task: Task, step: int, mean_loss: Tensor, seconds: float) -> dict[str, Any]:
    loss = float(mean_loss.mean())
    psnr: float | None = None
    if task.loss_kind == "mse":
        values = [10 * math.log10(task.model_range**2 / max(v, 1e-30)) for v in mean_loss.tolist()]
        psnr = statistics.fmean(values) if all(map(math.isfinite, values)) else None
    return {"step": step, "loss": loss, "psnr": psnr, "seconds": round(seconds, 6)}


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
