"""Fixed-point solvers on small self-made contractions (CPU, real computation)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor

from implicit2.deq.solvers import SOLVERS, SolverStats, anderson, broyden, fixed_point, get_solver

NAMES = sorted(SOLVERS)
PRECISIONS = [(torch.float32, 1e-3), (torch.float64, 1e-6)]


pytestmark = pytest.mark.usefixtures("one_thread")


def contraction(
    norms: Sequence[float], n: int = 24, d: int = 8, dtype: torch.dtype = torch.float64
) -> Callable[[Tensor], Tensor]:
    """f(z) = tanh(z Wₛᵀ + cₛ) per signal s, Wₛ symmetric with eigenvalues spread over ±normₛ.

    Accepts z of shape (S, N, D), or (N, D) when one norm is given. Small cₛ keep tanh nearly
    linear, so the contraction factor is close to ‖Wₛ‖₂.
    """
    gen = torch.Generator().manual_seed(0)
    weights = []
    for norm in norms:
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
        weights.append(q @ torch.diag(torch.linspace(-norm, norm, d, dtype=torch.float64)) @ q.T)
    w = torch.stack(weights).to(dtype)
    c = (0.05 * torch.randn(len(norms), n, d, generator=gen, dtype=torch.float64)).to(dtype)

    def f(z: Tensor) -> Tensor:
        out = torch.tanh(z.view(len(norms), n, d) @ w.transpose(1, 2) + c)
        return out.view(z.shape)

    return f


def relative_residuals(f: Callable[[Tensor], Tensor], z: Tensor) -> list[float]:
    """‖f(z) − z‖ / ‖f(z)‖ per signal (one signal for a 2-D z), recomputed from scratch."""
    fz = f(z)
    signals = z.shape[0] if z.dim() == 3 else 1
    diff = (fz - z).reshape(signals, -1).norm(dim=1)
    return (diff / fz.reshape(signals, -1).norm(dim=1)).tolist()


def check_stats(stats: SolverStats, tol: float, max_iter: int) -> None:
    assert stats.tol == tol and stats.max_iter == max_iter
    assert 1 <= stats.steps <= max_iter
    assert len(stats.rel_trace) == len(stats.abs_trace) == stats.steps
    assert all(isinstance(v, float) for v in stats.rel_trace + stats.abs_trace)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("dtype", "tol"), PRECISIONS)
@pytest.mark.parametrize("signals", [None, 3])
def test_solver_reaches_tolerance(name: str, dtype: torch.dtype, tol: float, signals: int | None):
    norms = [0.9] if signals is None else [0.9, 0.5, 0.7]
    shape = (24, 8) if signals is None else (signals, 24, 8)
    f = contraction(norms, dtype=dtype)
    z0 = torch.zeros(shape, dtype=dtype)
    z, stats = get_solver(name)(f, z0, tol=tol, max_iter=500)
    check_stats(stats, tol, 500)
    assert stats.converged and stats.residual < tol
    assert z.shape == z0.shape and z.dtype == dtype
    assert max(relative_residuals(f, z)) < tol
    assert not torch.any(z0)  # the input is left untouched


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("dtype", "tol"), PRECISIONS)
def test_slow_signal_keeps_all_signals_iterating(name: str, dtype: torch.dtype, tol: float):
    solve = get_solver(name)
    f_fast = contraction([0.3, 0.5], dtype=dtype)
    _, fast = solve(f_fast, torch.zeros(2, 24, 8, dtype=dtype), tol=tol, max_iter=1000)
    f_mixed = contraction([0.97, 0.3, 0.5], dtype=dtype)
    z, mixed = solve(f_mixed, torch.zeros(3, 24, 8, dtype=dtype), tol=tol, max_iter=1000)
    assert mixed.converged and mixed.steps > fast.steps
    assert all(r < tol for r in relative_residuals(f_mixed, z))


@pytest.mark.parametrize("name", NAMES)
def test_each_signal_of_a_batch_gets_the_iterate_it_gets_alone(name: str):
    """A fast signal is frozen at its own stop while a slow one keeps the batch running."""
    solve = get_solver(name)
    norms = [0.97, 0.3, 0.6]
    f = contraction(norms)
    z0 = torch.zeros(3, 24, 8, dtype=torch.float64)
    z, stats = solve(f, z0, tol=1e-6, max_iter=1000)
    alone_steps = []
    for s in range(len(norms)):

        def f_alone(zs: Tensor, s: int = s) -> Tensor:
            padded = torch.zeros_like(z0)
            padded[s] = zs
            return f(padded)[s]

        zs, single = solve(f_alone, z0[s], tol=1e-6, max_iter=1000)
        torch.testing.assert_close(z[s], zs, rtol=1e-12, atol=1e-14)
        alone_steps.append(single.steps)
    assert stats.steps == max(alone_steps) > min(alone_steps)


@pytest.mark.parametrize("name", NAMES)
def test_a_diverging_signal_does_not_stop_the_others(name: str):
    f_good = contraction([0.5, 0.5, 0.5])

    def f(z: Tensor) -> Tensor:
        out = f_good(z).clone()
        out[1] = 1e200 * (z[1] + 1.0)
        return out

    z, stats = get_solver(name)(f, torch.zeros(3, 24, 8, dtype=torch.float64), max_iter=200)
    assert not stats.converged and stats.steps < 200
    residuals = relative_residuals(f_good, z)
    assert residuals[0] < 1e-3 and residuals[2] < 1e-3


def test_acceleration_beats_fixed_point_on_slow_contraction():
    f = contraction([0.97])
    z0 = torch.zeros(24, 8, dtype=torch.float64)
    steps = {
        name: solve(f, z0, tol=1e-6, max_iter=2000)[1].steps for name, solve in SOLVERS.items()
    }
    assert steps["fixed_point"] > 200  # the map is slow: ~log(1e-6) / log(0.97)
    assert steps["anderson"] < steps["fixed_point"] / 2
    assert steps["broyden"] < steps["fixed_point"] / 2


def test_fixed_point_returns_last_image():
    f = contraction([0.9])
    z0 = torch.zeros(24, 8, dtype=torch.float64)
    z1, _ = fixed_point(f, z0, tol=0.0, max_iter=1)
    z5, stats = fixed_point(f, z0, tol=0.0, max_iter=5)
    z6, _ = fixed_point(f, z0, tol=0.0, max_iter=6)
    assert torch.equal(z1, f(z0)) and torch.equal(z6, f(z5))
    assert not stats.converged and stats.steps == 5 and stats.residual == stats.rel_trace[-1]


@pytest.mark.parametrize("name", NAMES)
def test_non_contractive_map_stops_at_max_iter(name: str):
    gen = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen, dtype=torch.float64))
    w, c = 3.0 * q, torch.randn(8, 16, generator=gen, dtype=torch.float64)

    def f(z: Tensor) -> Tensor:
        return z @ w.T + c

    z, stats = get_solver(name)(f, torch.zeros(8, 16, dtype=torch.float64), max_iter=10)
    check_stats(stats, 1e-3, 10)
    assert not stats.converged and stats.steps == 10
    if name != "fixed_point":  # the best iterate, not the last one
        assert stats.residual == pytest.approx(min(stats.rel_trace), rel=1e-12)
        assert relative_residuals(f, z)[0] == pytest.approx(stats.residual, rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_nan_start_raises(name: str):
    z0 = torch.zeros(3, 4, 8)
    z0[1, 2, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        get_solver(name)(contraction([0.5, 0.5, 0.5], n=4), z0)


@pytest.mark.parametrize("name", NAMES)
def test_divergence_stops_early_without_exception(name: str):
    def f(z: Tensor) -> Tensor:
        return 1e200 * (z + 1.0)

    _, stats = get_solver(name)(f, torch.zeros(4, 8, dtype=torch.float64), max_iter=50)
    assert not stats.converged and stats.steps < 50
    assert not math.isfinite(stats.rel_trace[-1])


def test_anderson_damping_and_memory():
    f = contraction([0.9])
    z0 = torch.zeros(24, 8, dtype=torch.float64)
    for options in ({"m": 1}, {"m": 3, "beta": 0.5}, {"lam": 1e-2}):
        z, stats = anderson(f, z0, tol=1e-8, max_iter=1000, **options)
        assert stats.converged and relative_residuals(f, z)[0] < 1e-8


def test_broyden_restarts_when_memory_is_full():
    f = contraction([0.97])
    z0 = torch.zeros(24, 8, dtype=torch.float64)
    z, stats = broyden(f, z0, tol=1e-8, max_iter=1000, memory=3)
    assert stats.converged and stats.steps > 3 and relative_residuals(f, z)[0] < 1e-8


def test_registry_and_invalid_arguments():
    assert {name: get_solver(name) for name in NAMES} == SOLVERS
    with pytest.raises(ValueError, match="anderson, broyden") as info:
        get_solver("newton")
    assert "fixed_point" in str(info.value) and "'newton'" in str(info.value)
    with pytest.raises(ValueError, match="max_iter"):
        fixed_point(torch.tanh, torch.zeros(2, 2), max_iter=0)
    with pytest.raises(ValueError, match="floating"):
        anderson(torch.tanh, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        broyden(lambda z: z[:1], torch.zeros(2, 2))
