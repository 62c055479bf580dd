"""Faults tried on purpose: kills, signals, damaged checkpoints, bad inputs, divergence.

Each test asserts what happened afterwards (weights, metrics, files, messages), not only that no
exception escaped. Runs are tiny (the 16x16 cameraman, a 1-layer 16-wide DEQ, tens of steps) on
CPU. The process-level faults run real subprocesses of ``python -m implicit2 train``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from implicit2.cli import main
from implicit2.tasks.storage import save_prepared
from implicit2.training import checkpoint as ckpt
from implicit2.training import runs
from implicit2.training.loop import ChunkProgress
from implicit2.training.settings import TrainSettings

TASK = "image_representation"
MODEL = "deq-fourier-1L16D"
#: Subprocess runs: long enough that a kill lands mid-training.
SUB_HPARAMS = {"steps": 300, "lr": 3e-3, "input_scale": 32.0, "log_every": 10}
SUB_HPARAMS |= {"checkpoint_every": 10, "device": "cpu"}
#: In-process runs.
HPARAMS = {**SUB_HPARAMS, "steps": 30, "log_every": 5, "checkpoint_every": 5}
#: What may differ between two runs of the same job: wall-clock figures and provenance.
TIMING_KEYS = {
    "train_seconds",
    "step_seconds_median",
    "first_step_seconds",
    "inference_seconds",
    "provenance",
}


# ---- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> Path:
    """The cameraman prepared at 16x16."""
    root = tmp_path_factory.mktemp("camera")
    assert main(["download", "--dataset", "camera", "--dest", str(root / "raw")]) == 0
    out = root / "camera.npz"
    spec = json.dumps({"prepare": {"size": 16}})
    command = ["prepare", "--task", TASK, "--dataset", "camera", "--raw", str(root / "raw")]
    assert main([*command, "--spec", spec, "--out", str(out)]) == 0
    return out


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # the same thread count in every subprocess run
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    return env


def train_command(data: Path, out: Path, hparams: dict[str, Any] = SUB_HPARAMS) -> list[str]:
    return [
        sys.executable,
        "-m",
        "implicit2",
        "train",
        "--task",
        TASK,
        "--dataset",
        "camera",
        "--model",
        MODEL,
        "--seed",
        "0",
        "--data",
        str(data),
        "--hparams",
        json.dumps(hparams),
        "--out",
        str(out),
        "--no-progress",
    ]


def start(data: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        train_command(data, out), stdout=handle, stderr=subprocess.STDOUT, env=environment()
    )


def run_to_end(data: Path, out: Path, log: Path) -> int:
    process = start(data, out, log)
    return process.wait(timeout=240)


def checkpoint_steps(out: Path) -> list[int]:
    return sorted(ckpt._step_of(path) for path in (out / "ckpt").glob("signals0-step*.pt"))


def wait_for_checkpoint(process: subprocess.Popen[bytes], out: Path, step: int) -> None:
    """Wait until a checkpoint of at least ``step`` exists (the run must still be going)."""
    deadline = time.monotonic() + 180
    while not any(s >= step for s in checkpoint_steps(out)):
        assert process.poll() is None, (
            f"training ended (rc {process.returncode}) before step {step}"
        )
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=False)
    return {f"{i}.{k}": v for i, state in enumerate(payload["states"]) for k, v in state.items()}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"weights differ bit-wise: {different}"


def results(path: Path) -> dict[str, Any]:
    """A train.json/metrics.json without the keys that legitimately differ between runs."""
    record = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}


def curve(run_dir: Path) -> list[tuple[str, ...]]:
    """curve.csv without its seconds column."""
    lines = (run_dir / "curve.csv").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split(",")[:3]) for line in lines]


def evaluate(run_dir: Path, data: Path) -> Path:
    out = run_dir / "metrics.json"
    args = ["evaluate", "--run", str(run_dir), "--data", str(data), "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    return out


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights, identical curve values, train.json and metrics.json."""
    assert_same_weights(a, b)
    assert curve(a) == curve(b)
    assert results(a / "train.json") == results(b / "train.json")
    assert results(a / "metrics.json") == results(b / "metrics.json")


@pytest.fixture(scope="module")
def reference(camera, tmp_path_factory) -> Path:
    """An uninterrupted subprocess run, evaluated."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert run_to_end(camera, out, out.parent / "train.log") == 0
    evaluate(out, camera)
    return out


def kill_point_chooser() -> random.Random:
    """Random kill points whose seed is printed (shown with a failure) and can be replayed."""
    seed = int(os.environ.get("IMPLICIT2_KILL_SEED", random.randrange(2**32)))
    print(f"kill points from seed {seed} (replay: IMPLICIT2_KILL_SEED={seed})")
    return random.Random(seed)


class StopAt(ckpt.Checkpointer):
    """A checkpointer that behaves as if SIGTERM arrived during step ``stop_step``."""

    stop_step = 15

    def due(self, done_steps: int, default_every: int, last: bool = False) -> bool:
        if done_steps == self.stop_step:
            self.stop_requested = True
        return super().due(done_steps, default_every, last)


def train_in_process(
    data_path: Path,
    out: Path,
    hparams: dict[str, Any] = HPARAMS,
    data: Any = None,
    model: str = MODEL,
) -> dict[str, Any]:
    data = data if data is not None else runs.load_data(TASK, data_path)
    settings = TrainSettings.from_dict(hparams)
    return runs.train_to_dir(TASK, data, model, 0, settings, out, progress=False)


def interrupted_in_process(
    data_path: Path,
    out: Path,
    monkeypatch,
    stop_step: int = 15,
    hparams: dict[str, Any] = HPARAMS,
) -> None:
    """Train until ``stop_step`` (checkpoints at 10 and 15), as if stopped by SIGTERM."""
    with monkeypatch.context() as patch:
        patch.setattr(StopAt, "stop_step", stop_step)
        patch.setattr(runs, "Checkpointer", StopAt)
        with pytest.raises(ckpt.TrainingInterrupted, match=f"after step {stop_step}"):
            train_in_process(data_path, out, hparams)
    assert checkpoint_steps(out) == [stop_step - 5, stop_step]
    assert not (out / "model.pt").exists()


@pytest.fixture(scope="module")
def in_process_reference(camera, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("in-process") / "run"
    record = train_in_process(camera, out)
    assert record["status"] == "ok" and record["provenance"]["resumed"] == []
    assert not (out / "ckpt").exists(), "a finished run must delete its checkpoints"
    return out


# ---- process faults (subprocesses) ----------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_is_bit_identical(camera, reference, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    chooser = kill_point_chooser()
    kill_after = chooser.randrange(10, 150)
    process = start(camera, out, log)
    wait_for_checkpoint(process, out, kill_after)
    time.sleep(chooser.uniform(0.0, 0.05))  # anywhere in the next steps, a save included
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before the kill"
    assert not (out / "model.pt").exists()
    last = max(checkpoint_steps(out))
    assert 0 < last < SUB_HPARAMS["steps"], f"killed after step {kill_after}: {last}"

    assert run_to_end(camera, out, log) == 0
    text = log.read_text(encoding="utf-8")
    assert f"resuming from {out / 'ckpt'}" in text and f"(step {last})" in text
    evaluate(out, camera)
    assert_same_run(reference, out)
    record = json.loads((out / "train.json").read_text(encoding="utf-8"))
    assert record["provenance"]["resumed"] == [{"first_signal": 0, "step": last}]
    assert not (out / "ckpt").exists()


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_exits_143_and_resumes(camera, reference, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    process = start(camera, out, log)
    wait_for_checkpoint(process, out, 10)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    text = log.read_text(encoding="utf-8")
    assert "received signal 15" in text
    stopped = int(text.split("stopped by signal after step ")[1].split(";")[0])
    assert 10 <= stopped < SUB_HPARAMS["steps"]
    assert max(checkpoint_steps(out)) == stopped
    payload = torch.load(out / "ckpt" / f"signals0-step{stopped}.pt", weights_only=False)
    assert payload["state"]["step"] == stopped and payload["state"]["cache"] is not None
    assert not (out / "model.pt").exists() and not (out / "train.json").exists()

    assert run_to_end(camera, out, log) == 0
    evaluate(out, camera)
    assert_same_run(reference, out)


@pytest.mark.slow
def test_same_config_and_seed_give_identical_results(camera, reference, tmp_path):
    out = tmp_path / "run"
    assert run_to_end(camera, out, tmp_path / "train.log") == 0
    evaluate(out, camera)
    assert_same_run(reference, out)
    first = json.loads((reference / "metrics.json").read_text(encoding="utf-8"))
    assert first["status"] == "ok" and first["psnr"] > 10  # real training happened


def remove_while_written(folder: Path) -> None:
    """Delete ``folder`` although the running trainer may write a checkpoint into it meanwhile (a
    plain rmtree then fails with "Directory not empty")."""
    for _ in range(100):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.01)
    raise AssertionError(f"{folder} kept coming back")


@pytest.mark.slow
def test_run_folder_deleted_during_training(camera, reference, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    process = start(camera, out, log)
    wait_for_checkpoint(process, out, 10)
    remove_while_written(out)
    assert process.poll() is None, "the folder must go while training still runs"
    assert process.wait(timeout=240) == 0
    for name in ("model.pt", "curve.csv", "train.json"):
        assert (out / name).is_file(), name
    evaluate(out, camera)
    assert_same_run(reference, out)  # the weights were in memory: nothing was lost


# ---- damaged checkpoints (in process) -------------------------------------------------------


def test_truncated_checkpoint_falls_back_to_the_previous_one(
    camera, in_process_reference, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "run"
    interrupted_in_process(camera, out, monkeypatch)
    newest = out / "ckpt" / "signals0-step15.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    partial = out / "ckpt" / ".signals0-step20.abc123.tmp.pt"  # left by a kill during a save
    partial.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.INFO, logger="implicit2"):
        record = train_in_process(camera, out)
    assert f"checkpoint {newest} is unreadable" in caplog.text
    assert "(step 10)" in caplog.text and "removing the partial checkpoint" in caplog.text
    assert record["provenance"]["resumed"] == [{"first_signal": 0, "step": 10}]
    assert_same_weights(in_process_reference, out)


def test_all_checkpoints_damaged_restarts_from_scratch(
    camera, in_process_reference, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "run"
    interrupted_in_process(camera, out, monkeypatch)
    (out / "ckpt" / "signals0-step15.pt").write_bytes(b"")
    (out / "ckpt" / "signals0-step10.pt").write_bytes(b"not a checkpoint at all")
    with caplog.at_level(logging.INFO, logger="implicit2"):
        record = train_in_process(camera, out)
    assert "no usable checkpoint for signals 0" in caplog.text
    assert "training from scratch" in caplog.text
    assert record["provenance"]["resumed"] == []
    assert_same_weights(in_process_reference, out)


def test_checkpoint_of_another_config_is_refused(camera, tmp_path, monkeypatch):
    out = tmp_path / "run"
    interrupted_in_process(camera, out, monkeypatch)
    with pytest.raises(ckpt.CheckpointMismatch, match=r"lr: 0\.003 there, 0\.01 now") as error:
        train_in_process(camera, out, {**HPARAMS, "lr": 1e-2})
    assert str(out / "ckpt" / "signals0-step15.pt") in str(error.value)
    assert f"delete {out / 'ckpt'}" in str(error.value)
    assert checkpoint_steps(out) == [10, 15], "a refused checkpoint must be left alone"
    # Through the CLI: exit code 2 and the message, nothing written.
    args = train_command(camera, out, {**HPARAMS, "steps": 31})[3:]
    assert main(args) == 2
    assert not (out / "model.pt").exists()


def test_checkpoint_for_other_data_is_refused(camera, tmp_path, monkeypatch):
    out = tmp_path / "run"
    interrupted_in_process(camera, out, monkeypatch)
    data = runs.load_data(TASK, camera)
    data.train_targets = np.ascontiguousarray(data.train_targets[:, ::-1])  # another image
    with pytest.raises(ckpt.CheckpointMismatch, match="data: '"):
        train_in_process(camera, out, data=data)


def test_changing_only_the_checkpoint_interval_still_resumes(
    camera, in_process_reference, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "run"
    interrupted_in_process(camera, out, monkeypatch)
    with caplog.at_level(logging.INFO, logger="implicit2"):
        record = train_in_process(camera, out, {**HPARAMS, "checkpoint_every": 7})
    assert record["provenance"]["resumed"] == [{"first_signal": 0, "step": 15}]
    assert_same_weights(in_process_reference, out)


def test_resume_keeps_the_automatic_signal_batch(tmp_path, monkeypatch):
    """``signal_batch: 0`` on CUDA follows the free memory of the moment: a resumed run must
    batch its signals as the interrupted one did, or its checkpoints would not match."""
    from implicit2.tasks import get_task
    from implicit2.tasks.base import PreparedData
    from implicit2.tasks.grids import image_coords
    from implicit2.training import loop as trainer

    coords = image_coords(8, 8)
    targets = np.random.default_rng(0).uniform(-1, 1, (4, 64, 1)).astype(np.float32)
    data = PreparedData(TASK, "four", coords, targets, coords, targets, list("abcd"))
    settings = TrainSettings.from_dict({**HPARAMS, "steps": 20, "signal_batch": 0})
    task, cpu = get_task(TASK), torch.device("cpu")
    chosen: list[int] = []

    def free_memory_allows(batch: int):
        def choose(*args: Any, **kwargs: Any) -> int:
            chosen.append(batch)
            return batch

        return choose

    monkeypatch.setattr(trainer, "auto_signal_batch", free_memory_allows(3))
    with pytest.raises(ckpt.TrainingInterrupted, match="after step 15"):
        trainer.train(task, data, MODEL, 0, settings, cpu, StopAt(tmp_path / "ckpt"))
    monkeypatch.setattr(trainer, "auto_signal_batch", free_memory_allows(2))  # less free now
    checkpointer = ckpt.Checkpointer(tmp_path / "ckpt")
    result = trainer.train(task, data, MODEL, 0, settings, cpu, checkpointer)
    assert chosen == [3]
    assert [(c.first, c.count) for c in result.chunks] == [(0, 3), (3, 1)]
    assert checkpointer.resumed == [(0, 15)]


def test_resume_continues_the_learning_rate_decay(camera, tmp_path, monkeypatch):
    decaying = {**HPARAMS, "lr_decay": 0.1}
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train_in_process(camera, whole, decaying)
    interrupted_in_process(camera, resumed, monkeypatch, hparams=decaying)
    record = train_in_process(camera, resumed, decaying)
    assert record["provenance"]["resumed"] == [{"first_signal": 0, "step": 15}]
    assert_same_weights(whole, resumed)


def test_a_blocked_full_batch_run_resumes_bit_identically(camera, tmp_path, monkeypatch):
    """A long signal's steps run in blocks of points (here forced on the 16×16 crop: 6 blocks of
    48 pixels, the last one partial); killed and resumed, the run ends bit-identical."""
    from implicit2.training import step

    calls: list[int] = []
    original = step.blocked_update

    def counted(*args: Any, **kwargs: Any) -> step.BlockedStep:
        calls.append(args[6])
        return original(*args, **kwargs)

    monkeypatch.setattr(step, "BLOCKED_MIN_ELEMENTS", 1)
    monkeypatch.setattr(step, "BLOCK_ELEMENTS", 48 * 16)
    monkeypatch.setattr("implicit2.training.loop.blocked_update", counted)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train_in_process(camera, whole)
    assert calls == [48] * HPARAMS["steps"]
    interrupted_in_process(camera, resumed, monkeypatch)
    record = train_in_process(camera, resumed)
    assert record["provenance"]["resumed"] == [{"first_signal": 0, "step": 15}]
    assert_same_weights(whole, resumed)
    assert curve(whole) == curve(resumed)


#: Minibatch runs of a full-batch task: DEQ solves warm-started from the pool cache.
MINIBATCH = {**HPARAMS, "batch_size": 64, "amortize": False}


def test_minibatch_resume_restores_the_warm_start_cache(camera, tmp_path, monkeypatch):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    record = train_in_process(camera, whole, MINIBATCH)
    assert record["warm_cache_bytes"] == 257 * 16 * 2  # 16×16 pixels + the scratch row, fp16
    interrupted_in_process(camera, resumed, monkeypatch, hparams=MINIBATCH)
    payload = torch.load(resumed / "ckpt" / "signals0-step15.pt", weights_only=False)
    cache = payload["state"]["warm_cache"]
    assert cache.dtype == torch.float16 and cache.shape == (1, 257, 16)
    assert (cache[0, :256].abs().sum(-1) > 0).float().mean() > 0.9  # most pixels were drawn
    again = train_in_process(camera, resumed, MINIBATCH)
    assert again["provenance"]["resumed"] == [{"first_signal": 0, "step": 15}]
    assert_same_weights(whole, resumed)
    assert again["solver_steps_mean"] == record["solver_steps_mean"]


def test_a_checkpoint_without_the_warm_start_cache_resumes_from_an_empty_one(
    camera, tmp_path, monkeypatch
):
    """A checkpoint written before the cache existed (no cache, no ``warm_cache_mb`` setting)
    is resumed; its points start from zero again."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    record = train_in_process(camera, whole, MINIBATCH)
    interrupted_in_process(camera, resumed, monkeypatch, hparams=MINIBATCH)
    path = resumed / "ckpt" / "signals0-step15.pt"
    payload = torch.load(path, weights_only=False)
    del payload["state"]["warm_cache"]
    del payload["identity"]["settings"]["warm_cache_mb"]
    torch.save(payload, path)
    again = train_in_process(camera, resumed, MINIBATCH)
    assert again["status"] == "ok"
    assert again["provenance"]["resumed"] == [{"first_signal": 0, "step": 15}]
    assert again["solver_steps_mean"] > record["solver_steps_mean"]  # solves from zero again


# ---- divergence -----------------------------------------------------------------------------


def test_divergence_stops_cleanly_and_tables_show_it(camera, in_process_reference, tmp_path):
    from implicit2.paper.tables import write_tables

    out = tmp_path / "diverged"
    twin = "mfn-fourier-1L16D"  # its own table row, so the row is the diverged run alone
    record = train_in_process(camera, out, {**HPARAMS, "lr": 1e8}, model=twin)
    assert record["status"] == "diverged"
    assert isinstance(record["diverged_step"], int) and record["diverged_step"] < HPARAMS["steps"]
    assert record["steps"] == record["diverged_step"]
    metrics = json.loads(evaluate(out, camera).read_text(encoding="utf-8"))
    assert metrics["status"] == "diverged" and metrics["psnr"] is None
    assert metrics["diverged_step"] == record["diverged_step"]
    assert (out / "recon" / "preview.png").stat().st_size > 0
    ok = evaluate(in_process_reference, camera)
    written = write_tables([ok, out / "metrics.json"], tmp_path / "tables")
    rows = {
        row["model"]: row for row in csv.DictReader((tmp_path / "tables" / f"{TASK}.csv").open())
    }
    assert rows[twin]["n_diverged"] == "1" and rows[twin]["psnr_mean"] == ""
    assert rows[MODEL]["n_ok"] == "1" and float(rows[MODEL]["psnr_mean"]) > 10
    paper = next(path for path in written if path.name == "paper.tex").read_text(encoding="utf-8")
    assert "1 finished, 1 diverged" in paper and "diverged (seed 0)" in paper
    twin_row = next(line for line in paper.splitlines() if line.strip().startswith("& "))
    assert "explicit" in twin_row and "---" in twin_row, twin_row  # the explicit twin: "---"


def test_a_last_update_to_non_finite_weights_is_a_divergence(camera, tmp_path, around_updates):
    updates: list[int] = []

    def poison_the_last(model, optimizer) -> None:
        updates.append(1)
        if len(updates) == HPARAMS["steps"]:
            with torch.no_grad():
                next(model.parameters()).fill_(float("inf"))  # an inf gradient's effect

    around_updates(after=poison_the_last)
    record = train_in_process(camera, tmp_path / "run")
    assert record["status"] == "diverged"
    assert record["diverged_step"] == HPARAMS["steps"] - 1


def test_non_finite_predictions_at_evaluation_record_a_diverged_run(
    camera, in_process_reference, tmp_path
):
    """Weights that predict NaN (or a DEQ solve from z = 0 that blows up) must not fail the job:
    the run is recorded as diverged, so the tables still build."""
    from implicit2.paper.tables import write_tables

    out = tmp_path / "nan"
    shutil.copytree(in_process_reference, out)
    payload = torch.load(out / "model.pt", weights_only=False)
    for state in payload["states"]:
        state["core.output.bias"].fill_(float("nan"))
    torch.save(payload, out / "model.pt")
    (out / "recon").mkdir(exist_ok=True)
    (out / "recon" / "camera.png").write_bytes(b"an earlier evaluation's reconstruction")
    metrics = json.loads(evaluate(out, camera).read_text(encoding="utf-8"))
    assert metrics["status"] == "diverged" and metrics["psnr"] is None
    assert metrics["diverged_step"] == HPARAMS["steps"]
    # Only the placeholder: the reconstructions of the earlier evaluation are gone.
    assert [path.name for path in (out / "recon").iterdir()] == ["preview.png"]
    write_tables([out / "metrics.json"], tmp_path / "tables")
    rows = list(csv.DictReader((tmp_path / "tables" / f"{TASK}.csv").open()))
    assert rows[0]["n_diverged"] == "1" and rows[0]["psnr_mean"] == ""


# ---- guarded inputs -------------------------------------------------------------------------


def test_truncated_prepared_data_is_refused_naming_the_file(camera, tmp_path):
    bad = tmp_path / "camera.npz"
    bad.write_bytes(camera.read_bytes()[:200])
    with pytest.raises(ValueError, match=rf"{bad}: not a readable \.npz"):
        runs.load_data(TASK, bad)
    assert main(train_command(bad, tmp_path / "run", HPARAMS)[3:]) == 2
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.parametrize(
    ("images", "problem"),
    [
        (np.full((1, 8, 8, 1), np.nan, np.float32), "non-finite"),
        (np.zeros((8, 8, 1), np.float32), "expected 4-D"),
        (np.zeros((1, 8, 8, 1), np.complex64), "unsupported dtype"),
        (np.full((1, 8, 8, 1), 3.0, np.float32), r"expected \[0, 1\]"),
    ],
)
def test_prepared_data_with_bad_values_is_refused(tmp_path, images, problem):
    path = tmp_path / "bad.npz"
    save_prepared(path, TASK, "camera", {}, images=images, signal_names=np.array(["x"]))
    with pytest.raises(ValueError, match=problem) as error:
        runs.load_data(TASK, path)
    assert str(path) in str(error.value)


def test_missing_dataset_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "camera.npz"
    with pytest.raises(FileNotFoundError, match=f"{missing} does not exist"):
        runs.load_data(TASK, missing)
    spec = json.dumps({"path": str(tmp_path / "nope.png"), "task": TASK})
    dest = tmp_path / "raw"
    assert main(["download", "--dataset", "mine", "--spec", spec, "--dest", str(dest)]) != 0
    assert not (dest / "manifest.json").exists()


@pytest.mark.parametrize(
    ("name", "content", "task", "problem"),
    [
        ("bad.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, TASK, "not a readable image"),
        ("bad.wav", b"RIFF\0\0\0\0WAVEfmt " + b"x" * 30, "audio", "not a readable audio"),
        ("bad.mp4", b"\0\0\0\x18ftypmp42" + b"z" * 100, "video", "not a readable video"),
        (
            "bad.ply",
            b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1\n",
            "occupancy",
            "mesh",
        ),
    ],
)
def test_corrupt_raw_files_are_refused_naming_the_file(tmp_path, name, content, task, problem):
    from implicit2.commands.prepare import run as prepare
    from implicit2.data.download import fetch_files
    from implicit2.data.manifest import write_manifest
    from implicit2.data.registry import resolve_dataset

    path = tmp_path / name
    path.write_bytes(content)
    source = resolve_dataset("mine", {"path": str(path), "task": task})
    raw = tmp_path / "raw"
    write_manifest(raw, source, fetch_files(source, raw))
    out = tmp_path / "prepared.npz"
    args = type("Args", (), {"task": task, "dataset": "mine", "raw": raw, "out": out})
    args.spec = json.dumps({"path": str(path), "task": task})
    with pytest.raises(ValueError, match=problem) as error:
        prepare(args)
    assert str(path) in str(error.value)
    assert not out.exists()


def test_open_mesh_and_silent_audio_are_refused(tmp_path):
    import soundfile
    import trimesh

    from implicit2.tasks import get_task

    mesh = tmp_path / "open" / "open.ply"
    mesh.parent.mkdir()
    trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 2]]).export(mesh)
    wave = tmp_path / "silent" / "silent.wav"
    wave.parent.mkdir()
    soundfile.write(wave, np.zeros(1000, np.float32), 16000)
    cases = [(mesh, "occupancy", "not watertight"), (wave, "audio", "silent")]
    for path, task, problem in cases:
        from implicit2.data.download import fetch_files
        from implicit2.data.manifest import write_manifest
        from implicit2.data.registry import resolve_dataset

        source = resolve_dataset("mine", {"path": str(path), "task": task})
        raw = path.parent / "raw"
        write_manifest(raw, source, fetch_files(source, raw))
        with pytest.raises(ValueError, match=problem) as error:
            get_task(task).prepare(raw, path.parent / "out.npz", dict(source.prepare))
        assert str(path) in str(error.value)


def test_damaged_model_file_is_refused(camera, in_process_reference, tmp_path):
    from implicit2.training.model_file import load_models

    bad = tmp_path / "model.pt"
    bad.write_bytes((in_process_reference / "model.pt").read_bytes()[:300])
    with pytest.raises(ValueError, match=f"{bad}: not a readable model file"):
        load_models(bad, torch.device("cpu"))
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(ValueError, match="not an implicit2 model file"):
        load_models(bad, torch.device("cpu"))
    payload = torch.load(in_process_reference / "model.pt", weights_only=False)
    payload["states"][0]["core.output.weight"] = torch.zeros(3, 3)
    torch.save(payload, bad)
    with pytest.raises(ValueError, match="weights do not fit"):
        load_models(bad, torch.device("cpu"))


def test_a_model_for_another_number_of_signals_is_refused(camera, in_process_reference):
    from implicit2.training.evaluate import evaluate_run

    data = runs.load_data(TASK, camera)
    data.train_targets = np.concatenate([data.train_targets] * 2)  # prepared again: two images
    data.test_targets = np.concatenate([data.test_targets] * 2)
    data.signal_names = [*data.signal_names, "another"]
    model = in_process_reference / "model.pt"
    with pytest.raises(ValueError, match=f"{model}: the model holds 1 signal.* data has 2"):
        evaluate_run(
            runs.get_task(TASK), data, model, in_process_reference / "x", torch.device("cpu")
        )


# ---- provenance -----------------------------------------------------------------------------


def test_provenance_is_complete(camera, in_process_reference):
    evaluate(in_process_reference, camera)
    record = json.loads((in_process_reference / "train.json").read_text(encoding="utf-8"))
    prov = record["provenance"]
    assert set(prov["git"]) == {"commit", "dirty"}
    assert prov["git"]["commit"] is None or len(prov["git"]["commit"]) == 40
    assert prov["packages"]["torch"] == torch.__version__ and prov["packages"]["numpy"]
    assert prov["torch"] == torch.__version__ and "cuda" in prov and "cudnn" in prov
    assert prov["device"] == "cpu" and prov["device_name"]
    assert prov["threads"] >= 1 and prov["host"] and prov["argv"]
    assert prov["started"] <= prov["finished"]
    config = prov["config"]
    assert config["task"] == TASK and config["model"] == MODEL and config["seed"] == 0
    assert config["hparams"] == TrainSettings.from_dict(HPARAMS).to_dict()
    metrics = json.loads((in_process_reference / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["provenance"]["config"] == config  # evaluation records the same run config
    assert metrics["provenance"]["train"] == prov and "commit" in metrics["provenance"]["git"]


# ---- `implicit2 fit` run again with the same arguments --------------------------------------


@pytest.mark.slow
def test_fit_killed_then_run_again_resumes_bit_identically(tmp_path):
    from skimage import data as skimage_data
    from skimage.io import imsave

    image = tmp_path / "crop.png"
    imsave(image, skimage_data.camera()[200:216, 240:256], check_contrast=False)

    def fit(out: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "implicit2", "fit", str(image), "--model", MODEL]
        command += ["--steps", "200", "--lr", "3e-3", "--input-scale", "32", "--device", "cpu"]
        command += ["--checkpoint-every", "10", "--out", str(out), "--no-progress"]
        with (tmp_path / f"{out.name}.log").open("ab") as log:
            return subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment()
            )

    assert fit(tmp_path / "whole").wait(timeout=300) == 0
    out = tmp_path / "killed"
    process = fit(out)
    wait_for_checkpoint(process, out, kill_point_chooser().randrange(10, 100))
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    assert fit(out).wait(timeout=300) == 0
    assert "resuming from" in (tmp_path / "killed.log").read_text(encoding="utf-8")
    assert_same_run(tmp_path / "whole", out)


def test_chunk_progress_round_trips_and_reads_checkpoints_without_first_bad() -> None:
    """A checkpoint's state dict restores the same progress; one written before ``first_bad``
    was saved (no such key) resumes as 'no non-finite loss yet'."""
    cpu = torch.device("cpu")
    progress = ChunkProgress.start(3, cpu)
    progress.step, progress.loss_count, progress.curve = 7, 2, [{"step": 5, "loss": 0.1}]
    progress.loss_sum += torch.tensor([1.0, 2.0, 3.0])
    progress.first_bad.fill_(4)
    restored = ChunkProgress.from_dict(progress.to_dict(), cpu)
    assert (restored.step, restored.loss_count, restored.curve) == (7, 2, progress.curve)
    assert restored.loss_sum.tolist() == [1.0, 2.0, 3.0] and int(restored.first_bad) == 4
    older = progress.to_dict()
    del older["first_bad"]
    assert int(ChunkProgress.from_dict(older, cpu).first_bad) == -1
