"""One training step's pieces, shared by the loop and the benchmarks: the model, optimiser and
learning-rate schedule of a signal batch, the forward pass (a solve, or one application of f from
a warm start) and the update (backward, gradient clipping, Adam, schedule)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from implicit2.models import INR, build_model
from implicit2.tasks.base import PreparedData, Task
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
