"""Building blocks with a leading signal axis: S independent copies of a layer in one tensor."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor, nn


def signal_rngs(seed: int, first_signal: int, count: int) -> list[np.random.Generator]:
    """One random generator per signal, keyed by (seed, global signal index).

    Signal ``k`` gets the same initial parameters whether it is trained alone or in a batch.
    """
    return [np.random.default_rng([seed, first_signal + k]) for k in range(count)]


def stacked(draws: list[np.ndarray]) -> Tensor:
    """Stack per-signal numpy draws into one float32 tensor with a leading signal axis."""
    return torch.from_numpy(np.stack(draws).astype(np.float32))


def uniform(rngs: list[np.random.Generator], bound: float, shape: tuple[int, ...]) -> Tensor:
    """U(−bound, bound) per signal, shape (S, *shape)."""
    return stacked([rng.uniform(-bound, bound, size=shape) for rng in rngs])


#: Rows per block of a blocked product (the divisor of N nearest to this is used).
BLOCK_ROWS = 1024

#: Size (S · N · the wider side) from which a skinny product is blocked on CPU.
BLOCK_MIN_ELEMENTS = 1 << 20

#: A weight with a side this small (coordinates in, or a few outputs) makes a skinny product.
SKINNY_SIDE = 4


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x W + b with a leading signal axis: (S|1, N, k) · (S, k, D) + (S, 1, D) → (S, N, D).

    A skinny product (coordinates in: k ≤ ``SKINNY_SIDE``; or 2 to ``SKINNY_SIDE`` outputs) over
    many points is slow on CPU both ways, its weight gradient xᵀG having inner size N. Large ones
    are therefore cut into blocks of rows: a batched product whose weight gradient autograd sums
    over the blocks. Forward and backward on 2 cores, 65,536 points: a width-256 filter 28.6 →
    14.2 ms, an RGB decoder from width 256 128 → 51 ms; a one-output decoder is faster plain
    (27 vs 58 ms), so it stays plain. A narrow input also takes the bias as a column of ones (no
    separate pass over the wide output). Small products and accelerators use one plain product.
    """
    signals, points = weight.shape[0], x.shape[1]
    k, width = weight.shape[-2:]
    rows = _rows_per_block(points) if _worth_blocking(x, weight) else None
    if rows is None:
        if bias is None:
            return torch.matmul(x, weight)
        if x.shape[0] == signals:
            return torch.baddbmm(bias, x, weight)
        return torch.matmul(x, weight) + bias
    if bias is not None and k <= width:
        x = torch.cat([x, x.new_ones((*x.shape[:-1], 1))], dim=-1)
        weight, bias = torch.cat([weight, bias], dim=1), None
    blocks = x.view(x.shape[0], points // rows, rows, x.shape[-1])
    out = torch.matmul(blocks, weight.unsqueeze(1)).view(signals, points, width)
    return out if bias is None else out + bias


def _worth_blocking(x: Tensor, weight: Tensor) -> bool:
    k, width = weight.shape[-2:]
    size = weight.shape[0] * x.shape[1] * max(k, width)
    skinny = k <= SKINNY_SIDE or 2 <= width <= SKINNY_SIDE
    return x.device.type == "cpu" and skinny and size >= BLOCK_MIN_ELEMENTS


def _rows_per_block(points: int) -> int | None:
    # torch.compile traces through an lru_cache (and warns): give it the plain function.
    if torch.compiler.is_compiling():
        return _block_rows.__wrapped__(points)
    return _block_rows(points)


@functools.lru_cache(maxsize=64)
def _block_rows(points: int) -> int | None:
    """The divisor of ``points`` in [BLOCK_ROWS / 4, 4 · BLOCK_ROWS] closest to BLOCK_ROWS
    that makes at least two blocks, or None."""
    candidates = [
        rows
        for rows in range(BLOCK_ROWS // 4, 4 * BLOCK_ROWS + 1)
        if points % rows == 0 and points // rows > 1
    ]
    return min(candidates, key=lambda rows: abs(rows - BLOCK_ROWS), default=None)


class StackedLinear(nn.Module):
    """S independent affine maps: (S|1, N, in) → (S, N, out), weight stored as (S, in, out).

    Initialised like ``torch.nn.Linear`` (U(±1/√in) for weight and bias) unless
    ``weight_bound`` is given.
    """

    def __init__(
        self,
        rngs: list[np.random.Generator],
        in_features: int,
        out_features: int,
        weight_bound: float | None = None,
    ) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        weight_bound = bound if weight_bound is None else weight_bound
        self.weight = nn.Parameter(uniform(rngs, weight_bound, (in_features, out_features)))
        self.bias = nn.Parameter(uniform(rngs, bound, (1, out_features)))

    def forward(self, x: Tensor, weight: Tensor | None = None) -> Tensor:
        """Apply the map; ``weight`` overrides the stored weight (e.g. spectrally normalised)."""
        return linear(x, self.weight if weight is None else weight, self.bias)
