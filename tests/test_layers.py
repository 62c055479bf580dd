"""`layers.linear`: the blocked CPU form of skinny products equals the plain product."""

from __future__ import annotations

import pytest
import torch

from implicit2.models import layers


def plain(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    out = torch.matmul(x, weight)
    return out if bias is None else out + bias


CASES = [
    # (coordinate signals, signals, points, k, D, bias, blocked)
    (1, 1, 4096, 3, 16, True, True),  # a filter: narrow input, bias folded in
    (1, 3, 2048, 2, 16, True, True),  # shared coordinates, several signals
    (3, 3, 1536, 3, 16, True, True),  # per-signal coordinates
    (2, 2, 2048, 16, 3, True, True),  # an RGB decoder: wide input, three outputs
    (2, 2, 2048, 16, 1, True, False),  # one output: faster plain
    (1, 2, 2048, 2, 16, False, True),  # no bias (the Gabor centres)
    (1, 2, 1031, 2, 16, True, False),  # N prime: no blocks
    (2, 2, 2048, 16, 16, True, False),  # not skinny: one product per signal
]


@pytest.mark.parametrize(("xs", "signals", "points", "k", "width", "with_bias", "blocked"), CASES)
def test_linear_matches_the_plain_product(
    monkeypatch, xs, signals, points, k, width, with_bias, blocked
):
    monkeypatch.setattr(layers, "BLOCK_MIN_ELEMENTS", 0)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(xs, points, k, generator=gen, dtype=torch.float64) * 2 - 1
    weight = torch.randn(signals, k, width, generator=gen, dtype=torch.float64)
    bias = torch.randn(signals, 1, width, generator=gen, dtype=torch.float64)
    params = [weight.requires_grad_()] + ([bias.requires_grad_()] if with_bias else [])
    assert layers._worth_blocking(x, weight) == (k <= 4 or 2 <= width <= 4)
    assert (layers._block_rows(points) is not None and layers._worth_blocking(x, weight)) is blocked
    upstream = torch.randn(signals, points, width, generator=gen, dtype=torch.float64)
    results = []
    for product in (layers.linear, plain):
        out = product(x, weight, bias if with_bias else None)
        results.append((out, *torch.autograd.grad(out, params, upstream)))
    for got, expected in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_small_products_and_accelerator_tensors_are_not_blocked():
    x, weight = torch.zeros(1, 4096, 2), torch.zeros(1, 2, 64)
    assert not layers._worth_blocking(x, weight)  # 262,144 < 2^20 elements
    assert layers._worth_blocking(torch.zeros(1, 65536, 2), torch.zeros(1, 2, 64))
    assert not layers._worth_blocking(torch.zeros(1, 65536, 256), torch.zeros(1, 256, 256))


def test_block_rows_are_divisors_near_the_target():
    assert layers._block_rows(65536) == layers.BLOCK_ROWS
    assert layers._block_rows(3 * 1000) == 1000
    assert layers._block_rows(512) == 256
    assert layers._block_rows(1031) is None  # prime
    assert layers._block_rows(300) is None  # one block would not help
