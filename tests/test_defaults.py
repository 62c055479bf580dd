"""One source of defaults: pipeline/defaults.yaml feeds the schema, the per-task paper settings and
TrainSettings, and `fit`, `train` and the workflow resolve the same settings from it."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from implicit2.commands.fit import fit_settings
from implicit2.names import TASK_NAMES
from implicit2.pipeline import config as cfg
from implicit2.pipeline.defaults import load_defaults, train_defaults
from implicit2.pipeline.run_settings import HPARAM_KEYS, resolve_hparams
from implicit2.pipeline.schema import load_schema, problems
from implicit2.training.settings import TrainSettings


def test_defaults_file_passes_the_schema() -> None:
    defaults = load_defaults()
    config = {
        "device": defaults["device"],
        "train": defaults["train"],
        "resources": defaults["resources"],
        "task_settings": defaults["tasks"],
    }
    assert problems(config, load_schema()) == []
    assert list(defaults["tasks"]) == list(TASK_NAMES)


def test_train_settings_take_their_defaults_from_the_file() -> None:
    fields = {field.name: field.default for field in dataclasses.fields(TrainSettings)}
    assert fields == train_defaults()
    assert tuple(fields) == HPARAM_KEYS


def test_a_config_without_settings_gets_the_file_values() -> None:
    suffixes = {"audio": ".wav", "video": ".mp4", "occupancy": ".ply"}
    config = cfg.validate(
        {
            "datasets": {
                t: {"path": f"{t}{suffixes.get(t, '.png')}", "task": t} for t in TASK_NAMES
            },
            "task_settings": {t: {"datasets": [t]} for t in TASK_NAMES},
        }
    )
    defaults = load_defaults()
    for task in TASK_NAMES:
        block = config["task_settings"][task]
        assert block["train"] == defaults["tasks"][task]["train"]
        assert block["model_train"] == defaults["tasks"][task]["model_train"]
    assert config["resources"] == defaults["resources"]


def test_a_key_written_in_the_config_beats_the_task_default() -> None:
    config = cfg.validate(
        {
            "tasks": ["audio"],
            "task_settings": {"audio": {"datasets": ["bach"]}},
            "train": {"steps": 7},
        }
    )
    assert {config["task_settings"][t]["train"].get("steps") for t in TASK_NAMES} == {None}
    assert resolve_hparams(config, "audio", "bach", "deq-fourier-1L256D")["steps"] == 7


@pytest.mark.parametrize(
    ("task", "suffix", "model"),
    [
        ("image_representation", ".png", "deq-gabor-1L64D"),
        ("audio", ".wav", "mfn-siren-4L64D"),
        ("video", ".mp4", "deq-fourier-1L1024D"),
        ("occupancy", ".ply", "deq-fourier-1L256D"),
    ],
)
def test_fit_train_and_workflow_resolve_the_same_settings(
    tmp_path: Path, task: str, suffix: str, model: str
) -> None:
    """The same defaults, before `fit` derives the input scale from the signal (when no
    --input-scale is given; docs/fit_defaults.md)."""
    path = tmp_path / f"signal{suffix}"
    workflow = cfg.validate(
        {"tasks": [task], "datasets": {"mine": {"path": str(path)}}},
    )
    assert workflow["datasets"]["mine"]["task"] == task  # inferred from the suffix
    hparams = resolve_hparams(workflow, task, "mine", model)
    no_overrides = argparse.Namespace(
        steps=None, lr=None, input_scale=None, device="auto", checkpoint_every=None
    )
    assert fit_settings(task, model, no_overrides) == hparams
    assert TrainSettings.from_dict(hparams).to_dict() == hparams  # what `train --hparams` reads
    defaults = load_defaults()
    paper = defaults["tasks"][task]["train"]
    for key, value in hparams.items():
        if key not in paper and key not in ("amortize", "spectral_norm", "device"):
            assert value == getattr(TrainSettings(), key), key
