"""Model formulas against independent reference computations.

Spectral normalisation (σ of the normalised weight), the Fourier / Gabor / SIREN-like filters,
the SIREN and Fourier-feature baselines, and the MFN layer step are each recomputed here in
float64 from the modules' own parameters (per signal, with plain loops and broadcasting) and
compared with what the modules return. Initialisations are rebuilt from the same numpy seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from implicit2.models.baselines import FourierFeatureMLP, Siren
from implicit2.models.filters import FourierFilter, GaborFilter, SirenFilter
from implicit2.models.layers import signal_rngs
from implicit2.models.mfn import MultiplicativeFilterNetwork
from implicit2.models.spectral import SpectralNorm
from implicit2.models.zoo import build_model

SIGNALS, POINTS, IN_DIM, WIDTH, OUT_DIM, LAYERS = 2, 48, 2, 8, 3, 2
SEED = 7
ATOL = 1e-10


def coordinates(leading: int, seed: int = 0) -> Tensor:
    """Float64 coordinates in [−1, 1]: (leading, POINTS, IN_DIM)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(leading, POINTS, IN_DIM, generator=gen, dtype=torch.float64) * 2 - 1


def signal_x(x: Tensor, s: int) -> Tensor:
    """The (N, in_dim) coordinates of signal s (shared when the leading axis is 1)."""
    return x[0] if x.shape[0] == 1 else x[s]


def with_singular_values(values: list[float], seed: int) -> Tensor:
    """A random (D, D) float64 matrix with the given singular values (descending)."""
    gen = torch.Generator().manual_seed(seed)
    size = len(values)
    left, _ = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    right, _ = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    return left @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ right.T


def sigma(weight: Tensor) -> Tensor:
    """True largest singular value of each stacked (in, out) weight: (S,)."""
    return torch.linalg.matrix_norm(weight, ord=2)


# ---------------------------------------------------------------- spectral normalisation


def spectral_norm(target: float = 0.97) -> SpectralNorm:
    return SpectralNorm(signal_rngs(SEED, 0, SIGNALS), WIDTH, WIDTH, target=target).double()


def test_spectral_norm_brings_sigma_to_the_target_and_leaves_small_weights_alone() -> None:
    """Signal 0 (σ = 3) is scaled to σ = target; signal 1 (σ = 0.5) is returned unchanged."""
    big = with_singular_values([3.0, 1.5, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1], seed=1)
    small = with_singular_values([0.5, 0.4, 0.3, 0.3, 0.2, 0.1, 0.1, 0.05], seed=2)
    weight = torch.stack([big, small])
    norm = spectral_norm().train()
    for _ in range(20):  # 100 power iterations
        normalised = norm(weight)
    true = sigma(normalised)
    assert torch.allclose(true[0], torch.tensor(0.97, dtype=torch.float64), atol=1e-8)
    assert torch.equal(normalised[1], small)
    # The estimate vᵀWu is the true σ, and (v, u) are its left/right singular vectors.
    estimate = torch.einsum("si,sio,so->s", norm.v, weight, norm.u)
    assert torch.allclose(estimate, sigma(weight), atol=1e-8)
    left, _, right_t = torch.linalg.svd(weight)
    for s in range(SIGNALS):
        assert abs(float(norm.v[s] @ left[s, :, 0])) == pytest.approx(1.0, abs=1e-8)
        assert abs(float(norm.u[s] @ right_t[s, 0])) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("target", [0.97, 0.5])
def test_spectral_norm_bounds_random_weights_by_the_target(target: float) -> None:
    """Gaussian weights (σ well above target) end at σ ≤ target after enough power iterations."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(SIGNALS, WIDTH, WIDTH, generator=gen, dtype=torch.float64)
    assert (sigma(weight) > 2 * target).all()
    norm = spectral_norm(target).train()
    for _ in range(100):
        normalised = norm(weight)
    assert (sigma(normalised) <= target * (1 + 1e-6)).all()
    assert torch.allclose(sigma(normalised), torch.full((SIGNALS,), target).double(), rtol=1e-4)


def test_spectral_norm_eval_mode_keeps_u_v_and_uses_them() -> None:
    """Eval forwards do no power iteration: (u, v) stay, W / max(1, vᵀWu/target) is returned."""
    gen = torch.Generator().manual_seed(4)
    weight = torch.randn(SIGNALS, WIDTH, WIDTH, generator=gen, dtype=torch.float64)
    norm = spectral_norm().eval()
    u, v = norm.u.clone(), norm.v.clone()
    out = norm(weight)
    assert torch.equal(norm.u, u) and torch.equal(norm.v, v)
    estimate = torch.einsum("si,sio,so->s", v, weight, u)
    expected = weight / torch.clamp(estimate / 0.97, min=1.0)[:, None, None]
    assert torch.allclose(out, expected, atol=ATOL)
    norm.train()(weight)
    assert not torch.allclose(norm.u, u)  # training forwards do move them


# ---------------------------------------------------------------- filters


def fourier_reference(x: Tensor, omega: Tensor, phase: Tensor) -> Tensor:
    """sin(x Ω + φ) for one signal, as an explicit sum over the input dimensions."""
    pre = phase.expand(x.shape[0], -1).clone()
    for d in range(x.shape[1]):
        pre = pre + x[:, d : d + 1] * omega[d]
    return torch.sin(pre)


def gabor_reference(x: Tensor, omega: Tensor, phase: Tensor, mu: Tensor, gamma: Tensor) -> Tensor:
    """sin(xΩ + φ) · exp(−½ ReLU(γ) ‖x − μ‖²) for one signal (μ columns are the centres)."""
    distance2 = (x[:, :, None] - mu[None, :, :]).square().sum(1)  # (N, width)
    return fourier_reference(x, omega, phase) * torch.exp(-0.5 * gamma.clamp(min=0) * distance2)


def siren_term_reference(x: Tensor, omega: Tensor, phase: Tensor) -> Tensor:
    """a(x) = x U + c for one signal (no sine)."""
    return torch.einsum("nd,dw->nw", x, omega) + phase


def filter_reference(module: torch.nn.Module, x: Tensor, s: int) -> Tensor:
    """Reference output of signal s of any filter module, from its parameters."""
    xs = signal_x(x, s)
    if isinstance(module, GaborFilter):
        return gabor_reference(xs, module.omega[s], module.phase[s], module.mu[s], module.gamma[s])
    if isinstance(module, FourierFilter):
        return fourier_reference(xs, module.omega[s], module.phase[s])
    return siren_term_reference(xs, module.omega[s], module.phase[s])


def make_filter(kind: str, scale: float = 10.0, alpha: float = 2.0) -> torch.nn.Module:
    rngs = signal_rngs(SEED, 0, SIGNALS)
    if kind == "fourier":
        return FourierFilter(rngs, IN_DIM, WIDTH, scale)
    if kind == "gabor":
        return GaborFilter(rngs, IN_DIM, WIDTH, scale, alpha)
    return SirenFilter(rngs, IN_DIM, WIDTH, scale)


@pytest.mark.parametrize("leading", [1, SIGNALS])
@pytest.mark.parametrize("kind", ["fourier", "gabor", "siren"])
def test_filter_outputs_match_their_formulas(kind: str, leading: int) -> None:
    """Each signal's filter output equals the formula evaluated on its own parameters."""
    module = make_filter(kind).double()
    x = coordinates(leading)
    out = module(x)
    assert out.shape == (SIGNALS, POINTS, WIDTH)
    for s in range(SIGNALS):
        assert torch.allclose(out[s], filter_reference(module, x, s), atol=ATOL)
    assert not torch.allclose(out[0], out[1])  # the two signals have different filters


def test_gabor_envelope_uses_relu_of_gamma() -> None:
    """A negative γ gives envelope 1 (ReLU), a positive one decays with ‖x − μ‖²."""
    module = make_filter("gabor").double()
    with torch.no_grad():
        module.gamma[0, 0, : WIDTH // 2] = -torch.linspace(0.5, 3.0, WIDTH // 2)
    x = coordinates(1)
    out = module(x)
    for s in range(SIGNALS):
        assert torch.allclose(out[s], filter_reference(module, x, s), atol=ATOL)
    carrier = fourier_reference(x[0], module.omega[0], module.phase[0])
    assert torch.allclose(out[0, :, : WIDTH // 2], carrier[:, : WIDTH // 2], atol=ATOL)
    assert (out[0, :, WIDTH // 2 :].abs() <= carrier[:, WIDTH // 2 :].abs() + ATOL).all()


def expected_filter_init(kind: str, s: int, scale: float, alpha: float) -> dict[str, np.ndarray]:
    """Rebuild signal s's filter parameters from its numpy generator (seed, s), in draw order."""
    rng = np.random.default_rng([SEED, s])
    params: dict[str, np.ndarray] = {}
    gamma = rng.gamma(alpha, 1.0, size=(1, WIDTH)) if kind == "gabor" else None
    bound = 1.0 / math.sqrt(IN_DIM)
    params["omega"] = rng.uniform(-bound, bound, size=(IN_DIM, WIDTH)) * scale
    params["phase"] = rng.uniform(-math.pi, math.pi, size=(1, WIDTH))
    if gamma is not None:
        params["omega"] = params["omega"] * np.sqrt(gamma)
        params["mu"] = rng.uniform(-1.0, 1.0, size=(IN_DIM, WIDTH))
        params["gamma"] = gamma
    return params


@pytest.mark.parametrize("kind", ["fourier", "gabor", "siren"])
def test_filter_initialisation_follows_the_documented_distributions(kind: str) -> None:
    """Ω = U(±1/√in)·scale (Gabor: columns × √γ, γ ~ Gamma(α, 1)), φ ~ U(±π), μ ~ U(±1)."""
    scale, alpha = 10.0, 0.5  # α < 1: many γ ≪ 1, so a missing √γ shows clearly
    module = make_filter(kind, scale=scale, alpha=alpha)
    for s in range(SIGNALS):
        expected = expected_filter_init(kind, s, scale, alpha)
        for name, value in expected.items():
            actual = getattr(module, name)[s].detach().double().numpy()
            np.testing.assert_allclose(actual, value, rtol=1e-5, atol=1e-6, err_msg=name)
    if kind == "gabor":  # Ω/√γ is back inside the plain frequency bound
        ratio = module.omega.detach() / module.gamma.detach().sqrt()
        assert (ratio.abs() <= scale / math.sqrt(IN_DIM) * (1 + 1e-5)).all()


# ---------------------------------------------------------------- baselines


def affine(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """h W + b for one signal, written as an einsum."""
    return torch.einsum("ni,io->no", h, weight) + bias


@pytest.mark.parametrize("leading", [1, SIGNALS])
def test_siren_forward_matches_its_formula(leading: int) -> None:
    """y = W_out h_L + b_out, h₀ = sin(ω₀(W₀x + b₀)), hᵢ = sin(ω₀(Wᵢh + bᵢ))."""
    omega = 30.0
    model = build_model(
        f"siren-{LAYERS}L{WIDTH}D", IN_DIM, OUT_DIM, num_signals=SIGNALS, siren_omega=omega
    ).double()
    assert isinstance(model, Siren)
    x = coordinates(leading)
    y = model(x).y
    for s in range(SIGNALS):
        h = torch.sin(omega * affine(signal_x(x, s), model.first.weight[s], model.first.bias[s]))
        for layer in model.hidden:
            h = torch.sin(omega * affine(h, layer.weight[s], layer.bias[s]))
        expected = affine(h, model.output.weight[s], model.output.bias[s])
        assert torch.allclose(y[s], expected, atol=ATOL)


def test_siren_initialisation_bounds() -> None:
    """First layer U(±1/in), hidden and output U(±√(6/D)/ω₀), each bound nearly reached."""
    omega = 30.0
    model = build_model(f"siren-{LAYERS}L{WIDTH}D", IN_DIM, OUT_DIM, num_signals=SIGNALS)
    hidden_bound = math.sqrt(6.0 / WIDTH) / omega
    first = model.first.weight.detach().abs().max().item()
    assert 0.5 / IN_DIM < first <= 1.0 / IN_DIM
    for layer in [*model.hidden, model.output]:
        largest = layer.weight.detach().abs().max().item()
        assert 0.5 * hidden_bound < largest <= hidden_bound


@pytest.mark.parametrize("leading", [1, SIGNALS])
def test_fourier_feature_mlp_forward_matches_its_formula(leading: int) -> None:
    """y = W_out h_L + b_out, h₀ = [sin 2πxB, cos 2πxB], hᵢ = ReLU(Wᵢh + bᵢ)."""
    model = build_model(
        f"ffn-{LAYERS}L{WIDTH}D", IN_DIM, OUT_DIM, num_signals=SIGNALS, ffn_scale=3.0
    ).double()
    assert isinstance(model, FourierFeatureMLP)
    x = coordinates(leading)
    y = model(x).y
    for s in range(SIGNALS):
        angles = torch.einsum("nd,dw->nw", signal_x(x, s), model.projection[s])
        h = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        pre_activations = []
        for layer in model.hidden:
            pre = affine(h, layer.weight[s], layer.bias[s])
            pre_activations.append(pre)
            h = pre.clamp(min=0)
        expected = affine(h, model.output.weight[s], model.output.bias[s])
        assert torch.allclose(y[s], expected, atol=ATOL)
        assert all((pre < 0).any() and (pre > 0).any() for pre in pre_activations)


def test_fourier_feature_projection_is_two_pi_gaussian() -> None:
    """The fixed projection is 2π·B with B ~ N(0, σ²), drawn first from each signal's rng."""
    feature_scale = 3.0
    model = build_model(
        f"ffn-{LAYERS}L{WIDTH}D",
        IN_DIM,
        OUT_DIM,
        num_signals=SIGNALS,
        seed=SEED,
        ffn_scale=feature_scale,
    )
    assert "projection" not in dict(model.named_parameters())  # fixed, not trained
    for s in range(SIGNALS):
        rng = np.random.default_rng([SEED, s])
        b = rng.normal(0.0, feature_scale, (IN_DIM, WIDTH // 2))
        np.testing.assert_allclose(model.projection[s].double().numpy(), 2 * math.pi * b, rtol=1e-6)


# ---------------------------------------------------------------- MFN layer step


def mfn(filter_type: str, spectral_norm_on: bool = False) -> MultiplicativeFilterNetwork:
    return MultiplicativeFilterNetwork(
        signal_rngs(SEED, 0, SIGNALS),
        filter_type,
        LAYERS,
        WIDTH,
        IN_DIM,
        OUT_DIM,
        input_scale=10.0,
        spectral_norm=spectral_norm_on,
    ).double()


def mfn_reference(
    core: MultiplicativeFilterNetwork, x: Tensor, z: Tensor | None, s: int, weights: list[Tensor]
) -> Tensor:
    """f(z, x) for signal s from its parameters, with the given layer weights Wᵢ."""
    g = [filter_reference(f, x, s) for f in core.filters]
    zs = 0.0 if z is None else z[s]
    if core.filter_type == "siren":
        h = zs + torch.sin(g[0])
        for a, weight, linear in zip(g[1:], weights, core.linears, strict=True):
            h = torch.sin(affine(h, weight, linear.bias[s]) + a)
        return h
    h = zs + g[0]
    for gi, weight, linear in zip(g[1:], weights, core.linears, strict=True):
        h = gi * affine(h, weight, linear.bias[s])
    return h


@pytest.mark.parametrize("leading", [1, SIGNALS])
@pytest.mark.parametrize("filter_type", ["fourier", "gabor", "siren"])
def test_mfn_step_and_decode_match_the_formulas(filter_type: str, leading: int) -> None:
    """step(z) = f(z, x), step(None) = f(0, x), enter/layers and solver_map compose it, decode =
    W_out z + b."""
    core = mfn(filter_type)
    x = coordinates(leading)
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(SIGNALS, POINTS, WIDTH, generator=gen, dtype=torch.float64)
    context = core.prepare(x)
    assert not torch.allclose(core.linears[0].weight[0], core.linears[0].weight[1])
    for s in range(SIGNALS):
        weights = [linear.weight[s] for linear in core.linears]
        expected = mfn_reference(core, x, z, s, weights)
        assert torch.allclose(core.step(z, context)[s], expected, atol=ATOL)
        layered = core.layers(core.enter(z, context), context)[s]
        assert torch.allclose(layered, expected, atol=ATOL)
        with torch.no_grad():  # a solver's f: the first layer's constant part summed once
            assert torch.allclose(core.solver_map(context)(z)[s], expected, atol=ATOL)
        from_zero = mfn_reference(core, x, None, s, weights)
        assert torch.allclose(core.step(None, context)[s], from_zero, atol=ATOL)
        decoded = affine(z[s], core.output.weight[s], core.output.bias[s])
        assert torch.allclose(core.decode(z)[s], decoded, atol=ATOL)
    # z enters: a different state gives a different f(z, x).
    assert not torch.allclose(core.step(z, context), core.step(None, context))


@pytest.mark.parametrize("filter_type", ["fourier", "siren"])
def test_mfn_step_uses_the_spectrally_normalised_weights(filter_type: str) -> None:
    """With spectral norm, f uses Wᵢ / max(1, vᵀWᵢu / 0.97) from the (eval-mode) u, v."""
    core = mfn(filter_type, spectral_norm_on=True)
    with torch.no_grad():
        for linear in core.linears:
            linear.weight.mul_(4.0)  # σ well above the target
    x = coordinates(1)
    for _ in range(10):  # training-mode forwards run the power iterations
        core.train().prepare(x)
    core.eval()
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(SIGNALS, POINTS, WIDTH, generator=gen, dtype=torch.float64)
    out = core.step(z, core.prepare(x))
    for s in range(SIGNALS):
        weights = []
        for linear, norm in zip(core.linears, core.norms, strict=True):
            estimate = norm.v[s] @ linear.weight[s] @ norm.u[s]
            assert estimate > 0.97
            weights.append(linear.weight[s] * 0.97 / estimate)
        assert torch.allclose(out[s], mfn_reference(core, x, z, s, weights), atol=ATOL)


def test_explicit_mfn_forward_decodes_one_application_from_zero() -> None:
    """build_model('mfn-…') returns y = W_out f(0, x) + b_out per signal."""
    model = build_model(
        f"mfn-gabor-{LAYERS}L{WIDTH}D", IN_DIM, OUT_DIM, num_signals=SIGNALS, input_scale=10.0
    ).double()
    x = coordinates(SIGNALS)
    y = model(x).y
    core = model.core
    for s in range(SIGNALS):
        h = mfn_reference(core, x, None, s, [linear.weight[s] for linear in core.linears])
        expected = affine(h, core.output.weight[s], core.output.bias[s])
        assert torch.allclose(y[s], expected, atol=ATOL)
