"""The input scale a signal calls for, where a run does not set one (``implicit2 fit``, and
``implicit2 train`` for a workflow's own file).

Why: the filters draw their frequencies in proportion to ``input_scale``
(:mod:`implicit2.models.filters`), over coordinates that span [-1, 1] on every axis whatever the
signal's size. A signal with n samples along an axis holds frequencies up to its Nyquist
frequency, about π·n/2 rad per unit of that span, so the same picture at 96² and at 512² needs
filters about five times apart.

The rule takes the least of three bounds:

- sampling: ``paper_scale × n / n_paper``, where n measures the sampling (:meth:`Sampling.measure`)
  and ``paper_scale`` is the task's setting for the model at the paper's sampling ``n_paper``
  (:data:`PAPER_MEASURE`), so the paper's own signals keep the paper's values. Images: n is the
  samples along the training grid's shorter axis (the filters draw frequency vectors
  isotropically, so the shorter axis's Nyquist bounds them); the paper's 256 at 512² is n/2, as
  CelebA's 64 at 128². Video: the same over frames and pixels, up to the paper's scale (the
  paper's two videos share one scale; the bound reaches it at the bikes video's 250 frames).
  Audio: √(samples × seconds), relative to the paper's bach clip → 25000: the Nyquist bound grows
  with the samples N, the content of a sound (its frequencies are in Hz) with the duration T,
  and the measured optima fall between the two;
- capacity (images): a model holds a number of Fourier modes bounded by its layer weights
  (L·D² for ``{L}L{D}D``), shared by the C channels it outputs, and the band up to frequency s on
  [-1, 1]² holds (2s/π)² modes, so the scale is capped at D·√(L/C) (:func:`capacity_cap`): 64 for
  a gray picture and 37 for an RGB one at ``1L64D``, 256 for the paper's camera at ``1L256D``;
- bandwidth (images): filters above a signal's band are wasted on it. Its bandwidth is the radial
  frequency below which :data:`ENERGY_SHARE` of its non-constant energy lies
  (:func:`signal_bandwidth`), and the bound is :data:`BANDWIDTH_FRACTION` of it. It binds only
  for pictures sampled well above their content (a smooth synthetic picture, a small photo
  saved at a larger size): a picture with detail up to its Nyquist frequency has a bandwidth of
  about π·n/2 and a bound above the sampling bound n/2.

A picture fitted at a higher rate than the task's gets higher bounds (:func:`rate_growth`): the
paper's bounds were tuned at its rate, 1e-3 over thousands of steps, and a short run at the
rate :func:`derive_lr` gives it trains the higher filters in time, and is best at a higher scale:
the sampling and bandwidth bounds grow by g (up to 2), the capacity as :func:`capacity_cap` says.

Occupancy keeps the paper's value: its coordinates are a fixed box around the mesh, and its
inside/outside step has no band limit (its bandwidth follows the grid it is sampled on, not the
mesh's triangles). docs/fit_defaults.md has the measurements behind the rule,
including the content measures (lower energy shares, a bias–variance fit) that were tried and
predicted held-out pictures worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from implicit2.names import parse_model_name

#: The paper's bach clip: samples and sample rate (gt_bach.wav, 6.99 s).
PAPER_AUDIO = (308207, 44100.0)

#: Per task, the measure of sampling (:meth:`Sampling.measure`) at which the task's paper setting
#: was tuned (video: above it the setting stays); tasks not listed keep their setting.
PAPER_MEASURE: dict[str, float] = {
    "image_representation": 512.0,  # camera, 512² (CelebA: 64 at 128², the same ratio)
    "image_generalization": 256.0,  # the even pixels of 512² images
    "audio": PAPER_AUDIO[0] / math.sqrt(PAPER_AUDIO[1]),  # √(samples · seconds)
    "video": 250.0,  # bikes: 250 frames of 272×640 (cat: 300 frames of 512², the same scale)
}
#: Tasks whose scale the model's capacity and the signal's bandwidth bound.
IMAGE_TASKS = frozenset({"image_representation", "image_generalization"})
#: The share of a signal's non-constant energy that lies below its bandwidth.
ENERGY_SHARE = 0.999
#: The bandwidth bound is this fraction of the bandwidth (rad per unit of the [-1, 1] span).
BANDWIDTH_FRACTION = 0.5
#: Per task, the highest Adam rate :func:`derive_lr` gives a run shorter than the task's own.
#: Other tasks keep their rate: at 3e-3, seven of eight clips of 300 steps gained 1.4–2.7 dB, but
#: a synthetic tone lost, two clips missed their scale sweep and one run diverged; image
#: generalization (scored on pixels it does not train on), video and occupancy were not measured.
SHORT_RUN_MAX_LR: dict[str, float] = {"image_representation": 2e-2}
#: The model families :func:`derive_lr` raises the rate of: the MFNs (DEQ and explicit) and the
#: Fourier-feature MLP gained 2–6 dB at 300 steps; the SIREN baseline lost 11–18 dB, and keeps
#: the task's rate.
SHORT_RUN_FAMILIES = frozenset({"deq", "mfn", "ffn"})
#: The most the image bounds grow with the rate (:func:`rate_growth`).
MAX_RATE_GROWTH = 2.0


def signal_bandwidth(values: np.ndarray, share: float = ENERGY_SHARE) -> float | None:
    """The radial frequency, in radians per unit of the [-1, 1] span of each axis, below which
    ``share`` of the signals' energy lies, the mean of each signal and channel left out.

    The spectrum is the DCT-II's (the signal mirrored at its edges, so that its borders add no
    spurious high frequencies): index k along an axis of n samples is the frequency
    π·k·(n−1)/(2n), up to the Nyquist frequency at k = n − 1.

    Args:
        values: (S, *grid, C): S signals of C channels on a grid of one or more axes.
        share: in (0, 1).

    Returns:
        The bandwidth, or None for signals without variation.

    Raises:
        ValueError: ``values`` has no grid axis or ``share`` is outside (0, 1).
    """
    from scipy.fft import dctn

    if values.ndim < 3:
        raise ValueError(f"values of shape {values.shape} are not (signals, *grid, channels)")
    if not 0.0 < share < 1.0:
        raise ValueError(f"the energy share must be in (0, 1), got {share}")
    grid = values.shape[1:-1]
    axes = tuple(range(1, 1 + len(grid)))
    centred = values.astype(np.float64) - values.mean(axis=axes, keepdims=True)
    power = np.square(dctn(centred, type=2, axes=axes, norm="ortho")).sum(axis=(0, -1))
    total = power.sum()
    if not total > 1e-12 * np.square(values, dtype=np.float64).sum():  # rounding of the mean
        return None
    steps = [np.pi * np.arange(n) * (n - 1) / (2 * n) for n in grid]
    radius = np.sqrt(sum(np.square(w) for w in np.meshgrid(*steps, indexing="ij"))).ravel()
    order = np.argsort(radius, kind="stable")
    cumulative = np.cumsum(power.ravel()[order]) / total
    return float(radius[order][min(np.searchsorted(cumulative, share), radius.size - 1)])


@dataclass(frozen=True)
class Sampling:
    """The facts the rule reads from a prepared signal.

    Attributes:
        task: the task name.
        samples: training samples along each coordinate axis (image: height, width of the
            training grid; audio: the sample count; video: frames, height, width).
        sample_rate: samples per second (audio), else None.
        channels: values per sample (1 for gray, 3 for RGB).
        bandwidth: :func:`signal_bandwidth` of the training samples (images), else None.
    """

    task: str
    samples: tuple[int, ...]
    sample_rate: float | None = None
    channels: int = 1
    bandwidth: float | None = None

    def __post_init__(self) -> None:
        if not self.samples or any(count < 1 for count in self.samples):
            raise ValueError(
                f"{self.task}: samples per axis must be positive counts, got {self.samples}"
            )
        if self.task == "audio" and not (self.sample_rate or 0) > 0:
            raise ValueError(f"audio: the sample rate must be positive, got {self.sample_rate}")
        if self.channels < 1:
            raise ValueError(f"{self.task}: channels must be positive, got {self.channels}")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"{self.task}: the bandwidth must be positive, got {self.bandwidth}")

    def measure(self) -> float:
        """What the sampling bound is proportional to: audio √(samples · seconds); otherwise the
        samples along the shortest axis."""
        if self.task == "audio" and self.sample_rate:
            return self.samples[0] / math.sqrt(self.sample_rate)
        return float(min(self.samples))

    def describe(self) -> str:
        """E.g. ``96×128 samples, 3 channels`` or ``24000 samples at 8000 Hz (3 s)``."""
        text = "×".join(str(count) for count in self.samples) + " samples"
        if self.channels > 1:
            text += f", {self.channels} channels"
        if self.sample_rate is None:
            return text
        return f"{text} at {self.sample_rate:g} Hz ({self.samples[0] / self.sample_rate:.3g} s)"


@dataclass(frozen=True)
class DerivedScale:
    """The rule's input scale and the one-line reason for it."""

    input_scale: float
    reason: str


@dataclass(frozen=True)
class DerivedRate:
    """The Adam rate of a run shorter than the task's, and the one-line reason for it."""

    lr: float
    reason: str


def derive_lr(
    task: str, model: str, task_lr: float, task_steps: int, steps: int
) -> DerivedRate | None:
    """The rate of a run of ``model`` for ``steps`` where the task trains ``task_steps`` at
    ``task_lr``, or None where the task's rate stays (a run as long as the task's or longer, a
    task not in :data:`SHORT_RUN_MAX_LR`, a model family not in :data:`SHORT_RUN_FAMILIES`).

    Adam moves each weight by about the rate per step whatever its gradient, so a run moves a
    weight by up to rate × steps; a shorter run keeps the task's reach by a higher rate, up to
    the task's :data:`SHORT_RUN_MAX_LR`.

    Raises:
        ValueError: a rate or step count is not positive, or ``model`` is not a model name.
    """
    family = parse_model_name(model).family
    if not (task_lr > 0 and task_steps > 0 and steps > 0):
        raise ValueError(
            f"{task}: rates and step counts must be positive, got lr {task_lr}, "
            f"steps {task_steps} and {steps}"
        )
    if task not in SHORT_RUN_MAX_LR or family not in SHORT_RUN_FAMILIES or steps >= task_steps:
        return None
    kept = task_lr * task_steps / steps
    cap = SHORT_RUN_MAX_LR[task]
    reason = f"the task's {task_lr:g} × {task_steps} steps kept over {steps} steps"
    if kept > cap:
        return DerivedRate(cap, f"{reason}, capped at {cap:g}")
    return DerivedRate(kept, reason)


def rate_growth(task: str, lr_ratio: float) -> float:
    """How much the sampling and bandwidth bounds grow at ``lr_ratio`` times the task's rate:
    the ratio itself, between 1 and :data:`MAX_RATE_GROWTH`, for the tasks of
    :data:`SHORT_RUN_MAX_LR`; 1 elsewhere (audio's best scale stayed at 3× the rate)."""
    if task not in SHORT_RUN_MAX_LR:
        return 1.0
    return min(max(lr_ratio, 1.0), MAX_RATE_GROWTH)


def capacity_cap(model: str, channels: int = 1, growth: float = 1.0) -> float:
    """The highest image scale ``model`` can fill with ``channels`` outputs: D·√(L/C) for
    ``{L}L{D}D`` (module docstring) at the task's rate; at a rate that grows the bounds by
    ``growth`` (:func:`rate_growth`), D·√(L·g) / C^(1/2g): the model fills √g times the band, and
    the channels of a picture, trained further, share it less (at g = 2, 90.5 for a gray picture
    and 68.8 for an RGB one at ``1L64D``).

    Raises:
        ValueError: ``model`` is not a model name.
    """
    spec = parse_model_name(model)
    return spec.width * math.sqrt(spec.layers * growth) / channels ** (0.5 / growth)


def sampling_bound(sampling: Sampling, paper_scale: float) -> tuple[float, str]:
    """The sampling bound (module docstring) and its reason; ``sampling.task`` is in
    :data:`PAPER_MEASURE`."""
    reference = PAPER_MEASURE[sampling.task]
    ratio = sampling.measure() / reference
    if sampling.task == "audio":
        rule = "∝ √(samples × seconds)"
        paper = f"{PAPER_AUDIO[0]} samples at {PAPER_AUDIO[1]:g} Hz"
    else:
        rule = "∝ samples of the shortest axis" if len(set(sampling.samples)) > 1 else "∝ samples"
        paper = f"{reference:g} per axis"
        if sampling.task == "video":
            ratio = min(ratio, 1.0)
            rule += ", up to the paper's"
    return paper_scale * ratio, f"{rule}; the paper's {paper_scale:g} at {paper}"


def derive_input_scale(
    sampling: Sampling, paper_scale: float, model: str, lr_ratio: float = 1.0
) -> DerivedScale:
    """The input scale for ``sampling`` and ``model`` trained at ``lr_ratio`` times the task's
    rate: the least of the bounds of the module docstring that apply to the task;
    ``paper_scale`` is the task's setting for the model.

    Raises:
        ValueError: ``paper_scale`` or ``lr_ratio`` is not positive, or ``model`` is not a model
            name.
    """
    if not paper_scale > 0:
        raise ValueError(
            f"{sampling.task}: the task's input_scale must be positive, got {paper_scale}"
        )
    if not lr_ratio > 0:
        raise ValueError(f"{sampling.task}: the rate's ratio must be positive, got {lr_ratio}")
    if sampling.task not in PAPER_MEASURE:
        return DerivedScale(
            paper_scale,
            f"the paper's {sampling.task} setting (not derived from the sampling for this task)",
        )
    growth = rate_growth(sampling.task, lr_ratio)
    grown = f"g = {growth:.3g} for {lr_ratio:.3g}× the task's rate"
    scale, why = sampling_bound(sampling, paper_scale)
    # name → (bound, what it is)
    bounds = {"sampling of the signal": (growth * scale, f"{sampling.describe()}, {why}")}
    if sampling.task in IMAGE_TASKS:
        capacity = f"D·√(L/C) for {sampling.channels} channel(s)"
        if growth > 1.0:
            capacity = f"D·√(L·g) / C^(1/2g) for {sampling.channels} channel(s), {grown}"
        bounds[f"capacity of {model}"] = (capacity_cap(model, sampling.channels, growth), capacity)
        if sampling.bandwidth is not None:
            share = f"{ENERGY_SHARE:.1%} of its energy below {sampling.bandwidth:.4g} rad/unit"
            content = growth * BANDWIDTH_FRACTION * sampling.bandwidth
            bounds["bandwidth of the signal"] = (content, f"{share}, × {BANDWIDTH_FRACTION:g}")
    binding = min(bounds, key=lambda name: bounds[name][0])
    chosen, reason = bounds[binding]
    if growth > 1.0 and not binding.startswith("capacity"):
        reason += f"; × g, {grown}"
    text = f"{binding}: {reason}"
    others = [f"{name} {value:.4g}" for name, (value, _) in bounds.items() if name != binding]
    if others:
        text += f" (the least of it and {', '.join(others)})"
    return DerivedScale(chosen, text)
