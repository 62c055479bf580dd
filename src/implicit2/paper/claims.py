"""The paper's claims, checked from the runs: per claim and task, the evidence and a verdict.

Each claim is broken into *cells* (one comparison on one dataset: a DEQ against its explicit twin,
a pair of models' step times, one run group's solver iterations …). A cell *holds*, *fails*, is
*unclear* (inside seed noise, see :mod:`implicit2.paper.seeds`) or is *missing* (a run it needs has
no result). A row's verdict aggregates its cells:

- ``mixed``: some cells hold and others fail;
- ``not enough runs``: otherwise, when a cell is missing or unclear, or there is no cell;
- ``supported`` / ``not supported``: every cell holds / fails.

The ``all`` row of a claim aggregates the cells of every task the same way. docs/claims.md states
every rule and threshold; :data:`CLAIMS` states the claims.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from implicit2.paper import latex
from implicit2.paper.collect import Collection
from implicit2.paper.names import ModelName, headline_metrics, parse_model, task_sort_key
from implicit2.paper.reference import Reference
from implicit2.paper.scale import PaperScale, summarize_scale
from implicit2.paper.seeds import estimate, seeds_phrase

CLAIM_COLUMNS: tuple[str, ...] = ("claim", "task", "evidence", "verdict")
VERDICTS: tuple[str, ...] = ("supported", "not supported", "mixed", "not enough runs")
ALL_TASKS = "all"

#: The claim ids, in table order, with what each one states (from the paper's abstract/method).
CLAIMS: dict[str, str] = {
    "quality": "A DEQ is more accurate than its explicit twin (same filter and size).",
    "quality_vs_siren": "A DEQ is more accurate than the SIREN baseline of its size.",
    "quality_vs_ffn": "A DEQ is more accurate than the FFN baseline of its size.",
    "speed": (
        "A one-layer DEQ trains faster than the multi-layer explicit network of its filter and "
        "width (time per step and whole run)."
    ),
    "memory": (
        "A one-layer DEQ needs less peak training memory than the multi-layer explicit network "
        "of its filter and width."
    ),
    "amortization": (
        "In full-batch training the solver needs about one iteration per step after the first."
    ),
    "scale": "The runs are at the paper's scale (steps, batch, model sizes, datasets).",
    "reference": "Our results reach the paper's printed values (ours - paper).",
}

#: Amortization holds when the steps after the first need fewer solver iterations than this.
AMORTIZED_ITERATIONS = 1.5
#: Without ``solver_steps_mean``: a median DEQ step must cost under this multiple of its explicit
#: twin's step (one application of the same network) to count as about one iteration.
AMORTIZED_STEP_RATIO = 2.0

Outcome = Literal["holds", "fails", "unclear", "missing"]
_MIB = 2**20


@dataclass(frozen=True)
class _Quantity:
    """How a compared number is written: unit, factor to that unit, decimals."""

    unit: str = ""
    factor: float = 1.0
    decimals: int = 3


#: The headline metrics as the quality and reference cells write them.
_METRICS: dict[str, _Quantity] = {"psnr": _Quantity(" dB", decimals=2)}
#: (run-level column, what it is, how it is written) of the cost claims.
_COSTS: dict[str, tuple[tuple[str, str, _Quantity], ...]] = {
    "speed": (
        ("step_seconds_median", "time per step", _Quantity(" ms", 1e3, 2)),
        ("train_seconds", "train time", _Quantity(" s", 1.0, 1)),
    ),
    "memory": (("peak_memory_bytes", "peak memory", _Quantity(" MiB", 1.0 / _MIB, 1)),),
}


@dataclass(frozen=True)
class Cell:
    """One comparison behind a claim.

    Attributes:
        task: the task it belongs to.
        outcome: ``holds``, ``fails``, ``unclear`` (inside seed noise) or ``missing``.
        text: the comparison in words and numbers (or why it is missing).
        seeds: seeds behind the outcome (0 when missing).
        proxy: decided from a stand-in measurement (amortization without solver_steps_mean).
    """

    task: str
    outcome: Outcome
    text: str
    seeds: int = 0
    proxy: bool = False


@dataclass(frozen=True)
class ClaimRow:
    """One line of ``claims.csv``."""

    claim: str
    task: str
    evidence: str
    verdict: str


def verdict(outcomes: Iterable[str]) -> str:
    """Aggregate cell outcomes into a verdict (see the module docstring)."""
    found = set(outcomes)
    if {"holds", "fails"} <= found:
        return "mixed"
    if not found or found & {"missing", "unclear"}:
        return "not enough runs"
    return "supported" if "holds" in found else "not supported"


class _Runs:
    """Lookups into a :class:`Collection`: the models of a dataset and per-seed numbers."""

    def __init__(self, collection: Collection) -> None:
        self.runs = collection.runs
        per_run = collection.values.groupby(["task", "dataset", "model", "metric", "seed"])
        self._metric: dict[tuple[Any, ...], float] = per_run["value"].mean().to_dict()

    def tasks(self) -> list[str]:
        return sorted(dict.fromkeys(self.runs["task"]), key=task_sort_key)

    def datasets(self, task: str) -> list[str]:
        return list(dict.fromkeys(self.runs.loc[self.runs["task"] == task, "dataset"]))

    def models(self, task: str, dataset: str) -> list[str]:
        rows = self.runs[(self.runs["task"] == task) & (self.runs["dataset"] == dataset)]
        return list(dict.fromkeys(rows["model"]))

    def group(self, task: str, dataset: str, model: str) -> pd.DataFrame:
        runs = self.runs
        return runs[
            (runs["task"] == task) & (runs["dataset"] == dataset) & (runs["model"] == model)
        ]

    def finished(self, task: str, dataset: str, model: str) -> pd.DataFrame:
        group = self.group(task, dataset, model)
        return group[group["status"] == "ok"]

    def column(self, task: str, dataset: str, model: str, column: str) -> dict[int, float]:
        """Seed → a run-level number of the finished runs (NaN left out)."""
        rows = self.finished(task, dataset, model)
        return {
            int(seed): float(value)
            for seed, value in zip(rows["seed"], rows[column], strict=True)
            if not math.isnan(value)
        }

    def metric(self, task: str, dataset: str, model: str, metric: str) -> dict[int, float]:
        """Seed → the run's headline metric (mean over its signals), finished runs only."""
        return {
            int(seed): self._metric[(task, dataset, model, metric, seed)]
            for seed in self.finished(task, dataset, model)["seed"]
            if (task, dataset, model, metric, seed) in self._metric
        }

    def why_empty(self, task: str, dataset: str, model: str) -> str:
        """Why a model has no number here: not run, diverged or missing seeds."""
        group = self.group(task, dataset, model)
        if group.empty:
            return f"no {model} run"
        parts = []
        for status in ("diverged", "missing", "ok"):
            seeds = sorted(group.loc[group["status"] == status, "seed"])
            if seeds:
                what = "finished without this number" if status == "ok" else status
                parts.append(f"{what} ({latex.seeds_phrase(seeds)})")
        return f"{model} {'; '.join(parts)}"


def _compare(
    runs: _Runs,
    task: str,
    dataset: str,
    label: str,
    numbers: dict[str, dict[int, float]],
    quantity: _Quantity,
    lower_is_better: bool = False,
) -> Cell:
    """One cell: the first model's per-seed numbers against the second's, paired by seed.

    Higher-is-better numbers compare by their difference (the cell holds above 0), costs by
    their ratio (it holds under 1).
    """
    (first, ours), (second, theirs) = numbers.items()
    for model, values in numbers.items():
        if not values:
            return Cell(task, "missing", f"{label}: {runs.why_empty(task, dataset, model)}")
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        return Cell(task, "missing", f"{label}: no seed finished for both {first} and {second}")
    digits = quantity.decimals
    if lower_is_better:
        spread = estimate([ours[s] / theirs[s] for s in seeds])
        outcome, change = spread.side(1.0, False), f"{spread.mean:.2f}x{spread.plus_minus(2)}"
    else:
        spread = estimate([(ours[s] - theirs[s]) * quantity.factor for s in seeds])
        outcome = spread.side(0.0, True)
        change = f"{spread.mean:+.{digits}f}{spread.plus_minus(digits)}"
    mine, other = (statistics.fmean(v[s] for s in seeds) * quantity.factor for v in (ours, theirs))
    text = f"{label}: {mine:.{digits}f} vs {other:.{digits}f}{quantity.unit} ({change})"
    return Cell(task, outcome, text, len(seeds))


# ---- quality ---------------------------------------------------------------------------------


def _twin(model: ModelName) -> str:
    return f"mfn-{model.filter}-{model.size}"


def _baseline(family: str) -> Callable[[ModelName], str]:
    return lambda model: f"{family}-{model.size}"


def _quality_cells(runs: _Runs, task: str, opponent: Callable[[ModelName], str]) -> list[Cell]:
    """Every DEQ of the task against ``opponent(deq)`` on every headline metric."""
    cells: list[Cell] = []
    metrics = headline_metrics(task)
    for dataset in runs.datasets(task):
        for name in runs.models(task, dataset):
            model = parse_model(name)
            if model.family != "deq":
                continue
            other = opponent(model)
            for metric in metrics:
                label = f"{dataset} {model.filter} {model.size}"
                if len(metrics) > 1:
                    label += f" {metric}"
                numbers = {m: runs.metric(task, dataset, m, metric) for m in (name, other)}
                quantity = _METRICS.get(metric, _Quantity())
                cells.append(_compare(runs, task, dataset, label, numbers, quantity))
    return cells


# ---- speed and memory ------------------------------------------------------------------------


def _cost_cells(runs: _Runs, task: str, claim: str) -> list[Cell]:
    """Every one-layer DEQ against each multi-layer explicit model of its filter and width."""
    cells: list[Cell] = []
    for dataset in runs.datasets(task):
        models = runs.models(task, dataset)
        for name in models:
            model = parse_model(name)
            if model.family != "deq" or model.layers != 1:
                continue
            deep = [
                other
                for other in map(parse_model, models)
                if other.family == "mfn"
                and other.filter == model.filter
                and other.width == model.width
                and (other.layers or 0) > 1
            ]
            if not deep:
                text = f"{dataset} {name}: no run of mfn-{model.filter}-NL{model.width}D, N > 1"
                cells.append(Cell(task, "missing", text))
            for other in deep:
                for column, what, quantity in _COSTS[claim]:
                    label = f"{dataset} {model.filter} {model.size} vs {other.size}, {what}"
                    numbers = {m: runs.column(task, dataset, m, column) for m in (name, other.name)}
                    cells.append(_compare(runs, task, dataset, label, numbers, quantity, True))
    return cells


# ---- amortization ----------------------------------------------------------------------------


def _is_full_batch(runs: _Runs, task: str) -> bool:
    """A task whose runs recorded ``batch_size: null`` (every coordinate every step)."""
    hparams = runs.runs.loc[runs.runs["task"] == task, "hparams"]
    return any("batch_size" in h and h["batch_size"] is None for h in hparams)


def _later_iterations(mean: float, first: float, steps: Any) -> float:
    """Mean solver iterations of the steps after the first, from the mean over all steps."""
    if isinstance(steps, int) and steps > 1 and not math.isnan(first):
        return (mean * steps - first) / (steps - 1)
    return mean


def _amortization_cell(runs: _Runs, task: str, dataset: str, name: str) -> Cell | None:
    """One DEQ's amortization (None when it trained without amortization: not this claim)."""
    finished = runs.finished(task, dataset, name)
    label = f"{dataset} {parse_model(name).filter} {parse_model(name).size}"
    if finished.empty:
        return Cell(task, "missing", f"{label}: {runs.why_empty(task, dataset, name)}")
    amortized = finished[finished["hparams"].map(lambda hparams: bool(hparams.get("amortize")))]
    if amortized.empty:
        return None
    recorded = amortized[amortized["solver_steps_mean"].notna()]
    if not recorded.empty:
        later = [
            _later_iterations(mean, first, hparams.get("steps"))
            for mean, first, hparams in zip(
                recorded["solver_steps_mean"],
                recorded["solver_steps_first"],
                recorded["hparams"],
                strict=True,
            )
        ]
        spread = estimate(later)
        text = (
            f"{label}: {spread.mean:.2f}{spread.plus_minus(2)} solver iterations per step after "
            f"the first (first step {recorded['solver_steps_first'].mean():.0f})"
        )
        return Cell(task, spread.side(AMORTIZED_ITERATIONS, False), text, len(later))
    twin = _twin(parse_model(name))
    deq_steps = {
        int(s): float(v)
        for s, v in zip(amortized["seed"], amortized["step_seconds_median"], strict=True)
        if not math.isnan(v)
    }
    twin_steps = runs.column(task, dataset, twin, "step_seconds_median")
    seeds = sorted(set(deq_steps) & set(twin_steps))
    ratios = [deq_steps[s] / twin_steps[s] for s in seeds]
    if not seeds:
        why = runs.why_empty(task, dataset, twin) if not twin_steps else "no common seed"
        text = f"{label}: no solver_steps_mean and no explicit twin to time against ({why})"
        return Cell(task, "missing", text)
    spread = estimate(ratios)
    text = (
        f"{label}: a median step takes {spread.mean:.2f}x{spread.plus_minus(2)} its explicit "
        f"twin's (first step {amortized['solver_steps_first'].mean():.0f} solver iterations, "
        f"evaluation from z = 0 {amortized['solver_steps_eval'].mean():.0f})"
    )
    return Cell(task, spread.side(AMORTIZED_STEP_RATIO, False), text, len(seeds), proxy=True)


def _amortization_cells(runs: _Runs, task: str) -> list[Cell]:
    if not _is_full_batch(runs, task):
        return []
    cells = []
    for dataset in runs.datasets(task):
        for name in runs.models(task, dataset):
            if parse_model(name).family == "deq":
                cell = _amortization_cell(runs, task, dataset, name)
                if cell is not None:
                    cells.append(cell)
    return cells


# ---- reference -------------------------------------------------------------------------------


def _reference_cells(runs: _Runs, task: str, reference: Reference) -> list[Cell]:
    """Ours against every printed value of the task: holds unless clearly below the paper's."""
    cells = []
    for (ref_task, dataset, model, metric), printed in reference.values.items():
        if ref_task != task or model not in runs.models(task, dataset):
            continue
        label = f"{dataset} {model} {metric}"
        ours = runs.metric(task, dataset, model, metric)
        if not ours:
            cells.append(Cell(task, "missing", f"{label}: {runs.why_empty(task, dataset, model)}"))
            continue
        quantity = _METRICS.get(metric, _Quantity())
        digits = quantity.decimals
        spread = estimate([value - printed for value in ours.values()])
        outcome: Outcome = "fails" if spread.side(0.0, True) == "fails" else "holds"
        text = (
            f"{label}: {spread.mean + printed:.{digits}f} vs paper {printed:g}{quantity.unit} "
            f"({spread.mean:+.{digits}f}{spread.plus_minus(digits)})"
        )
        cells.append(Cell(task, outcome, text, len(ours)))
    return cells


# ---- rows ------------------------------------------------------------------------------------


def _count_phrase(cells: list[Cell]) -> str:
    counts = Counter(cell.outcome for cell in cells)
    text = f"holds in {counts['holds']} of {len(cells)} cells"
    if counts["fails"]:
        text += f", fails in {counts['fails']}"
    if counts["unclear"]:
        text += f", {counts['unclear']} within seed noise"
    if counts["missing"]:
        text += f", {counts['missing']} without runs"
    return text


def _evidence(cells: list[Cell], note: str, details: list[str]) -> str:
    if not cells:
        return f"{note}No cell to compare: the runs hold no such pair of models."
    decided = [cell.seeds for cell in cells if cell.outcome != "missing"]
    head = f"{note}{_count_phrase(cells).capitalize()}"
    if decided:
        head += f" ({seeds_phrase(decided)})"
    if any(cell.proxy for cell in cells):
        head += (
            "; solver_steps_mean not recorded by these runs, so a DEQ step's time against its "
            f"explicit twin's stands in (about one iteration: under {AMORTIZED_STEP_RATIO:g}x)"
        )
    return f"{head}: {'; '.join(details)}."


def _claim_rows(
    claim: str,
    cells_of: Callable[[str], list[Cell]],
    tasks: list[str],
    notes: dict[str, str],
) -> list[ClaimRow]:
    """The ``all`` row and one row per task (tasks without cells are left out)."""
    per_task = {task: cells_of(task) for task in tasks}
    per_task = {task: cells for task, cells in per_task.items() if cells}
    if not per_task:
        return []
    every = [cell for cells in per_task.values() for cell in cells]
    summary = [
        f"{task} {verdict(c.outcome for c in cells)} ({_count_phrase(cells)})"
        for task, cells in per_task.items()
    ]
    rows = [
        ClaimRow(
            claim,
            ALL_TASKS,
            _evidence(every, notes[ALL_TASKS], summary),
            verdict(c.outcome for c in every),
        )
    ]
    for task, cells in per_task.items():
        evidence = _evidence(cells, notes[task], [c.text for c in cells])
        rows.append(ClaimRow(claim, task, evidence, verdict(c.outcome for c in cells)))
    return rows


def check_claims(
    collection: Collection, reference: Reference, scale: PaperScale | None
) -> list[ClaimRow]:
    """Every claim of :data:`CLAIMS` checked on the runs of ``collection``.

    Args:
        collection: the runs (missing ones included).
        reference: the paper's printed values (rows of claim ``reference`` only where given).
        scale: the paper's scale, or None to leave it unjudged.

    Returns:
        Rows in :data:`CLAIMS` order, each claim's ``all`` row first, then tasks in paper order.
    """
    runs = _Runs(collection)
    tasks = runs.tasks()
    summaries = {
        task: summarize_scale(runs.runs[runs.runs["task"] == task], scale) for task in tasks
    }
    summaries[ALL_TASKS] = summarize_scale(runs.runs, scale)
    notes = {key: summary.note() for key, summary in summaries.items()}
    makers: dict[str, Callable[[str], list[Cell]]] = {
        "quality": lambda task: _quality_cells(runs, task, _twin),
        "quality_vs_siren": lambda task: _quality_cells(runs, task, _baseline("siren")),
        "quality_vs_ffn": lambda task: _quality_cells(runs, task, _baseline("ffn")),
        "speed": lambda task: _cost_cells(runs, task, "speed"),
        "memory": lambda task: _cost_cells(runs, task, "memory"),
        "amortization": lambda task: _amortization_cells(runs, task),
        "reference": lambda task: _reference_cells(runs, task, reference),
    }
    rows: list[ClaimRow] = []
    for claim in CLAIMS:
        if claim == "scale":
            if tasks:
                rows += [
                    ClaimRow(claim, key, summaries[key].evidence(), summaries[key].verdict())
                    for key in [ALL_TASKS, *tasks]
                ]
            continue
        rows += _claim_rows(claim, makers[claim], tasks, notes)
    return rows


def claims_frame(rows: list[ClaimRow]) -> pd.DataFrame:
    """The rows as the ``claims.csv`` frame (columns :data:`CLAIM_COLUMNS`)."""
    return pd.DataFrame(
        [[row.claim, row.task, row.evidence, row.verdict] for row in rows],
        columns=list(CLAIM_COLUMNS),
    )


def scale_sentence(rows: list[ClaimRow]) -> str:
    """One sentence on the paper's scale of all runs, for the top of the claims table."""
    overall = next((r.verdict for r in rows if r.claim == "scale" and r.task == ALL_TASKS), None)
    return {
        "supported": "Every run is at the paper's scale.",
        "not supported": (
            "No run is at the paper's scale (claim scale): every verdict below describes these "
            "runs and none is a verdict on the paper."
        ),
        "mixed": (
            "Only some runs are at the paper's scale (claim scale): read each verdict as one on "
            "these runs, not on the paper."
        ),
    }.get(overall or "", "The paper's scale was not judged.")
