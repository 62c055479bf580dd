"""The warm-start cache of minibatch DEQ training: storage, budget, solves and training runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from implicit2.bench.measure import crop_dataset, image_crops
from implicit2.models import build_model
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData
from implicit2.training.loop import train
from implicit2.training.records import summary
from implicit2.training.settings import TrainSettings
from implicit2.training.warm_cache import CACHE_DTYPE, WarmStartCache

CPU = torch.device("cpu")
MODEL = "deq-fourier-1L16D"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def crops() -> PreparedData:
    """Two 16×16 crops of the cameraman: a pool of 256 pixels, two signals."""
    return crop_dataset(image_crops("camera", 16, 2, seed=0))


def minibatch_settings(**values) -> TrainSettings:
    base = {"steps": 60, "lr": 3e-3, "input_scale": 16.0, "log_every": 20, "device": "cpu"}
    return TrainSettings.from_dict(base | {"batch_size": 64, "amortize": False} | values)


def test_points_beyond_the_budget_start_from_zero():
    width, signals = 4, 2
    per_point = signals * width * 2  # float16
    cache = WarmStartCache(signals, 10, width, budget_bytes=7 * per_point, device=CPU)
    assert cache.capacity == 6 and cache.nbytes == 7 * per_point  # 6 points + the scratch row
    index = torch.tensor([0, 5, 6, 9, 5])
    z = torch.randn(signals, len(index), width)
    z[:, 4] = z[:, 1]  # a point drawn twice holds one state
    slots = cache.slots(index)
    assert cache.start(slots).abs().sum() == 0  # never drawn: z = 0
    cache.store(slots, z)
    again = cache.start(cache.slots(index))
    assert again.dtype == torch.float32
    assert torch.equal(again[:, :2], z[:, :2].to(CACHE_DTYPE).float())
    assert again[:, 2:4].abs().sum() == 0  # not cached: still z = 0
    assert torch.equal(again[:, 4], again[:, 1])


def test_the_whole_pool_fits_within_a_large_budget_and_nothing_fits_in_none():
    cache = WarmStartCache(1, 100, 8, budget_bytes=1 << 20, device=CPU)
    assert cache.capacity == 100 and cache.nbytes == 101 * 8 * 2
    assert WarmStartCache(1, 100, 8, budget_bytes=16, device=CPU).capacity == 0


def test_non_finite_states_are_not_kept():
    cache = WarmStartCache(1, 4, 3, budget_bytes=1 << 10, device=CPU)
    slots = cache.slots(torch.arange(4))
    z = torch.tensor([[[float("nan"), 1.0, 2.0], [float("inf"), -float("inf"), 1e9]] * 2])
    cache.store(slots, z)
    start = cache.start(slots)
    limit = torch.finfo(CACHE_DTYPE).max
    assert torch.isfinite(start).all()
    assert start[0, 0].tolist() == [0.0, 1.0, 2.0]
    assert start[0, 1].tolist() == [limit, -limit, limit]


def test_loading_states_of_another_budget_keeps_the_points_both_cached():
    big = WarmStartCache(1, 8, 2, budget_bytes=1 << 10, device=CPU)
    big.store(big.slots(torch.arange(8)), torch.arange(1.0, 17.0).view(1, 8, 2))
    small = WarmStartCache(1, 8, 2, budget_bytes=5 * 4, device=CPU)  # 4 points + scratch
    small.load(big.states)
    assert small.start(small.slots(torch.arange(8)))[0].tolist() == (
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]] + [[0.0, 0.0]] * 4
    )
    back = WarmStartCache(1, 8, 2, budget_bytes=1 << 10, device=CPU)
    back.load(small.states)
    assert back.start(back.slots(torch.arange(8)))[0, 3:5].tolist() == [[7.0, 8.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="does not fit"):
        WarmStartCache(2, 8, 2, budget_bytes=1 << 10, device=CPU).load(big.states)


def test_a_cached_start_reaches_the_same_fixed_point_in_fewer_iterations():
    """Same tolerance from a cached state: the same fixed point up to the tolerance."""
    model = build_model(MODEL, 2, 1, seed=0, input_scale=16.0, tol=1e-4)
    model.train()
    x = torch.rand(1, 200, 2) * 2 - 1
    cache = WarmStartCache(1, 200, model.state_dim, budget_bytes=1 << 20, device=CPU)
    slots = cache.slots(torch.arange(200))
    with torch.no_grad():
        cold = model.run(x, z0=None, solve=True)
        cache.store(slots, cold.z)
        warm = model.run(x, z0=cache.start(slots), solve=True)
    assert cold.solver_steps >= 5
    assert warm.solver_steps < cold.solver_steps / 2
    scale = torch.linalg.vector_norm(cold.z)
    assert torch.linalg.vector_norm(warm.z - cold.z) / scale < 2e-4
    assert torch.allclose(warm.y, cold.y, atol=1e-3 * cold.y.abs().max().item())


def test_minibatch_training_records_fewer_solver_iterations_with_the_cache(crops: PreparedData):
    task = get_task("image_representation")
    cached = train(task, crops, MODEL, 0, minibatch_settings(), CPU)
    uncached = train(task, crops, MODEL, 0, minibatch_settings(warm_cache_mb=0), CPU)
    with_cache, without = summary(cached, CPU), summary(uncached, CPU)
    assert with_cache["warm_cache_bytes"] == 2 * 257 * 16 * 2  # 2 signals, 256 pixels + scratch
    assert without["warm_cache_bytes"] == 0
    assert with_cache["solver_steps_first"] == without["solver_steps_first"]  # both from z = 0
    # Each pixel is drawn every 4 steps: after the first pass its solve starts near its fixed
    # point (about a third fewer iterations here, where the weights move fast: lr 3e-3).
    late_cached = cached.chunks[0].solver_steps_intervals[-1]
    late_uncached = uncached.chunks[0].solver_steps_intervals[-1]
    assert late_cached < 0.75 * late_uncached
    assert with_cache["solver_steps_mean"] < without["solver_steps_mean"]
    assert without["solver_steps_mean"] == pytest.approx(
        np.mean(uncached.chunks[0].solver_steps_intervals)
    )
    # The same fixed points up to the tolerance: the two runs learn alike.
    losses = [[row["loss"] for row in run.chunks[0].curve] for run in (cached, uncached)]
    assert losses[0][-1] < 0.5 * losses[0][0]
    assert losses[0][-1] == pytest.approx(losses[1][-1], rel=0.05)


def test_full_batch_and_explicit_runs_have_no_cache(crops: PreparedData):
    task = get_task("image_representation")
    full = TrainSettings.from_dict({"steps": 10, "input_scale": 16.0, "log_every": 5})
    record = summary(train(task, crops, MODEL, 0, full, CPU), CPU)
    assert record["warm_cache_bytes"] == 0
    # Amortized: one solve at step 0, none after.
    assert record["solver_steps_mean"] == pytest.approx(record["solver_steps_first"] / 10)
    explicit = summary(train(task, crops, "mfn-fourier-1L16D", 0, minibatch_settings(), CPU), CPU)
    assert explicit["warm_cache_bytes"] == 0 and explicit["solver_steps_mean"] == 0
