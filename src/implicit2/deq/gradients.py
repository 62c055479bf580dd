"""Backward passes of a deep equilibrium layer.

The model finds z* without gradient, then applies f once with gradient::

    z_in = z_star.detach().requires_grad_()
    z_next = attach_backward(kind, f(z_in), z_in)

``z_in`` may also be an intermediate h = z + c(x) with c independent of z (then ∂f/∂h = ∂f/∂z,
and no gradient is accumulated into a leaf copy of z*: the models pass h₀ = z + g₀(x)).
``attach_*`` return a tensor equal to ``z_next`` whose incoming gradient g = ∂ℓ/∂z_next is
replaced before it flows through f to the parameters (and to x), so that a parameter θ receives
(∂f/∂θ)ᵀ·v with

- ``onestep``: v = g + Jᵀg, the paper's (I + Jᵀ)·g, J = ∂f/∂z at z_in;
- ``ift``: v = u solving u = Jᵀu + g, the exact implicit-function-theorem gradient;

and ``unrolled(f, z_star, k)`` gives the phantom gradient of k differentiable applications of f.
``reapplied(f, h)`` gives the one-step gradient without a hook (for ``torch.compile``).
Jᵀ·v is always a vector–Jacobian product w.r.t. z only (J is never formed, and it does not add to
parameter gradients).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from implicit2.deq.solvers import SolverStats, get_solver

log = logging.getLogger(__name__)

GRADIENTS = ("onestep", "ift", "unrolled")


def _vjp(z_next: Tensor, z_in: Tensor, v: Tensor) -> Tensor:
    """Jᵀ·v with J = ∂z_next/∂z_in, keeping the graph for the main backward pass."""
    (jtv,) = torch.autograd.grad(z_next, z_in, v, retain_graph=True)
    return jtv


def _check_input(z_in: Tensor) -> None:
    if not z_in.requires_grad:
        raise ValueError("z_in must require grad: use z_in = z_star.detach().requires_grad_()")


def attach_onestep(z_next: Tensor, z_in: Tensor) -> Tensor:
    """One-step gradient: the incoming gradient g becomes g + Jᵀg.

    Args:
        z_next: f(z_in), computed with grad.
        z_in: the detached fixed point, requiring grad, that f was applied to (or h = z + c(x)).

    Returns:
        A tensor equal to ``z_next`` (a view; ``z_next`` itself is left untouched). Returned as is
        when ``z_next`` does not require grad (evaluation).
    """
    if not z_next.requires_grad:
        return z_next
    _check_input(z_in)
    out = z_next.view_as(z_next)
    out.register_hook(lambda g: g + _vjp(z_next, z_in, g))
    return out


def reapplied(f: Callable[[Tensor], Tensor], h: Tensor) -> Tensor:
    """The one-step gradient without hooks: f(h + (a − a.detach())) with a = f(h).

    Equal to f(h) in value; a parameter receives (∂f/∂θ)ᵀ(g + Jᵀg) and ``h`` receives
    Jᵀ(g + Jᵀg), exactly as with :func:`attach_onestep`. A forward graph with no backward hook, so
    ``torch.compile`` fuses forward and backward whole; the price is a second application of f
    (two backward passes of f instead of one plus a vector–Jacobian product), slower in eager mode.
    """
    a = f(h)
    return f(h + (a - a.detach()))


def attach_implicit(
    z_next: Tensor,
    z_in: Tensor,
    *,
    solver: str = "fixed_point",
    tol: float = 1e-6,
    max_iter: int = 200,
    on_stats: Callable[[SolverStats], None] | None = None,
) -> Tensor:
    """Exact implicit gradient: the incoming gradient g becomes u solving u = Jᵀu + g.

    Args:
        z_next: f(z_in), computed with grad.
        z_in: the detached fixed point, requiring grad, that f was applied to (or h = z + c(x)).
        solver: name of the solver for the backward fixed point (started from u = g).
        tol: relative-residual tolerance of the backward solve.
        max_iter: iteration cap of the backward solve (one vector–Jacobian product each).
        on_stats: called with the backward solve's statistics.

    Returns:
        A tensor equal to ``z_next`` (a view), or ``z_next`` itself when it does not require grad.
    """
    solve = get_solver(solver)
    if not z_next.requires_grad:
        return z_next
    _check_input(z_in)

    def hook(g: Tensor) -> Tensor:
        if not torch.isfinite(g).all():
            return g  # a diverged loss: pass it on, the trainer records the divergence
        with torch.no_grad():
            u, stats = solve(lambda u: _vjp(z_next, z_in, u) + g, g, tol=tol, max_iter=max_iter)
        if not stats.converged:
            log.warning(
                "implicit backward solve stopped at residual %.3g > tol %.3g after %d steps",
                stats.residual,
                tol,
                stats.steps,
            )
        if on_stats is not None:
            on_stats(stats)
        return u

    out = z_next.view_as(z_next)
    out.register_hook(hook)
    return out


def unrolled(f: Callable[[Tensor], Tensor], z_star: Tensor, steps: int) -> Tensor:
    """Phantom (k-step) gradient: ``steps`` differentiable applications of f from detached z*.

    Raises:
        ValueError: if ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"unrolled gradient needs steps ≥ 1, got {steps}")
    z = z_star.detach()
    for _ in range(steps):
        z = f(z)
    return z


def attach_backward(kind: str, z_next: Tensor, z_in: Tensor, **options: Any) -> Tensor:
    """Attach the backward pass ``kind`` ("onestep" or "ift") to ``z_next = f(z_in)``.

    Args:
        kind: gradient name, see ``GRADIENTS``.
        z_next: f(z_in), computed with grad.
        z_in: the detached fixed point, requiring grad (or h = z + c(x), see the module doc).
        **options: for "ift", passed to :func:`attach_implicit` (solver, tol, max_iter, on_stats).

    Raises:
        ValueError: for "unrolled" (applied by the model with :func:`unrolled`), an unknown kind,
            or options given to "onestep", which takes none.
    """
    if kind == "onestep":
        if options:
            raise ValueError(
                f"the one-step gradient takes no options, got {sorted(options)} "
                "(solver options apply to 'ift')"
            )
        return attach_onestep(z_next, z_in)
    if kind == "ift":
        return attach_implicit(z_next, z_in, **options)
    if kind == "unrolled":
        raise ValueError(
            "gradient 'unrolled' is not a backward hook: the model applies f k times with "
            "implicit2.deq.gradients.unrolled(f, z_star, steps)"
        )
    raise ValueError(f"unknown gradient {kind!r}; valid gradients: {', '.join(GRADIENTS)}")
