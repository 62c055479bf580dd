"""The cost model: FLOPs, peak memory and seconds of one training or evaluation job.

A step's time on a device is modelled per model kind (``deq-fourier``, ``mfn-gabor``, ``siren``,
``ffn`` …) as a fixed cost plus a cost per unit of two kinds of work over the ``n`` point-signals
of the step (points × signals trained together) of a model of ``L`` layers and width ``D``:

- element-wise work ``n·D·(L+1)`` (filters, products, activations: memory-bound), and
- matmul work ``n·D²·L``.

A DEQ solver iteration gets its own such costs; a full-batch amortized DEQ pays one solve at step
0 and amortized steps after, a minibatch DEQ a solve every step. Memory (the figure that train.json
records as ``peak_memory_bytes``: the device peak on CUDA, the bytes saved for backward on CPU) is
a fixed part plus parts per point-signal, per element-wise unit and per ``n·D·L``. The
coefficients come from :class:`Calibration`, which ``implicit2 plan --calibrate`` measures by
timing the training loop on small shapes of every kind (:mod:`implicit2.bench.calibrate`).

Standard library only: the Snakefile sizes cluster jobs with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from implicit2.names import ModelSpec, parse_model_name

#: Kinds of model with their own costs: the MFN families per filter, and the two baselines.
KINDS: tuple[str, ...] = (
    "deq-fourier",
    "deq-gabor",
    "deq-siren",
    "mfn-fourier",
    "mfn-gabor",
    "mfn-siren",
    "siren",
    "ffn",
)
#: Version of the calibration file layout.
CALIBRATION_FORMAT = 1
#: On CPU, ``signal_batch: 0`` trains as many signals at once as keep one activation within this
#: many elements (``implicit2.training.batching.CPU_SIGNAL_ELEMENTS``).
CPU_SIGNAL_ELEMENTS = 1 << 21
#: On CUDA, ``signal_batch: 0`` fills at most this share of the device memory.
DEVICE_MEMORY_SHARE = 0.8
#: Evaluation predicts in chunks of this many points per signal
#: (``implicit2.training.evaluate.Predictor.chunk_points``).
EVAL_CHUNK_POINTS = 1 << 16
#: A job's host memory holds this many copies of its data arrays (numpy, torch, a batch).
DATA_COPIES = 3
#: On CPU, the process's activation memory is about this many times the bytes saved for backward.
CPU_ACTIVATION_FACTOR = 2.0


def kind_of(spec: ModelSpec) -> str:
    """The cost kind of a parsed model name."""
    return f"{spec.family}-{spec.filter}" if spec.filter else spec.family


def work_units(spec: ModelSpec, point_signals: float) -> tuple[float, float, float]:
    """(point-signals, element-wise units, matmul units) of one pass over ``point_signals``."""
    elements = point_signals * spec.width * (spec.layers + 1)
    matmul = point_signals * spec.width * spec.width * spec.layers
    return point_signals, elements, matmul


def forward_flops(spec: ModelSpec, in_dim: int, out_dim: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of one point: the hidden layers, the
    filters (two maps for Gabor) or input layer, and the output layer."""
    hidden = spec.layers * spec.width * spec.width
    if spec.filter is None:
        inputs = in_dim * spec.width
    else:
        inputs = (spec.layers + 1) * in_dim * spec.width * (2 if spec.filter == "gabor" else 1)
    return 2.0 * (hidden + inputs + spec.width * out_dim)


@dataclass(frozen=True)
class UnitCosts:
    """Seconds of one pass: ``fixed + per_element·elements + per_matmul·matmul``."""

    fixed: float
    per_element: float
    per_matmul: float

    def seconds(self, spec: ModelSpec, point_signals: float) -> float:
        _, elements, matmul = work_units(spec, point_signals)
        return self.fixed + self.per_element * elements + self.per_matmul * matmul

    def seconds_for_bytes(self, size: float) -> float:
        """Seconds of writing ``size`` bytes (a checkpoint: ``per_element`` is per byte)."""
        return self.fixed + self.per_element * size


@dataclass(frozen=True)
class MemoryCosts:
    """Bytes of one step: ``fixed + per_point·n + per_element·n·D·(L+1) + per_layer·n·D·L``."""

    fixed: float
    per_point: float
    per_element: float
    per_layer: float

    def bytes(self, spec: ModelSpec, point_signals: float) -> float:
        _, elements, _ = work_units(spec, point_signals)
        layer = point_signals * spec.width * spec.layers
        return (
            self.fixed
            + self.per_point * point_signals
            + self.per_element * elements
            + self.per_layer * layer
        )


@dataclass(frozen=True)
class KindCosts:
    """The calibrated costs of one kind of model."""

    step: UnitCosts
    memory: MemoryCosts
    solve_iteration: UnitCosts | None = None


@dataclass(frozen=True)
class Calibration:
    """Unit costs of every model kind on one device, and the cost of starting a job there.

    Attributes:
        device: ``cpu`` or ``cuda``.
        device_name: the processor or GPU (as train.json's provenance names it).
        threads: CPU threads the measurement used.
        device_memory_bytes: the GPU's memory (0 on CPU), for the signal batches it fits.
        startup_seconds: seconds from launching ``python -m implicit2`` to its first tensor
            (interpreter, torch and, on CUDA, the CUDA context).
        first_run_seconds: extra seconds of a process's first training run (lazy
            initialisation of autograd, kernels and allocators).
        checkpoint: seconds of one checkpoint: ``fixed + per_element·bytes`` (``per_matmul`` 0).
        host_base_bytes: resident memory of such a process before it loads data.
        kinds: :data:`KINDS` → costs.
        source: where the figures come from (a measurement, or the documented runs they fit).
        evaluation_seconds: per task, the seconds an evaluation job spends besides its start-up
            and its forward pass: loading the data and the model, the exports, the metrics and
            the provenance, measured on the demo's data at small sizes (a task missing here, as
            in calibrations made before this entry, counts 0).
    """

    device: str
    device_name: str
    threads: int
    device_memory_bytes: int
    startup_seconds: float
    first_run_seconds: float
    checkpoint: UnitCosts
    host_base_bytes: int
    kinds: dict[str, KindCosts]
    source: str = "measured"
    evaluation_seconds: Mapping[str, float] = field(default_factory=dict)

    def costs(self, spec: ModelSpec) -> KindCosts:
        return self.kinds[kind_of(spec)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of a calibration file."""
        kinds: dict[str, Any] = {}
        for name, costs in self.kinds.items():
            entry: dict[str, Any] = {
                "step": vars(costs.step),
                "memory": vars(costs.memory),
            }
            if costs.solve_iteration is not None:
                entry["solve_iteration"] = vars(costs.solve_iteration)
            kinds[name] = entry
        return {
            "format": CALIBRATION_FORMAT,
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "device_memory_bytes": self.device_memory_bytes,
            "startup_seconds": self.startup_seconds,
            "first_run_seconds": self.first_run_seconds,
            "checkpoint": vars(self.checkpoint),
            "host_base_bytes": self.host_base_bytes,
            "source": self.source,
            "evaluation_seconds": dict(self.evaluation_seconds),
            "kinds": kinds,
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], origin: str = "calibration") -> Calibration:
        """Parse and check a calibration file's content.

        Raises:
            ValueError: naming ``origin``, the key at fault and how to make a good file.
        """
        fix = "make a new one with `python -m implicit2 plan --calibrate`"
        if not isinstance(payload, Mapping) or payload.get("format") != CALIBRATION_FORMAT:
            raise ValueError(
                f"{origin}: not a calibration file of format {CALIBRATION_FORMAT}; {fix}"
            )
        try:
            kinds = {
                name: _kind_costs(payload["kinds"][name], name.startswith("deq-")) for name in KINDS
            }
            return cls(
                device=str(payload["device"]),
                device_name=str(payload["device_name"]),
                threads=int(payload["threads"]),
                device_memory_bytes=int(payload["device_memory_bytes"]),
                startup_seconds=float(payload["startup_seconds"]),
                first_run_seconds=float(payload["first_run_seconds"]),
                checkpoint=_unit_costs(payload["checkpoint"]),
                host_base_bytes=int(payload["host_base_bytes"]),
                kinds=kinds,
                source=str(payload.get("source", "measured")),
                evaluation_seconds={
                    str(task): float(seconds)
                    for task, seconds in (payload.get("evaluation_seconds") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{origin}: missing or invalid entry {error}; {fix}") from None


def _kind_costs(entry: Mapping[str, Any], deq: bool) -> KindCosts:
    memory = MemoryCosts(
        *(float(entry["memory"][k]) for k in ("fixed", "per_point", "per_element", "per_layer"))
    )
    solve = _unit_costs(entry["solve_iteration"]) if deq else None
    return KindCosts(_unit_costs(entry["step"]), memory, solve)


def _unit_costs(entry: Mapping[str, Any]) -> UnitCosts:
    values = [float(entry[key]) for key in ("fixed", "per_element", "per_matmul")]
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"unit costs must be finite and non-negative, got {values}")
    return UnitCosts(*values)


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration JSON file.

    Raises:
        ValueError: the file is missing, not JSON, or not a calibration file (the message says
            how to make one).
    """
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{path}: no such calibration file; make it on the device the jobs run on with "
            f"`python -m implicit2 plan --calibrate --calibration {path}`"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable calibration file ({error})") from None
    return Calibration.from_dict(payload, origin=str(path))


@dataclass(frozen=True)
class Workload:
    """What one run's cost depends on (from its settings and its data's shape)."""

    model: str
    signals: int
    step_points: int  # points per step per signal (all training points when full batch)
    eval_points: int  # points evaluated per signal
    in_dim: int
    out_dim: int
    steps: int
    full_batch_amortized: bool  # a DEQ that solves once, then applies f once per step
    solver_iterations: float  # expected iterations of a training solve
    eval_solver_iterations: float  # expected iterations of an evaluation solve
    signal_batch: int  # signals per pass (0: as many as the device fits)
    checkpoint_every: int  # steps between checkpoints
    data_bytes: int  # bytes of the job's data arrays
    task: str = ""  # the task (its evaluation's exports cost differently)


@dataclass(frozen=True)
class Prediction:
    """Predicted cost of one job."""

    seconds: float  # wall time of the job, start-up included
    compute_seconds: float  # the training loop or the evaluation alone
    memory_bytes: float  # as train.json's peak_memory_bytes (device peak; CPU: saved bytes)
    host_bytes: float  # the job's resident host memory
    flops: float


def signals_per_pass(calibration: Calibration, work: Workload, costs: KindCosts) -> int:
    """Signals trained together: the setting, else what ``signal_batch: 0`` picks on the device."""
    if work.signal_batch > 0:
        return min(work.signal_batch, work.signals)
    spec = parse_model_name(work.model)
    if calibration.device == "cpu":
        batch = CPU_SIGNAL_ELEMENTS // max(1, work.step_points * spec.width)
    else:
        per_signal = max(1.0, costs.memory.bytes(spec, work.step_points) - costs.memory.fixed)
        free = DEVICE_MEMORY_SHARE * calibration.device_memory_bytes - costs.memory.fixed
        batch = int(free // per_signal)
    return max(1, min(work.signals, batch))


def predict_training(calibration: Calibration, work: Workload) -> Prediction:
    """The cost of training one run (every signal, in batches): the first run's warm-up, then
    per batch of signals its steps, its solves and its checkpoints."""
    spec = parse_model_name(work.model)
    costs = calibration.costs(spec)
    batch = signals_per_pass(calibration, work, costs)
    point_flops = forward_flops(spec, work.in_dim, work.out_dim)
    solve_flops = 2.0 * spec.layers * spec.width * spec.width
    checkpoints = math.ceil(work.steps / work.checkpoint_every)
    seconds, flops = calibration.first_run_seconds, 0.0
    for count in _chunk_sizes(work.signals, batch):
        n = work.step_points * count
        seconds += work.steps * costs.step.seconds(spec, n)
        flops += work.steps * 3.0 * point_flops * n
        # Parameters with Adam's two moments, and the amortized warm-start state.
        state_bytes = 3 * 4 * count * point_flops / 2
        if spec.is_deq:
            solves = 1 if work.full_batch_amortized else work.steps
            seconds += solves * work.solver_iterations * _solve(costs).seconds(spec, n)
            flops += solves * work.solver_iterations * solve_flops * n
            if work.full_batch_amortized:
                state_bytes += 4 * n * spec.width
        seconds += checkpoints * calibration.checkpoint.seconds_for_bytes(state_bytes)
    memory = costs.memory.bytes(spec, work.step_points * batch)
    return _prediction(calibration, work, seconds, memory, flops)


def predict_evaluation(calibration: Calibration, work: Workload) -> Prediction:
    """The cost of evaluating one run: a forward pass (DEQ: a solve from zero) over the
    evaluation points of every signal, and the task's calibrated rest (data and model loading,
    exports, metrics). Its device memory is bounded by a training step's at the
    evaluation's chunk of points (a forward saves nothing for backward); the host also holds the
    predictions."""
    spec = parse_model_name(work.model)
    costs = calibration.costs(spec)
    n = work.eval_points * work.signals
    seconds = costs.step.seconds(spec, n) / 3.0 + calibration.evaluation_seconds.get(work.task, 0.0)
    flops = forward_flops(spec, work.in_dim, work.out_dim) * n
    if spec.is_deq:
        seconds += work.eval_solver_iterations * _solve(costs).seconds(spec, n)
        flops += work.eval_solver_iterations * 2.0 * spec.layers * spec.width**2 * n
    batch = signals_per_pass(calibration, work, costs)
    memory = costs.memory.bytes(spec, min(work.eval_points, EVAL_CHUNK_POINTS) * batch)
    predictions = 4 * n * work.out_dim
    return _prediction(calibration, work, seconds, memory, flops, predictions)


def _prediction(
    calibration: Calibration,
    work: Workload,
    seconds: float,
    memory: float,
    flops: float,
    extra_host_bytes: float = 0.0,
) -> Prediction:
    host = calibration.host_base_bytes + DATA_COPIES * work.data_bytes + extra_host_bytes
    if calibration.device == "cpu":
        host += CPU_ACTIVATION_FACTOR * memory
    return Prediction(
        seconds=calibration.startup_seconds + seconds,
        compute_seconds=seconds,
        memory_bytes=memory,
        host_bytes=host,
        flops=flops,
    )


def _solve(costs: KindCosts) -> UnitCosts:
    if costs.solve_iteration is None:
        raise ValueError("the calibration has no solver costs for a DEQ kind; calibrate again")
    return costs.solve_iteration


def _chunk_sizes(signals: int, batch: int) -> Sequence[int]:
    full, rest = divmod(signals, batch)
    return [batch] * full + ([rest] if rest else [])
