"""The input scale of a prepared signal: derived from its sampling (``implicit2 fit``, and
``implicit2 train`` for a workflow's own file), and ``fit --tune``'s short search around it.

In the search, each candidate (the starting scale, half and twice it) trains from the same seed for
:data:`STEPS` steps; the one with the lowest training loss over the last steps wins. The search
stops early once its time box is spent (the candidates are tried nearest the starting scale
first, so an early stop keeps the likeliest ones).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import torch

from implicit2.pipeline.scale_rule import (
    DerivedScale,
    Sampling,
    derive_input_scale,
    signal_bandwidth,
)
from implicit2.tasks.base import PreparedData, Task
from implicit2.training.loop import train
from implicit2.training.records import merged_curve
from implicit2.training.settings import TrainSettings

log = logging.getLogger(__name__)

#: Candidate scales, as factors of the starting scale, in the order they are tried.
FACTORS: tuple[float, ...] = (1.0, 0.5, 2.0)
#: Training steps per candidate (at 50, scales below the best won on a 64² photo: the lower
#: frequencies fit first; at 100 the ranking matched 300 steps, docs/fit_defaults.md).
STEPS = 100
#: Steps at the end of a candidate's run whose mean loss scores it.
SCORED_STEPS = 10


def sampling_of(data: PreparedData) -> Sampling:
    """The facts of prepared data that the scale rule reads."""
    if "image_shape" in data.meta:
        height, width = data.meta["image_shape"][:2]
        if data.meta.get("split") == "even_odd":
            height, width = (height + 1) // 2, (width + 1) // 2  # trained on the even pixels
        pixels = data.train_targets.reshape(data.num_signals, height, width, -1)
        bandwidth = signal_bandwidth(pixels)
        return Sampling(data.task, (height, width), channels=data.out_dim, bandwidth=bandwidth)
    if "video_shape" in data.meta:
        return Sampling(data.task, tuple(data.meta["video_shape"][:3]), channels=data.out_dim)
    rate = data.meta.get("sample_rate")
    return Sampling(data.task, (len(data.train_coords),), None if rate is None else float(rate))


def derive_scale(
    data: PreparedData, model: str, paper_scale: float, lr_ratio: float = 1.0
) -> DerivedScale:
    """The scale rule's input scale for ``data`` and ``model`` trained at ``lr_ratio`` times the
    task's rate; ``paper_scale`` is the task's own setting for the model."""
    return derive_input_scale(sampling_of(data), paper_scale, model, lr_ratio)


@dataclass(frozen=True)
class Trial:
    """One candidate of the search: its scale, score (mean loss of the last steps) and time."""

    input_scale: float
    loss: float
    seconds: float


def search_scale(
    task: Task,
    data: PreparedData,
    model: str,
    seed: int,
    settings: TrainSettings,
    device: torch.device,
    seconds: float,
) -> tuple[float, list[Trial]]:
    """The best scale of :data:`FACTORS` × ``settings.input_scale`` and every trial run.

    Stops starting new candidates once ``seconds`` have passed; a candidate whose loss is not
    finite loses.
    """
    steps = min(STEPS, settings.steps)
    short = dataclasses.replace(
        settings, steps=steps, log_every=max(1, min(SCORED_STEPS, steps)), lr_decay=1.0
    )
    started = time.perf_counter()
    trials: list[Trial] = []
    for factor in FACTORS:
        if trials and time.perf_counter() - started > seconds:
            log.info("tune: time box of %gs spent after %d candidates", seconds, len(trials))
            break
        scale = settings.input_scale * factor
        clock = time.perf_counter()
        result = train(
            task, data, model, seed, dataclasses.replace(short, input_scale=scale), device
        )
        loss = merged_curve(result)[-1]["loss"] if result.diverged_step is None else float("inf")
        trials.append(Trial(scale, float(loss), time.perf_counter() - clock))
    best = min(trials, key=lambda trial: (not trial.loss < float("inf"), trial.loss))
    return best.input_scale, trials
