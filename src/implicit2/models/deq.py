"""DEQ INR (z* = f(z*, x), decoded) and its explicit twin (the same network applied once)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from implicit2.deq.gradients import attach_backward, reapplied, unrolled
from implicit2.deq.solvers import get_solver
from implicit2.models.base import INR, INROutput
from implicit2.models.mfn import MultiplicativeFilterNetwork


class DEQINR(INR):
    """Deep Equilibrium INR.

    Forward: solve z* = f(z*, x) without gradient (from ``z0``, zeros by default), then apply f
    once with gradient; the backward pass follows ``gradient`` ("onestep": (I + Jᵀ)·g, "ift":
    exact implicit gradient, "unrolled": ``unroll_steps`` differentiable applications). Under
    ``torch.compile``, "onestep" is taken by re-application (:func:`reapplied`), not by a hook.

    Amortized training (the (Implicit)² schedule): pass the previous step's state as ``z0`` and
    ``solve=False``; the step then costs one application of f, and ``output.z`` is the new state.
    """

    def __init__(
        self,
        core: MultiplicativeFilterNetwork,
        num_signals: int,
        in_dim: int,
        out_dim: int,
        width: int,
        solver: str = "fixed_point",
        tol: float = 1e-3,
        eval_tol: float = 1e-3,
        max_iter: int = 100,
        gradient: str = "onestep",
        unroll_steps: int = 1,
    ) -> None:
        super().__init__()
        if gradient not in ("onestep", "ift", "unrolled"):
            raise ValueError(f"gradient must be 'onestep', 'ift' or 'unrolled', got {gradient!r}")
        if unroll_steps < 1:
            raise ValueError(f"unroll_steps must be ≥ 1, got {unroll_steps}")
        self.core = core
        self.num_signals, self.in_dim, self.out_dim, self.state_dim = (
            num_signals,
            in_dim,
            out_dim,
            width,
        )
        self.solver = get_solver(solver)
        self.tol, self.eval_tol, self.max_iter = tol, eval_tol, max_iter
        self.gradient, self.unroll_steps = gradient, unroll_steps

    def run(self, x: Tensor, z0: Tensor | None, solve: bool) -> INROutput:
        context = self.core.prepare(x)
        shape = (self.num_signals, x.shape[1], self.state_dim)
        if z0 is None:
            if not solve:
                raise ValueError("solve=False needs a warm-start state z0")
            z0 = x.new_zeros(shape)
        elif tuple(z0.shape) != shape:
            raise ValueError(f"warm-start state must have shape {shape}, got {tuple(z0.shape)}")

        def f(z: Tensor) -> Tensor:
            return self.core.step(z, context)

        steps, residual = 0, 0.0
        z_star = z0
        if solve:
            z_star, steps, residual = self.equilibrium(self.core.solver_map(context), z0)
        if not torch.is_grad_enabled():
            z_next = f(z_star)
        elif self.gradient == "unrolled":
            z_next = unrolled(f, z_star, self.unroll_steps)
        else:
            z_in = z_star.detach()
            if self.gradient == "onestep" and torch.compiler.is_compiling():
                # A backward hook would keep the backward out of the compiled graph: re-apply f.
                h0 = self.core.enter(z_in, context)
                z_next = reapplied(lambda h: self.core.layers(h, context), h0)
            else:
                # Differentiate f's layers with respect to h₀ = z + g₀(x) (same Jacobian as with
                # respect to z), so no gradient is accumulated into a detached copy of z*.
                # torch.compile hides intermediates from autograd.grad, and with frozen filters
                # h₀ has no graph: then J is taken with respect to a leaf copy of z* instead.
                leaf = torch.compiler.is_compiling() or not context.first.requires_grad
                h0 = self.core.enter(z_in.requires_grad_() if leaf else z_in, context)
                z_next = self.core.layers(h0, context)
                z_next = attach_backward(self.gradient, z_next, z_in if leaf else h0)
        return INROutput(self.core.decode(z_next), z_next.detach(), steps, residual)

    def equilibrium(
        self, iterate: Callable[[Tensor], Tensor], z0: Tensor
    ) -> tuple[Tensor, int, float]:
        """Solve z* = f(z*, x) from ``z0`` without gradient, f applied by ``iterate`` (the core's
        ``solver_map``): (z*, solver iterations, final relative residual)."""
        with torch.no_grad():
            tol = self.tol if self.training else self.eval_tol
            z_star, stats = self.solver(iterate, z0, tol=tol, max_iter=self.max_iter)
        return z_star, stats.steps, stats.residual


class ExplicitMFN(INR):
    """The same network applied once from z = 0: the paper's explicit counterpart."""

    def __init__(
        self, core: MultiplicativeFilterNetwork, num_signals: int, in_dim: int, out_dim: int
    ) -> None:
        super().__init__()
        self.core = core
        self.num_signals, self.in_dim, self.out_dim = num_signals, in_dim, out_dim

    def run(self, x: Tensor, z0: Tensor | None, solve: bool) -> INROutput:
        return INROutput(self.core.decode(self.core.step(None, self.core.prepare(x))))
