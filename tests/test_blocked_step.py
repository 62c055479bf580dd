"""Long full-batch steps in blocks of points: the same loss, gradients and state as one whole-batch
step; small signals keep the whole-batch step; filters wrap large sine arguments exactly."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from implicit2.models.filters import FourierFilter, wrapped
from implicit2.models.layers import signal_rngs
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData
from implicit2.training import batch_fallback, loop, step
from implicit2.training.batch_fallback import MEMORY_SHARE, fallback_batch
from implicit2.training.batching import step_bytes_per_signal
from implicit2.training.fused_block import fused_block, run_fused_block
from implicit2.training.settings import TrainSettings
from implicit2.training.step import (
    apply_update,
    blocked_update,
    make_model,
    make_optimizer,
    make_scheduler,
    step_block_points,
    training_forward,
)

CPU = torch.device("cpu")
POINTS = 300
ROWS = 64  # 5 blocks, the last one partial


def waveforms(signals: int) -> PreparedData:
    """``signals`` short waveforms on one time axis (the audio task's layout)."""
    x = np.linspace(-1, 1, POINTS, dtype=np.float32)[:, None]
    targets = [np.sin(7 * x + k) + 0.3 * np.cos(23 * x * (k + 1)) for k in range(signals)]
    y = np.stack(targets).astype(np.float32) / 1.3
    return PreparedData("audio", "waves", x, y, x, y, [f"w{k}" for k in range(signals)])


def train_steps(
    data: PreparedData, model_name: str, steps: int, rows: int | None, **train: Any
) -> dict[str, Any]:
    """``steps`` amortized full-batch steps (step 0 solves), whole-batch or in blocks of
    ``rows``: the per-signal losses, the last step's gradients and parameters, the last state."""
    settings = TrainSettings.from_dict({"input_scale": 30.0, "steps": 10, **train})
    task = get_task("audio")
    model = make_model(model_name, data, settings, 0, 0, data.num_signals, CPU)
    model.train()
    optimizer = make_optimizer(model, 1e-2, CPU)
    scheduler = make_scheduler(optimizer, settings)
    forward = training_forward(model, task, compile_step=False)
    x = torch.from_numpy(data.train_coords).unsqueeze(0)
    y = torch.from_numpy(data.train_targets)
    z, losses = None, []
    for _ in range(steps):
        solve = z is None
        if rows is None:
            loss, z, _ = forward(x, y, z, solve)
            apply_update(loss.sum(), model, optimizer, scheduler, None)
        else:
            blocked = blocked_update(model, task, x, y, z, solve, rows, optimizer, scheduler, None)
            loss, z = blocked.loss, blocked.z
        losses.append(loss.detach())
        z = z if model.state_dim > 0 else None
    return {
        "losses": torch.stack(losses),
        "grads": {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "z": z,
    }


def assert_same_step(whole: dict[str, Any], blocked: dict[str, Any]) -> None:
    torch.testing.assert_close(blocked["losses"], whole["losses"], rtol=1e-5, atol=1e-7)
    assert blocked["grads"].keys() == whole["grads"].keys()
    for name, grad in whole["grads"].items():
        scale = float(grad.abs().max()) + 1e-12
        torch.testing.assert_close(blocked["grads"][name] / scale, grad / scale, atol=1e-5, rtol=0)
    for name, value in whole["params"].items():
        torch.testing.assert_close(blocked["params"][name], value, rtol=1e-4, atol=1e-6)
    for name, value in whole["buffers"].items():
        torch.testing.assert_close(blocked["buffers"][name], value, rtol=1e-5, atol=1e-6)
    if whole["z"] is None:
        assert blocked["z"] is None
    else:
        torch.testing.assert_close(blocked["z"], whole["z"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("signals", [1, 2])
@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize(
    "model_name", ["deq-fourier-1L16D", "deq-gabor-2L16D", "deq-siren-1L16D", "mfn-fourier-2L16D"]
)
def test_blocked_steps_match_whole_batch_steps(
    model_name: str, spectral_norm: bool, signals: int
) -> None:
    """Step 0 (a DEQ's solve), then amortized steps: losses, gradients, parameters, spectral-norm
    vectors and the warm-start state agree with the whole-batch steps to float rounding."""
    data = waveforms(signals)
    whole = train_steps(data, model_name, 3, None, spectral_norm=spectral_norm)
    blocked = train_steps(data, model_name, 3, ROWS, spectral_norm=spectral_norm)
    assert_same_step(whole, blocked)
    assert whole["losses"][-1].sum() < whole["losses"][0].sum()  # the steps did train


def test_the_solving_step_alone_matches() -> None:
    """One step: the whole-batch solve, then the gradient in blocks."""
    data = waveforms(2)
    assert_same_step(
        train_steps(data, "deq-fourier-1L16D", 1, None),
        train_steps(data, "deq-fourier-1L16D", 1, ROWS),
    )


def test_a_non_amortized_deq_solves_every_step() -> None:
    data = waveforms(1)
    assert_same_step(
        train_steps(data, "deq-fourier-1L16D", 2, None, amortize=False),
        train_steps(data, "deq-fourier-1L16D", 2, ROWS, amortize=False),
    )


def test_a_blocked_step_is_deterministic_across_threads() -> None:
    """The worker threads sum their blocks in a fixed order: two runs agree bit for bit."""
    data = waveforms(2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = train_steps(data, "deq-fourier-1L16D", 3, 16)
        second = train_steps(data, "deq-fourier-1L16D", 3, 16)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(first["losses"], second["losses"])
    for name, value in first["params"].items():
        assert torch.equal(second["params"][name], value), name
    assert torch.equal(first["z"], second["z"])
    assert torch.get_num_threads() == threads


def test_only_long_cpu_steps_are_blocked() -> None:
    settings = TrainSettings.from_dict({})
    data = waveforms(1)
    deq = make_model("deq-fourier-1L128D", data, settings, 0, 0, 1, CPU)
    long_points = step.BLOCKED_MIN_ELEMENTS // 128
    rows = step_block_points(deq, CPU, long_points, 128, compiled=False)
    assert rows == step.BLOCK_ELEMENTS // 128
    assert step_block_points(deq, CPU, long_points - 1, 128, compiled=False) is None
    assert step_block_points(deq, CPU, long_points, 128, compiled=True) is None
    assert step_block_points(deq, torch.device("meta"), long_points, 128, False) is None
    implicit = make_model(
        "deq-fourier-1L128D", data, TrainSettings.from_dict({"gradient": "ift"}), 0, 0, 1, CPU
    )
    assert step_block_points(implicit, CPU, long_points, 128, compiled=False) is None


def test_a_short_signal_takes_the_whole_batch_step(monkeypatch) -> None:
    """The loop never blocks a signal below the threshold (the demo's and paper's images)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a short signal must not take the blocked step")

    monkeypatch.setattr(loop, "blocked_update", refuse)
    settings = TrainSettings.from_dict({"steps": 3, "input_scale": 30.0, "log_every": 1})
    result = loop.train(get_task("audio"), waveforms(1), "deq-fourier-1L16D", 0, settings, CPU)
    assert result.chunks[0].steps_done == 3


def test_the_loop_blocks_a_long_signal_and_trains_the_same(monkeypatch) -> None:
    """With the threshold lowered, the loop's blocked run ends where its whole-batch run does."""
    settings = TrainSettings.from_dict({"steps": 4, "input_scale": 30.0, "log_every": 1})
    task, data = get_task("audio"), waveforms(2)
    whole = loop.train(task, data, "deq-fourier-1L16D", 0, settings, CPU).chunks[0]
    calls = []
    original = loop.blocked_update

    def counted(*args: Any, **kwargs: Any) -> step.BlockedStep:
        calls.append(args[6])
        return original(*args, **kwargs)

    monkeypatch.setattr(step, "BLOCKED_MIN_ELEMENTS", 1)
    monkeypatch.setattr(step, "BLOCK_ELEMENTS", 2 * 16 * ROWS)
    monkeypatch.setattr(loop, "blocked_update", counted)
    blocked = loop.train(task, data, "deq-fourier-1L16D", 0, settings, CPU).chunks[0]
    assert calls == [ROWS] * 4
    for name, value in whole.state.items():
        torch.testing.assert_close(blocked.state[name], value, rtol=1e-4, atol=1e-6)
    assert blocked.saved_bytes > 0
    losses = [row["loss"] for row in whole.curve]
    torch.testing.assert_close(
        torch.tensor([row["loss"] for row in blocked.curve]),
        torch.tensor(losses),
        rtol=1e-5,
        atol=0,
    )


def test_wrapped_arguments_keep_sine_cosine_and_gradient() -> None:
    u = ((torch.rand(1 << 16, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 40000).double()
    u32 = u.float().requires_grad_()
    r = wrapped(u32)
    value = r.detach()
    assert float(value.abs().max()) <= math.pi + 0.01  # k rounds u / 2π in float32
    exact = u32.detach().double()  # the float32 argument, in double
    assert float((torch.sin(value).double() - torch.sin(exact)).abs().max()) < 3e-7
    assert float((torch.cos(value).double() - torch.cos(exact)).abs().max()) < 3e-7
    grad = torch.randn(u.shape, generator=torch.Generator().manual_seed(1))
    r.backward(grad)
    assert torch.equal(u32.grad, grad)


def test_filters_wrap_only_where_the_argument_reaches_the_slow_range() -> None:
    x = torch.linspace(-1, 1, 1000).reshape(1, -1, 1)
    low = FourierFilter(signal_rngs(0, 0, 1), 1, 32, scale=3000.0 / math.sqrt(2))
    assert not low.wrap  # the demo's audio: the arithmetic of a plain sine
    expected = torch.sin(torch.baddbmm(low.phase, x, low.omega))
    assert torch.equal(low(x), expected)
    high = FourierFilter(signal_rngs(0, 0, 1), 1, 32, scale=25000.0 / math.sqrt(2))
    assert high.wrap  # the paper's audio scale
    plain = torch.sin(torch.baddbmm(high.phase, x, high.omega).double())
    assert float((high(x).double() - plain).abs().max()) < 3e-7


def autograd_and_fused_block(
    model_name: str, signals: int, spectral_norm: bool, scale: float
) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None], torch.Tensor, torch.Tensor]:
    """One block of a float64 model from a random state: the gradients, loss and new state by
    autograd (``model.run``, the task's loss) and by the fused block."""
    data = waveforms(signals)
    settings = TrainSettings.from_dict({"input_scale": scale, "spectral_norm": spectral_norm})
    task = get_task("audio")
    model = make_model(model_name, data, settings, 0, 0, signals, CPU).double()
    model.train()
    x = torch.from_numpy(data.train_coords).double().unsqueeze(0)[:, :ROWS]
    y = torch.from_numpy(data.train_targets).double()[:, :ROWS]
    width = 16
    deq = model_name.startswith("deq")
    z = torch.randn((signals, ROWS, width), generator=torch.Generator().manual_seed(3)).double()
    share = ROWS / POINTS
    with model.core.shared_weights() as leaves:
        inputs = [p for p in model.parameters() if p.requires_grad] + list(leaves)
        out = model.run(x, z if deq else None, False)
        loss = task.loss(out.y, y) * share
        expected = list(torch.autograd.grad(loss.sum(), inputs, allow_unused=True))
        plan = fused_block(model, task, inputs)
        assert plan is not None
        result = run_fused_block(plan, x, y, z if deq else None, share, len(inputs))
    assert not result.z.requires_grad
    torch.testing.assert_close(result.loss, loss.detach(), rtol=1e-12, atol=0)
    if deq:  # arguments to ±17,700 carry rounding of about 4e-12 in float64
        torch.testing.assert_close(result.z, out.z, rtol=0, atol=1e-16 * scale + 1e-14)
    return expected, result.grads, result.loss, result.z


@pytest.mark.parametrize("signals", [1, 2])
@pytest.mark.parametrize("spectral_norm", [False, True])
@pytest.mark.parametrize("model_name", ["deq-fourier-1L16D", "mfn-fourier-1L16D"])
@pytest.mark.parametrize("scale", [30.0, 25000.0])
def test_the_fused_block_gives_autograds_gradients(
    model_name: str, spectral_norm: bool, signals: int, scale: float
) -> None:
    """In float64 the hand-written block (one-step gradient for the DEQ) equals autograd's to
    rounding, for every parameter and the shared spectral-norm weights, at the demo's and the
    paper's audio scale."""
    expected, fused, _, _ = autograd_and_fused_block(model_name, signals, spectral_norm, scale)
    assert len(fused) == len(expected)
    assert sum(grad is not None for grad in fused) == 8  # the raw weight's comes via the leaf
    for want, got in zip(expected, fused, strict=True):
        assert (want is None) == (got is None)
        if want is not None and got is not None:
            assert got.shape == want.shape
            size = float(want.abs().max())
            torch.testing.assert_close(got / size, want / size, rtol=0, atol=1e-10)


def test_only_one_layer_fourier_mse_onestep_steps_are_fused() -> None:
    data, task = waveforms(1), get_task("audio")

    def plan(model_name: str, task_name: str = "audio", **train: Any) -> object:
        model = make_model(model_name, data, TrainSettings.from_dict(train), 0, 0, 1, CPU)
        inputs = [p for p in model.parameters() if p.requires_grad]
        return fused_block(model, get_task(task_name), inputs)

    assert plan("deq-fourier-1L16D") is not None
    assert plan("mfn-fourier-1L16D") is not None
    assert plan("deq-fourier-2L16D") is None
    assert plan("deq-gabor-1L16D") is None
    assert plan("deq-siren-1L16D") is None
    assert plan("deq-fourier-1L16D", gradient="ift") is None
    assert plan("deq-fourier-1L16D", gradient="unrolled") is None
    assert plan("deq-fourier-1L16D", "occupancy") is None  # binary cross-entropy
    model = make_model("deq-fourier-1L16D", data, TrainSettings.from_dict({}), 0, 0, 1, CPU)
    inputs = [p for p in model.parameters() if p.requires_grad]
    assert fused_block(model, task, [*inputs, torch.zeros(3, requires_grad=True)]) is None


def test_blocked_one_layer_fourier_steps_take_the_fused_block(monkeypatch) -> None:
    """The blocked steps compared with whole-batch steps above run the fused block for a
    one-layer Fourier DEQ (and autograd per block for the other models)."""
    calls: list[int] = []

    def counted(*args: Any) -> Any:
        calls.append(args[1].shape[1])
        return run_fused_block(*args)

    monkeypatch.setattr(step, "run_fused_block", counted)
    train_steps(waveforms(1), "deq-fourier-1L16D", 2, ROWS)
    assert sorted(calls) == sorted(([ROWS] * 4 + [POINTS - 4 * ROWS]) * 2)  # threads interleave
    calls.clear()
    train_steps(waveforms(1), "deq-gabor-2L16D", 2, ROWS)
    assert not calls


def test_filter_sine_and_cosine_are_those_of_the_argument() -> None:
    """At the paper's audio scale (arguments to ±17,700), within float32 rounding of the float64
    sine and cosine of the float32 argument; and the forward's value to rounding."""
    x = torch.linspace(-1, 1, 4096).reshape(1, -1, 1)
    for scale in (3000.0 / math.sqrt(2), 25000.0 / math.sqrt(2)):
        filt = FourierFilter(signal_rngs(0, 0, 2), 1, 64, scale=scale)
        sine, cosine = filt.sine_cosine(x)
        argument = torch.baddbmm(filt.phase, x.expand(2, -1, -1), filt.omega).detach().double()
        assert float(argument.abs().max()) > 0.9 * scale
        assert float((sine.double() - torch.sin(argument)).abs().max()) < 2e-7
        assert float((cosine.double() - torch.cos(argument)).abs().max()) < 2e-7
        assert float((sine - filt(x).detach()).abs().max()) < 3e-7


def tone(points: int) -> PreparedData:
    """One waveform of ``points`` samples (long enough to take the blocked step)."""
    x = np.linspace(-1, 1, points, dtype=np.float32)[:, None]
    y = (0.8 * np.sin(40 * x))[None].astype(np.float32)
    return PreparedData("audio", "tone", x, y, x, y, ["tone"])


#: Runs blocked steps (the first one solving) of a long tone in a fresh process and prints the
#: growth of its peak resident set and the blocked step's memory estimate, in bytes.
MEASURE_BLOCKED_STEP = """
import json, sys
from pathlib import Path
import torch
from implicit2.tasks import get_task
from implicit2.training.allocator import keep_freed_memory
from implicit2.training.batching import blocked_step_bytes_per_signal
from implicit2.training.settings import TrainSettings
from implicit2.training.step import (
    blocked_update, make_model, make_optimizer, make_scheduler, step_block_points,
)
from tests.test_blocked_step import tone

def peak() -> int:
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) * 1024 for line in lines if line.startswith("VmHWM:"))

points, name, width = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.set_num_threads(2)
keep_freed_memory()
data, task, cpu = tone(points), get_task("audio"), torch.device("cpu")
settings = TrainSettings.from_dict({"input_scale": 3000.0, "steps": 10})
model = make_model(name, data, settings, 0, 0, 1, cpu)
optimizer = make_optimizer(model, 1e-3, cpu)
scheduler = make_scheduler(optimizer, settings)
x, y = torch.from_numpy(data.train_coords).unsqueeze(0), torch.from_numpy(data.train_targets)
rows = step_block_points(model, cpu, points, width, False)
estimate = blocked_step_bytes_per_signal(data, name, model, settings, points, rows)
base, z = peak(), None
for _ in range(2):
    z = blocked_update(model, task, x, y, z, z is None, rows, optimizer, scheduler, None).z
print(json.dumps({"growth": peak() - base, "estimate": estimate, "rows": rows}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_the_blocked_step_fits_its_estimate_and_fit_keeps_the_full_batch(monkeypatch) -> None:
    """A 1L32D DEQ on 2^20 samples (2^25 activation elements: blocked): its solving and amortized
    blocked steps grow the process by no more than the blocked estimate (and by most of it), and
    ``fit``'s fallback keeps the full batch on a budget the whole-batch estimate exceeds."""
    points, name, width = 1 << 20, "deq-fourier-1L32D", 32
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_BLOCKED_STEP, str(points), name, str(width)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["rows"] is not None
    estimate = measured["estimate"]
    assert 0.6 * estimate <= measured["growth"] <= estimate
    data, task = tone(points), get_task("audio")
    settings = TrainSettings.from_dict({"input_scale": 3000.0, "steps": 10})
    budget = 1.1 * estimate
    monkeypatch.setattr(batch_fallback, "available_bytes", lambda device: budget / MEMORY_SHARE)
    assert step_bytes_per_signal(task, data, name, settings, points) > budget
    assert fallback_batch(task, data, name, settings, CPU) is None
    compiled = TrainSettings.from_dict({"input_scale": 3000.0, "steps": 10, "compile": True})
    fallback = fallback_batch(task, data, name, compiled, CPU)  # a compiled step is not blocked
    assert fallback is not None and fallback[0] < points


@pytest.mark.parametrize("model_name", ["deq-fourier-2L16D", "deq-gabor-1L16D", "deq-siren-2L16D"])
def test_the_blocked_solver_map_is_the_solver_map(model_name: str) -> None:
    """The solve's constants computed in blocks (the last one partial) give the same f, to
    rounding, as those of the whole batch; with spectral norm inside shared_weights the power
    iteration advances once."""
    data = waveforms(2)
    settings = TrainSettings.from_dict({"input_scale": 30.0, "spectral_norm": True})
    model = make_model(model_name, data, settings, 0, 0, 2, CPU)
    model.train()
    x = torch.from_numpy(data.train_coords).unsqueeze(0)
    z = torch.randn((2, POINTS, 16), generator=torch.Generator().manual_seed(5))
    core = model.core
    with torch.no_grad(), core.shared_weights():
        vectors = {n: b.clone() for n, b in model.named_buffers()}
        blocked = core.blocked_solver_map(x, ROWS)(z)
        for name, value in model.named_buffers():
            assert torch.equal(value, vectors[name]), name  # the shared weights: no new iteration
        whole = core.solver_map(core.prepare(x))(z)
    torch.testing.assert_close(blocked, whole, rtol=1e-5, atol=1e-6)
