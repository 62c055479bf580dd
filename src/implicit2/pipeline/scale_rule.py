"""The input scale a signal's sampling calls for, where a run does not set one (``implicit2 fit``).

Why: the filters draw their frequencies in proportion to ``input_scale``
(:mod:`implicit2.models.filters`), over coordinates that span [-1, 1] whatever the signal's size.
A signal with n samples along an axis holds frequencies up to its Nyquist frequency, π·n/2 rad per
unit of that span, so the same picture at 96² and at 512² needs filters about five times apart.

The rule: ``input_scale = paper_scale × n / n_paper``, where n measures the sampling
(:meth:`Sampling.measure`) and ``paper_scale`` is the task's setting for the model at the paper's
sampling ``n_paper`` (:data:`PAPER_MEASURE`): the paper's own signals keep the paper's values.

- images: n is the samples along the training grid's shorter axis. The filters draw frequency
  vectors isotropically, so a scale above that axis's Nyquist puts filters beyond it; the paper's
  256 at 512² is 0.5 × n, as CelebA's 64 at 128² and image generalization's 128 on the even
  pixels (256²) of 512² images;
- audio: n is the geometric mean of the sample count and the duration in seconds, √(N·T),
  relative to the paper's bach clip (308207 samples, 6.99 s at 44.1 kHz → 25000). Two bounds meet
  here: the Nyquist bound grows with the samples N, as for images; the content bound grows with
  the duration T alone (a sound's frequencies are in Hz, and T seconds span the coordinate range).
  Measured optima fall between the two, so the rule takes their geometric mean: the scale grows
  with the duration, and with the square root of the sample rate;
- video and occupancy keep the paper's values: their scales are not derived from the sampling.

A small model cannot use the whole band of a large picture: it holds a number of Fourier modes
bounded by its layer weights (L·D² for ``{L}L{D}D``), and the band up to frequency s on [-1, 1]²
holds (2s/π)² of them. An image's scale is capped at D·√L (:func:`capacity_cap`), where that band
holds (2/π)² ≈ 0.4 modes per layer weight: 64 for ``1L64D``, 256 for the paper's ``1L256D`` (the
paper's own value at 512², so the paper's settings stay). Audio is not capped: no clip measured
needed it.

docs/fit_defaults.md has the measurements behind the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from implicit2.names import parse_model_name

#: The paper's bach clip: samples and sample rate (gt_bach.wav, 6.99 s).
PAPER_AUDIO = (308207, 44100.0)

#: Per task, the measure of sampling (:meth:`Sampling.measure`) at which the task's paper setting
#: was tuned; tasks not listed keep their setting.
PAPER_MEASURE: dict[str, float] = {
    "image_representation": 512.0,  # camera, 512² (CelebA: 64 at 128², the same ratio)
    "image_generalization": 256.0,  # the even pixels of 512² images
    "audio": PAPER_AUDIO[0] / math.sqrt(PAPER_AUDIO[1]),  # √(samples · seconds)
}


@dataclass(frozen=True)
class Sampling:
    """The sampling facts the rule reads from a prepared signal.

    Attributes:
        task: the task name.
        samples: training samples along each coordinate axis (image: height, width of the
            training grid; audio: the sample count; video: frames, height, width).
        sample_rate: samples per second (audio), else None.
    """

    task: str
    samples: tuple[int, ...]
    sample_rate: float | None = None

    def __post_init__(self) -> None:
        if not self.samples or any(count < 1 for count in self.samples):
            raise ValueError(
                f"{self.task}: samples per axis must be positive counts, got {self.samples}"
            )
        if self.task == "audio" and not (self.sample_rate or 0) > 0:
            raise ValueError(f"audio: the sample rate must be positive, got {self.sample_rate}")

    def measure(self) -> float:
        """What the scale is proportional to: audio √(samples · seconds); otherwise the samples
        along the shortest axis."""
        if self.task == "audio" and self.sample_rate:
            return self.samples[0] / math.sqrt(self.sample_rate)
        return float(min(self.samples))

    def describe(self) -> str:
        """E.g. ``96×128 samples`` or ``24000 samples at 8000 Hz (3 s)``."""
        text = "×".join(str(count) for count in self.samples) + " samples"
        if self.sample_rate is None:
            return text
        return f"{text} at {self.sample_rate:g} Hz ({self.samples[0] / self.sample_rate:.3g} s)"


@dataclass(frozen=True)
class DerivedScale:
    """The rule's input scale and the one-line reason for it."""

    input_scale: float
    reason: str


def capacity_cap(model: str) -> float:
    """The highest image scale ``model`` can fill: D·√L for ``{L}L{D}D`` (module docstring).

    Raises:
        ValueError: ``model`` is not a model name.
    """
    spec = parse_model_name(model)
    return spec.width * math.sqrt(spec.layers)


def derive_input_scale(sampling: Sampling, paper_scale: float, model: str) -> DerivedScale:
    """The input scale for ``sampling`` and ``model``; ``paper_scale`` is the task's setting for
    the model.

    Raises:
        ValueError: ``paper_scale`` is not positive, or ``model`` is not a model name.
    """
    if not paper_scale > 0:
        raise ValueError(
            f"{sampling.task}: the task's input_scale must be positive, got {paper_scale}"
        )
    reference = PAPER_MEASURE.get(sampling.task)
    if reference is None:
        return DerivedScale(
            paper_scale,
            f"the paper's {sampling.task} setting (not derived from the sampling for this task)",
        )
    scale = paper_scale * sampling.measure() / reference
    if sampling.task == "audio":
        rule = "∝ √(samples × seconds)"
        paper = f"{PAPER_AUDIO[0]} samples at {PAPER_AUDIO[1]:g} Hz"
    else:
        rule = "∝ samples per axis" + (" (the shorter)" if len(set(sampling.samples)) > 1 else "")
        paper = f"{reference:g} per axis"
    reason = f"{sampling.describe()}, {rule}; the paper's {paper_scale:g} at {paper}"
    cap = capacity_cap(model)
    if sampling.task != "audio" and scale > cap:
        reason += f"; {scale:.4g} capped at D·√L of {model}"
        scale = cap
    return DerivedScale(scale, reason)
