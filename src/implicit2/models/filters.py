"""Input filters g(x) of multiplicative filter networks: Fourier, Gabor and SIREN-like.

Every filter depends on the coordinates only, so a model evaluates its filters once per forward
pass and reuses them for every solver iteration. Frequencies are drawn as in ``torch.nn.Linear``
(U(±1/√in_dim)) and multiplied by ``scale`` (= input_scale/√(L+1)); phases are U(−π, π).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from implicit2.models.layers import linear, stacked, uniform


def _frequencies(rngs: list[np.random.Generator], in_dim: int, width: int, scale: float) -> Tensor:
    return uniform(rngs, 1.0 / math.sqrt(in_dim), (in_dim, width)) * scale


class FourierFilter(nn.Module):
    """g(x) = sin(Ωx + φ)."""

    def __init__(self, rngs: list[np.random.Generator], in_dim: int, width: int, scale: float):
        super().__init__()
        self.omega = nn.Parameter(_frequencies(rngs, in_dim, width, scale))
        self.phase = nn.Parameter(uniform(rngs, math.pi, (1, width)))

    def forward(self, x: Tensor) -> Tensor:
        """(S|1, N, in_dim) → (S, N, width)."""
        return torch.sin(linear(x, self.omega, self.phase))


class GaborFilter(nn.Module):
    """g(x) = sin(Ωx + φ) · exp(−½ ReLU(γ) ‖x − μ‖²), μ ~ U(−1, 1), γ ~ Gamma(α, 1), Ω rows × √γ."""

    def __init__(
        self,
        rngs: list[np.random.Generator],
        in_dim: int,
        width: int,
        scale: float,
        alpha: float,
    ):
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"gabor_alpha must be positive, got {alpha}")
        gamma = stacked([rng.gamma(alpha, 1.0, size=(1, width)) for rng in rngs])
        self.omega = nn.Parameter(_frequencies(rngs, in_dim, width, scale) * gamma.sqrt())
        self.phase = nn.Parameter(uniform(rngs, math.pi, (1, width)))
        self.mu = nn.Parameter(uniform(rngs, 1.0, (in_dim, width)))
        self.gamma = nn.Parameter(gamma)

    def forward(self, x: Tensor) -> Tensor:
        """(S|1, N, in_dim) → (S, N, width)."""
        # ‖x − μ‖² = ‖x‖² − 2 x·μ + ‖μ‖², computed with one small matmul.
        squared = x.square().sum(-1, keepdim=True) - 2 * linear(x, self.mu)
        squared = squared + self.mu.square().sum(-2, keepdim=True)
        envelope = torch.exp(-0.5 * torch.relu(self.gamma) * squared)
        return torch.sin(linear(x, self.omega, self.phase)) * envelope


class SirenFilter(nn.Module):
    """The SIREN-like layer's input term a(x) = Ux + c; the layer applies sin(Wh + b + a(x))."""

    def __init__(self, rngs: list[np.random.Generator], in_dim: int, width: int, scale: float):
        super().__init__()
        self.omega = nn.Parameter(_frequencies(rngs, in_dim, width, scale))
        self.phase = nn.Parameter(uniform(rngs, math.pi, (1, width)))

    def forward(self, x: Tensor) -> Tensor:
        """(S|1, N, in_dim) → (S, N, width): the pre-activation input term."""
        return linear(x, self.omega, self.phase)


FILTERS = ("fourier", "gabor", "siren")
