"""Model names → modules. The name is the spec:
``deq-{filter}-{L}L{D}D``, ``mfn-{filter}-{L}L{D}D``, ``siren-{L}L{D}D``, ``ffn-{L}L{D}D``,
with filter ∈ {fourier, gabor, siren}.
"""

from __future__ import annotations

from implicit2.models.base import INR
from implicit2.models.baselines import FourierFeatureMLP, Siren
from implicit2.models.deq import DEQINR, ExplicitMFN
from implicit2.models.filters import FILTERS
from implicit2.models.layers import signal_rngs
from implicit2.models.mfn import MultiplicativeFilterNetwork
from implicit2.names import parse_model_name


def build_model(
    name: str,
    in_dim: int,
    out_dim: int,
    *,
    num_signals: int = 1,
    seed: int = 0,
    first_signal: int = 0,
    input_scale: float = 256.0,
    spectral_norm: bool = False,
    sn_target: float = 0.97,
    sn_iterations: int = 5,
    gabor_alpha: float = 6.0,
    solver: str = "fixed_point",
    tol: float = 1e-3,
    eval_tol: float = 1e-3,
    max_iter: int = 100,
    gradient: str = "onestep",
    unroll_steps: int = 1,
    siren_omega: float = 30.0,
    ffn_scale: float = 10.0,
) -> INR:
    """Build the model that ``name`` describes.

    Args:
        name: model name (grammar: :mod:`implicit2.names`).
        in_dim: coordinate dimension (2 for images, 1 audio, 3 video and occupancy).
        out_dim: signal channels.
        num_signals: S independent signals fitted at once (parameters get a leading axis S).
        seed: initialisation seed; signal k is initialised from (seed, first_signal + k), so a
            signal gets the same initial parameters alone or in a batch.
        first_signal: global index of the first signal of this batch.
        input_scale: filter frequency scale (the filters use input_scale/√(L+1)).
        spectral_norm: normalise every Wᵢ to ``sn_target`` (makes f a contraction).
        gabor_alpha: Gabor γ ~ Gamma(gabor_alpha/(L+1), 1).
        solver, tol, eval_tol, max_iter: DEQ fixed-point solve (training / evaluation tolerance).
        gradient, unroll_steps: DEQ backward ("onestep", "ift" or "unrolled").
        siren_omega, ffn_scale: baseline hyper-parameters (ω₀, Fourier-feature σ).
    """
    spec = parse_model_name(name)
    for label, value in (("in_dim", in_dim), ("out_dim", out_dim), ("num_signals", num_signals)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    rngs = signal_rngs(seed, first_signal, num_signals)
    if spec.family == "siren":
        return Siren(rngs, spec.layers, spec.width, in_dim, out_dim, omega=siren_omega)
    if spec.family == "ffn":
        return FourierFeatureMLP(rngs, spec.layers, spec.width, in_dim, out_dim, ffn_scale)
    core = MultiplicativeFilterNetwork(
        rngs,
        spec.filter or FILTERS[0],
        spec.layers,
        spec.width,
        in_dim,
        out_dim,
        input_scale,
        spectral_norm,
        sn_target,
        sn_iterations,
        gabor_alpha,
    )
    if spec.family == "mfn":
        return ExplicitMFN(core, num_signals, in_dim, out_dim)
    return DEQINR(
        core,
        num_signals,
        in_dim,
        out_dim,
        spec.width,
        solver=solver,
        tol=tol,
        eval_tol=eval_tol,
        max_iter=max_iter,
        gradient=gradient,
        unroll_steps=unroll_steps,
    )


def count_parameters(name: str, in_dim: int, out_dim: int) -> int:
    """Trainable parameters of one signal's model, by formula (d = in_dim, o = out_dim).

    MFN (deq/mfn, Fourier or SIREN-like): (L+1)(dD + D) + L(D² + D) + (Do + o);
    Gabor adds μ (dD) and γ (D) per filter: (L+1)(2dD + 2D) + L(D² + D) + (Do + o);
    siren: (dD + D) + L(D² + D) + (Do + o);  ffn: L(D² + D) + (Do + o) (features are fixed).
    """
    family, filter_type, layers, width = parse_model_name(name)
    hidden = layers * (width * width + width) + width * out_dim + out_dim
    if family == "ffn":
        return hidden
    if family == "siren":
        return in_dim * width + width + hidden
    per_filter = in_dim * width + width
    if filter_type == "gabor":
        per_filter *= 2
    return (layers + 1) * per_filter + hidden
