"""Fixed-point solvers for deep equilibrium models.

Every solver has the signature ``solve(f, z0, *, tol, max_iter) -> (z_star, SolverStats)`` and
looks for z = f(z). It stops once the relative residual ‖f(z) − z‖ / (‖f(z)‖ + eps) is below
``tol`` or after ``max_iter`` evaluations of f (one per iteration). A state of shape (S, N, D)
holds S independent signals: the residual is then taken per signal (norm over N and D), each
signal's result is frozen at its own stop (so a signal solved in a batch gets exactly the
iterate it would get alone) and the solve ends when every signal has stopped; a state of any
other shape is one signal.

The solvers call ``f`` under the caller's grad mode (models call them inside ``torch.no_grad()``)
and work on any floating dtype and device. The stopping rule is evaluated on the device every
iteration, but the host reads it only every ``check_every`` iterations (one sync per read; by
default every iteration on CPU, where a read costs nothing, and every ``CUDA_CHECK_EVERY`` on
accelerators); iterations run past the stop change nothing the solver returns. A non-finite
residual (divergence) ends the solve early with ``converged=False`` (``fixed_point`` then returns
the non-finite image, Anderson and Broyden their best iterate).
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

CUDA_CHECK_EVERY = 4
"""Solver iterations between host reads of the stopping rule on accelerators."""

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
        self,
        f: Map,
        z0: Tensor,
        *,
        tol: float = 1e-3,
        max_iter: int = 100,
        check_every: int | None = None,
    ) -> tuple[Tensor, SolverStats]: ...


class _Monitor:
    """Residual bookkeeping shared by the solvers, kept on the device.

    Works on flat states of shape (S, P). Every iteration's residuals, the per-signal stopping
    decisions and, with ``keep_best``, each signal's best iterate (the one with the lowest
    relative residual; Anderson and Broyden need not decrease monotonically) are tensor
    operations without a host sync. Once its stopping rule holds a signal is *done*: later
    iterations change nothing the monitor returns for it, so a solver may run past a signal's
    stop (until every signal stops, and until the host looks). The host reads the state only in
    :meth:`check`, one sync every ``check_every`` iterations.
    """

    def __init__(
        self, z0: Tensor, tol: float, max_iter: int, keep_best: bool, check_every: int | None
    ) -> None:
        if check_every is not None and check_every < 1:
            raise ValueError(f"check_every must be ≥ 1, got {check_every}")
        self.tol, self.max_iter = tol, max_iter
        self.check_every = check_every or default_check_every(z0.device)
        self.abs_trace: list[float] = []
        self.rel_trace: list[float] = []
        self._pending: list[Tensor] = []  # per unread iteration: (worst abs, worst rel)
        device = z0.device
        signals = z0.shape[0]
        self.done = torch.zeros((signals,), dtype=torch.bool, device=device)
        self.steps = torch.zeros((signals,), dtype=torch.long, device=device)
        self.current = torch.full((signals,), math.inf, dtype=z0.dtype, device=device)
        self.best_rel = torch.full((z0.shape[0],), math.inf, dtype=z0.dtype, device=device)
        self.best = z0.clone() if keep_best else None
        self.iterations = 0
        self._residual, self._finite = math.inf, True

    def best_iterate(self) -> Tensor:
        """Each signal's best iterate so far (a monitor made with ``keep_best``)."""
        if self.best is None:
            raise RuntimeError("this monitor keeps no best iterate: make it with keep_best=True")
        return self.best

    def record(self, z: Tensor, fz: Tensor, diff: Tensor) -> Tensor:
        """Record iterate ``z``, its image ``fz`` and ``diff`` = fz − z (no host sync).

        Returns the per-signal "still running" flags (S,) of this iteration (before it counts).
        """
        active = ~self.done
        abs_res = torch.linalg.vector_norm(diff, dim=1)
        rel_res = abs_res / (torch.linalg.vector_norm(fz, dim=1) + EPS)
        self._pending.append(torch.stack([abs_res.amax(), rel_res.amax()]))  # NaN if any is NaN
        self.current = torch.where(active, rel_res, self.current)
        if self.best is not None:
            improved = (rel_res < self.best_rel) & active
            self.best_rel = torch.where(improved, rel_res, self.best_rel)
            self.best.copy_(torch.where(improved.unsqueeze(1), z, self.best))
            residual = self.best_rel
        else:
            residual = self.current
        stop = (residual < self.tol) | ~torch.isfinite(rel_res)
        self.steps += active.long()
        self.done = self.done | stop
        self.iterations += 1
        return active

    def check(self) -> bool:
        """Whether to end the solve now; reads the device state every ``check_every`` iterations."""
        capped = self.iterations >= self.max_iter
        if not capped and self.iterations % self.check_every:
            return False
        best = (self.best_rel if self.best is not None else self.current).amax()
        flags = [self.done.all(), self.steps.amax(), best]
        values = torch.cat(
            [torch.stack([v.double() for v in flags]), torch.stack(self._pending).double().view(-1)]
        ).tolist()  # the one host sync
        self._pending.clear()
        done, steps, self._residual = bool(values[0]), int(values[1]), values[2]
        traces = values[3:]
        kept = steps - len(self.rel_trace)
        self.abs_trace.extend(traces[0 : 2 * kept : 2])
        self.rel_trace.extend(traces[1 : 2 * kept : 2])
        self._finite = all(math.isfinite(v) for v in self.rel_trace[-1:])
        return done or capped

    @property
    def residual(self) -> float:
        """Relative residual of the state the solver returns (as of the last check)."""
        return self._residual

    @property
    def converged(self) -> bool:
        return self.residual < self.tol

    def stats(self) -> SolverStats:
        if not self._finite:
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


#: Default memory of Anderson acceleration (past iterates mixed) and of Broyden (rank-one updates).
ANDERSON_MEMORY = 5
BROYDEN_MEMORY = 10

#: State-sized buffers each solver keeps beyond those of plain fixed-point iteration, at its
#: default memory (Anderson: images and residuals, the mixed iterate; Broyden: the updates and
#: two scratch states), for sizing device memory.
EXTRA_STATE_COPIES: dict[str, int] = {
    "fixed_point": 0,
    "anderson": 2 * ANDERSON_MEMORY + 1,
    "broyden": 2 * BROYDEN_MEMORY + 2,
}


def default_check_every(device: torch.device) -> int:
    """Iterations between two host reads of the stopping rule: 1 on CPU (a read is free there),
    ``CUDA_CHECK_EVERY`` on accelerators (a read stalls the kernel queue)."""
    return 1 if device.type == "cpu" else CUDA_CHECK_EVERY


def _flatten(f: Map, z0: Tensor, max_iter: int) -> tuple[Map, Tensor]:
    """Validate the input; return f acting on flat (S, P) states and the flat z0."""
    if max_iter < 1:
        raise ValueError(f"max_iter must be ≥ 1, got {max_iter}")
    if not z0.is_floating_point():
        raise ValueError(f"z0 must be a floating-point tensor, got {z0.dtype}")
    # max |z0| is NaN or inf exactly when z0 holds one: one reduction pass (isfinite(z0).all()
    # makes four) and one host sync per solve, before f sees the state.
    if not torch.isfinite(torch.linalg.vector_norm(z0, ord=math.inf)):
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
    f: Map, z0: Tensor, *, tol: float = 1e-3, max_iter: int = 100, check_every: int | None = None
) -> tuple[Tensor, SolverStats]:
    """Plain fixed-point iteration z ← f(z).

    Args:
        f: the map, state → state of the same shape.
        z0: initial state, (N, D) or (S, N, D).
        tol: relative-residual tolerance.
        max_iter: iteration cap.
        check_every: iterations between host reads of the stopping rule (None: per device).

    Returns:
        The last f(z) before the stop (shape of ``z0``) and the solve's statistics.
    """
    flat_f, z = _flatten(f, z0, max_iter)
    monitor = _Monitor(z, tol, max_iter, keep_best=False, check_every=check_every)
    # One signal read every iteration stops at its own stop: its result is the last image.
    freeze = z.shape[0] > 1 or monitor.check_every > 1
    diff = torch.empty_like(z)
    result = z
    while True:
        fz = flat_f(z)
        active = monitor.record(z, fz, torch.sub(fz, z, out=diff))
        # Past a signal's stop (other signals still running, or between two host reads) keep
        # the image at its stop.
        result = torch.where(active.unsqueeze(1), fz, result) if freeze else fz
        z = fz
        if monitor.check():
            return result.view(z0.shape), monitor.stats()


def anderson(
    f: Map,
    z0: Tensor,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    m: int = ANDERSON_MEMORY,
    lam: float = 1e-4,
    beta: float = 1.0,
    check_every: int | None = None,
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
        check_every: iterations between host reads of the stopping rule (None: per device).

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
    monitor = _Monitor(z, tol, max_iter, keep_best=True, check_every=check_every)
    for k in range(max_iter):
        slot, n = k % m, min(k + 1, m)
        fz = flat_f(z)
        residual = torch.sub(fz, z, out=residuals[:, slot])
        monitor.record(z, fz, residual)
        if monitor.check():
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
    return monitor.best_iterate().view(z0.shape), monitor.stats()


def _mixing_weights(gram: Tensor, lam: float) -> Tensor:
    """Weights α (S, n) minimising αᵀ(G + reg·I)α subject to Σα = 1, per Gram matrix G."""
    n = gram.shape[-1]
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(_GRAM_FLOOR)
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    system = gram + (lam * scale)[:, None, None] * eye
    # solve_ex without its error check: torch.linalg.solve reads the status back to the host (a
    # sync every iteration on CUDA); the regularised system is never singular.
    ones = gram.new_ones(gram.shape[0], n, 1)
    weights = torch.linalg.solve_ex(system, ones, check_errors=False).result.squeeze(-1)
    return weights / weights.sum(dim=-1, keepdim=True)


def broyden(
    f: Map,
    z0: Tensor,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    memory: int = BROYDEN_MEMORY,
    check_every: int | None = None,
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
        check_every: iterations between host reads of the stopping rule (None: per device).

    Returns:
        The iterate with the lowest residual, per signal, and the solve's statistics.
    """
    if memory < 1:
        raise ValueError(f"Broyden memory must be ≥ 1, got {memory}")
    flat_f, z = _flatten(f, z0, max_iter)
    signals, size = z.shape
    us = z.new_empty(signals, memory, size)
    vs = z.new_empty(signals, memory, size)
    monitor = _Monitor(z, tol, max_iter, keep_best=True, check_every=check_every)
    z = z.clone()  # updated in place
    g, g_prev, dz, scratch = (torch.empty_like(z) for _ in range(4))
    stored = 0
    for k in range(max_iter):
        fz = flat_f(z)
        torch.sub(fz, z, out=g)
        monitor.record(z, fz, g)
        if monitor.check():
            break
        if k > 0:
            stored %= memory  # memory full: restart from B = −I
            dg = torch.sub(g, g_prev, out=g_prev)
            _broyden_update(us[:, : stored + 1], vs[:, : stored + 1], dz, dg, scratch)
            stored += 1
        _apply(us[:, :stored], vs[:, :stored], g, out=dz).neg_()
        g, g_prev = g_prev, g
        z.add_(dz)
    return monitor.best_iterate().view(z0.shape), monitor.stats()


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
