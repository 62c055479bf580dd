"""Explicit baselines of the paper: SIREN and a Gaussian Fourier-feature ReLU MLP.

Both use ``L`` hidden D×D layers, like the MFNs they are compared with:
``siren-{L}L{D}D``: x → sin(ω₀(W₀x + b₀)) → L × sin(ω₀(Wh + b)) → linear output;
``ffn-{L}L{D}D``:  x → [sin 2πBx, cos 2πBx] (D features, B ~ N(0, σ²) fixed) → L × ReLU(Wh + b)
→ linear output.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from implicit2.models.base import INR, INROutput
from implicit2.models.layers import StackedLinear, stacked


class Siren(INR):
    """SIREN (Sitzmann et al. 2020) with its init: first layer U(±1/in), hidden U(±√(6/D)/ω₀)."""

    def __init__(
        self,
        rngs: list[np.random.Generator],
        layers: int,
        width: int,
        in_dim: int,
        out_dim: int,
        omega: float = 30.0,
    ) -> None:
        super().__init__()
        self.num_signals, self.in_dim, self.out_dim = len(rngs), in_dim, out_dim
        self.omega = omega
        hidden_bound = math.sqrt(6.0 / width) / omega
        self.first = StackedLinear(rngs, in_dim, width, weight_bound=1.0 / in_dim)
        self.hidden = nn.ModuleList(
            StackedLinear(rngs, width, width, weight_bound=hidden_bound) for _ in range(layers)
        )
        self.output = StackedLinear(rngs, width, out_dim, weight_bound=hidden_bound)

    def run(self, x: Tensor, z0: Tensor | None, solve: bool) -> INROutput:
        h = torch.sin(self.omega * self.first(x))
        for layer in self.hidden:
            h = torch.sin(self.omega * layer(h))
        return INROutput(self.output(h))


class FourierFeatureMLP(INR):
    """Gaussian Fourier-feature network (Tancik et al. 2020) with a ReLU MLP."""

    projection: Tensor  # buffer: the random Fourier features' frequencies (S, in, width/2)

    def __init__(
        self,
        rngs: list[np.random.Generator],
        layers: int,
        width: int,
        in_dim: int,
        out_dim: int,
        feature_scale: float = 10.0,
    ) -> None:
        super().__init__()
        if width % 2:
            raise ValueError(f"ffn width must be even (sin and cos features), got {width}")
        self.num_signals, self.in_dim, self.out_dim = len(rngs), in_dim, out_dim
        projection = stacked([rng.normal(0.0, feature_scale, (in_dim, width // 2)) for rng in rngs])
        self.register_buffer("projection", projection * (2 * math.pi))
        self.hidden = nn.ModuleList(StackedLinear(rngs, width, width) for _ in range(layers))
        self.output = StackedLinear(rngs, width, out_dim)

    def run(self, x: Tensor, z0: Tensor | None, solve: bool) -> INROutput:
        angles = torch.matmul(x, self.projection)
        h = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return INROutput(self.output(h))
