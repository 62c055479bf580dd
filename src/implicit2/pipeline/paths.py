"""The workflow's output paths (docs/architecture.md) and the Snakemake targets of a config.

Torch-free: the Snakefile imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from implicit2.names import MODEL_NAME_REGEX
from implicit2.pipeline.config import ConfigError
from implicit2.pipeline.grid import Run, expand_grid, grid_datasets, selected_tasks, task_datasets

RAW_DIR = "resources/raw/{dataset}"
RUN_DIR = "results/runs/{task}/{dataset}/{model}/seed{seed}"
TABLE = "results/tables/{task}.csv"
PAPER_TEX = "results/tables/paper.tex"
PAPER_PDF = "results/tables/paper.pdf"
FIGURE_DIR = "results/figures/{task}"
FIGURE_KINDS: tuple[str, ...] = ("curves", "cost", "reconstructions")
FIGURE_FORMATS: tuple[str, ...] = ("pdf", "png")


def run_dir(run: Run) -> str:
    """``results/runs/{task}/{dataset}/{model}/seed{seed}``."""
    return RUN_DIR.format(**run._asdict())


def run_files(config: Mapping[str, Any], filename: str, task: str | None = None) -> list[str]:
    """``<run_dir>/<filename>`` for every run of the selected grid (or of one task)."""
    return [f"{run_dir(run)}/{filename}" for run in expand_grid(config, task)]


def metrics_paths(config: Mapping[str, Any], task: str | None = None) -> list[str]:
    """Every ``metrics.json`` of the selected grid (or of one task).

    Raises:
        ConfigError: ``task`` is given but the filters leave it no run (its table would be empty).
    """
    paths = run_files(config, "metrics.json", task)
    if task is not None and not paths:
        raise ConfigError(
            f"task {task!r} has no run left under only_datasets={config['only_datasets']} and "
            f"only_models={config['only_models']}: widen the filters or ask for another task"
        )
    return paths


def planned_tasks(config: Mapping[str, Any]) -> list[str]:
    """The selected tasks that keep at least one run under ``only_datasets``/``only_models``."""
    return [task for task in selected_tasks(config) if expand_grid(config, task)]


def table_paths(config: Mapping[str, Any]) -> list[str]:
    """``results/tables/{task}.csv`` for every task with runs (:func:`planned_tasks`)."""
    return [TABLE.format(task=task) for task in planned_tasks(config)]


def figure_paths(config: Mapping[str, Any], task: str | None = None) -> list[str]:
    """The figures of every task with runs (or of one task)."""
    tasks = planned_tasks(config) if task is None else [task]
    return [
        f"{FIGURE_DIR.format(task=name)}/{kind}.{ext}"
        for name in tasks
        for kind in FIGURE_KINDS
        for ext in FIGURE_FORMATS
    ]


def final_targets(config: Mapping[str, Any], pdf: bool = False) -> list[str]:
    """What ``rule all`` builds: per-task tables, ``paper.tex``, the figures and, with ``pdf``
    (pdflatex installed), ``paper.pdf``."""
    return [*table_paths(config), PAPER_TEX, *figure_paths(config), *([PAPER_PDF] if pdf else [])]


def reference_path(config: Mapping[str, Any], basedir: str | Path | None = None) -> str | None:
    """The paper-reference file for ``tables``, or None when ``reference`` is null.

    A relative path is looked up in the working directory, then under ``basedir`` (the workflow's
    folder), so a run with ``--directory`` elsewhere still finds the shipped file.

    Raises:
        ConfigError: ``reference`` names a file found in neither place (a typo would otherwise
            drop the paper column from every table without a word).
    """
    value = config.get("reference")
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        return str(path)
    if basedir is not None and not path.is_absolute() and (Path(basedir) / path).is_file():
        return str(Path(basedir) / path)
    where = "the working directory" + ("" if basedir is None else f" or {basedir}")
    raise ConfigError(
        f"reference: {value!r} is not a file (looked in {where}); fix the path, or set "
        "reference: null for tables without the paper's column"
    )


def wildcard_patterns(config: Mapping[str, Any]) -> dict[str, str]:
    """Regexes for Snakemake's ``wildcard_constraints``: task, dataset, model, seed."""
    datasets = set(config["datasets"]) | {name for _, name in grid_datasets(config)}
    datasets |= {name for task in selected_tasks(config) for name in task_datasets(config, task)}
    ordered = sorted(datasets, key=lambda name: (-len(name), name))
    return {
        "task": "|".join(selected_tasks(config)),
        "dataset": "|".join(re.escape(name) for name in ordered),
        "model": MODEL_NAME_REGEX,
        "seed": r"\d+",
    }
