"""Calibrate the cost model (:mod:`implicit2.pipeline.cost`) on this device.

For every model kind, a few steps of the training loop itself (:func:`implicit2.training.loop.
train`, full batch, amortized for the DEQ) at a handful of small shapes give the seconds per step
and the memory per step that the loop records; for the DEQ kinds, timed solves from zero (the
model's own ``run``, as the loop and the evaluation call it) give the seconds per solver
iteration. Non-negative least squares fits each kind's unit costs to these points. Two short runs
that differ only in how often they checkpoint give the cost of a checkpoint, at two state sizes.
A fresh process, timed to its first tensor and through a first tiny training run, gives the
start-up cost of a job, the warm-up of its first run and its resident memory before data. Per
task, a fresh process evaluating a two-step run on the demo's data at small sizes gives what an
evaluation job spends besides its start-up and its forward pass (data and model loading, exports,
metrics, provenance).

On a shared CPU other processes stretch wall-clock times. With one thread the calibration
therefore counts the process's CPU time: a single-threaded step's CPU time is its wall time on an
idle core, so the prediction is that of an idle machine.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from implicit2 import io as atomic
from implicit2.data.download import fetch_files
from implicit2.data.manifest import write_manifest
from implicit2.data.registry import resolve_dataset
from implicit2.names import ModelSpec, parse_model_name
from implicit2.pipeline.cost import (
    KINDS,
    Calibration,
    KindCosts,
    MemoryCosts,
    UnitCosts,
    work_units,
)
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData
from implicit2.training.checkpoint import Checkpointer
from implicit2.training.loop import train
from implicit2.training.profiling import reset_peak_memory, synchronize
from implicit2.training.records import summary
from implicit2.training.runs import train_to_dir
from implicit2.training.settings import TrainSettings
from implicit2.training.step import make_model

log = logging.getLogger(__name__)

#: (points, layers, width) of the calibration runs, per device type: small enough to take
#: seconds, spread enough to separate the fixed, element-wise and matmul costs.
SHAPES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "cpu": ((2048, 1, 32), (8192, 1, 32), (2048, 1, 96), (8192, 1, 96), (4096, 2, 64)),
    "cuda": ((65536, 1, 64), (262144, 1, 64), (65536, 1, 256), (262144, 1, 256), (131072, 2, 128)),
}
#: Training steps per calibration run (step 0 and five timed intervals of four).
STEPS = 21
LOG_EVERY = 4
#: (points, layers, width) of the two checkpoint-cost runs of a DEQ (its state is points × width).
CHECKPOINT_SHAPES = ((1024, 1, 16), (131072, 1, 64))
#: Timed solves per shape.
SOLVES = 3
#: Start-up measurements (fresh processes).
STARTUPS = 3
#: Per task, the demo dataset whose evaluation is timed and its small prepare options.
EVALUATION_PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "image_representation": ("demo_faces", {"size": 32, "limit": 1}),
    "image_generalization": ("demo_nature", {"size": 64, "limit": 1}),
    "audio": ("demo_chirp", {"max_seconds": 0.25}),
    "video": ("bikes", {"frames": 3, "size": 16}),
    "occupancy": ("demo_shape", {"train_points": 4096, "test_points": 2048}),
}
#: The model of the timed evaluations (its forward pass at these sizes takes milliseconds).
EVALUATION_MODEL = "mfn-fourier-1L16D"


def calibrate(
    device: torch.device,
    threads: int,
    kinds: Sequence[str] = KINDS,
    shapes: Sequence[tuple[int, int, int]] | None = None,
    evaluation_tasks: Sequence[str] = tuple(EVALUATION_PROBES),
) -> Calibration:
    """Measure every kind's unit costs on ``device`` with ``threads`` CPU threads, and the
    evaluation of ``evaluation_tasks``."""
    torch.set_num_threads(threads)
    shapes = SHAPES["cuda" if device.type == "cuda" else "cpu"] if shapes is None else shapes
    clock = Clock(device, threads)
    startup, first_run, host_base = measure_startup(device, threads)
    evaluation = measure_evaluation(device, threads, evaluation_tasks)
    costs = {}
    for kind in kinds:
        started = time.perf_counter()
        costs[kind] = calibrate_kind(kind, device, shapes, clock)
        log.info("calibrated %s in %.1f s", kind, time.perf_counter() - started)
    return Calibration(
        device=device.type,
        device_name=device_name(device),
        threads=threads,
        device_memory_bytes=(
            torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 0
        ),
        startup_seconds=startup,
        first_run_seconds=first_run,
        checkpoint=measure_checkpoints(device, clock),
        host_base_bytes=host_base,
        kinds=costs,
        source=f"implicit2 plan --calibrate ({clock.describe()}), torch {torch.__version__}",
        evaluation_seconds=evaluation,
    )


class Clock:
    """Wall-clock seconds, or on a one-thread CPU calibration the process's CPU time: measures
    a call by both and scales the loop's own wall-clock figures by the CPU share."""

    def __init__(self, device: torch.device, threads: int) -> None:
        self.cpu_time = device.type == "cpu" and threads == 1

    def describe(self) -> str:
        return "CPU time of one thread" if self.cpu_time else "wall clock"

    def share(self, run: Callable[[], Any]) -> tuple[Any, float]:
        """``run()``'s result and the factor that turns its wall seconds into counted seconds."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return result, min(1.0, cpu / wall) if self.cpu_time and wall > 0 else 1.0


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def calibrate_kind(
    kind: str, device: torch.device, shapes: Sequence[tuple[int, int, int]], clock: Clock
) -> KindCosts:
    """Unit costs of one kind from training runs (and timed solves) at ``shapes``."""
    step_rows, step_times, memory_rows, memory_bytes = [], [], [], []
    solve_rows, solve_times = [], []
    for points, layers, width in shapes:
        name = f"{kind}-{layers}L{width}D"
        spec = parse_model_name(name)
        record, share = clock.share(partial(_train_briefly, name, points, device))
        step_rows.append(time_features(spec, points))
        step_times.append(record["step_seconds_median"] * share)
        memory_rows.append(memory_features(spec, points))
        memory_bytes.append(record["peak_memory_bytes"])
        if spec.is_deq:
            seconds, share = clock.share(partial(_solve_iteration_seconds, name, points, device))
            solve_rows.append(time_features(spec, points))
            solve_times.append(seconds * share)
    step = UnitCosts(*fit_costs(step_rows, step_times))
    memory = MemoryCosts(*fit_costs(memory_rows, memory_bytes))
    solve = UnitCosts(*fit_costs(solve_rows, solve_times)) if solve_rows else None
    return KindCosts(step, memory, solve)


def measure_checkpoints(device: torch.device, clock: Clock) -> UnitCosts:
    """Seconds of one checkpoint, ``fixed + per_element·bytes``: at each of two state sizes, a
    run that checkpoints every step against one that checkpoints once."""
    sizes, seconds = [], []
    checkpoint_log = logging.getLogger("implicit2.training.checkpoint")
    level = checkpoint_log.level
    checkpoint_log.setLevel(logging.WARNING)  # not one line per calibration checkpoint
    try:
        for points, layers, width in CHECKPOINT_SHAPES:
            name = f"deq-fourier-{layers}L{width}D"
            timed = []
            for every in (STEPS, 1):
                with tempfile.TemporaryDirectory() as folder:
                    checkpointer = Checkpointer(Path(folder) / "ckpt", every=every)
                    record, share = clock.share(
                        partial(_train_briefly, name, points, device, checkpointer)
                    )
                timed.append(record["train_seconds"] * share)
            seconds.append(max(0.0, (timed[1] - timed[0]) / (STEPS - 1)))
            sizes.append(4.0 * points * width)
    finally:
        checkpoint_log.setLevel(level)
    per_byte = max(0.0, (seconds[1] - seconds[0]) / (sizes[1] - sizes[0]))
    return UnitCosts(max(0.0, seconds[0] - per_byte * sizes[0]), per_byte, 0.0)


def time_features(spec: ModelSpec, points: int) -> list[float]:
    """The regressors of :class:`UnitCosts`: 1, element-wise units, matmul units."""
    _, elements, matmul = work_units(spec, points)
    return [1.0, elements, matmul]


def memory_features(spec: ModelSpec, points: int) -> list[float]:
    """The regressors of :class:`MemoryCosts`: 1, points, element-wise units, points·D·L."""
    _, elements, _ = work_units(spec, points)
    return [1.0, float(points), elements, float(points * spec.width * spec.layers)]


def fit_costs(rows: list[list[float]], values: list[float]) -> list[float]:
    """Non-negative least squares in relative error (each point weighted by 1/value)."""
    from scipy.optimize import nnls

    matrix = np.asarray(rows, dtype=np.float64)
    target = np.asarray(values, dtype=np.float64)
    weights = 1.0 / np.maximum(target, 1e-12)
    scale = np.maximum(np.abs(matrix).max(axis=0), 1e-30)
    solution, _ = nnls(matrix / scale * weights[:, None], target * weights)
    return [float(v) for v in solution / scale]


def _synthetic_data(points: int) -> PreparedData:
    rng = np.random.default_rng(0)
    coords = rng.uniform(-1, 1, (points, 2)).astype(np.float32)
    targets = rng.uniform(-1, 1, (1, points, 1)).astype(np.float32)
    return PreparedData(
        "image_representation", "calibration", coords, targets, coords, targets, ["noise"]
    )


def _settings(device: torch.device) -> TrainSettings:
    return TrainSettings(
        steps=STEPS,
        log_every=LOG_EVERY,
        checkpoint_every=10 * STEPS,
        signal_batch=1,
        device=device.type,
    )


def _train_briefly(
    name: str, points: int, device: torch.device, checkpointer: Checkpointer | None = None
) -> dict[str, Any]:
    task = get_task("image_representation")
    reset_peak_memory(device)
    result = train(task, _synthetic_data(points), name, 0, _settings(device), device, checkpointer)
    return summary(result, device)


def _solve_iteration_seconds(name: str, points: int, device: torch.device) -> float:
    data = _synthetic_data(points)
    model = make_model(name, data, _settings(device), 0, 0, 1, device)
    model.train()
    x = torch.from_numpy(data.train_coords).to(device).unsqueeze(0)
    per_iteration = []
    with torch.no_grad():
        for _ in range(SOLVES + 1):
            synchronize(device)
            started = time.perf_counter()
            out = model.run(x, z0=None, solve=True)
            synchronize(device)
            per_iteration.append((time.perf_counter() - started) / max(1, out.solver_steps))
    return statistics.median(per_iteration[1:])


_STARTUP_PROBE = """
import json, resource, time
import torch
import implicit2.commands.evaluate, implicit2.commands.train
from implicit2.bench.calibrate import first_run_probe
torch.set_num_threads({threads})
torch.zeros(1, device={device!r}).sum().item()
ready = time.time(), time.process_time()
first = first_run_probe(torch.device({device!r}))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"ready": ready, "rss": rss, "first": first}}))
"""


def first_run_probe(device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds of two tiny training runs in a row, less the second: what the first
    run of a process pays on top of its steps."""
    timed = []
    for _ in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        _train_briefly("deq-fourier-1L16D", 256, device)
        timed.append((time.perf_counter() - wall, time.process_time() - cpu))
    return timed[0][0] - timed[1][0], timed[0][1] - timed[1][1]


def measure_startup(device: torch.device, threads: int) -> tuple[float, float, int]:
    """Medians over fresh interpreters: seconds to import torch and the train and evaluate
    commands and run a first tensor op on ``device``, the first training run's warm-up, and the
    resident bytes after two tiny runs (a job's memory before its data and activations). On a
    one-thread CPU calibration seconds are the process's CPU time."""
    startup, warmup, rss = [], [], []
    probe = _STARTUP_PROBE.format(threads=threads, device=str(device))
    cpu_time = device.type == "cpu" and threads == 1
    for _ in range(STARTUPS):
        launched = time.time()
        output = subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout
        report = json.loads(output.strip().splitlines()[-1])
        (ready_at, ready_cpu), (first_wall, first_cpu) = report["ready"], report["first"]
        startup.append(ready_cpu if cpu_time else ready_at - launched)
        warmup.append(max(0.0, first_cpu if cpu_time else first_wall))
        rss.append(int(report["rss"]))
    return statistics.median(startup), statistics.median(warmup), int(statistics.median(rss))


_EVALUATION_PROBE = """
import json, resource, time
from pathlib import Path
import torch
import implicit2.commands.evaluate
from implicit2.training.runs import evaluate_dir, load_data
torch.set_num_threads({threads})
torch.zeros(1, device={device!r}).sum().item()
def counted():
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + children.ru_utime + children.ru_stime
wall, cpu = counted()
data = load_data({task!r}, Path({data!r}))
evaluate_dir({task!r}, data, Path({run!r}), Path({out!r}), {device!r})
print(json.dumps([end - start for start, end in zip((wall, cpu), counted())]))
"""


def measure_evaluation(
    device: torch.device, threads: int, tasks: Sequence[str] = tuple(EVALUATION_PROBES)
) -> dict[str, float]:
    """Per task of ``tasks`` (:data:`EVALUATION_PROBES`), the median seconds of an evaluation's
    work in a fresh process after its start-up: loading the data and the model, the forward pass
    (milliseconds at these sizes), exports, metrics and provenance (its subprocesses counted). On
    a one-thread CPU calibration seconds are CPU time."""
    cpu_time = device.type == "cpu" and threads == 1
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="implicit2-calibrate-") as folder:
        root = Path(folder)
        for task in tasks:
            dataset, options = EVALUATION_PROBES[task]
            source = resolve_dataset(dataset)
            raw, data_file, run = root / dataset, root / f"{dataset}.npz", root / task
            write_manifest(raw, source, fetch_files(source, raw))
            get_task(task).prepare(raw, data_file, {**source.prepare, **options})
            settings = TrainSettings(steps=2, log_every=1, device=device.type)
            data = get_task(task).load(data_file)
            train_to_dir(task, data, EVALUATION_MODEL, 0, settings, run, progress=False)
            probe = _EVALUATION_PROBE.format(
                threads=threads,
                device=str(device),
                task=task,
                data=str(data_file),
                run=str(run),
                out=str(run / "metrics.json"),
            )
            timed = []
            for _ in range(STARTUPS):
                output = subprocess.run(
                    [sys.executable, "-c", probe], check=True, capture_output=True, text=True
                ).stdout
                wall, cpu = json.loads(output.strip().splitlines()[-1])
                timed.append(cpu if cpu_time else wall)
            seconds[task] = statistics.median(timed)
            log.info("evaluation of %s: %.2f s besides start-up", task, seconds[task])
    return seconds


def save_calibration(calibration: Calibration, path: str | Path) -> None:
    """Write a calibration JSON atomically."""
    atomic.write_json(path, calibration.to_dict())
