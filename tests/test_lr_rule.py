"""implicit2.pipeline.lr_rule: the learning rate of a fit shorter than the task's own run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from implicit2.cli import main
from implicit2.commands.fit import task_defaults
from implicit2.pipeline.lr_rule import MAX_LR, derive_lr

MODEL = "deq-fourier-1L64D"


@pytest.mark.parametrize("task", ["image_representation", "audio", "video", "occupancy"])
def test_a_run_of_the_tasks_own_length_keeps_the_tasks_rate(task: str) -> None:
    own = task_defaults(task, MODEL)
    for steps in (own["steps"], 2 * own["steps"]):
        derived = derive_lr(task, own["lr"], own["steps"], steps)
        assert (derived.lr, derived.source) == (own["lr"], "task default")


def test_a_shorter_run_keeps_the_papers_travel_up_to_the_tasks_ceiling() -> None:
    own = task_defaults("image_representation", MODEL)  # 1e-3 over 5000 steps
    travel = own["lr"] * own["steps"]
    rates = {}
    for steps in (4000, 2500, 1000, 300, 100, 5):
        derived = derive_lr("image_representation", own["lr"], own["steps"], steps)
        rates[steps] = derived.lr
        assert derived.source == "steps"
        assert derived.lr == pytest.approx(min(travel / steps, MAX_LR["image_representation"]))
        assert f"/ {steps} steps" in derived.reason
    assert rates[4000] > own["lr"] and rates[300] == pytest.approx(travel / 300)
    assert list(rates.values()) == sorted(rates.values())  # shorter runs, higher rates
    capped = derive_lr("audio", 1e-3, 3000, 300)  # 1e-2 by travel: audio diverged there
    assert capped.lr == MAX_LR["audio"] and "capped" in capped.reason


def test_tasks_without_a_measured_ceiling_keep_their_rate() -> None:
    own = task_defaults("video", MODEL)
    derived = derive_lr("video", own["lr"], own["steps"], 300)
    assert (derived.lr, derived.source) == (own["lr"], "task default")


def test_bad_rates_and_step_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="lr must be positive"):
        derive_lr("audio", 0.0, 3000, 300)
    with pytest.raises(ValueError, match="steps must be positive"):
        derive_lr("audio", 1e-3, 3000, 0)


def test_a_short_fit_at_the_derived_rate_fits_better_than_at_the_tasks_rate(
    tmp_path: Path,
) -> None:
    """What the rule is for: 40 steps at the task's 1e-3 leave a picture under-fitted."""
    skimage_data = pytest.importorskip("skimage.data")
    imageio = pytest.importorskip("imageio.v3")
    image = tmp_path / "crop.png"
    imageio.imwrite(image, skimage_data.camera()[200:232, 240:272])
    argv = ["fit", str(image), "--model", "deq-fourier-1L32D", "--steps", "40", "--device", "cpu"]
    psnr = {}
    for name, extra in (("derived", []), ("task", ["--lr", "1e-3"])):
        assert main([*argv, "--out", str(tmp_path / name), "--no-progress", *extra]) == 0
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        psnr[name] = metrics["psnr"]
        if name == "derived":
            assert metrics["fit_settings"]["lr"]["source"] == "steps"
            assert metrics["hparams"]["lr"] == pytest.approx(MAX_LR["image_representation"])
    assert np.isfinite(psnr["derived"]) and psnr["derived"] > psnr["task"] + 1, psnr
