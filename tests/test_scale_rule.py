"""implicit2.pipeline.scale_rule: the input scale derived from a signal's sampling and bandwidth,
and the paper config's resolved settings, which the rule must leave as they are."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from implicit2.pipeline import config as cfg
from implicit2.pipeline import grid, run_settings
from implicit2.pipeline.scale_rule import (
    BANDWIDTH_FRACTION,
    ENERGY_SHARE,
    MAX_RATE_GROWTH,
    SHORT_RUN_MAX_LR,
    Sampling,
    capacity_cap,
    derive_input_scale,
    derive_lr,
    signal_bandwidth,
)

REPO = Path(__file__).resolve().parents[1]
#: (task, dataset, model) → the settings the paper config resolved to before the rule existed.
SNAPSHOT = Path(__file__).with_name("data") / "paper_settings.json"
SNAPSHOT_KEYS = ("input_scale", "lr", "steps", "batch_size")

#: The paper's signals: their training grid's samples per axis (and rate), from the registry.
#: A model large enough that its capacity cap never binds in the tests of the sampling rule.
MODEL = "deq-fourier-1L1024D"
TASK_IMAGE = "image_representation"

PAPER_SAMPLING = {
    "camera": Sampling("image_representation", (512, 512)),  # gray
    "celeba": Sampling("image_representation", (128, 128), channels=3),
    "nature": Sampling("image_generalization", (256, 256), channels=3),  # even pixels of 512²
    "text": Sampling("image_generalization", (256, 256), channels=3),
    "bach": Sampling("audio", (308207,), 44100.0),  # gt_bach.wav: 6.99 s at 44.1 kHz
    "cat": Sampling("video", (300, 512, 512), channels=3),
    "bikes": Sampling("video", (250, 272, 640), channels=3),
}


@functools.cache
def camera_bandwidth() -> float:
    """The bandwidth of the paper's camera image (scikit-image's ``camera``, 512²)."""
    skimage_data = pytest.importorskip("skimage.data")
    bandwidth = signal_bandwidth(skimage_data.camera()[None, ..., None] / 255.0)
    assert bandwidth is not None
    return bandwidth


@pytest.fixture(scope="module")
def paper() -> dict:
    return cfg.load_config(REPO / "config" / "config.yaml")


def test_the_paper_config_resolves_to_the_settings_it_had(paper) -> None:
    resolved = {
        f"{run.task}/{run.dataset}/{run.model}": {
            key: run_settings.resolve_hparams(paper, run.task, run.dataset, run.model)[key]
            for key in SNAPSHOT_KEYS
        }
        for run in grid.expand_grid(paper)
    }
    assert resolved == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


@functools.cache
def task_scale(task: str, model: str) -> float:
    """The input scale ``implicit2 fit`` starts from: the task's built-in setting for ``model``."""
    config = cfg.validate({"tasks": [task], "datasets": {"own": {"path": "x", "task": task}}})
    return run_settings.resolve_hparams(config, task, "own", model)["input_scale"]


def test_the_rule_gives_the_paper_its_own_scales_at_the_paper_sizes(paper) -> None:
    """Every run of the paper's grid on a signal of known sampling: the rule, starting from the
    task's setting as ``fit`` does, lands on the scale the paper config gives that run. The camera
    brings its own bandwidth (the only paper image on hand), which must not bind at the paper's
    models."""
    known = dict(PAPER_SAMPLING)
    known["camera"] = Sampling("image_representation", (512, 512), bandwidth=camera_bandwidth())
    checked = set()
    for run in grid.expand_grid(paper):
        sampling = known.get(run.dataset)
        if sampling is None:  # occupancy meshes, counting: no sampling fact to read
            continue
        paper_scale = run_settings.resolve_hparams(paper, run.task, run.dataset, run.model)
        derived = derive_input_scale(sampling, task_scale(run.task, run.model), run.model)
        assert derived.input_scale == pytest.approx(paper_scale["input_scale"]), run
        checked.add(run.dataset)
    assert checked == set(PAPER_SAMPLING)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [((512, 512), 256.0), ((96, 96), 48.0), ((64, 64), 32.0), ((96, 384), 48.0), ((400, 60), 30.0)],
)
def test_an_image_scale_is_half_the_samples_of_its_shorter_axis(samples, expected) -> None:
    derived = derive_input_scale(Sampling("image_representation", samples), 256.0, MODEL)
    assert derived.input_scale == pytest.approx(expected)
    assert "×".join(map(str, samples)) in derived.reason


def test_generalization_counts_the_even_pixels_it_trains_on() -> None:
    derived = derive_input_scale(Sampling("image_generalization", (48, 48)), 128.0, MODEL)
    assert derived.input_scale == pytest.approx(24.0)


def test_an_audio_scale_grows_with_the_duration_and_the_root_of_the_rate() -> None:
    def scale(samples: int, rate: float) -> float:
        return derive_input_scale(Sampling("audio", (samples,), rate), 25000.0, MODEL).input_scale

    one_second = scale(16000, 16000.0)
    assert scale(32000, 16000.0) == pytest.approx(2 * one_second)  # twice as long
    assert scale(64000, 64000.0) == pytest.approx(2 * one_second)  # four times the rate
    assert scale(308207, 44100.0) == pytest.approx(25000.0)  # the paper's bach clip
    sampling = Sampling("audio", (16000,), 16000.0)
    assert "16000 Hz" in derive_input_scale(sampling, 1.0, MODEL).reason


@pytest.mark.parametrize(
    ("model", "expected"),
    [("deq-fourier-1L64D", 64.0), ("mfn-gabor-4L64D", 128.0), ("deq-fourier-1L256D", 256.0)],
)
def test_a_small_model_caps_the_scale_of_a_large_image(model: str, expected: float) -> None:
    derived = derive_input_scale(Sampling("image_representation", (512, 512)), 256.0, model)
    assert derived.input_scale == pytest.approx(expected)  # D·√L, at most half of 512
    assert derived.reason.startswith("capacity") == (expected < 256.0)


def test_audio_is_not_capped() -> None:
    long_clip = Sampling("audio", (441000,), 44100.0)  # 10 s at 44.1 kHz
    derived = derive_input_scale(long_clip, 25000.0, "deq-fourier-1L16D")
    assert derived.input_scale == pytest.approx(25000.0 * 441000 / 308207)  # same rate: ∝ samples


def test_occupancy_keeps_the_task_setting_and_says_so() -> None:
    derived = derive_input_scale(Sampling("occupancy", (50000,)), 256.0, MODEL)
    assert derived.input_scale == 256.0
    assert "not derived" in derived.reason


def test_bad_sampling_and_scales_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="samples per axis must be positive"):
        Sampling("image_representation", (0, 12))
    with pytest.raises(ValueError, match="sample rate must be positive"):
        Sampling("audio", (100,), None)
    with pytest.raises(ValueError, match="channels must be positive"):
        Sampling("image_representation", (8, 8), channels=0)
    with pytest.raises(ValueError, match="input_scale must be positive"):
        derive_input_scale(Sampling("image_representation", (8, 8)), 0.0, MODEL)
    with pytest.raises(ValueError, match="is not a model name"):
        derive_input_scale(Sampling("image_representation", (8, 8)), 256.0, "deq-1L8D")


def test_a_short_run_keeps_the_task_rate_times_steps_up_to_the_cap() -> None:
    model = "deq-fourier-1L64D"
    rate = derive_lr(TASK_IMAGE, model, 1e-3, 5000, 300)
    assert rate is not None and rate.lr == pytest.approx(1e-3 * 5000 / 300)
    assert rate.reason == "the task's 0.001 × 5000 steps kept over 300 steps"
    capped = derive_lr(TASK_IMAGE, model, 1e-3, 5000, 50)
    assert capped is not None and capped.lr == SHORT_RUN_MAX_LR[TASK_IMAGE]
    assert capped.reason.endswith(f"capped at {SHORT_RUN_MAX_LR[TASK_IMAGE]:g}")
    assert derive_lr(TASK_IMAGE, model, 1e-3, 5000, 5000) is None  # the paper's own run
    assert derive_lr(TASK_IMAGE, model, 1e-3, 5000, 20000) is None  # never lowered
    for task in ("audio", "image_generalization", "video", "occupancy"):
        assert derive_lr(task, model, 1e-3, 3000, 300) is None, task
    for other in ("mfn-gabor-1L64D", "ffn-2L64D"):
        assert derive_lr(TASK_IMAGE, other, 1e-3, 5000, 300) is not None, other
    assert derive_lr(TASK_IMAGE, "siren-3L64D", 1e-3, 5000, 300) is None  # collapses at 1.7e-2
    with pytest.raises(ValueError, match="must be positive"):
        derive_lr(TASK_IMAGE, model, 1e-3, 5000, 0)


def test_a_picture_at_a_higher_rate_gets_higher_bounds() -> None:
    model = "deq-fourier-1L64D"  # capacity 64 for gray, 37 for RGB
    growth = MAX_RATE_GROWTH

    def at(sampling: Sampling, lr_ratio: float) -> float:
        return derive_input_scale(sampling, 256.0, model, lr_ratio).input_scale

    small = Sampling(TASK_IMAGE, (64, 96))  # the sampling bound binds: 32
    assert at(small, 1.0) == pytest.approx(32.0)
    assert at(small, 1e-2 / 1e-3) == pytest.approx(32.0 * growth)
    assert at(small, 1.5) == pytest.approx(48.0)  # grows with the rate up to the limit
    assert at(small, 0.5) == pytest.approx(32.0)  # a lower rate never lowers it
    smooth = Sampling(TASK_IMAGE, (384, 384), bandwidth=40.0)
    assert at(smooth, 20.0) == pytest.approx(growth * BANDWIDTH_FRACTION * 40.0)
    large = Sampling(TASK_IMAGE, (512, 512))
    derived = derive_input_scale(large, 256.0, model, 20.0)
    assert derived.input_scale == pytest.approx(64.0 * 2**0.5)  # D·√(L·g), g = 2
    assert "D·√(L·g) / C^(1/2g) for 1 channel(s), g = 2 for 20× the task's rate (" in derived.reason
    rgb = Sampling(TASK_IMAGE, (512, 512), channels=3)  # the channels share less of it
    assert at(rgb, 20.0) == pytest.approx(64.0 * 2**0.5 / 3**0.25)
    assert at(rgb, 20.0) / at(rgb, 1.0) > at(large, 20.0) / at(large, 1.0)
    clip = Sampling("audio", (24000,), 8000.0)  # audio's best scale did not move with the rate
    assert at(clip, 3.0) == at(clip, 1.0)
    with pytest.raises(ValueError, match="ratio must be positive"):
        at(small, 0.0)


def bin_frequency(n: int, k: int) -> float:
    """The frequency (rad per unit of [-1, 1]) of the DCT's k-th basis function on n samples."""
    return float(np.pi * k * (n - 1) / (2 * n))


def cosines(n: int, bins: list[int], amplitudes: list[float]) -> np.ndarray:
    """(1, n, 1): a sum of the DCT's basis functions ``bins`` (cosines on n samples of [-1, 1],
    sampled half a sample in from the ends) with ``amplitudes``."""
    x = np.linspace(-1.0, 1.0, n) + 1.0 + 1.0 / (n - 1)
    wave = sum(a * np.cos(bin_frequency(n, k) * x) for k, a in zip(bins, amplitudes, strict=True))
    return np.asarray(wave)[None, :, None]


def test_the_bandwidth_of_one_tone_is_its_frequency() -> None:
    for k in (25, 191, 637):
        assert signal_bandwidth(cosines(4001, [k], [1.0])) == pytest.approx(bin_frequency(4001, k))


def test_the_bandwidth_of_equal_tones_is_where_the_energy_share_is_reached() -> None:
    """20 tones of equal energy: 94 % of it lies below the 19th, all but a thousandth below the
    20th; a quieter top tone moves the 99.9 % point down to the 19th."""
    bins = [10 * j for j in range(1, 21)]
    top, below = bin_frequency(2001, 200), bin_frequency(2001, 190)
    assert signal_bandwidth(cosines(2001, bins, [1.0] * 20), 0.94) == pytest.approx(below)
    assert ENERGY_SHARE == 0.999
    assert signal_bandwidth(cosines(2001, bins, [1.0] * 20)) == pytest.approx(top)
    quiet_top = signal_bandwidth(cosines(2001, bins, [1.0] * 19 + [0.01]))
    assert quiet_top == pytest.approx(below)


def test_the_bandwidth_is_in_units_of_the_span_not_of_the_samples() -> None:
    """The same pattern at 64² and at 256²: two plane waves of frequency √(30² + 40²) = 50."""
    for n in (64, 256):
        y, x = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
        image = (np.cos(30.0 * (y + 1)) * np.cos(40.0 * (x + 1)))[None, ..., None]
        assert signal_bandwidth(image, 0.95) == pytest.approx(50.0, abs=np.pi)


def test_blurring_lowers_the_bandwidth_and_a_flat_signal_has_none() -> None:
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(0).standard_normal((1, 96, 128, 3))
    blurred = gaussian_filter(noise, sigma=(0, 2, 2, 0))
    sharp, smooth = signal_bandwidth(noise), signal_bandwidth(blurred)
    assert sharp is not None and smooth is not None and smooth < 0.6 * sharp
    assert signal_bandwidth(np.full((2, 16, 16, 1), 0.3)) is None
    with pytest.raises(ValueError, match="not \\(signals, \\*grid, channels\\)"):
        signal_bandwidth(np.zeros((16, 16)))


def test_a_picture_sampled_above_its_content_gets_a_scale_from_its_bandwidth() -> None:
    model = "deq-fourier-1L64D"  # capacity 64 for gray
    smooth = Sampling("image_representation", (384, 384), bandwidth=80.0)
    derived = derive_input_scale(smooth, 256.0, model)
    assert derived.input_scale == pytest.approx(BANDWIDTH_FRACTION * 80.0)
    assert derived.reason.startswith("bandwidth of the signal: 99.9% of its energy below 80")
    detailed = Sampling("image_representation", (384, 384), bandwidth=np.pi * 384 / 2)
    assert derive_input_scale(detailed, 256.0, model).reason.startswith("capacity")
    full_band = Sampling("image_representation", (96, 96), bandwidth=np.pi * 96 / 2)
    assert derive_input_scale(full_band, 256.0, model).input_scale == pytest.approx(48.0)


@pytest.mark.parametrize(
    ("model", "channels", "expected"),
    [
        ("deq-fourier-1L64D", 1, 64.0),
        ("deq-fourier-1L64D", 3, 64.0 / 3**0.5),
        ("deq-fourier-4L64D", 3, 128.0 / 3**0.5),
        ("deq-fourier-1L128D", 3, 128.0 / 3**0.5),
    ],
)
def test_an_rgb_picture_shares_the_capacity_among_its_channels(model, channels, expected) -> None:
    sampling = Sampling("image_representation", (384, 384), channels=channels)
    derived = derive_input_scale(sampling, 256.0, model)
    assert derived.input_scale == pytest.approx(expected) == capacity_cap(model, channels)
    assert derived.reason.startswith(f"capacity of {model}: D·√(L/C) for {channels} channel")
    assert "sampling of the signal 192" in derived.reason


@pytest.mark.parametrize(("channels", "bandwidth"), [(1, None), (3, None), (1, 60.0), (3, 300.0)])
def test_the_scale_never_falls_as_the_sampling_or_the_model_grows(
    channels: int, bandwidth: float | None
) -> None:
    def scale(n: int, model: str) -> float:
        sampling = Sampling(TASK_IMAGE, (n, n + 32), channels=channels, bandwidth=bandwidth)
        return derive_input_scale(sampling, 256.0, model).input_scale

    for model in ("deq-fourier-1L32D", "deq-fourier-1L64D", "deq-fourier-1L256D"):
        scales = [scale(n, model) for n in (32, 64, 96, 128, 256, 512, 1024)]
        assert scales == sorted(scales)
    for n in (64, 512):
        widths = [scale(n, f"deq-fourier-1L{d}D") for d in (16, 64, 256, 1024)]
        assert widths == sorted(widths)


def test_a_video_scale_follows_its_shortest_axis_up_to_the_paper_value() -> None:
    def scale(samples: tuple[int, int, int], model: str = "deq-fourier-1L1024D") -> float:
        return derive_input_scale(Sampling("video", samples), 128.0, model).input_scale

    assert scale((250, 272, 640)) == pytest.approx(128.0)  # bikes
    assert scale((300, 512, 512)) == pytest.approx(128.0)  # cat: longer, the paper's value
    assert scale((125, 272, 640)) == pytest.approx(64.0)  # half the frames
    assert scale((300, 100, 200)) == pytest.approx(128.0 * 100 / 250)  # small frames
    derived = derive_input_scale(Sampling("video", (50, 64, 64)), 256.0, "deq-fourier-4L1024D")
    assert derived.input_scale == pytest.approx(256.0 * 50 / 250)
    assert "50×64×64 samples" in derived.reason
