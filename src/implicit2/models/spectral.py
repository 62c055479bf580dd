"""Spectral normalisation of stacked square weights by power iteration.

W_sn = W / max(1, σ(W)/target): a no-op for weights already below the target norm, so a layer
f(z) = g ⊙ (W z + b) with |g| ≤ 1 is a contraction with constant ≤ target. As in the authors'
code, σ is estimated with ``iterations`` power steps per *training* forward (no steps in eval),
and the gradient flows through σ with the singular vectors held fixed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from implicit2.models.layers import stacked


class SpectralNorm(nn.Module):
    """Power-iteration state (u, v per signal) for one stacked weight of shape (S, D_in, D_out)."""

    u: Tensor  # buffer: the left singular vector estimate, (S, out)
    v: Tensor  # buffer: the right singular vector estimate, (S, in)

    def __init__(
        self,
        rngs: list[np.random.Generator],
        in_features: int,
        out_features: int,
        target: float = 0.97,
        iterations: int = 5,
    ) -> None:
        super().__init__()
        if not target > 0.0:
            raise ValueError(f"spectral norm target must be positive, got {target}")
        if iterations < 1:
            raise ValueError(f"spectral norm needs at least one power iteration, got {iterations}")
        self.target = target
        self.iterations = iterations
        u = stacked([rng.standard_normal(out_features) for rng in rngs])
        v = stacked([rng.standard_normal(in_features) for rng in rngs])
        self.register_buffer("u", nn.functional.normalize(u, dim=-1))
        self.register_buffer("v", nn.functional.normalize(v, dim=-1))

    def forward(self, weight: Tensor) -> Tensor:
        """Return the normalised weight; updates (u, v) in place in training mode."""
        # weight is (S, in, out): as a map it sends v (in) to u (out) via vᵀW.
        if self.training:
            with torch.no_grad():
                u, v = self.u, self.v
                for _ in range(self.iterations):
                    v = nn.functional.normalize(
                        torch.bmm(weight, u.unsqueeze(-1)).squeeze(-1), dim=-1
                    )
                    u = nn.functional.normalize(
                        torch.bmm(v.unsqueeze(1), weight).squeeze(1), dim=-1
                    )
                self.u.copy_(u)
                self.v.copy_(v)
        sigma = torch.bmm(torch.bmm(self.v.unsqueeze(1), weight), self.u.unsqueeze(-1))
        scale = torch.clamp(sigma / self.target, min=1.0)
        return weight / scale
