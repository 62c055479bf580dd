"""Faults tried on purpose at the workflow level: bad configs, a missing dataset file, a diverging
task inside a sweep, and two Snakemake invocations on one directory at once."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
DEMO = REPO / "config" / "demo.yaml"


def environment() -> dict[str, str]:
    """Jobs call `python`: make it this interpreter's environment."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def command(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(workdir, configfile, *args),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=600,
        check=False,
        cwd=workdir,
    )


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_config_with_a_wrong_type_fails_before_any_job(tmp_path):
    bad = write_config(tmp_path / "bad.yaml", {"train": {"log_every": "often"}, "seeds": [0]})
    result = snakemake(tmp_path, bad, "--cores", "1")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "invalid config: train.log_every: expected integer, got 'often'" in output
    assert "config.schema.yaml" in output and "Job stats" not in output
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def test_dataset_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "photo.png"
    config = {
        "tasks": ["image_representation"],
        "task_settings": {"image_representation": {"datasets": ["mine"]}},
        "datasets": {"mine": {"task": "image_representation", "path": str(missing)}},
    }
    result = snakemake(tmp_path, write_config(tmp_path / "c.yaml", config), "--cores", "1")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "MissingInputException" in output and str(missing) in output
    assert not (tmp_path / "results").exists()


def sweep_config() -> dict[str, Any]:
    """Images and audio, a DEQ and its twin; audio's learning rate makes both audio runs diverge."""
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config["tasks"] = ["image_representation", "audio"]
    config["models"] = {
        "families": ["deq", "mfn"],
        "filters": ["fourier"],
        "sizes": ["1L16D"],
        "baselines": [],
        "extra": [],
    }
    config["train"].update({"log_every": 5, "checkpoint_every": 10})
    for block in config["task_settings"].values():
        block["train"]["steps"] = 30
    config["task_settings"]["image_representation"]["datasets"] = ["camera"]
    config["task_settings"]["audio"]["train"]["lr"] = 1.0e8
    config["datasets"]["camera"]["prepare"] = {"size": 16}
    config["datasets"]["demo_chirp"]["prepare"] = {"max_seconds": 0.1}
    return config


@pytest.mark.slow
def test_concurrent_invocation_is_locked_out_and_a_diverging_task_does_not_stop_the_sweep(
    tmp_path,
):
    configfile = write_config(tmp_path / "sweep.yaml", sweep_config())
    targets = ("results/tables/paper.tex", "results/tables/audio.csv")  # no figures: faster
    first = subprocess.Popen(
        command(tmp_path, configfile, "--cores", "2", *targets),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        cwd=tmp_path,
    )
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.monotonic() + 120
    while not (locks.is_dir() and any(locks.iterdir())):
        assert first.poll() is None, first.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "the first Snakemake never took its lock"
        time.sleep(0.1)
    second = snakemake(tmp_path, configfile, "--cores", "1", *targets)
    still_running = first.poll() is None
    output_first = first.communicate(timeout=600)[0]
    output_second = second.stdout + second.stderr

    assert still_running, "the second invocation must have overlapped the first"
    assert second.returncode != 0
    assert "LockException" in output_second or "cannot be locked" in output_second
    assert first.returncode == 0, output_first[-6000:]

    runs = tmp_path / "results" / "runs"
    for model in ("deq-fourier-1L16D", "mfn-fourier-1L16D"):
        image = json.loads(
            (runs / "image_representation/camera" / model / "seed0/metrics.json").read_text(
                encoding="utf-8"
            )
        )
        assert image["status"] == "ok" and image["psnr"] > 10
        torch.load(runs / "image_representation/camera" / model / "seed0/model.pt")
        audio = json.loads(
            (runs / "audio/demo_chirp" / model / "seed0/metrics.json").read_text(encoding="utf-8")
        )
        assert audio["status"] == "diverged" and audio["psnr"] is None
        assert isinstance(audio["diverged_step"], int)
        assert not (runs / "audio/demo_chirp" / model / "seed0/ckpt").exists()
    tables = tmp_path / "results" / "tables"
    with (tables / "audio.csv").open(encoding="utf-8") as handle:
        audio_rows = list(csv.DictReader(handle))
    assert len(audio_rows) == 2
    assert all(row["n_diverged"] == "1" and row["psnr_mean"] == "" for row in audio_rows)
    paper = (tables / "paper.tex").read_text(encoding="utf-8")
    assert "diverged (seed 0)" in paper
    # Nothing half-written: a dry run finds every output complete and up to date.
    again = snakemake(tmp_path, configfile, "-n", *targets)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    assert not any(locks.iterdir()), "the lock must be released"


@pytest.mark.slow
def test_ctrl_c_during_training_then_snakemake_again_resumes(tmp_path):
    config = sweep_config()
    config["tasks"] = ["image_representation"]
    config["models"]["families"] = ["deq"]
    config["train"].update({"log_every": 50, "checkpoint_every": 50})
    config["task_settings"]["image_representation"]["train"]["steps"] = 1000
    configfile = write_config(tmp_path / "long.yaml", config)
    run = tmp_path / "results/runs/image_representation/camera/deq-fourier-1L16D/seed0"
    target = str(run.relative_to(tmp_path) / "model.pt")
    log = tmp_path / "logs/train/image_representation/camera/deq-fourier-1L16D/seed0.log"
    first = subprocess.Popen(
        command(tmp_path, configfile, "--cores", "1", target),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        cwd=tmp_path,
        start_new_session=True,  # its own process group, as in a terminal
    )
    deadline = time.monotonic() + 180
    while not list((run / "ckpt").glob("signals0-step*.pt")):
        assert first.poll() is None, first.communicate()[0][-4000:]
        assert time.monotonic() < deadline, "training never checkpointed"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C reaches Snakemake and its jobs
    output = first.communicate(timeout=300)[0]
    assert first.returncode != 0, output[-4000:]
    text = log.read_text(encoding="utf-8")
    assert "stopped by signal after step " in text, text[-2000:]
    stopped = int(text.split("stopped by signal after step ")[1].split(";")[0])
    assert 0 < stopped < 1000
    assert (run / "ckpt" / f"signals0-step{stopped}.pt").is_file()
    assert not (run / "model.pt").exists()

    again = snakemake(tmp_path, configfile, "--cores", "1", target)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert f"(step {stopped})" in log.read_text(encoding="utf-8")
    record = json.loads((run / "train.json").read_text(encoding="utf-8"))
    assert record["status"] == "ok" and record["steps"] == 1000
    assert record["provenance"]["resumed"] == [{"first_signal": 0, "step": stopped}]
    assert not (run / "ckpt").exists()
