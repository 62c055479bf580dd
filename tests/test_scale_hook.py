"""The workflow's own files (``path:`` datasets) without a scale of their own: the run's input
scale is left to ``implicit2 train``, which derives it from the prepared signal by the rule
``implicit2 fit`` uses; the paper's and the demo's runs keep their settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from implicit2.cli import main
from implicit2.pipeline import config as cfg
from implicit2.pipeline import grid
from implicit2.pipeline.run_settings import derives_input_scale, resolve_hparams

REPO = Path(__file__).resolve().parents[1]
TASK = "image_representation"
MODEL = "deq-fourier-1L16D"


def own_config(path: Path, dataset_train: dict[str, Any] | None = None, **task_train: Any) -> dict:
    """A config with one image of the user's, ``mine``, and one small model."""
    block: dict[str, Any] = {"path": str(path), "task": TASK}
    if dataset_train:
        block["train"] = dataset_train
    settings: dict[str, Any] = {"datasets": ["mine"]}
    if task_train:
        settings["train"] = task_train
    return {
        "tasks": [TASK],
        "models": {
            "families": ["deq"],
            "filters": ["fourier"],
            "sizes": ["1L16D"],
            "baselines": [],
        },
        "task_settings": {TASK: settings},
        "datasets": {"mine": block},
    }


def grain(path: Path) -> Path:
    """A 24×40 16-bit gray picture of random pixels: detail up to its Nyquist frequency, so the
    rule gives it 12 (half its shorter axis) at 1L16D."""
    imageio = pytest.importorskip("imageio.v3")
    pixels = np.random.default_rng(0).integers(0, 65536, size=(24, 40), dtype=np.uint16)
    imageio.imwrite(path, pixels)
    return path


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_no_run_of_the_paper_or_the_demo_derives_its_scale(name: str) -> None:
    config = cfg.load_config(REPO / "config" / name)
    runs = grid.expand_grid(config)
    assert runs
    assert not any(derives_input_scale(config, r.task, r.dataset, r.model) for r in runs)


def test_an_own_file_without_a_scale_derives_it_and_a_written_scale_stays(tmp_path: Path) -> None:
    image = tmp_path / "mine.png"

    def derives(config: dict) -> bool:
        return derives_input_scale(cfg.validate(config), TASK, "mine", MODEL)

    assert derives(own_config(image))
    assert derives(own_config(image, input_scale=256.0))  # the paper's own value, as the default
    assert not derives(own_config(image, {"input_scale": 256.0}))  # pinned for this file
    assert not derives(own_config(image, input_scale=30.0))  # chosen for the task
    assert not derives(own_config(image, {"steps": 5}, input_scale=30.0))
    registry = cfg.validate({"tasks": [TASK], "datasets": {"camera": {"task": TASK}}})
    assert not derives_input_scale(registry, TASK, "camera", MODEL)


def test_the_workflow_leaves_the_scale_of_an_own_file_to_the_train_job(tmp_path: Path) -> None:
    image = grain(tmp_path / "mine.png")
    target = f"results/runs/{TASK}/mine/{MODEL}/seed0/model.pt"
    scales = []
    for config in (own_config(image), own_config(image, {"input_scale": 7.0})):
        configfile = tmp_path / "own.yaml"
        configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
        command += ["--directory", str(tmp_path), "--configfile", str(configfile)]
        result = subprocess.run(
            [*command, "-n", "-p", target], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-4000:]
        hparams = json.loads(re.search(r"--hparams '(\{.*?\})'", result.stdout + result.stderr)[1])
        scales.append(hparams["input_scale"])
        assert (
            hparams["steps"] == resolve_hparams(cfg.validate(config), TASK, "mine", MODEL)["steps"]
        )
    assert scales == [None, 7.0]


def test_train_derives_a_null_scale_from_the_prepared_signal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from implicit2.commands.fit import prepare_into

    image = grain(tmp_path / "mine.png")
    prepared = prepare_into(TASK, image, tmp_path / "data")
    hparams = resolve_hparams(cfg.validate(own_config(image)), TASK, "mine", MODEL)
    hparams |= {"input_scale": None, "steps": 2, "device": "cpu"}
    argv = ["train", "--task", TASK, "--dataset", "fit", "--model", MODEL, "--data", str(prepared)]
    argv += ["--hparams", json.dumps(hparams), "--out", str(tmp_path / "run"), "--no-progress"]
    caplog.set_level("INFO", logger="implicit2")
    assert main(argv) == 0
    record = json.loads((tmp_path / "run" / "train.json").read_text())
    assert record["hparams"]["input_scale"] == pytest.approx(12.0)  # half of 24, under 16
    assert any(
        "input_scale 12 (sampling of the signal: 24×40" in r.getMessage() for r in caplog.records
    )
