"""Input filters g(x) of multiplicative filter networks: Fourier, Gabor and SIREN-like.

Every filter depends on the coordinates only, so a model evaluates its filters once per forward
pass and reuses them for every solver iteration. Frequencies are drawn as in ``torch.nn.Linear``
(U(±1/√in_dim)) and multiplied by ``scale`` (= input_scale/√(L+1)); phases are U(−π, π).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from implicit2.models.layers import linear, stacked, uniform

#: From about this |argument| on (measured: fast to 9,000, 10× to 20× slower from 10,000), the CPU's
#: vectorised sine and cosine take a slow range reduction; the audio task's input scale (25,000)
#: puts most filter arguments there.
SLOW_TRIG_ARGUMENT = 8192.0

# 2π = HIGH + MID + LOW, HIGH and MID with 8 significant bits: k · HIGH and k · MID are exact
# in float32 for |k| < 2^16, so u − 2πk loses nothing but the last rounding.
_TWO_PI_HIGH = 201 / 32
_TWO_PI_MID = 253 / 2**17
_TWO_PI_LOW = 2 * math.pi - _TWO_PI_HIGH - _TWO_PI_MID


def wrapped(u: Tensor) -> Tensor:
    """u − 2πk with k = round(u / 2π): an argument within about [−π, π] with the same sine and
    cosine (within float32 rounding, ≈ 1e-7) and the same gradient (∂/∂u = 1)."""
    return _Wrap.apply(u)


class _Wrap(torch.autograd.Function):
    """:func:`wrapped` as one node whose backward passes the gradient on unchanged."""

    @staticmethod
    def forward(u: Tensor) -> Tensor:
        k = torch.round(u * (1 / (2 * math.pi)))
        reduced = torch.sub(u, k, alpha=_TWO_PI_HIGH)
        return reduced.sub_(k, alpha=_TWO_PI_MID).sub_(k, alpha=_TWO_PI_LOW)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        return None

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


def _sine(u: Tensor, wrap: bool) -> Tensor:
    """sin(u), the argument wrapped first on CPU where it can reach the slow range."""
    return torch.sin(wrapped(u) if wrap and u.device.type == "cpu" else u)


def _reaches_slow_range(in_dim: int, scale: float, gain: float = 1.0) -> bool:
    """Whether |Ωx + φ| can reach ``SLOW_TRIG_ARGUMENT`` for coordinates in [−1, 1], Ω's entries
    drawn within ±``gain`` · ``scale``/√in_dim (from the construction arguments: no tensor read)."""
    return gain * scale * math.sqrt(in_dim) + math.pi >= SLOW_TRIG_ARGUMENT


def _frequencies(rngs: list[np.random.Generator], in_dim: int, width: int, scale: float) -> Tensor:
    return uniform(rngs, 1.0 / math.sqrt(in_dim), (in_dim, width)) * scale


class FourierFilter(nn.Module):
    """g(x) = sin(Ωx + φ)."""

    def __init__(self, rngs: list[np.random.Generator], in_dim: int, width: int, scale: float):
        super().__init__()
        self.omega = nn.Parameter(_frequencies(rngs, in_dim, width, scale))
        self.phase = nn.Parameter(uniform(rngs, math.pi, (1, width)))
        self.wrap = _reaches_slow_range(in_dim, scale)

    def forward(self, x: Tensor) -> Tensor:
        """(S|1, N, in_dim) → (S, N, width)."""
        return _sine(linear(x, self.omega, self.phase), self.wrap)

    def sine_cosine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """sin and cos of the filter's argument u = Ωx + φ, without graph: :meth:`forward`'s
        value and its derivative's factor, each within float32 rounding of those of u.

        CPU only (the blocked CPU step's): numpy's vectorised sine and cosine reduce arguments up
        to about 70,000 on their fast path (no wrap needed) in less than half the time of torch's;
        the argument's buffer then holds the cosine.
        """
        if x.device.type != "cpu":
            raise ValueError(f"sine_cosine computes on CPU tensors, got one on {x.device}")
        with torch.no_grad():
            u = linear(x, self.omega, self.phase)
            sine = torch.empty_like(u)
            values = u.numpy()
            np.sin(values, out=sine.numpy())
            np.cos(values, out=values)
            return sine, u


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
        draws = [rng.gamma(alpha, 1.0, size=(1, width)) for rng in rngs]
        gamma = stacked(draws)
        self.omega = nn.Parameter(_frequencies(rngs, in_dim, width, scale) * gamma.sqrt())
        self.phase = nn.Parameter(uniform(rngs, math.pi, (1, width)))
        self.mu = nn.Parameter(uniform(rngs, 1.0, (in_dim, width)))
        self.gamma = nn.Parameter(gamma)
        self.wrap = _reaches_slow_range(in_dim, scale, math.sqrt(float(np.max(draws))))

    def forward(self, x: Tensor) -> Tensor:
        """(S|1, N, in_dim) → (S, N, width)."""
        # ‖x − μ‖² = ‖x‖² − 2 x·μ + ‖μ‖², computed with one small matmul.
        squared = x.square().sum(-1, keepdim=True) - 2 * linear(x, self.mu)
        squared = squared + self.mu.square().sum(-2, keepdim=True)
        envelope = torch.exp(-0.5 * torch.relu(self.gamma) * squared)
        return _sine(linear(x, self.omega, self.phase), self.wrap) * envelope


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
