"""Many signals in one model pass, and no host syncs between log points (CPU, real training)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

import implicit2
from implicit2.bench.inputs import crop_dataset, image_crops
from implicit2.bench.measure import per_signal_psnr
from implicit2.deq.solvers import EXTRA_STATE_COPIES, SOLVERS
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData
from implicit2.training.batching import (
    CPU_SIGNAL_ELEMENTS,
    DEVICE_MEMORY_SHARE,
    auto_signal_batch,
    saved_bytes_per_signal,
    step_bytes_per_signal,
)
from implicit2.training.loop import train
from implicit2.training.records import summary
from implicit2.training.settings import TrainSettings
from implicit2.training.step import make_model, make_optimizer

CPU = torch.device("cpu")
SRC = str(Path(inspect.getfile(implicit2)).parent)  # the package: every subpackage's reads


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def crops() -> PreparedData:
    """Four distinct 16×16 crops of the full-resolution cameraman."""
    return crop_dataset(image_crops("camera", 16, 4, seed=0))


def settings(**values) -> TrainSettings:
    base = {"steps": 30, "lr": 3e-3, "input_scale": 16.0, "log_every": 10, "device": "cpu"}
    return TrainSettings(**(base | values))


def test_crops_are_distinct_and_deterministic():
    first, again = image_crops("camera", 16, 4, seed=0), image_crops("camera", 16, 4, seed=0)
    assert first.shape == (4, 16, 16, 1) and np.array_equal(first, again)
    flat = first.reshape(4, -1)
    assert all(not np.array_equal(flat[i], flat[j]) for i in range(4) for j in range(i))
    assert not np.array_equal(first, image_crops("camera", 16, 4, seed=1))


@pytest.mark.parametrize("model", ["deq-fourier-1L16D", "mfn-gabor-2L16D", "siren-1L16D"])
def test_batched_training_matches_one_by_one(crops: PreparedData, model: str):
    task = get_task("image_representation")
    runs = {}
    for batch in (0, 1, 3):  # all at once, one by one, uneven chunks (3 + 1)
        result = train(task, crops, model, 0, settings(signal_batch=batch), CPU)
        assert [c.count for c in result.chunks] == {0: [4], 1: [1] * 4, 3: [3, 1]}[batch]
        curve = result.chunks[0].curve
        assert curve[-1]["loss"] < curve[0]["loss"]  # the models did learn something
        runs[batch] = per_signal_psnr(task, crops, model, 0, settings(), result, CPU)
    for batch in (1, 3):
        assert np.allclose(runs[batch], runs[0], atol=1e-3, rtol=0.0), (batch, runs)


def test_batched_minibatch_training_matches_one_by_one(crops: PreparedData):
    """Random minibatches do not depend on how the signals are batched."""
    task = get_task("image_representation")
    values = {"batch_size": 64, "amortize": False}
    psnr = []
    for batch in (0, 1):
        result = train(
            task, crops, "deq-fourier-1L16D", 3, settings(signal_batch=batch, **values), CPU
        )
        psnr.append(per_signal_psnr(task, crops, "deq-fourier-1L16D", 3, settings(), result, CPU))
    assert np.allclose(psnr[0], psnr[1], atol=1e-3, rtol=0.0)


class SyncCounter:
    """Counts reads of tensor values (``item``, ``tolist``, ``bool`` …) made by implicit2's code.

    On CUDA each such read waits for the device. Reads made inside torch itself (e.g. Adam's
    step counter, a CPU tensor by design) are not the loop's and are not counted.
    """

    METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    @contextmanager
    def counting(self) -> Iterator[SyncCounter]:
        originals = {name: getattr(torch.Tensor, name) for name in self.METHODS}

        def wrap(name, original):
            def method(tensor, *args, **kwargs):
                caller = inspect.currentframe().f_back
                if caller.f_code.co_filename.startswith(SRC):
                    self.calls.append((name, caller.f_code.co_name, caller.f_lineno))
                return original(tensor, *args, **kwargs)

            return method

        for name, original in originals.items():
            setattr(torch.Tensor, name, wrap(name, original))
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)


@pytest.mark.parametrize(
    ("model", "values"),
    [
        ("deq-fourier-1L16D", {}),  # amortized: one solve at step 0, then one f per step
        ("mfn-fourier-1L16D", {"grad_clip": 0.1}),  # explicit, gradient values clipped
        ("siren-1L16D", {"batch_size": 64, "amortize": False}),  # minibatches
    ],
)
def test_no_host_reads_between_log_points(crops: PreparedData, model: str, values: dict):
    """Training for 40 or 10 steps with one log point reads tensor values equally often."""
    task = get_task("image_representation")
    counts = {}
    for steps in (10, 40):
        counter = SyncCounter()
        with counter.counting():
            train(task, crops, model, 0, settings(steps=steps, log_every=1000, **values), CPU)
        counts[steps] = counter.calls
    assert counts[10], "the counter saw no reads at all: the patching does not work"
    assert len(counts[40]) == len(counts[10]), counts[40]


def test_log_points_are_the_only_reads(crops: PreparedData):
    task = get_task("image_representation")
    counts = []
    for log_every in (15, 10):  # 2 and 3 log points in 30 steps
        counter = SyncCounter()
        with counter.counting():
            result = train(task, crops, "deq-fourier-1L16D", 0, settings(log_every=log_every), CPU)
        counts.append(len(counter.calls))
    per_log_point = counts[1] - counts[0]
    assert 1 <= per_log_point <= 4
    # Besides: step 0's solve (on CPU one read per iteration, plus one check of its start state)
    # and, once at the end, one check that the weights are finite and their copy to the host.
    solve = result.chunks[0].solver_steps_first
    assert counts[0] - 2 * per_log_point == solve + 1 + 1 + len(result.chunks[0].state)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_reads_every_k_iterations_with_the_same_result(name: str):
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(3, 8, 8, generator=gen, dtype=torch.float64))
    w = q * torch.tensor([0.5, 0.8, 0.95], dtype=torch.float64)[:, None, None]
    c = 0.1 * torch.randn(3, 6, 8, generator=gen, dtype=torch.float64)

    def f(z):
        return torch.tanh(z @ w + c)

    z0 = torch.zeros(3, 6, 8, dtype=torch.float64)
    results = {}
    for every in (1, 5):
        counter = SyncCounter()
        with counter.counting():
            results[every] = SOLVERS[name](f, z0, tol=1e-8, max_iter=300, check_every=every)
    z1, s1 = results[1]
    z5, s5 = results[5]
    assert s1.converged and s1.steps == s5.steps and s1.residual == s5.residual
    assert s1.rel_trace == s5.rel_trace and s1.abs_trace == s5.abs_trace
    assert torch.equal(z1, z5)
    assert len(s1.rel_trace) == s1.steps


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_host_reads_are_batched(name: str):
    f = lambda z: 0.9 * z + 1.0  # noqa: E731 — converges in ~130 steps to tol 1e-6
    z0 = torch.zeros(2, 4, 3, dtype=torch.float64)
    reads = {}
    for every in (1, 8):
        counter = SyncCounter()
        with counter.counting():
            _, stats = SOLVERS[name](f, z0, tol=1e-6, max_iter=200, check_every=every)
        reads[every] = len(counter.calls)
    assert reads[1] >= stats.steps
    assert reads[8] <= math.ceil(stats.steps / 8) + 2
    with pytest.raises(ValueError, match="check_every"):
        SOLVERS[name](f, z0, check_every=0)


def test_train_record_has_speed_memory_and_device_options(crops: PreparedData):
    task = get_task("image_representation")
    result = train(task, crops, "deq-fourier-1L16D", 0, settings(signal_batch=3), CPU)
    record = summary(result, CPU)
    assert record["step_seconds_median"] > 0 and record["train_seconds"] > 0
    assert record["saved_bytes_per_step"] > 0
    assert record["peak_memory_bytes"] == record["saved_bytes_per_step"]  # CPU: saved tensors
    assert record["tf32"] is False and record["compile"] is False  # no TF32 on CPU
    assert record["signal_batch_size"] == 3 and record["signal_chunks"] == [(0, 3), (3, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mfn-fourier-1L16D", "deq-fourier-1L16D"])
def test_compiled_steps_train_like_eager_ones(crops: PreparedData, model: str):
    task = get_task("image_representation")
    psnr = []
    for compile_step in (False, True):
        result = train(task, crops, model, 0, settings(steps=12, compile=compile_step), CPU)
        assert summary(result, CPU)["compile"] is compile_step
        psnr.append(per_signal_psnr(task, crops, model, 0, settings(), result, CPU))
    assert np.allclose(psnr[0], psnr[1], atol=1e-3, rtol=0.0)


@pytest.mark.parametrize(
    "model", ["deq-fourier-1L16D", "mfn-gabor-2L16D", "deq-siren-1L16D", "siren-2L16D", "ffn-1L16D"]
)
def test_saved_bytes_probe_predicts_a_full_step(model: str):
    """Two small probe passes predict what a one-signal step at 48² points saves for backward."""
    task = get_task("image_representation")
    image = crop_dataset(image_crops("camera", 48, 1, seed=2))
    points = len(image.train_coords)
    result = train(task, image, model, 0, settings(steps=3), CPU)
    measured = summary(result, CPU)["saved_bytes_per_step"]
    probe = make_model(model, image, settings(), 0, 0, 1, CPU)
    predicted = saved_bytes_per_signal(task, image, probe, points)
    assert measured > 100_000
    assert predicted == pytest.approx(measured, rel=0.02)


def test_auto_signal_batch_fills_free_device_memory(crops: PreparedData, monkeypatch):
    task = get_task("image_representation")
    points = len(crops.train_coords)
    per_signal = step_bytes_per_signal(task, crops, "deq-fourier-1L16D", settings(), points)
    activation = points * 16 * 4
    assert per_signal > 8 * activation  # saved tensors + workspace + parameter state
    cuda = torch.device("cuda")
    free = 1e9
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free), int(2 * free)))
    batch = auto_signal_batch(cuda, points, 16, lambda: per_signal)
    assert batch == int(DEVICE_MEMORY_SHARE * free // per_signal) and batch > 1
    assert auto_signal_batch(cuda, points, 16, lambda: 10 * free) == 1  # one signal at least
    assert auto_signal_batch(CPU, points, 16, lambda: 0.0) == CPU_SIGNAL_ELEMENTS // (points * 16)
    assert auto_signal_batch(torch.device("mps"), points, 16, lambda: 0.0) == 0  # all at once


def test_step_bytes_count_the_solver_history(crops: PreparedData):
    """Anderson keeps 2m + 1 more state copies than fixed-point iteration; explicit models none."""
    task = get_task("image_representation")
    points = len(crops.train_coords)
    for model, state_copies in (("deq-fourier-1L16D", EXTRA_STATE_COPIES["anderson"]),
                                ("mfn-fourier-1L16D", 0)):  # fmt: skip
        plain = step_bytes_per_signal(task, crops, model, settings(), points)
        accelerated = step_bytes_per_signal(task, crops, model, settings(solver="anderson"), points)
        assert accelerated - plain == pytest.approx(state_copies * points * 16 * 4)
    assert EXTRA_STATE_COPIES["anderson"] == 2 * 5 + 1 and EXTRA_STATE_COPIES["fixed_point"] == 0


def test_fused_adam_steps_like_the_default_one(crops: PreparedData):
    """The trainer's fused CPU Adam moves every parameter as the per-tensor (foreach) Adam does."""
    task = get_task("image_representation")
    models = [make_model("deq-gabor-1L16D", crops, settings(), 0, 0, 4, CPU) for _ in range(2)]
    fused = make_optimizer(models[0], 1e-2, CPU)
    plain = torch.optim.Adam(models[1].parameters(), lr=1e-2, foreach=True)
    assert fused.defaults["fused"] is True
    x = torch.from_numpy(crops.train_coords).unsqueeze(0)
    y = torch.from_numpy(crops.train_targets)
    for _ in range(5):
        for model, optimizer in zip(models, (fused, plain), strict=True):
            optimizer.zero_grad()
            out = model.run(x, z0=None, solve=True)
            task.loss(out.y, y).sum().backward()
            optimizer.step()
    start = make_model("deq-gabor-1L16D", crops, settings(), 0, 0, 4, CPU)
    pairs = zip(models[0].parameters(), start.parameters(), strict=True)
    assert all(not torch.equal(trained, initial) for trained, initial in pairs)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_grad_clip_clamps_every_gradient_element(crops: PreparedData, around_updates):
    largest: list[float] = []

    def record(model, optimizer):
        largest.append(max(float(p.grad.abs().max()) for p in model.parameters()))

    around_updates(before=record)
    train(get_task("image_representation"), crops, "mfn-fourier-1L16D", 0, settings(), CPU)
    unclipped = max(largest)
    largest.clear()
    clip = unclipped / 10
    train(
        get_task("image_representation"),
        crops,
        "mfn-fourier-1L16D",
        0,
        settings(grad_clip=clip),
        CPU,
    )
    assert len(largest) == 30 and max(largest) <= clip < unclipped


def test_lr_decays_linearly_to_lr_decay_times_lr(crops: PreparedData, around_updates):
    rates: list[float] = []
    around_updates(before=lambda model, optimizer: rates.append(optimizer.param_groups[0]["lr"]))
    train(
        get_task("image_representation"), crops, "deq-fourier-1L16D", 0, settings(lr_decay=0.1), CPU
    )
    steps, lr = 30, 3e-3
    assert rates == pytest.approx([lr * (1 - 0.9 * k / steps) for k in range(steps)])


def test_a_run_trained_in_signal_batches_evaluates_like_one_trained_at_once(tmp_path: Path):
    """Predictions of a run stored as several signal batches go back to the right signals."""
    from implicit2.training.runs import evaluate_dir, load_data, train_to_dir

    np.save(tmp_path / "crops.npy", image_crops("camera", 16, 3, seed=0))  # an image stack
    get_task("image_representation").prepare(tmp_path / "crops.npy", tmp_path / "three.npz", {})
    three = load_data("image_representation", tmp_path / "three.npz")
    scores = {}
    for batch in (1, 2, 3):
        run = tmp_path / f"batch{batch}"
        train_to_dir(three.task, three, "deq-fourier-1L16D", 0, settings(signal_batch=batch), run)
        scores[batch] = evaluate_dir(three.task, three, run, run / "metrics.json", "cpu")
    per_signal = scores[3]["psnr_per_signal"]
    assert len(set(np.round(per_signal, 1))) == 3  # distinct crops, distinct scores
    for batch in (1, 2):
        assert scores[batch]["psnr_per_signal"] == pytest.approx(per_signal, abs=0.05)
