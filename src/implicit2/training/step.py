"""One training step's pieces, shared by the loop and the benchmarks: the model, optimiser and
learning-rate schedule of a signal batch, the forward pass (a solve, or one application of f from
a warm start) and the update (backward, gradient clipping, Adam, schedule); on CPU, a long
full-batch step runs forward and backward in blocks of points (:func:`blocked_update`)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from implicit2.models import INR, build_model
from implicit2.models.deq import DEQINR
from implicit2.models.mfn import MultiplicativeFilterNetwork
from implicit2.tasks.base import PreparedData, Task
from implicit2.training.fused_block import fused_block, run_fused_block
from implicit2.training.profiling import SavedTensorMeter
from implicit2.training.settings import TrainSettings

#: (x, y, z0, solve) → (per-signal loss, new state or None, solver steps): one training forward.
Forward = Callable[[Tensor, Tensor, Tensor | None, bool], tuple[Tensor, Tensor | None, int]]


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
    finish_update(model, optimizer, scheduler, grad_clip)


def finish_update(
    model: INR,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float | None,
) -> None:
    """The update once the gradients are in: clipping (``grad_clip``), Adam and the schedule."""
    if grad_clip is not None:
        clip_gradient_values(model, grad_clip)
    optimizer.step()
    scheduler.step()


def clip_gradient_values(model: INR, clip: float) -> None:
    """Clamp every gradient element to [−clip, clip], as the authors' video script does
    (``clip_grad_value_``). Element-wise, so the signals of a batch stay independent."""
    torch.nn.utils.clip_grad_value_(model.parameters(), clip)


def check_finite_inputs(data: PreparedData) -> None:
    """Reject non-finite training coordinates or targets once, before any step."""
    for name, array in (("coordinates", data.train_coords), ("targets", data.train_targets)):
        if not np.isfinite(array).all():
            raise ValueError(f"training {name} contain NaN or infinite values; check the data")


#: On CPU, a full-batch step whose activations (signals × points × width floats) have at least
#: this many elements runs in blocks of points (:func:`blocked_update`): 7 s of 44.1 kHz audio at
#: width 128 does; an image of 256² at width ≤ 256 (and every demo signal) keeps the whole batch.
BLOCKED_MIN_ELEMENTS = 1 << 25

#: Elements (signals × points × width) of one activation of a block: small enough that a block's
#: activations stay in the CPU's cache.
BLOCK_ELEMENTS = 1 << 18


def step_block_points(
    model: INR, device: torch.device, points: int, width: int, compiled: bool
) -> int | None:
    """Points per block of a full-batch training step of ``model`` over ``points`` points with
    activations ``width`` wide, or None for one whole-batch pass.

    Blocked: CPU steps of at least ``BLOCKED_MIN_ELEMENTS`` activation elements, not compiled,
    whose points are independent given the weights (not the implicit gradient, whose backward
    solve stops on a norm over the whole batch).
    """
    if device.type != "cpu" or compiled:
        return None
    if isinstance(model, DEQINR) and model.gradient == "ift":
        return None
    size = model.num_signals * points * width
    if size < BLOCKED_MIN_ELEMENTS:
        return None
    return max(1, BLOCK_ELEMENTS // (model.num_signals * width))


@dataclass
class BlockedStep:
    """What :func:`blocked_update` returns: the step's per-signal loss (detached), the new state
    (None without one), the forward solver iterations, and the bytes the blocks in flight at once
    saved for backward (when measured)."""

    loss: Tensor
    z: Tensor | None
    solver_steps: int
    saved_bytes: int


@dataclass
class _Share:
    """One worker's part of a blocked step: its blocks' summed gradients and loss."""

    grads: list[Tensor | None]
    loss: Tensor
    saved_bytes: int = 0


def blocked_update(
    model: INR,
    task: Task,
    x: Tensor,
    y: Tensor,
    z0: Tensor | None,
    solve: bool,
    rows: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float | None,
    measure: bool = False,
) -> BlockedStep:
    """A whole full-batch training step (forward, backward, update) in blocks of ``rows`` points.

    The same step as :func:`training_forward` then :func:`apply_update`, in another order: the
    weights (and the spectral norm's power iteration) are evaluated once; a solving DEQ step
    solves for the whole batch at once (one stopping rule over every point, as unblocked; the
    solve's constants computed in blocks, ``blocked_solver_map``); then each block of points
    computes its filters, f once from its state (the one-step gradient), the decoder and its
    share of the loss (the per-signal mean over all points) and its gradients (by hand for a
    one-layer Fourier MFN under the mean squared error, :mod:`implicit2.training.fused_block`;
    else by autograd); one optimiser step follows. A block's activations fit the CPU's cache,
    where a long signal's whole-batch activations go to memory and back at every element-wise
    operation.

    The ``torch.get_num_threads()`` threads each take every n-th block on one thread (no
    synchronisation per operation, which costs most on a shared machine) and sum their blocks'
    gradients in block order; the threads' sums are added in thread order, so a step is
    deterministic. ``measure``: record the bytes the blocks in flight save for backward.
    """
    points = x.shape[1]
    optimizer.zero_grad(set_to_none=True)
    core = getattr(model, "core", None)
    shared = (
        core.shared_weights()
        if isinstance(core, MultiplicativeFilterNetwork)
        else contextlib.nullcontext(())
    )
    steps = 0
    with shared as leaves:
        state = z0
        if isinstance(model, DEQINR):
            if solve:
                shape = (y.shape[0], points, model.state_dim)
                iterate = model.core.blocked_solver_map(x, rows)
                start = z0 if z0 is not None else x.new_zeros(shape)
                state, steps, _ = model.equilibrium(iterate, start)
                del iterate, start
            elif z0 is None:
                raise ValueError("solve=False needs a warm-start state z0")
        inputs = [p for p in model.parameters() if p.requires_grad] + list(leaves)
        new_state = None if state is None else torch.empty_like(state)
        blocks = [slice(first, min(first + rows, points)) for first in range(0, points, rows)]

        fused = fused_block(model, task, inputs)

        def work(worker: int, workers: int) -> _Share:
            share = _Share([None] * len(inputs), y.new_zeros((y.shape[0],)))
            for block in blocks[worker::workers]:
                z_block = None if state is None else state[:, block]
                fraction = (block.stop - block.start) / points
                z_next: Tensor | None
                if fused is not None:
                    result = run_fused_block(
                        fused, x[:, block], y[:, block], z_block, fraction, len(inputs)
                    )
                    loss, z_next, grads = result.loss, result.z, result.grads
                    share.saved_bytes = max(share.saved_bytes, result.saved_bytes)
                else:
                    meter = SavedTensorMeter()
                    with meter.track() if measure else contextlib.nullcontext():
                        out = model.run(x[:, block], z_block, False)
                        loss = task.loss(out.y, y[:, block]) * fraction
                    grads = list(torch.autograd.grad(loss.sum(), inputs, allow_unused=True))
                    share.saved_bytes = max(share.saved_bytes, meter.bytes)
                    z_next = out.z
                share.loss += loss.detach()
                for i, grad in enumerate(grads):
                    total = share.grads[i]
                    share.grads[i] = grad if total is None or grad is None else total.add_(grad)
                if new_state is not None and z_next is not None:
                    new_state[:, block] = z_next
            return share

        shares = _in_threads(work, min(torch.get_num_threads(), len(blocks)))
        for i, tensor in enumerate(inputs):
            grads = [g for g in (share.grads[i] for share in shares) if g is not None]
            if grads:
                tensor.grad = functools.reduce(torch.add, grads)
    finish_update(model, optimizer, scheduler, grad_clip)
    loss = functools.reduce(torch.add, [share.loss for share in shares])
    saved = sum(share.saved_bytes for share in shares)
    return BlockedStep(loss, new_state, steps, saved)


def _in_threads(work: Callable[[int, int], _Share], workers: int) -> list[_Share]:
    """``work(k, workers)`` for k < ``workers``, each in its own thread with one intra-op thread
    (one call in this thread when ``workers`` is 1); the intra-op thread count is restored."""
    if workers <= 1:
        return [work(0, 1)]
    threads = torch.get_num_threads()

    def single(worker: int) -> _Share:
        torch.set_num_threads(1)
        return work(worker, workers)

    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return list(pool.map(single, range(workers)))
    finally:
        torch.set_num_threads(threads)
