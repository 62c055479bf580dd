"""What every implicit neural representation returns, and the shape conventions it follows."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class INROutput:
    """One forward pass.

    Attributes:
        y: (S, N, out_dim) decoded signal values.
        z: (S, N, D) detached equilibrium state for the next warm start (None for explicit models).
        solver_steps: solver iterations spent in this pass (0 when the solver was skipped).
        residual: final relative residual ‖f(z)−z‖/‖f(z)‖ of the solve (0.0 when skipped).
    """

    y: Tensor
    z: Tensor | None = None
    solver_steps: int = 0
    residual: float = 0.0


class INR(nn.Module):
    """Base class: maps coordinates (S or 1, N, in_dim) to values (S, N, out_dim).

    ``S`` is the number of independent signals fitted at once (every parameter has a leading
    signal axis); coordinates with a leading 1 are shared by all signals. A 2-D input (N, in_dim)
    is accepted when S = 1 and gives a 2-D output.
    """

    num_signals: int
    in_dim: int
    out_dim: int
    #: Width of the equilibrium state (DEQ models) — 0 for models without one.
    state_dim: int = 0

    def forward(self, x: Tensor, z0: Tensor | None = None, solve: bool = True) -> INROutput:
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(0)
        check_coordinates(x, self.in_dim, self.num_signals)
        out = self.run(x, z0=z0, solve=solve)
        if squeeze and self.num_signals == 1:
            out.y = out.y.squeeze(0)
        return out

    def run(self, x: Tensor, z0: Tensor | None, solve: bool) -> INROutput:
        """Forward pass on a 3-D coordinate tensor (implemented by subclasses)."""
        raise NotImplementedError


def check_coordinates(x: Tensor, in_dim: int, num_signals: int) -> None:
    """Reject coordinates of the wrong shape or with non-finite values, naming the problem."""
    if x.dim() != 3 or x.shape[-1] != in_dim or x.shape[0] not in (1, num_signals):
        raise ValueError(
            f"coordinates must have shape (N, {in_dim}), (1, N, {in_dim}) or "
            f"({num_signals}, N, {in_dim}); got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("coordinates contain NaN or infinite values; check the prepared data")
