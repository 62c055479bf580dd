"""The filters' coordinate product x Ω + φ: the blocked CPU form equals the plain one."""

from __future__ import annotations

import pytest
import torch

from implicit2.models import filters


def plain_affine(x: torch.Tensor, omega: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x, omega) + phase


@pytest.mark.parametrize(
    ("coord_signals", "signals", "points", "blocked"),
    [(1, 1, 4096, True), (1, 3, 2048, True), (3, 3, 1536, True), (1, 2, 1031, False)],
)
def test_blocked_affine_matches_the_plain_product(
    monkeypatch, coord_signals: int, signals: int, points: int, blocked: bool
):
    monkeypatch.setattr(filters, "BLOCK_MIN_ELEMENTS", 0)
    assert (filters._block_rows(points) is not None) is blocked  # 1031 is prime
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(coord_signals, points, 3, generator=gen, dtype=torch.float64) * 2 - 1
    omega = torch.randn(signals, 3, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    phase = torch.randn(signals, 1, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(signals, points, 16, generator=gen, dtype=torch.float64)
    results = []
    for affine in (filters._affine, plain_affine):
        out = affine(x, omega, phase)
        (grad_omega, grad_phase) = torch.autograd.grad(out, (omega, phase), upstream)
        results.append((out, grad_omega, grad_phase))
    for got, expected in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_block_rows_are_divisors_near_the_target():
    assert filters._block_rows(65536) == filters.BLOCK_ROWS
    assert filters._block_rows(3 * 1000) == 1000
    assert filters._block_rows(1031) is None  # prime: no blocks
    assert filters._block_rows(512) == 256
    assert filters._block_rows(300) is None  # a single block would not help
