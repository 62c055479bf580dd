"""The workflow configuration: load, merge and validate it, filling every default.

A validated config is what the other pipeline modules read: :mod:`implicit2.pipeline.grid`
expands its grid of runs, :mod:`implicit2.pipeline.run_settings` resolves each run's ``--hparams``,
resources and ``--spec`` (the layers they merge are listed there), and
:mod:`implicit2.pipeline.paths` names the outputs and Snakemake targets.
This module must stay importable without torch: the Snakefile imports it.

Validation fills ``task_settings`` with the built-in per-task defaults (the ``tasks`` block of
:mod:`implicit2.pipeline.defaults`: the authors' code), skipping every key that the config writes
itself: a key written anywhere in the config beats a built-in default.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from implicit2 import names as model_names
from implicit2.names import (
    MODEL_GRAMMAR,
    MODEL_NAME_PATTERN,
    TASK_NAMES,
    ModelSpec,
    task_of_suffix,
)
from implicit2.pipeline import schema as config_schema
from implicit2.pipeline.defaults import load_defaults
from implicit2.pipeline.grid import expand_grid, task_datasets


class ConfigError(ValueError):
    """A configuration problem; the message names the key path and, where it helps, valid values."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = f"invalid config: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"invalid config ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def parse_model_name(name: str) -> ModelSpec:
    """Parse a model name of the grammar :data:`MODEL_GRAMMAR`.

    Raises:
        ConfigError: the name does not match; the message gives the grammar.
    """
    try:
        return model_names.parse_model_name(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def known_datasets() -> dict[str, str]:
    """Dataset name → task for every dataset of the data registry (the paper's and the demo's)."""
    from implicit2.data.registry import DATASETS

    return {name: entry.task for name, entry in DATASETS.items() if entry.task in TASK_NAMES}


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``, as Snakemake merges config files.

    Mappings merge key by key; any other value (lists included) replaces the old one.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_overrides(entries: Iterable[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings the way ``snakemake --config`` does (for scripts and tests).

    Values go through int, float, true/false, YAML without type resolution (so ``[0]`` gives
    ``['0']``, as Snakemake passes it), then plain string; :func:`validate` converts the strings.
    """
    parsed: dict[str, Any] = {}
    for entry in entries:
        key, sep, text = entry.partition("=")
        if not sep or not key:
            raise ConfigError(f"{entry!r}: config overrides are KEY=VALUE")
        parsed = merge_config(parsed, {key: config_schema.parse_override_value(text)})
    return parsed


def load_config(
    path: str | Path,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    base: str | Path | None = None,
    schema: str | Path | None = None,
) -> dict[str, Any]:
    """Load a YAML config, merge it over ``base`` and merge ``overrides`` on top, then validate.

    Args:
        path: the config file.
        overrides: ``--config``-style overrides: a mapping, or ``KEY=VALUE`` strings.
        base: a config file that ``path`` is merged into, as Snakemake merges ``--configfile``
            into the Snakefile's ``configfile:`` (e.g. config/config.yaml under config/demo.yaml).
        schema: the schema file (default :data:`implicit2.pipeline.schema.SCHEMA_PATH`).

    Returns:
        The validated config with every default filled in.
    """
    config: dict[str, Any] = {}
    for file in (base, path):
        if file is None:
            continue
        with open(file, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{file}: a config file is a mapping of keys at the top level")
        config = merge_config(config, loaded)
    if overrides:
        if not isinstance(overrides, Mapping):
            overrides = parse_overrides(overrides)
        config = merge_config(config, overrides)
    return validate(config, schema=schema)


def validate(
    config: Mapping[str, Any], *, schema: str | Path | Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Check a config against the schema and the grid's semantics; fill every default.

    Strings where the schema wants numbers, booleans or null (as ``snakemake --config`` passes
    them) are converted first, and a lone value where a list is expected becomes a list.

    Args:
        config: the raw config (not modified).
        schema: the schema, as a path or an already loaded mapping (default: the source
            checkout's, :data:`implicit2.pipeline.schema.SCHEMA_PATH`).

    Returns:
        A new, complete config.

    Raises:
        ConfigError: every problem found, each naming its key path and the valid values.
    """
    if not isinstance(schema, Mapping):
        schema = config_schema.load_schema(schema)
    if not isinstance(config, Mapping):
        raise ConfigError(f"the config must be a mapping of keys, got {type(config).__name__}")
    data = config_schema.coerce(copy.deepcopy(dict(config)), schema)
    _apply_task_defaults(data)
    problems = config_schema.problems(data, schema)
    if problems:
        raise ConfigError(sorted(set(problems)))
    _check_semantics(data)
    return data


def _apply_task_defaults(data: dict[str, Any]) -> None:
    """Fill ``task_settings`` with the built-in per-task defaults, skipping keys the user wrote
    anywhere."""
    settings = data.setdefault("task_settings", {})
    if not isinstance(settings, dict):
        return
    user_train: dict[str, Any] = data["train"] if isinstance(data.get("train"), dict) else {}
    user_resources: dict[str, Any] = (
        data["resources"] if isinstance(data.get("resources"), dict) else {}
    )
    for task, defaults in load_defaults()["tasks"].items():
        block = settings.setdefault(task, {})
        if not isinstance(block, dict):
            continue
        train = block.setdefault("train", {})
        if isinstance(train, dict):
            for key, value in defaults["train"].items():
                if key not in train and key not in user_train:
                    train[key] = copy.deepcopy(value)
        for key in ("input_scale_factor", "model_train"):
            if key not in block:
                block[key] = copy.deepcopy(defaults[key])
        resources = block.setdefault("resources", {})
        if isinstance(resources, dict):
            for stage, values in defaults["resources"].items():
                target = resources.setdefault(stage, {})
                user_stage = user_resources.get(stage)
                user_stage = user_stage if isinstance(user_stage, dict) else {}
                if isinstance(target, dict):
                    for key, value in values.items():
                        if key not in target and key not in user_stage:
                            target[key] = value


def _check_semantics(config: dict[str, Any]) -> None:
    """Checks the schema cannot express: dataset tasks, model names, the selected grid."""
    problems: list[str] = []
    known = known_datasets()
    for name, block in config["datasets"].items():
        key = f"datasets.{name}"
        task = block.get("task")
        if task is None:
            task = _infer_dataset_task(name, block, known)
            if task is None:
                problems.append(
                    f"{key}.task: missing, and {name!r} is not a dataset the registry knows; "
                    f"valid tasks: {', '.join(TASK_NAMES)}"
                )
                continue
            block["task"] = task
        elif name in known and "path" not in block and known[name] != task:
            problems.append(
                f"{key}.task: {task!r}, but the registry's {name!r} is {known[name]!r} data; "
                f"rename the dataset or give it a 'path'"
            )
    problems += _check_model_blocks(config)
    for task in config["tasks"]:
        problems += _check_task_datasets(config, task, known)
    if not problems:
        problems += _check_filters(config)
        problems += _check_unused_files(config)
    if problems:
        raise ConfigError(problems)


def _check_unused_files(config: Mapping[str, Any]) -> list[str]:
    """A ``datasets:`` entry with its own ``path`` that its (selected) task does not list."""
    problems = []
    for name, block in config["datasets"].items():
        task = block.get("task")
        selected = "path" in block and task in config["tasks"]
        if selected and name not in task_datasets(config, task):
            problems.append(
                f"datasets.{name}: has a path but task_settings.{task}.datasets does not "
                f"list it, so no run would use it; add {name!r} there"
            )
    return problems


def _infer_dataset_task(
    name: str, block: Mapping[str, Any], known: Mapping[str, str]
) -> str | None:
    if "path" in block:
        return task_of_suffix(str(block["path"]))
    return known.get(name)


def _check_model_blocks(config: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    blocks = [("models", config["models"])]
    blocks += [(f"task_settings.{t}.models", s.get("models", {})) for t, s in _task_items(config)]
    blocks += [(f"datasets.{d}.models", b.get("models", {})) for d, b in config["datasets"].items()]
    for key, block in blocks:
        for index, name in enumerate(block.get("extra", [])):
            if MODEL_NAME_PATTERN.match(name) is None:
                problems.append(
                    f"{key}.extra[{index}]: {name!r} is not a model name; valid: {MODEL_GRAMMAR}"
                )
    return problems


def _task_items(config: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return list(config["task_settings"].items())


def _check_task_datasets(
    config: Mapping[str, Any], task: str, known: Mapping[str, str]
) -> list[str]:
    key = f"task_settings.{task}.datasets"
    names = task_datasets(config, task)
    if not names:
        return [
            f"{key}: the selected task {task!r} has no datasets; list some, or add one under "
            f"'datasets:' with 'task: {task}'"
        ]
    problems: list[str] = []
    for index, name in enumerate(names):
        dataset_task = dataset_task_of(config, name, known)
        if dataset_task is None:
            valid = sorted(
                {d for d, b in config["datasets"].items() if b.get("task") == task}
                | {d for d, t in known.items() if t == task}
            )
            problems.append(
                f"{key}[{index}]: unknown dataset {name!r}; valid for {task}: {', '.join(valid)} "
                f"(or add it under 'datasets:' with a 'path' and 'task: {task}')"
            )
        elif dataset_task != task:
            problems.append(
                f"{key}[{index}]: {name!r} is {dataset_task} data, not {task}; "
                f"list it under task_settings.{dataset_task}.datasets"
            )
    return problems


def _check_filters(config: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    full = expand_grid(config, apply_filters=False)
    for key, valid in (
        ("only_datasets", sorted({run.dataset for run in full})),
        ("only_models", sorted({run.model for run in full})),
    ):
        for index, name in enumerate(config[key]):
            if name not in valid:
                problems.append(
                    f"{key}[{index}]: {name!r} is not in the selected grid; "
                    f"valid: {', '.join(valid)}"
                )
    if not problems and not expand_grid(config):
        problems.append("only_datasets/only_models: the filters leave no run to do")
    return problems


def dataset_task_of(
    config: Mapping[str, Any], dataset: str, known: Mapping[str, str] | None = None
) -> str | None:
    """The task of ``dataset``: its config block's ``task``, else the registry's, else None."""
    block = config.get("datasets", {}).get(dataset)
    if block is not None and block.get("task"):
        return block["task"]
    known = known_datasets() if known is None else known
    return known.get(dataset)
