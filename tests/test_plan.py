"""The cost model and `implicit2 plan`: data shapes before and after prepare, the calibration's
memory model against the training loop, calibration-file errors, cluster requests, the jobs CSV,
and the Snakefile's per-job requests from a calibration."""

from __future__ import annotations

import csv
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from implicit2 import io as atomic
from implicit2.bench.calibrate import Clock, calibrate_kind
from implicit2.names import parse_model_name
from implicit2.pipeline import plan as i2plan
from implicit2.pipeline.config import load_config
from implicit2.pipeline.cost import (
    KINDS,
    Calibration,
    KindCosts,
    MemoryCosts,
    Prediction,
    UnitCosts,
    load_calibration,
    predict_evaluation,
    predict_training,
)
from implicit2.pipeline.shapes import npz_shapes, shape_from_npz
from implicit2.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config" / "demo.yaml"
FULL = REPO / "config" / "config.yaml"


def demo_config(**overrides):
    return load_config(DEMO, overrides or None, base=FULL)


def unit_calibration(device: str = "cpu") -> Calibration:
    """A calibration with round unit costs: a step costs 1 ms + 1 ns per element-wise unit, a
    solver iteration 1 ns per element-wise unit; memory 8 bytes per element-wise unit."""
    step = UnitCosts(1e-3, 1e-9, 0.0)
    memory = MemoryCosts(0.0, 0.0, 8.0, 0.0)
    kinds = {
        kind: KindCosts(step, memory, UnitCosts(0.0, 1e-9, 0.0) if kind.startswith("deq") else None)
        for kind in KINDS
    }
    return Calibration(
        device=device,
        device_name="test device",
        threads=1,
        device_memory_bytes=0 if device == "cpu" else 80 * 10**9,
        startup_seconds=2.0,
        first_run_seconds=0.5,
        checkpoint=UnitCosts(0.1, 0.0, 0.0),
        host_base_bytes=300 * 10**6,
        kinds=kinds,
        evaluation_seconds={"occupancy": 3.0},
    )


# ---- data shapes ------------------------------------------------------------------------------


def test_npz_headers_give_the_shapes_that_numpy_reads(tmp_path):
    path = tmp_path / "data.npz"
    arrays = {"images": np.zeros((3, 6, 10, 3), np.float32), "signal_names": np.array(["a"])}
    atomic.write_npz(path, **arrays)
    with np.load(path) as loaded:
        assert npz_shapes(path) == {name: loaded[name].shape for name in loaded.files}


@pytest.mark.parametrize(
    ("task", "dataset", "options"),
    [
        ("image_representation", "camera", {"size": 32}),
        ("image_generalization", "camera", {"size": 32}),
        ("audio", "demo_chirp", {"max_seconds": 0.25}),
    ],
)
def test_shape_before_prepare_matches_the_prepared_data(tmp_path, task, dataset, options):
    """The planner's shape from the registry table and the prepare options equals what prepare
    writes and the task loads (train and test coordinates, signals, channels)."""
    import imageio.v3 as iio
    import skimage.data

    from implicit2.data.demo import generate
    from implicit2.pipeline.shapes import dataset_shape

    raw = tmp_path / "raw"
    raw.mkdir()
    if dataset == "demo_chirp":
        source = generate("demo_chirp", raw)
    else:
        source = raw / "camera.png"
        iio.imwrite(source, skimage.data.camera())
    out = tmp_path / "data.npz"
    task_object = get_task(task)
    task_object.prepare(source, out, dict(options))
    data = task_object.load(out)
    for shape in (dataset_shape(task, dataset, options, None), shape_from_npz(task, out)):
        assert shape.signals == data.num_signals
        assert shape.train_points == len(data.train_coords)
        assert shape.eval_points == len(data.test_coords)
        assert (shape.in_dim, shape.out_dim) == (data.in_dim, data.out_dim)


def test_unknown_unprepared_dataset_says_to_prepare_it():
    from implicit2.pipeline.shapes import dataset_shape

    with pytest.raises(ValueError, match=r"snakemake results/data/audio/mine\.npz"):
        dataset_shape("audio", "mine", {}, None)


# ---- calibration ------------------------------------------------------------------------------


def test_calibrated_memory_predicts_the_loops_saved_bytes_at_a_new_shape():
    """Fitted on three small shapes, the memory model predicts the bytes the training loop saves
    for backward at a wider, longer shape it never saw (CPU: train.json's peak_memory_bytes)."""
    from implicit2.bench.calibrate import _train_briefly

    device = torch.device("cpu")
    shapes = ((256, 1, 8), (1024, 1, 8), (512, 1, 24), (512, 2, 16))
    costs = calibrate_kind("mfn-fourier", device, shapes, Clock(device, threads=1))
    name = "mfn-fourier-2L32D"
    measured = _train_briefly(name, 2048, device)["peak_memory_bytes"]
    predicted = costs.memory.bytes(parse_model_name(name), 2048)
    assert predicted == pytest.approx(measured, rel=0.05)
    assert costs.solve_iteration is None
    assert all(value >= 0 for value in dataclasses.astuple(costs.step))


@pytest.mark.slow
def test_calibrate_measures_startup_checkpoints_and_a_deq_kind(tmp_path):
    """The whole calibration on this CPU for one kind: fresh processes for the start-up, the two
    checkpoint runs, training runs and timed solves; the result writes and reads back."""
    from implicit2.bench.calibrate import calibrate, save_calibration

    shapes = ((512, 1, 8), (2048, 1, 8), (512, 1, 24), (1024, 2, 16))
    calibration = calibrate(
        torch.device("cpu"), 1, kinds=("deq-fourier",), shapes=shapes, evaluation_tasks=["audio"]
    )
    assert calibration.startup_seconds > 0.1  # importing torch alone takes longer
    # Evaluating audio writes a WAV and draws a matplotlib figure in the fresh process.
    assert list(calibration.evaluation_seconds) == ["audio"]
    assert calibration.evaluation_seconds["audio"] > 0.05
    assert calibration.host_base_bytes > 50 * 2**20
    assert calibration.first_run_seconds >= 0
    assert calibration.checkpoint.fixed + calibration.checkpoint.per_element * 2**20 > 0
    costs = calibration.kinds["deq-fourier"]
    spec = parse_model_name("deq-fourier-1L64D")
    assert costs.step.seconds(spec, 4096) > 0 and costs.solve_iteration.seconds(spec, 4096) > 0
    explicit = dataclasses.replace(costs, solve_iteration=None)
    kinds = {kind: costs if kind.startswith("deq-") else explicit for kind in KINDS}
    full = dataclasses.replace(calibration, kinds=kinds)
    save_calibration(full, tmp_path / "calibration.json")
    assert load_calibration(tmp_path / "calibration.json") == full


def test_calibration_file_round_trips_and_bad_files_name_the_fix(tmp_path):
    calibration = unit_calibration()
    path = tmp_path / "calibration.json"
    atomic.write_json(path, calibration.to_dict())
    assert load_calibration(path) == calibration

    with pytest.raises(ValueError, match=r"missing\.json: no such calibration file.*--calibrate"):
        load_calibration(tmp_path / "missing.json")
    broken = calibration.to_dict()
    del broken["kinds"]["deq-gabor"]["solve_iteration"]
    atomic.write_json(path, broken)
    with pytest.raises(ValueError, match=r"solve_iteration.*plan --calibrate"):
        load_calibration(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable calibration file"):
        load_calibration(path)


# ---- predictions ------------------------------------------------------------------------------


def test_minibatch_deq_pays_a_solve_every_step_and_amortized_once():
    config = demo_config()
    calibration = unit_calibration()
    video = i2plan.workload(
        config, "video", "bikes", "deq-fourier-1L64D", i2plan.run_shape(config, "video", "bikes")
    )
    step = calibration.kinds["deq-fourier"].step.seconds(parse_model_name(video.model), 2048)
    solve = 1e-9 * 2048 * 64 * 2 * video.solver_iterations
    checkpoints = 1 * 0.1
    expected = 0.5 + video.steps * (step + solve) + checkpoints
    prediction = predict_training(calibration, video)
    assert prediction.compute_seconds == pytest.approx(expected)
    assert prediction.seconds == pytest.approx(expected + 2.0)

    camera = i2plan.workload(
        config,
        "image_representation",
        "camera",
        "deq-fourier-1L64D",
        i2plan.run_shape(config, "image_representation", "camera"),
    )
    assert camera.full_batch_amortized and camera.step_points == 64 * 64
    solves = (
        predict_training(calibration, camera).compute_seconds
        - predict_training(
            calibration, dataclasses.replace(camera, model="mfn-fourier-1L64D")
        ).compute_seconds
    )
    one_solve = 1e-9 * 4096 * 64 * 2 * camera.solver_iterations
    assert solves == pytest.approx(one_solve)  # checkpoints here cost no more for a bigger state


def test_evaluation_pays_its_tasks_calibrated_rest_besides_the_forward_pass():
    """An evaluation job: start-up, the forward pass, and what the calibration measured its task's
    evaluation spending besides (occupancy here; a task it did not measure counts 0)."""
    config = demo_config()
    calibration = unit_calibration()
    without = dataclasses.replace(calibration, evaluation_seconds={})
    for task, dataset, rest in (("occupancy", "demo_shape", 3.0), ("audio", "demo_chirp", 0.0)):
        shape = i2plan.run_shape(config, task, dataset)
        work = i2plan.workload(config, task, dataset, "mfn-fourier-1L64D", shape)
        assert work.task == task
        measured = predict_evaluation(calibration, work)
        assert measured.seconds - predict_evaluation(without, work).seconds == pytest.approx(rest)
        assert measured.compute_seconds == pytest.approx(measured.seconds - 2.0)


def test_signals_are_batched_as_the_loop_batches_them_on_cpu():
    """demo_faces: 4 signals of 32² at width 64 fit the CPU batch of 2**21 elements at once;
    with signal_batch 1 every signal pays its own per-step fixed cost and checkpoints."""
    config = demo_config()
    calibration = unit_calibration()
    shape = i2plan.run_shape(config, "image_representation", "demo_faces")
    work = i2plan.workload(config, "image_representation", "demo_faces", "mfn-fourier-1L64D", shape)
    together = predict_training(calibration, work).compute_seconds
    alone = predict_training(calibration, dataclasses.replace(work, signal_batch=1))
    assert alone.compute_seconds - together == pytest.approx(3 * work.steps * 1e-3 + 3 * 2 * 0.1)


# ---- requests ---------------------------------------------------------------------------------


def prediction(seconds: float, host_bytes: float) -> Prediction:
    return Prediction(seconds, seconds, 0.0, host_bytes, 0.0)


def test_requests_scale_with_the_prediction_and_grow_with_the_attempt():
    plan = demo_config()["plan"] | {"safety_factor": 2.0, "min_runtime": 5, "min_mem_mb": 1000}
    plan |= {"max_runtime": 600, "max_mem_mb": 50_000, "partition_max_runtime": 900}
    first = i2plan.first_request(plan, prediction(3600.0, 4e9))
    assert first == {"runtime": 120, "mem_mb": 8000}
    assert i2plan.attempt_request(plan, first, 2) == {"runtime": 240, "mem_mb": 16000}
    # Caps: the first attempt at max_runtime, any attempt at the partition's limit and max_mem_mb.
    big = i2plan.first_request(plan, prediction(10 * 3600.0, 20e9))
    assert big == {"runtime": 600, "mem_mb": 40000}
    assert i2plan.attempt_request(plan, big, 2) == {"runtime": 900, "mem_mb": 50000}
    assert i2plan.first_request(plan, prediction(1.0, 1e6)) == {"runtime": 5, "mem_mb": 1000}


# ---- the command ------------------------------------------------------------------------------


def test_plan_command_writes_one_row_per_job_and_the_totals(tmp_path):
    calibration = tmp_path / "calibration.json"
    atomic.write_json(calibration, unit_calibration().to_dict())
    out = tmp_path / "jobs.csv"
    command = [sys.executable, "-m", "implicit2", "plan", "--configfile", str(DEMO)]
    command += ["--calibration", str(calibration), "--out", str(out), "--root", str(tmp_path)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    runs = i2plan.expand_grid(demo_config())
    assert len(rows) == 2 * len(runs) == 96
    assert list(rows[0])[:8] == [
        "rule",
        "task",
        "dataset",
        "model",
        "seed",
        "predicted_seconds",
        "predicted_memory_bytes",
        "device",
    ]
    assert {row["rule"] for row in rows} == {"train", "evaluate"}
    total = sum(float(row["predicted_seconds"]) for row in rows) / 3600
    all_line = next(line for line in result.stdout.splitlines() if line.startswith("all "))
    assert all_line.split()[1] == "96"
    assert float(all_line.split()[4]) == pytest.approx(total, abs=1e-3)
    assert "cpu: test device" in result.stdout


# ---- the workflow -----------------------------------------------------------------------------


def test_snakefile_sizes_train_jobs_from_the_plan(tmp_path):
    calibration = tmp_path / "calibration.json"
    slow = unit_calibration()
    slow = dataclasses.replace(slow, startup_seconds=600.0)  # every job: 10 min + its compute
    atomic.write_json(calibration, slow.to_dict())
    settings = f"plan={{calibration: {calibration}, partition_max_runtime: 30, min_mem_mb: 100}}"
    command = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(tmp_path), "--configfile", str(DEMO)]
    command += ["--workflow-profile", "none", "--config", settings]
    command += ["only_datasets=[camera]", "only_models=[deq-fourier-1L64D]"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    resources = {}
    for block in result.stdout.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        line = next(line for line in block.splitlines() if "resources:" in line)
        resources[rule] = dict(re.findall(r"(mem_mb|runtime)=(\d+)", line))
    config = demo_config(plan={"calibration": str(calibration), "min_mem_mb": 100})
    predicted = i2plan.predict_job(
        config, slow, "train", "image_representation", "camera", "deq-fourier-1L64D", tmp_path
    )
    expected = i2plan.first_request(config["plan"], predicted)
    assert resources["train"] == {key: str(value) for key, value in expected.items()}
    assert int(resources["train"]["runtime"]) <= 30
    assert resources["prepare"]["runtime"] == "10"  # from the config: prepare is not planned


@pytest.mark.parametrize("group_runs", [True, False])
def test_group_runs_puts_a_runs_train_and_evaluate_in_one_group_job(tmp_path, group_runs):
    """With a cluster executor (dry run), `group_runs: true` makes each run's train and evaluate
    jobs one group job `run`; false submits them one by one."""
    command = [sys.executable, "-m", "snakemake", "-n", "--jobs", "2", "--verbose"]
    command += ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
    command += ["--configfile", str(DEMO), "--workflow-profile", "none", "--executor", "slurm"]
    command += ["--config", f"group_runs={str(group_runs).lower()}", "only_datasets=[camera]"]
    command += ["only_models=[deq-fourier-1L64D,mfn-fourier-1L64D]"]
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, check=False, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    groups = output.split("Group job run (jobs in lexicogr. order):")[1:]
    if not group_runs:
        assert groups == []
        return
    assert len(groups) == 2  # one per run
    for group in groups:
        rules = re.findall(r"^\s*rule (\w+):", group.split("Group job")[0], re.MULTILINE)
        assert sorted(rules[:2]) == ["evaluate", "train"], group[:2000]


def test_an_unprepared_dataset_of_unknown_size_gets_the_configs_requests(tmp_path):
    """A user's own file, not prepared yet: the plan cannot size its jobs, so the Snakefile asks
    the config's resources (instead of failing to build the DAG); the prepared datasets beside
    it are sized from the plan."""
    from implicit2.data.demo import generate

    wav = generate("demo_chirp", tmp_path / "mine")
    calibration = tmp_path / "calibration.json"
    atomic.write_json(
        calibration, dataclasses.replace(unit_calibration(), startup_seconds=1200.0).to_dict()
    )
    command = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(tmp_path), "--configfile", str(DEMO)]
    command += ["--workflow-profile", "none", "--config", f"plan={{calibration: {calibration}}}"]
    command += [f"datasets={{mine: {{path: {wav}, task: audio}}}}", "tasks=[audio]"]
    command += ["task_settings={audio: {datasets: [mine, demo_chirp]}}"]
    command += ["only_models=[deq-fourier-1L64D]"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    runtimes = {}
    for block in result.stdout.split("\nrule train:")[1:]:
        dataset = re.search(r"dataset=(\w+)", block)[1]
        runtimes[dataset] = int(re.search(r"runtime=(\d+)", block)[1])
    assert runtimes == {"mine": 10, "demo_chirp": 41}  # the config's 10 min; 2 x (20 min + a bit)
