"""Building blocks with a leading signal axis: S independent copies of a layer in one tensor."""

from __future__ import annotations

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
        weight = self.weight if weight is None else weight
        if x.shape[0] == weight.shape[0]:
            return torch.baddbmm(self.bias, x, weight)
        return torch.matmul(x, weight) + self.bias
