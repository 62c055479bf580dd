"""The models of `implicit2.models`: names, shapes, fixed points, gradients and parameter counts."""

from __future__ import annotations

import pytest
import torch

from implicit2.deq.solvers import SOLVERS
from implicit2.models import build_model, count_parameters
from implicit2.models.deq import DEQINR, ExplicitMFN
from implicit2.training.profiling import SavedTensorMeter

FILTERS = ("fourier", "gabor", "siren")


def coords(n: int, in_dim: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((1, n, in_dim), generator=generator) * 2 - 1


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("filter_type", FILTERS)
def test_every_solver_reaches_tol_on_spectrally_normalised_models(
    solver: str, filter_type: str
) -> None:
    model = build_model(
        f"deq-{filter_type}-1L32D",
        2,
        1,
        num_signals=2,
        input_scale=32.0,
        spectral_norm=True,
        solver=solver,
        eval_tol=1e-5,
        max_iter=200,
    ).eval()
    with torch.no_grad():
        out = model(coords(512))
        context = model.core.prepare(coords(512))
        z = out.z
        residual = (model.core.step(z, context) - z).norm() / model.core.step(z, context).norm()
    assert 0 < out.solver_steps < 200
    assert out.residual < 1e-5
    # The state handed back is z_next = f(z*), itself (nearly) a fixed point.
    assert residual < 1e-4


def small_contraction(gradient: str, **options: object) -> DEQINR:
    """A float64 DEQ whose hidden weights are shrunk so that f is a contraction (no SN)."""
    model = build_model(
        "deq-fourier-1L8D",
        2,
        1,
        input_scale=4.0,
        gradient=gradient,
        tol=1e-13,
        eval_tol=1e-13,
        max_iter=500,
        **options,
    ).double()
    with torch.no_grad():
        for linear in model.core.linears:
            linear.weight.mul_(0.5)
    assert isinstance(model, DEQINR)
    return model


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value - reference).norm() / reference.norm())


def loss_of(model: DEQINR, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (model(x).y * weights).sum()


def flat_grad(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def test_implicit_gradient_matches_finite_differences_and_long_unrolling() -> None:
    x = coords(64).double()
    weights = torch.randn((1, 64, 1), generator=torch.Generator().manual_seed(1)).double()
    model = small_contraction("ift")
    model.zero_grad()
    loss_of(model, x, weights).backward()
    ift = flat_grad(model)

    params = list(model.parameters())
    step = 1e-6
    with torch.no_grad():
        finite = []
        for param in params:
            for index in range(min(param.numel(), 6)):
                flat = param.view(-1)
                original = flat[index].item()
                flat[index] = original + step
                up = loss_of(model, x, weights).item()
                flat[index] = original - step
                down = loss_of(model, x, weights).item()
                flat[index] = original
                finite.append((up - down) / (2 * step))
    picked = torch.cat([p.grad.reshape(-1)[: min(p.numel(), 6)] for p in params])
    finite_tensor = torch.tensor(finite, dtype=torch.float64)
    assert relative_error(picked, finite_tensor) < 1e-5

    unrolled = small_contraction("unrolled", unroll_steps=200)
    unrolled.zero_grad()
    # Unroll 200 differentiable steps from the converged state: autograd through a long solve.
    loss_of(unrolled, x, weights).backward()
    assert relative_error(ift, flat_grad(unrolled)) < 1e-5


def test_onestep_gradient_is_identity_plus_jacobian_transpose() -> None:
    x = coords(32).double()
    model = small_contraction("onestep")
    weights = torch.randn((1, 32, 1), generator=torch.Generator().manual_seed(2)).double()
    model.zero_grad()
    loss_of(model, x, weights).backward()
    onestep = flat_grad(model)

    # By hand: z* from the model's solve, g = ∂L/∂z_next, then L̃ = <f(z*), g + Jᵀg> in params.
    with torch.no_grad():
        z_star = model(x).z
    context = model.core.prepare(x)
    z_in = z_star.clone().requires_grad_()
    z_next = model.core.step(z_in, context)
    z_leaf = z_next.detach().requires_grad_()
    (g,) = torch.autograd.grad((model.core.decode(z_leaf) * weights).sum(), z_leaf)
    (jtg,) = torch.autograd.grad(z_next, z_in, g, retain_graph=True)
    model.zero_grad()
    decoded = (model.core.decode(z_next.detach()) * weights).sum()
    (decoded + (z_next * (g + jtg)).sum()).backward()
    # Equal up to the solver's 1e-13 tolerance (model(x).z is f(z*), one more application).
    assert relative_error(onestep, flat_grad(model)) < 1e-10


def test_onestep_gradient_with_frozen_filters_matches_the_trainable_ones() -> None:
    """Frozen filters leave h₀ = z + g₀(x) without a graph: J is then taken w.r.t. z* itself."""
    x = coords(32).double()
    weights = torch.randn((1, 32, 1), generator=torch.Generator().manual_seed(4)).double()
    model = small_contraction("onestep")
    model.zero_grad()
    loss_of(model, x, weights).backward()
    reference = {
        name: p.grad.clone()
        for name, p in model.named_parameters()
        if not name.startswith("core.filters")
    }
    for param in model.core.filters.parameters():
        param.requires_grad_(False)
    model.zero_grad()
    loss_of(model, x, weights).backward()
    assert reference and all(p.grad is None for p in model.core.filters.parameters())
    for name, param in model.named_parameters():
        if name in reference:
            torch.testing.assert_close(param.grad, reference[name], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("filter_type", FILTERS)
def test_mfn_is_the_deq_map_applied_once_from_zero(filter_type: str) -> None:
    kwargs = {"num_signals": 2, "seed": 3, "input_scale": 16.0, "spectral_norm": True}
    explicit = build_model(f"mfn-{filter_type}-2L16D", 2, 3, **kwargs).eval()
    implicit = build_model(f"deq-{filter_type}-2L16D", 2, 3, **kwargs).eval()
    assert isinstance(explicit, ExplicitMFN)
    assert explicit.state_dict().keys() == implicit.state_dict().keys()
    for key, value in explicit.state_dict().items():
        assert torch.equal(value, implicit.state_dict()[key]), key
    x = coords(100)
    with torch.no_grad():
        context = implicit.core.prepare(x)
        by_hand = implicit.core.decode(implicit.core.step(torch.zeros(2, 100, 16), context))
        assert torch.allclose(explicit(x).y, by_hand, atol=1e-6)
        assert not torch.allclose(implicit(x).y, by_hand, atol=1e-3)


@pytest.mark.parametrize(
    "name",
    [
        "deq-fourier-1L16D",
        "mfn-fourier-3L8D",
        "deq-gabor-2L16D",
        "mfn-gabor-1L8D",
        "deq-siren-4L8D",
        "siren-3L16D",
        "ffn-2L16D",
    ],
)
@pytest.mark.parametrize(("in_dim", "out_dim"), [(1, 1), (2, 3), (3, 1)])
def test_parameter_count_follows_the_documented_formula(
    name: str, in_dim: int, out_dim: int
) -> None:
    model = build_model(name, in_dim, out_dim, num_signals=1)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == count_parameters(name, in_dim, out_dim)
    stacked = build_model(name, in_dim, out_dim, num_signals=3)
    assert sum(p.numel() for p in stacked.parameters() if p.requires_grad) == 3 * trainable


def test_signal_k_gets_the_same_initialisation_alone_or_in_a_batch() -> None:
    batch = build_model("deq-gabor-1L8D", 2, 1, num_signals=3, seed=5)
    alone = build_model("deq-gabor-1L8D", 2, 1, num_signals=1, seed=5, first_signal=2)
    for key, value in alone.state_dict().items():
        assert torch.equal(value[0], batch.state_dict()[key][2]), key


@pytest.mark.parametrize(
    "name", ["deq-fourier", "deq-wavelet-1L8D", "mfn-fourier-0L8D", "siren-2L", "DEQ-fourier-1L8D"]
)
def test_unknown_or_malformed_names_list_the_grammar(name: str) -> None:
    with pytest.raises(ValueError, match=r"deq-\{fourier\|gabor\|siren\}-\{L\}L\{D\}D"):
        build_model(name, 2, 1)


def test_bad_dimensions_and_non_finite_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="in_dim must be a positive integer"):
        build_model("deq-fourier-1L8D", 0, 1)
    model = build_model("deq-fourier-1L8D", 2, 1)
    with pytest.raises(ValueError, match=r"coordinates must have shape \(N, 2\)"):
        model(torch.zeros(10, 3))
    bad = torch.zeros(10, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(bad)
    with pytest.raises(ValueError, match="warm-start state must have shape"):
        model(torch.zeros(1, 10, 2), z0=torch.zeros(1, 9, 8), solve=False)


def camera_64() -> tuple[torch.Tensor, torch.Tensor]:
    """skimage's camera, 8×8 block means → 64×64, targets in [-1, 1], coords in [-1, 1]²."""
    skimage_data = pytest.importorskip("skimage.data")
    image = torch.tensor(skimage_data.camera(), dtype=torch.float64) / 255
    small = image.reshape(64, 8, 64, 8).mean(dim=(1, 3)).float()
    axis = torch.linspace(-1, 1, 64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 2)
    return grid, small.reshape(1, -1, 1) * 2 - 1


def amortized_fit_psnr(x: torch.Tensor, y: torch.Tensor, warm_start: str, steps: int) -> float:
    """Train with the (Implicit)² schedule, then evaluate at the true fixed point (solved)."""
    torch.manual_seed(0)
    model = build_model("deq-fourier-1L64D", 2, 1, input_scale=64.0, spectral_norm=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    cache = None
    for _ in range(steps):
        if warm_start == "zeros":  # broken: never hands the previous fixed point back
            out = model(x, z0=torch.zeros(1, x.shape[1], 64), solve=False)
        else:
            out = model(x) if cache is None else model(x, z0=cache, solve=False)
        loss = (out.y - y).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        cache = out.z
    model.eval()
    with torch.no_grad():
        mse = (model(x).y - y).square().mean()
    return float(10 * torch.log10(4 / mse))


def test_amortized_training_beats_broken_warm_start_and_broken_gradient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = camera_64()
    faithful = amortized_fit_psnr(x, y, "previous", steps=200)
    stale = amortized_fit_psnr(x, y, "zeros", steps=200)
    with monkeypatch.context() as patch:
        # Broken gradient: nothing flows back through f (only the decoder learns).
        patch.setattr(
            "implicit2.models.deq.attach_backward", lambda kind, z_next, z_in: z_next.detach()
        )
        no_gradient = amortized_fit_psnr(x, y, "previous", steps=200)
    assert faithful > 24.0
    assert stale < faithful - 4.0
    assert no_gradient < faithful - 8.0


def test_gabor_input_filter_keeps_the_authors_alpha():
    """g₀'s γ ~ Gamma(6/(L+1)) as in the authors' code; gabor_alpha sets only g₁…g_L."""
    model = build_model("deq-gabor-1L2048D", 2, 1, seed=0, gabor_alpha=3.0)
    input_gamma, layer_gamma = (f.gamma.mean().item() for f in model.core.filters)
    assert input_gamma == pytest.approx(6.0 / 2, abs=0.15)  # mean of Gamma(k, 1) is k
    assert layer_gamma == pytest.approx(3.0 / 2, abs=0.15)


@pytest.mark.parametrize("name", ["deq-fourier-1L64D", "deq-gabor-2L32D", "deq-siren-1L64D"])
def test_a_solve_keeps_nothing_for_backward(name: str) -> None:
    """The solve runs without gradient: a solving training forward saves for backward exactly
    what one application of f from the same state saves (no graph of the solver's constants)."""
    model = build_model(name, 2, 1, num_signals=2, seed=0, first_signal=0, spectral_norm=True)
    x = coords(512)
    z0 = torch.rand((2, 512, model.state_dim), generator=torch.Generator().manual_seed(1))
    saved = []
    for solve in (True, False):
        meter = SavedTensorMeter()
        with meter.track():
            model.run(x, z0, solve)
        saved.append(meter.bytes)
    assert saved[0] == saved[1] > 0
