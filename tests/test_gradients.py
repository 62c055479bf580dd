"""DEQ backward passes against finite differences, unrolled autograd and the explicit formulas."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from implicit2.deq.gradients import (
    GRADIENTS,
    attach_backward,
    attach_implicit,
    attach_onestep,
    reapplied,
    unrolled,
)
from implicit2.deq.solvers import SOLVERS, SolverStats, anderson

N, D, IN = 4, 5, 2  # N·D = 20: small enough for dense Jacobians
F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


class Problem:
    """f(z) = tanh(z Wᵀ + x Uᵀ + b) with ‖W‖₂ = 0.9 (per signal when ``signals`` is given)."""

    def __init__(self, signals: int | None = None, norm: float = 0.9) -> None:
        gen = torch.Generator().manual_seed(0)
        batch = () if signals is None else (signals,)
        w = torch.randn(*batch, D, D, generator=gen, dtype=F64)
        w = w * norm / torch.linalg.matrix_norm(w, ord=2)[..., None, None]
        self.w = w.requires_grad_()
        self.u = torch.randn(D, IN, generator=gen, dtype=F64).requires_grad_()
        self.b = (0.1 * torch.randn(D, generator=gen, dtype=F64)).requires_grad_()
        self.x = torch.rand(N, IN, generator=gen, dtype=F64) * 2 - 1
        self.target = torch.randn(*batch, N, D, generator=gen, dtype=F64)
        self.shape = (*batch, N, D)

    @property
    def params(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.w, self.u, self.b

    def f(self, z: Tensor, w: Tensor | None = None) -> Tensor:
        w = self.w if w is None else w
        return torch.tanh(z @ w.transpose(-1, -2) + self.x @ self.u.T + self.b)

    def loss(self, z: Tensor) -> Tensor:
        return (torch.sin(3 * z) * self.target).sum()

    def solve(self, w: Tensor | None = None, tol: float = 1e-12) -> Tensor:
        with torch.no_grad():
            z, stats = anderson(lambda z: self.f(z, w), self.zeros(), tol=tol, max_iter=1000)
        assert stats.converged
        return z

    def zeros(self) -> Tensor:
        return torch.zeros(self.shape, dtype=F64)

    def deq_grads(self, kind: str, **options) -> tuple[Tensor, ...]:
        """Parameter gradients of loss(z*) with backward ``kind``, accumulated by .backward()."""
        z_in = self.solve().requires_grad_()
        z_next = attach_backward(kind, self.f(z_in), z_in, **options)
        for p in self.params:
            p.grad = None
        self.loss(z_next).backward()
        return tuple(p.grad.clone() for p in self.params)

    def unrolled_from_zero_grads(self, steps: int) -> tuple[Tensor, ...]:
        """Autograd through ``steps`` applications of f from z = 0."""
        z = self.zeros()
        for _ in range(steps):
            z = self.f(z)
        return torch.autograd.grad(self.loss(z), self.params)


def rel_error(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> float:
    num = sum(float((x - y).norm() ** 2) for x, y in zip(a, b, strict=True)) ** 0.5
    return num / sum(float(y.norm() ** 2) for y in b) ** 0.5


def test_ift_matches_finite_differences():
    problem = Problem()
    grad_w = problem.deq_grads("ift", tol=1e-12, max_iter=1000)[0]
    h = 1e-6
    fd = torch.zeros_like(grad_w)
    w = problem.w.detach()
    for i in range(D):
        for j in range(D):
            delta = torch.zeros_like(w)
            delta[i, j] = h
            plus = problem.loss(problem.solve(w + delta))
            minus = problem.loss(problem.solve(w - delta))
            fd[i, j] = (plus - minus) / (2 * h)
    assert rel_error((grad_w,), (fd,)) < 1e-5


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("signals", [None, 2])
def test_ift_matches_long_unrolled_forward(solver: str, signals: int | None):
    problem = Problem(signals)
    record: list[SolverStats] = []
    grads = problem.deq_grads("ift", solver=solver, tol=1e-10, max_iter=500, on_stats=record.append)
    assert len(record) == 1 and record[0].converged and record[0].residual < 1e-10
    assert rel_error(grads, problem.unrolled_from_zero_grads(200)) < 1e-5


def test_onestep_equals_explicit_formula():
    problem = Problem()
    z_in = problem.solve().requires_grad_()
    plain = problem.f(z_in)
    out = attach_onestep(plain, z_in)
    assert torch.equal(out, plain)  # the forward value is unchanged
    for p in problem.params:
        p.grad = None
    problem.loss(out).backward()

    z_ref = z_in.detach()
    jac = torch.autograd.functional.jacobian(problem.f, z_ref).reshape(N * D, N * D)
    z_next = problem.f(z_ref)
    (g,) = torch.autograd.grad(problem.loss(z_next), z_next, retain_graph=True)
    v = g + (jac.T @ g.reshape(-1)).reshape(N, D)
    expected = torch.autograd.grad(z_next, problem.params, v)
    for p, e in zip(problem.params, expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-12, atol=1e-12 * float(e.abs().max()))
    # the one-step gradient is not the plain one (J is far from zero here)
    plain_grads = torch.autograd.grad(problem.loss(problem.f(z_ref)), problem.params)
    assert rel_error(expected, plain_grads) > 1e-2


def test_unrolled_one_step_is_plain_application():
    problem = Problem()
    z_star = problem.f(problem.f(problem.solve()))  # carries a graph unrolled must cut
    got = torch.autograd.grad(problem.loss(unrolled(problem.f, z_star, 1)), problem.params)
    plain = torch.autograd.grad(problem.loss(problem.f(z_star.detach())), problem.params)
    for a, b in zip(got, plain, strict=True):
        assert torch.equal(a, b)


def test_unrolled_many_steps_approaches_ift():
    problem = Problem()
    z_star = problem.solve()
    grads = torch.autograd.grad(problem.loss(unrolled(problem.f, z_star, 100)), problem.params)
    assert rel_error(grads, problem.deq_grads("ift", tol=1e-12, max_iter=1000)) < 1e-4


def test_attach_is_a_no_op_without_grad():
    problem = Problem()
    z_in = problem.solve().requires_grad_()
    with torch.no_grad():
        z_next = problem.f(z_in)
    assert attach_onestep(z_next, z_in) is z_next
    assert attach_implicit(z_next, z_in) is z_next


def test_invalid_arguments():
    problem = Problem()
    z_star = problem.solve()
    with pytest.raises(ValueError, match="requires_grad"):
        attach_onestep(problem.f(z_star), z_star)
    z_in = z_star.clone().requires_grad_()
    with pytest.raises(ValueError, match="onestep, ift, unrolled") as info:
        attach_backward("phantom", problem.f(z_in), z_in)
    assert "'phantom'" in str(info.value)
    with pytest.raises(ValueError, match=r"unrolled\(f, z_star, steps\)"):
        attach_backward("unrolled", problem.f(z_in), z_in)
    with pytest.raises(ValueError, match=r"one-step gradient takes no options, got \['tol'\]"):
        attach_backward("onestep", problem.f(z_in), z_in, tol=1e-4)
    with pytest.raises(ValueError, match="newton") as info:
        attach_implicit(problem.f(z_in), z_in, solver="newton")
    assert all(name in str(info.value) for name in SOLVERS)
    with pytest.raises(ValueError, match="steps"):
        unrolled(problem.f, z_star, 0)
    assert GRADIENTS == ("onestep", "ift", "unrolled")


def _grads_through(attach: Callable[[Tensor, Tensor], Tensor], problem: Problem) -> list[Tensor]:
    z_in = problem.solve().requires_grad_()
    return list(torch.autograd.grad(problem.loss(attach(problem.f(z_in), z_in)), problem.params))


def test_attach_backward_dispatches():
    problem = Problem()
    pairs = [
        (lambda z, i: attach_backward("onestep", z, i), attach_onestep),
        (
            lambda z, i: attach_backward("ift", z, i, tol=1e-10),
            lambda z, i: attach_implicit(z, i, tol=1e-10),
        ),
    ]
    for dispatched, direct in pairs:
        got, expected = _grads_through(dispatched, problem), _grads_through(direct, problem)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    onestep, ift = (_grads_through(direct, problem) for _, direct in pairs)
    assert rel_error(tuple(onestep), tuple(ift)) > 1e-3


def test_onestep_equals_two_unrolled_steps_at_the_fixed_point():
    problem = Problem()
    z_star = problem.solve()
    two = torch.autograd.grad(problem.loss(unrolled(problem.f, z_star, 2)), problem.params)
    assert rel_error(problem.deq_grads("onestep"), two) < 1e-9


def test_ift_warns_when_backward_solve_stops_early(caplog: pytest.LogCaptureFixture):
    problem = Problem()
    record: list[SolverStats] = []
    with caplog.at_level("WARNING", logger="implicit2.deq.gradients"):
        problem.deq_grads("ift", tol=1e-12, max_iter=2, on_stats=record.append)
    assert record[0].steps == 2 and not record[0].converged
    assert "implicit backward solve stopped" in caplog.text


def test_ift_passes_a_non_finite_gradient_on_without_solving():
    """A diverged loss must reach the trainer's divergence check, not crash the backward solve."""
    problem = Problem()
    record: list[SolverStats] = []
    z_in = problem.solve().requires_grad_()
    z_next = attach_backward("ift", problem.f(z_in), z_in, on_stats=record.append)
    (z_next.sum() * float("nan")).backward()
    assert not record  # no backward solve was attempted
    assert all(p.grad is not None and torch.isnan(p.grad).all() for p in problem.params)


@pytest.mark.parametrize("signals", [None, 3])
def test_reapplied_gives_the_onestep_gradient_without_a_hook(signals: int | None):
    """Same value, same parameter gradients and same gradient into the input as attach_onestep."""
    problem = Problem(signals)
    z_star = problem.solve()
    shift = (0.3 * torch.randn(problem.shape, dtype=F64)).requires_grad_()  # h = z* + c, c learnt
    z_in = z_star + shift
    by_hook = attach_onestep(problem.f(z_in), z_in)
    hook_grads = torch.autograd.grad(problem.loss(by_hook), (*problem.params, shift))
    by_reapplication = reapplied(problem.f, z_star + shift)
    torch.testing.assert_close(by_reapplication, by_hook, rtol=0.0, atol=0.0)
    assert by_reapplication.grad_fn is not None and by_reapplication._backward_hooks is None
    grads = torch.autograd.grad(problem.loss(by_reapplication), (*problem.params, shift))
    for got, expected in zip(grads, hook_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    plain = torch.autograd.grad(problem.loss(problem.f(z_star + shift)), problem.params)
    assert rel_error(grads[:3], plain) > 1e-2  # it is not the plain gradient
