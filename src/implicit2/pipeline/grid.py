"""The experiment grid of a validated config: which tasks, datasets, models and seeds it runs.

Model grid layers, most specific last (each of ``families``, ``filters``, ``sizes``, ``baselines``,
``extra`` replaced as a whole): ``models`` ← ``task_settings.<task>.models`` ←
``datasets.<dataset>.models``.

Standard library only: :mod:`implicit2.pipeline.config` validates the grid with these functions,
and the Snakefile imports them without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from implicit2.names import TASK_NAMES


class Run(NamedTuple):
    """One training run of the grid."""

    task: str
    dataset: str
    model: str
    seed: int


def selected_tasks(config: Mapping[str, Any]) -> list[str]:
    """The selected tasks, in :data:`TASK_NAMES` order."""
    return [task for task in TASK_NAMES if task in config["tasks"]]


def task_datasets(config: Mapping[str, Any], task: str) -> list[str]:
    """The datasets of ``task``: ``task_settings.<task>.datasets``, else every dataset of the
    ``datasets:`` mapping whose task it is (in mapping order)."""
    listed = config["task_settings"].get(task, {}).get("datasets")
    if listed is not None:
        return list(dict.fromkeys(listed))
    return [name for name, block in config["datasets"].items() if block.get("task") == task]


def model_grid(config: Mapping[str, Any], task: str, dataset: str) -> dict[str, list[str]]:
    """The model-grid settings of (task, dataset): global ← task ← dataset, key by key."""
    grid = {key: list(value) for key, value in config["models"].items()}
    for layer in (
        config["task_settings"].get(task, {}).get("models", {}),
        config["datasets"].get(dataset, {}).get("models", {}),
    ):
        grid.update({key: list(value) for key, value in layer.items()})
    return grid


def task_models(config: Mapping[str, Any], task: str, dataset: str) -> list[str]:
    """Model names of (task, dataset): families × filters × sizes, baselines × sizes, extra."""
    grid = model_grid(config, task, dataset)
    names = [
        f"{family}-{filter_type}-{size}"
        for size in grid["sizes"]
        for family in grid["families"]
        for filter_type in grid["filters"]
    ]
    names += [f"{baseline}-{size}" for size in grid["sizes"] for baseline in grid["baselines"]]
    names += list(grid["extra"])
    return list(dict.fromkeys(names))


def expand_grid(
    config: Mapping[str, Any], task: str | None = None, *, apply_filters: bool = True
) -> list[Run]:
    """Every run of the selected grid (or of one selected task): datasets × models × seeds.

    Args:
        config: a validated config.
        task: only this task's runs (it must be selected).
        apply_filters: honour ``only_datasets`` and ``only_models``.
    """
    tasks = selected_tasks(config) if task is None else [task]
    only_datasets = set(config["only_datasets"]) if apply_filters else set()
    only_models = set(config["only_models"]) if apply_filters else set()
    runs: list[Run] = []
    for name in tasks:
        if name not in config["tasks"]:
            continue
        for dataset in task_datasets(config, name):
            if only_datasets and dataset not in only_datasets:
                continue
            for model in task_models(config, name, dataset):
                if only_models and model not in only_models:
                    continue
                runs.extend(Run(name, dataset, model, int(seed)) for seed in config["seeds"])
    return runs


def grid_datasets(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(task, dataset) pairs that the selected grid trains on."""
    return list(dict.fromkeys((run.task, run.dataset) for run in expand_grid(config)))
