"""One block of points of a long full-batch training step, forward and backward written by hand,
for the common case of the long-signal tasks: a one-layer Fourier MFN (a DEQ with the one-step
gradient, or its explicit twin) under the mean squared error.

Per block, with u₀ = xΩ₀ + φ₀ and u₁ = xΩ₁ + φ₁::

    h₀ = z + sin u₀ (the explicit twin: sin u₀),  a = h₀W + b,  h₁ = sin u₁ ⊙ a
    ŷ = h₁W_out + b_out,  ℓ = mean((ŷ − y)²) · (block points / all points)

and backward, g = ∂ℓ/∂h₁: the one-step gradient v = g + Jᵀg = g + (g ⊙ sin u₁)Wᵀ (the explicit
twin: v = g), ∂a = v ⊙ sin u₁, ∂W = h₀ᵀ∂a, ∂h₀ = ∂a Wᵀ, ∂u₀ = ∂h₀ ⊙ cos u₀, ∂u₁ = (v ⊙ a) ⊙ cos u₁.
The gradients are those autograd takes through the same model, to rounding (numpy's sines differ
from torch's in the last bits; tests/test_blocked_step.py); the difference is the number of
passes over the block: each filter's sine and cosine come from one argument by numpy's
vectorised trigonometry (:meth:`FourierFilter.sine_cosine`), g + Jᵀg is one multiply-add
product, element-wise products run in place, and no graph is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from implicit2.models import INR
from implicit2.models.deq import DEQINR, ExplicitMFN
from implicit2.models.filters import FourierFilter
from implicit2.models.layers import StackedLinear, linear
from implicit2.models.mfn import MultiplicativeFilterNetwork
from implicit2.tasks.base import Task


@dataclass(frozen=True)
class FusedBlock:
    """The tensors of a fused block step and, per tensor, its index among the step's gradient
    inputs (None: no gradient wanted)."""

    filters: tuple[FourierFilter, FourierFilter]
    weight: Tensor
    layer: StackedLinear
    output: StackedLinear
    deq: bool
    slots: tuple[int | None, ...]  # Ω₀, φ₀, Ω₁, φ₁, W, b, W_out, b_out


def fused_block(model: INR, task: Task, inputs: list[Tensor]) -> FusedBlock | None:
    """The fused step of ``model`` whose gradients go to ``inputs`` (the parameters that require
    grad and the shared spectral-norm weights), or None where it does not apply: another filter,
    depth or gradient, another loss, or a gradient input it does not compute."""
    if task.loss_kind != "mse":
        return None
    if isinstance(model, DEQINR):
        if model.gradient != "onestep":
            return None
    elif not isinstance(model, ExplicitMFN):
        return None
    core = model.core
    if not isinstance(core, MultiplicativeFilterNetwork) or core.filter_type != "fourier":
        return None
    if len(core.linears) != 1:
        return None
    first, second = core.filters
    layer, output = core.linears[0], core.output
    assert isinstance(first, FourierFilter) and isinstance(second, FourierFilter)
    assert isinstance(layer, StackedLinear) and isinstance(output, StackedLinear)
    weight = core.layer_weights()[0]  # within shared_weights: the shared spectral-norm weight
    tensors: tuple[Tensor, ...] = (first.omega, first.phase, second.omega, second.phase)
    tensors += (weight, layer.bias, output.weight, output.bias)
    # Under shared spectral-norm weights, the raw weight (and the norm's own parameters) take
    # their gradient from the shared weight's on leaving shared_weights, not from a block.
    replaced = [] if weight is layer.weight else [layer.weight, *core.norms.parameters()]
    known = {id(tensor) for tensor in (*tensors, *replaced)}
    if any(id(tensor) not in known for tensor in inputs):
        return None
    index = {id(tensor): i for i, tensor in enumerate(inputs)}
    slots = tuple(index.get(id(tensor)) for tensor in tensors)
    return FusedBlock((first, second), weight, layer, output, isinstance(model, DEQINR), slots)


@dataclass
class BlockResult:
    """A fused block's per-signal loss share (S,), its new state h₁ (S, n, D), its gradients in
    the order of the step's inputs (None where not wanted) and the bytes it kept for backward."""

    loss: Tensor
    z: Tensor
    grads: list[Tensor | None]
    saved_bytes: int


def _transposed(matrix: Tensor) -> Tensor:
    return matrix.transpose(-1, -2)


def _weight_grad(inputs: Tensor, grad: Tensor) -> Tensor:
    """Σ over points of inputsᵀ · grad, (S, k, m); ``inputs`` (S|1, n, k) may be shared by every
    signal."""
    return torch.matmul(_transposed(inputs), grad)


def run_fused_block(
    plan: FusedBlock, x: Tensor, y: Tensor, z: Tensor | None, share: float, slots: int
) -> BlockResult:
    """Forward and backward of one block: coordinates ``x`` (S|1, n, in), targets ``y`` (S, n,
    out), state ``z`` (S, n, D; None for the explicit twin); ``share`` = n / all points (the
    block's weight in the per-signal mean loss); ``slots`` = the number of gradient inputs."""
    with torch.no_grad():
        return _run(plan, x, y, z, share, slots)


def _run(
    plan: FusedBlock, x: Tensor, y: Tensor, z: Tensor | None, share: float, slots: int
) -> BlockResult:
    first, second = plan.filters
    weight, bias = plan.weight, plan.layer.bias
    out_weight, out_bias = plan.output.weight, plan.output.bias
    sin0, cos0 = first.sine_cosine(x)
    sin1, cos1 = second.sine_cosine(x)
    h0 = sin0 if z is None else sin0.add_(z)  # h₀ = z + g₀(x), g₀ not needed again
    a = torch.baddbmm(bias, h0, weight)
    h1 = sin1 * a
    prediction = linear(h1, out_weight, out_bias)
    diff = prediction.sub_(y)
    loss = diff.square().mean(dim=(-2, -1)) * share
    saved = sum(t.untyped_storage().nbytes() for t in (cos0, sin1, cos1, h0, a, h1, diff))

    # ∂ℓ/∂ŷ, then g = ∂ℓ/∂h₁ and v = g + Jᵀg (the one-step gradient; the explicit twin: g).
    grad_out = diff.mul_(2.0 * share / (diff.shape[-2] * diff.shape[-1]))
    g = torch.bmm(grad_out, _transposed(out_weight))
    v = torch.baddbmm(g, g * sin1, _transposed(weight)) if plan.deq else g
    grad_a = v * sin1
    grad_u1 = a.mul_(v).mul_(cos1)  # ∂g₁ = v ⊙ a, times cos u₁
    grad_u0 = torch.bmm(grad_a, _transposed(weight)).mul_(cos0)  # ∂h₀ = ∂g₀, times cos u₀

    grads: list[Tensor | None] = [None] * slots
    wanted = dict(enumerate(plan.slots))

    def put(position: int, compute: Callable[[], Tensor]) -> None:
        slot = wanted[position]
        if slot is not None:
            grads[slot] = compute()

    put(0, lambda: _weight_grad(x, grad_u0))
    put(1, lambda: grad_u0.sum(dim=-2, keepdim=True))
    put(2, lambda: _weight_grad(x, grad_u1))
    put(3, lambda: grad_u1.sum(dim=-2, keepdim=True))
    put(4, lambda: torch.bmm(_transposed(h0), grad_a))
    put(5, lambda: grad_a.sum(dim=-2, keepdim=True))
    put(6, lambda: torch.bmm(_transposed(h1), grad_out))
    put(7, lambda: grad_out.sum(dim=-2, keepdim=True))
    return BlockResult(loss, h1, grads, saved)
