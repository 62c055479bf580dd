"""Fixed-point solvers for deep equilibrium models.

Every solver has the signature ``solve(f, z0, *, tol, max_iter) -> (z_star, SolverStats)`` and
looks for z = f(z). It stops once the relative residual ‖f(z) − z‖ / (‖f(z)‖ + eps) is below
``tol`` or after ``max_iter`` evaluations of f (one per iteration). A state of shape (S, N, D)
holds S independent signals: the residual is then taken per signal (norm over N and D) and the
solver stops when the largest one is below ``tol``; a state of any other shape is one signal.

The solvers call ``f`` under the caller's grad mode (models call them inside ``torch.no_grad()``),
work on any floating dtype and device, and synchronise with the host once per iteration to read the
residual. A non-finite residual (divergence) ends the solve early with ``converged=False``
(``fixed_point`` then returns the non-finite image, Anderson and Broyden their best iterate).
Backpropagating through a solve is not supported: use :mod:`implicit2.deq.gradients`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

log = logging.getLogger(__name__)

EPS = 1e-9
"""Added to ‖f(z)‖ in the relative residual."""

_GRAM_FLOOR = 1e-150
"""Lower bound of Anderson's regularisation scale (keeps an all-zero Gram matrix solvable)."""

Map = Callable[[Tensor], Tensor]


@dataclass
class SolverStats:
    """What a solve did.

    Attributes:
        steps: iterations done (= evaluations of f).
        abs_trace: per iteration, the largest absolute residual ‖f(z) − z‖ over signals.
        rel_trace: per iteration, the largest relative residual over signals.
        converged: whether ``residual`` < ``tol``.
        residual: the largest over signals of the relative residual of the iterate returned
            (Anderson, Broyden: each signal's best iterate) or, for ``fixed_point``, of the last
            iterate z whose image f(z) is returned (an upper bound for a contraction).
        tol: the tolerance asked for.
        max_iter: the iteration cap asked for.
    """

    steps: int
    abs_trace: list[float]
    rel_trace: list[float]
    converged: bool
    residual: float
    tol: float
    max_iter: int


class Solver(Protocol):
    """The signature shared by every solver."""

    def __call__(
        self, f: Map, z0: Tensor, *, tol: float = 1e-3, max_iter: int = 100
    ) -> tuple[Tensor, SolverStats]: ...


class _Monitor:
    """Residual bookkeeping shared by the solvers.

    Works on flat states of shape (S, P). With ``keep_best`` it keeps, per signal, the iterate with
    the lowest relative residual seen so far (Anderson and Broyden need not decrease monotonically).
    """

    def __init__(self, z0: Tensor, tol: float, max_iter: int, keep_best: bool) -> None:
        self.tol, self.max_iter = tol, max_iter
        self.abs_trace: list[float] = []
        self.rel_trace: list[float] = []
        self.current = [math.inf] * z0.shape[0]
        self.best_rel = [math.inf] * z0.shape[0]
        self.best = z0.clone() if keep_best else None
        self.finite = True

    def record(self, z: Tensor, fz: Tensor, diff: Tensor) -> None:
        """Record iterate ``z``, its image ``fz`` and ``diff`` = fz − z (one host sync)."""
        abs_res = torch.linalg.vector_norm(diff, dim=1)
        rel_res = abs_res / (torch.linalg.vector_norm(fz, dim=1) + EPS)
        values = torch.cat([abs_res, rel_res]).tolist()
        abs_vals, self.current = values[: len(values) // 2], values[len(values) // 2 :]
        self.abs_trace.append(_worst(abs_vals))
        self.rel_trace.append(_worst(self.current))
        self.finite = all(math.isfinite(v) for v in self.current)
        if self.best is not None:
            self._keep_best(z)

    def _keep_best(self, z: Tensor) -> None:
        improved = [s for s, r in enumerate(self.current) if r < self.best_rel[s]]
        for s in improved:
            self.best_rel[s] = self.current[s]
        if len(improved) == len(self.current):
            self.best.copy_(z)
        elif improved:
            index = torch.tensor(improved, device=z.device)
            self.best.index_copy_(0, index, z.index_select(0, index))

    @property
    def residual(self) -> float:
        """Relative residual of the state the solver returns."""
        return _worst(self.best_rel if self.best is not None else self.current)

    @property
    def converged(self) -> bool:
        return self.residual < self.tol

    def stop(self) -> bool:
        """Whether to end the solve after the iteration just recorded."""
        return self.converged or not self.finite or len(self.rel_trace) >= self.max_iter

    def stats(self) -> SolverStats:
        if not self.finite:
            log.debug("solver stopped on a non-finite residual after %d steps", len(self.rel_trace))
        return SolverStats(
            steps=len(self.rel_trace),
            abs_trace=self.abs_trace,
            rel_trace=self.rel_trace,
            converged=self.converged,
            residual=self.residual,
            tol=self.tol,
            max_iter=self.max_iter,
        )


def _worst(values: list[float]) -> float:
    """Largest value, NaN if any value is NaN."""
    return math.nan if any(math.isnan(v) for v in values) else max(values)


def _flatten(f: Map, z0: Tensor, max_iter: int) -> tuple[Map, Tensor]:
    """Validate the input; return f acting on flat (S, P) states and the flat z0."""
    if max_iter < 1:
        raise ValueError(f"max_iter must be ≥ 1, got {max_iter}")
    if not z0.is_floating_point():
        raise ValueError(f"z0 must be a floating-point tensor, got {z0.dtype}")
    if not torch.isfinite(z0).all():
        raise ValueError("z0 contains NaN or Inf values: cannot start the fixed-point solve")
    shape = z0.shape
    signals = shape[0] if z0.dim() == 3 else 1

    def flat_f(z: Tensor) -> Tensor:
        fz = f(z.view(shape))
        if fz.shape != shape:
            raise ValueError(f"f must keep the state shape {tuple(shape)}, got {tuple(fz.shape)}")
        return fz.reshape(signals, -1)

    return flat_f, z0.reshape(signals, -1)


def fixed_point(
    f: Map, z0: Tensor, *, tol: float = 1e-3, max_iter: int = 100
) -> tuple[Tensor, SolverStats]:
    """Plain fixed-point iteration z ← f(z).

    Args:
        f: the map, state → state of the same shape.
        z0: initial state, (N, D) or (S, N, D).
        tol: relative-residual tolerance.
        max_iter: iteration cap.

    Returns:
        The last f(z) (shape of ``z0``) and the solve's statistics.
    """
    flat_f, z = _flatten(f, z0, max_iter)
    monitor = _Monitor(z, tol, max_iter, keep_best=False)
    diff = torch.empty_like(z)
    while True:
        fz = flat_f(z)
        monitor.record(z, fz, torch.sub(fz, z, out=diff))
        z = fz
        if monitor.stop():
            return z.view(z0.shape), monitor.stats()


def anderson(
    f: Map,
    z0: Tensor,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    m: int = 5,
    lam: float = 1e-4,
    beta: float = 1.0,
) -> tuple[Tensor, SolverStats]:
    """Anderson acceleration (type II) with memory ``m``.

    The next iterate mixes the last m images, z ← Σ αᵢ (f(zᵢ) − (1 − β)·(f(zᵢ) − zᵢ)), with
    weights minimising ‖Σ αᵢ (f(zᵢ) − zᵢ)‖ subject to Σ αᵢ = 1, solved per signal. Keeps 2m
    copies of the state (images and residuals).

    Args:
        f: the map, state → state of the same shape.
        z0: initial state, (N, D) or (S, N, D).
        tol: relative-residual tolerance.
        max_iter: iteration cap.
        m: number of past iterates mixed.
        lam: Tikhonov regularisation of the mixing least squares, relative to the mean squared
            residual norm in memory (so it does not depend on N·D).
        beta: mixing (damping) parameter; 1 uses the images only.

    Returns:
        The iterate with the lowest residual, per signal, and the solve's statistics.
    """
    if m < 1:
        raise ValueError(f"Anderson memory m must be ≥ 1, got {m}")
    flat_f, z = _flatten(f, z0, max_iter)
    signals, size = z.shape
    images = z.new_empty(signals, m, size)
    residuals = z.new_empty(signals, m, size)
    gram = torch.zeros(signals, m, m, dtype=torch.float64, device=z.device)
    mixed = torch.empty_like(z).unsqueeze(1)  # the next iterate, written in place
    monitor = _Monitor(z, tol, max_iter, keep_best=True)
    for k in range(max_iter):
        slot, n = k % m, min(k + 1, m)
        fz = flat_f(z)
        residual = torch.sub(fz, z, out=residuals[:, slot])
        monitor.record(z, fz, residual)
        if monitor.stop():
            break
        images[:, slot].copy_(fz)
        products = _inner(residual, residuals[:, :n]).squeeze(1).double()
        gram[:, slot, :n] = products
        gram[:, :n, slot] = products
        alpha = _mixing_weights(gram[:, :n, :n], lam).to(z.dtype).unsqueeze(1)
        torch.bmm(alpha, images[:, :n], out=mixed)
        if beta != 1.0:
            mixed.baddbmm_(alpha, residuals[:, :n], alpha=beta - 1.0)
        z = mixed.squeeze(1)
    return monitor.best.view(z0.shape), monitor.stats()


def _mixing_weights(gram: Tensor, lam: float) -> Tensor:
    """Weights α (S, n) minimising αᵀ(G + reg·I)α subject to Σα = 1, per Gram matrix G."""
    n = gram.shape[-1]
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(_GRAM_FLOOR)
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    system = gram + (lam * scale)[:, None, None] * eye
    weights = torch.linalg.solve(system, gram.new_ones(gram.shape[0], n, 1)).squeeze(-1)
    return weights / weights.sum(dim=-1, keepdim=True)


def broyden(
    f: Map, z0: Tensor, *, tol: float = 1e-3, max_iter: int = 100, memory: int = 10
) -> tuple[Tensor, SolverStats]:
    """Limited-memory "good" Broyden on g(z) = f(z) − z, full steps (no line search).

    Keeps an approximation B = −I + Σ uᵢ vᵢᵀ of the inverse Jacobian of g, per signal, as at most
    ``memory`` rank-one updates, and steps z ← z − B·g(z). When the memory is full, B restarts
    from −I (overwriting the oldest updates instead diverges). Keeps 2·memory copies of the state.

    Args:
        f: the map, state → state of the same shape.
        z0: initial state, (N, D) or (S, N, D).
        tol: relative-residual tolerance.
        max_iter: iteration cap.
        memory: number of rank-one updates kept.

    Returns:
        The iterate with the lowest residual, per signal, and the solve's statistics.
    """
    if memory < 1:
        raise ValueError(f"Broyden memory must be ≥ 1, got {memory}")
    flat_f, z = _flatten(f, z0, max_iter)
    signals, size = z.shape
    us = z.new_empty(signals, memory, size)
    vs = z.new_empty(signals, memory, size)
    monitor = _Monitor(z, tol, max_iter, keep_best=True)
    z = z.clone()  # updated in place
    g, g_prev, dz, scratch = (torch.empty_like(z) for _ in range(4))
    stored = 0
    for k in range(max_iter):
        fz = flat_f(z)
        torch.sub(fz, z, out=g)
        monitor.record(z, fz, g)
        if monitor.stop():
            break
        if k > 0:
            stored %= memory  # memory full: restart from B = −I
            dg = torch.sub(g, g_prev, out=g_prev)
            _broyden_update(us[:, : stored + 1], vs[:, : stored + 1], dz, dg, scratch)
            stored += 1
        _apply(us[:, :stored], vs[:, :stored], g, out=dz).neg_()
        g, g_prev = g_prev, g
        z.add_(dz)
    return monitor.best.view(z0.shape), monitor.stats()


def _inner(y: Tensor, stack: Tensor) -> Tensor:
    """Inner products (S, 1, n) of y (S, P) with each of the n rows of ``stack`` (S, n, P)."""
    return torch.bmm(y.unsqueeze(1), stack.transpose(1, 2))  # faster on CPU than stack @ y


def _apply(us: Tensor, vs: Tensor, y: Tensor, out: Tensor) -> Tensor:
    """``out`` ← B·y with B = −I + Σ uᵢ vᵢᵀ per signal; pass (vs, us) for Bᵀ·y."""
    torch.bmm(_inner(y, vs), us, out=out.unsqueeze(1))
    return out.sub_(y)


def _broyden_update(us: Tensor, vs: Tensor, dz: Tensor, dg: Tensor, scratch: Tensor) -> None:
    """Good Broyden inverse update B += (Δz − BΔg) Δzᵀ B / (Δzᵀ B Δg), written into the last slot.

    B is built from the slots before the last one. Signals whose denominator vanishes (already
    converged, or a degenerate step) get a zero update.
    """
    old_us, old_vs = us[:, :-1], vs[:, :-1]
    v = _apply(old_vs, old_us, dz, out=scratch)
    den = _inner(v, dg.unsqueeze(1)).squeeze(-1)
    scale = torch.linalg.vector_norm(v, dim=1, keepdim=True) * torch.linalg.vector_norm(
        dg, dim=1, keepdim=True
    )
    safe = den.abs() > torch.finfo(dz.dtype).eps * scale
    torch.mul(v, safe, out=vs[:, -1])
    b_dg = _apply(old_us, old_vs, dg, out=scratch)
    torch.sub(dz, b_dg, out=us[:, -1]).mul_(torch.where(safe, 1.0 / den, 0.0))


SOLVERS: dict[str, Solver] = {
    "fixed_point": fixed_point,
    "anderson": anderson,
    "broyden": broyden,
}


def get_solver(name: str) -> Solver:
    """Solver by name.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
    """
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; valid solvers: {', '.join(SOLVERS)}") from None
