"""The layer stack f(z, x) of a multiplicative filter network, with its decoder.

Fourier / Gabor:  h₀ = z + g₀(x),  hᵢ = gᵢ(x) ⊙ (Wᵢ hᵢ₋₁ + bᵢ),  f(z, x) = h_L
SIREN-like:       h₀ = z + sin(a₀(x)),  hᵢ = sin(Wᵢ hᵢ₋₁ + bᵢ + aᵢ(x)),  aᵢ(x) = Uᵢx + cᵢ
Decoder:          y = W_out z + b_out

``prepare(x)`` evaluates everything that depends on x and the parameters only (filters and the
spectrally normalised weights) once; ``step(z, context)`` is then one application of f, the only
work a solver iteration or an amortized training step repeats.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from implicit2.models.filters import FourierFilter, GaborFilter, SirenFilter
from implicit2.models.layers import StackedLinear
from implicit2.models.spectral import SpectralNorm

#: γ prior shape of the input filter g₀ of a Gabor network, whatever ``gabor_alpha`` says: the
#: authors' code builds g₀ without the filter options, so it takes their default α = 6 (divided by
#: L + 1 like every filter's); ``gabor_alpha`` sets the layer filters g₁ … g_L.
INPUT_FILTER_GABOR_ALPHA = 6.0


@dataclass(frozen=True)
class Context:
    """Per-forward constants of f: filter outputs (or SIREN input terms) and layer weights."""

    first: Tensor  # g₀(x): (S, N, D)
    terms: tuple[Tensor, ...]  # per layer: gᵢ(x) (Fourier/Gabor) or aᵢ(x) + bᵢ (SIREN-like)
    weights: tuple[Tensor, ...]  # per layer: (S, D, D), spectrally normalised when enabled


class MultiplicativeFilterNetwork(nn.Module):
    """f(z, x) with L layers of width D and one filter per layer plus the input filter."""

    def __init__(
        self,
        rngs: list[np.random.Generator],
        filter_type: str,
        layers: int,
        width: int,
        in_dim: int,
        out_dim: int,
        input_scale: float,
        spectral_norm: bool,
        sn_target: float = 0.97,
        sn_iterations: int = 5,
        gabor_alpha: float = 6.0,
    ) -> None:
        super().__init__()
        self.filter_type = filter_type
        scale = input_scale / math.sqrt(layers + 1)

        def make_filter(alpha: float) -> nn.Module:
            if filter_type == "fourier":
                return FourierFilter(rngs, in_dim, width, scale)
            if filter_type == "gabor":
                return GaborFilter(rngs, in_dim, width, scale, alpha / (layers + 1))
            return SirenFilter(rngs, in_dim, width, scale)

        alphas = [INPUT_FILTER_GABOR_ALPHA] + [gabor_alpha] * layers
        self.filters = nn.ModuleList(make_filter(alpha) for alpha in alphas)
        bound = 1.0 / math.sqrt(width)
        self.linears = nn.ModuleList(
            StackedLinear(rngs, width, width, weight_bound=bound) for _ in range(layers)
        )
        self.norms = nn.ModuleList(
            SpectralNorm(rngs, width, width, sn_target, sn_iterations)
            for _ in range(layers if spectral_norm else 0)
        )
        self.output = StackedLinear(rngs, width, out_dim)
        self._shared: tuple[Tensor, ...] | None = None  # see shared_weights

    def prepare(self, x: Tensor) -> Context:
        """Evaluate the filters and the (normalised) weights for coordinates x (S|1, N, in_dim)."""
        return self._context(x, self.layer_weights())

    def _context(self, x: Tensor, weights: tuple[Tensor, ...]) -> Context:
        raw = [f(x) for f in self.filters]
        linears = cast("list[StackedLinear]", self.linears)  # typed views, no copies
        if self.filter_type == "siren":
            first = torch.sin(raw[0])
            terms = tuple(a + linear.bias for a, linear in zip(raw[1:], linears, strict=True))
        else:
            first = raw[0]
            terms = tuple(raw[1:])
        return Context(first=first, terms=terms, weights=weights)

    def weights(self) -> tuple[Tensor, ...]:
        """The layer weights (S, D, D), spectrally normalised when enabled (in training mode a
        call advances the power iteration)."""
        linears = cast("list[StackedLinear]", self.linears)
        norms = cast("list[SpectralNorm]", self.norms)
        if norms:
            return tuple(norm(lin.weight) for lin, norm in zip(linears, norms, strict=True))
        return tuple(linear.weight for linear in linears)

    def layer_weights(self) -> tuple[Tensor, ...]:
        """The weights :meth:`prepare` uses: those of :meth:`shared_weights` within its block,
        else :meth:`weights`."""
        return self._shared if self._shared is not None else self.weights()

    @contextlib.contextmanager
    def shared_weights(self) -> Iterator[tuple[Tensor, ...]]:
        """Within the block, every :meth:`prepare` reuses one evaluation of the weights.

        For a step cut into blocks of points: the spectral norm runs its power iteration once,
        as for the whole batch. Its weights enter each block's graph as the leaves this yields;
        the gradients left in their ``grad`` flow back through the normalisation once, on
        leaving the block. Without spectral norm the weights are the parameters themselves:
        nothing changes and no leaves are yielded.
        """
        if not self.norms:
            yield ()
            return
        weights = self.weights()
        leaves = tuple(w.detach().requires_grad_(w.requires_grad) for w in weights)
        self._shared = leaves
        try:
            yield leaves
        finally:
            self._shared = None
        pairs = [(w, leaf.grad) for w, leaf in zip(weights, leaves, strict=True)]
        pairs = [(w, g) for w, g in pairs if g is not None]
        if pairs:
            torch.autograd.backward([w for w, _ in pairs], [g for _, g in pairs])

    def step(self, z: Tensor | None, context: Context) -> Tensor:
        """One application f(z, x); ``z=None`` means z = 0 (the explicit network)."""
        return self.layers(self.enter(z, context), context)

    def enter(self, z: Tensor | None, context: Context) -> Tensor:
        """h₀ = z + g₀(x) (SIREN-like: z + sin(a₀(x))); ``z=None`` means z = 0.

        ∂h₀/∂z = I, so the Jacobian of f with respect to z equals that of :meth:`layers` with
        respect to h₀ (DEQ backward passes differentiate with respect to h₀).
        """
        return context.first if z is None else z + context.first

    def layers(self, h: Tensor, context: Context) -> Tensor:
        """h₀ → h_L through the L filtered (or sine) layers."""
        if self.filter_type == "siren":
            for term, weight in zip(context.terms, context.weights, strict=True):
                h = torch.sin(torch.baddbmm(term, h, weight))
            return h
        linears = cast("list[StackedLinear]", self.linears)
        for term, weight, linear in zip(context.terms, context.weights, linears, strict=True):
            h = term * torch.baddbmm(linear.bias, h, weight)
        return h

    def solver_map(self, context: Context) -> Callable[[Tensor], Tensor]:
        """f for a solver's iterations (no gradient): z ↦ f(z, x) with the first layer's
        z-independent part, g₀(x)·W₁ + b₁ (SIREN-like: sin(a₀(x))·W₁ + a₁(x) + b₁), summed once
        for the whole solve instead of adding g₀(x) to z every iteration, and each layer's
        product or sine taken in place. Equal to :meth:`step` up to rounding."""
        with torch.no_grad():  # a constant of the solve: no graph, nothing kept for backward
            entry = self._entry(context)
        return self._iteration(entry, context.terms, context.weights)

    def blocked_solver_map(self, x: Tensor, rows: int) -> Callable[[Tensor], Tensor]:
        """:meth:`solver_map` of :meth:`prepare` (x), its constants computed ``rows`` points at a
        time (no gradient): the whole batch holds each layer's filter term and the first layer's
        entry, never g₀(x) nor a whole-batch filter's temporaries. Equal to :meth:`solver_map`
        up to rounding (the filters' products may be cut differently)."""
        weights = self.layer_weights()
        points = x.shape[1]
        entry: Tensor | None = None
        terms: list[Tensor] = []
        with torch.no_grad():
            for first in range(0, points, rows):
                block = slice(first, min(first + rows, points))
                context = self._context(x[:, block], weights)
                part = self._entry(context)
                if entry is None:
                    entry = part.new_empty((part.shape[0], points, part.shape[2]))
                    terms = [t.new_empty((t.shape[0], points, t.shape[2])) for t in context.terms]
                entry[:, block] = part
                for whole, term in zip(terms, context.terms, strict=True):
                    whole[:, block] = term
        if entry is None:
            raise ValueError("blocked_solver_map needs at least one point")
        return self._iteration(entry, tuple(terms), weights)

    def _entry(self, context: Context) -> Tensor:
        """The first layer's z-independent part: g₀(x)·W₁ + b₁ (SIREN-like: + a₁(x))."""
        linears = cast("list[StackedLinear]", self.linears)
        first_bias = context.terms[0] if self.filter_type == "siren" else linears[0].bias
        return torch.baddbmm(first_bias, context.first, context.weights[0])

    def _iteration(
        self, entry: Tensor, terms: tuple[Tensor, ...], weights: tuple[Tensor, ...]
    ) -> Callable[[Tensor], Tensor]:
        linears = cast("list[StackedLinear]", self.linears)
        siren = self.filter_type == "siren"

        def apply(z: Tensor) -> Tensor:
            h = torch.baddbmm(entry, z, weights[0])
            h = h.sin_() if siren else h.mul_(terms[0])
            for term, weight, linear in zip(terms[1:], weights[1:], linears[1:], strict=True):
                if siren:
                    h = torch.baddbmm(term, h, weight).sin_()
                else:
                    h = torch.baddbmm(linear.bias, h, weight).mul_(term)
            return h

        return apply

    def decode(self, z: Tensor) -> Tensor:
        """y = W_out z + b_out."""
        return self.output(z)
