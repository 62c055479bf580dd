"""The workflow configuration: load, validate, expand the grid, resolve training settings.

Everything the Snakemake rules need to know about the experiment grid lives here, so that rules
stay thin. This module must stay importable without torch: the Snakefile imports it.

Layers, most specific last (a later layer wins key by key):

- training settings (``--hparams``): the schema defaults of ``train`` ← the built-in per-task
  defaults of :data:`TASK_DEFAULTS` (the authors' code) ← the config's ``train`` ←
  ``task_settings.<task>.train`` ← the matching ``task_settings.<task>.model_train`` entries (model
  name patterns, in order) ← ``datasets.<dataset>.train`` ← the model-family rules of
  :func:`resolve_hparams` (``amortize`` only for DEQ models on full-batch tasks, ``spectral_norm``
  per family, the per-filter ``input_scale_factor``). A key written anywhere in the config beats a
  built-in default.
- job resources: ``resources.<stage>`` ← built-in per-task defaults ← ``task_settings.<task>.
  resources.<stage>`` ← ``datasets.<dataset>.resources.<stage>``.
- model grid: ``models`` ← ``task_settings.<task>.models`` ← ``datasets.<dataset>.models``
  (each of ``families``, ``filters``, ``sizes``, ``baselines``, ``extra`` replaced as a whole).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from implicit2 import config_schema, model_names
from implicit2.model_names import (
    MODEL_GRAMMAR,
    MODEL_NAME_PATTERN,
    MODEL_NAME_REGEX,
    ModelSpec,
)
from implicit2.suffixes import task_of_suffix

#: The tasks of the paper, in the order tables and figures list them.
TASKS_NAMES: tuple[str, ...] = (
    "image_representation",
    "image_generalization",
    "audio",
    "video",
    "occupancy",
)
#: Tasks trained full batch (every coordinate every step): the amortized DEQ schedule applies.
FULL_BATCH_TASKS: frozenset[str] = frozenset(
    {"image_representation", "image_generalization", "audio"}
)

#: The keys of ``--hparams`` (docs/architecture.md), in that order.
HPARAM_KEYS: tuple[str, ...] = (
    "steps",
    "lr",
    "lr_decay",
    "input_scale",
    "spectral_norm",
    "solver",
    "tol",
    "eval_tol",
    "max_iter",
    "gradient",
    "unroll_steps",
    "amortize",
    "batch_size",
    "grad_clip",
    "gabor_alpha",
    "log_every",
    "checkpoint_every",
    "signal_batch",
    "tf32",
    "compile",
    "device",
)
_INT_KEYS = frozenset({"steps", "max_iter", "unroll_steps", "log_every", "checkpoint_every"})
_INT_KEYS |= {"signal_batch", "batch_size"}
_FLOAT_KEYS = frozenset({"lr", "lr_decay", "input_scale", "tol", "eval_tol", "gabor_alpha"})
_FLOAT_KEYS |= {"grad_clip"}

#: Job stages with configurable resources.
STAGES: tuple[str, ...] = ("prepare", "train", "evaluate")
#: Dataset-block keys that configure the workflow, not the data (kept out of ``--spec``).
WORKFLOW_DATASET_KEYS: frozenset[str] = frozenset({"models", "train", "resources"})

#: Built-in per-task defaults, from the authors' released code (configs/ and scripts/ of the
#: paper's repository): images spectrally normalise the DEQ and its explicit MFN twin; occupancy
#: normalises only the DEQ; audio and video use none. Video's input scale depends on the model
#: (``model_train``: 256 for 4L1024D and for the Fourier/Gabor 1L2048D, as in configs/video/).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "image_representation": {
        "train": {
            "steps": 5000,
            "lr": 1e-3,
            "input_scale": 256.0,
            "spectral_norm": ["deq", "mfn"],
            "gabor_alpha": 3.0,
            "batch_size": None,
            "grad_clip": None,
        },
        "input_scale_factor": {},
        "model_train": {},
        "resources": {"train": {"mem_mb": 16000, "runtime": 120}},
    },
    "image_generalization": {
        "train": {
            "steps": 2000,
            "lr": 1e-3,
            "input_scale": 128.0,
            "spectral_norm": ["deq", "mfn"],
            "gabor_alpha": 3.0,
            "batch_size": None,
            "grad_clip": None,
        },
        "input_scale_factor": {},
        "model_train": {},
        "resources": {"train": {"mem_mb": 16000, "runtime": 120}},
    },
    "audio": {
        "train": {
            "steps": 3000,
            "lr": 1e-3,
            "input_scale": 25000.0,
            "spectral_norm": False,
            "gabor_alpha": 3.0,
            "batch_size": None,
            "grad_clip": None,
        },
        "input_scale_factor": {},
        "model_train": {},
        "resources": {"train": {"mem_mb": 16000, "runtime": 120}},
    },
    "video": {
        "train": {
            "steps": 10000,
            "lr": 1e-3,
            "input_scale": 128.0,
            "spectral_norm": False,
            "gabor_alpha": 3.0,
            "batch_size": 65536,
            "grad_clip": 0.1,
        },
        "input_scale_factor": {},
        "model_train": {
            "*-4L1024D": {"input_scale": 256.0},
            "*-fourier-1L2048D": {"input_scale": 256.0},
            "*-gabor-1L2048D": {"input_scale": 256.0},
        },
        "resources": {
            "train": {"mem_mb": 32000, "runtime": 480},
            "evaluate": {"mem_mb": 32000, "runtime": 60},
        },
    },
    "occupancy": {
        "train": {
            "steps": 10000,
            "lr": 5e-4,
            "input_scale": 256.0,
            "spectral_norm": ["deq"],
            "gabor_alpha": 3.0,
            "batch_size": 50000,
            "grad_clip": None,
            "eval_tol": 1e-4,
        },
        "input_scale_factor": {},
        "model_train": {},
        "resources": {
            "prepare": {"mem_mb": 16000, "runtime": 120},
            "train": {"mem_mb": 32000, "runtime": 480},
            "evaluate": {"mem_mb": 32000, "runtime": 60},
        },
    },
}


# Output paths (docs/architecture.md).
RAW_DIR = "resources/raw/{dataset}"
RUN_DIR = "results/runs/{task}/{dataset}/{model}/seed{seed}"
TABLE = "results/tables/{task}.csv"
PAPER_TEX = "results/tables/paper.tex"
FIGURE_DIR = "results/figures/{task}"
FIGURE_KINDS: tuple[str, ...] = ("curves", "cost", "reconstructions")
FIGURE_FORMATS: tuple[str, ...] = ("pdf", "png")


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


class Run(NamedTuple):
    """One training run of the grid."""

    task: str
    dataset: str
    model: str
    seed: int


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

    return {name: entry.task for name, entry in DATASETS.items() if entry.task in TASKS_NAMES}


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
        schema: the schema file (default :data:`implicit2.config_schema.SCHEMA_PATH`).

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
            checkout's, :data:`implicit2.config_schema.SCHEMA_PATH`).

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
    """Fill ``task_settings`` with :data:`TASK_DEFAULTS`, skipping keys the user wrote anywhere."""
    settings = data.setdefault("task_settings", {})
    if not isinstance(settings, dict):
        return
    user_train = data.get("train") if isinstance(data.get("train"), dict) else {}
    user_resources = data.get("resources") if isinstance(data.get("resources"), dict) else {}
    for task, defaults in TASK_DEFAULTS.items():
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
                    f"valid tasks: {', '.join(TASKS_NAMES)}"
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


# --------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------


def selected_tasks(config: Mapping[str, Any]) -> list[str]:
    """The selected tasks, in :data:`TASKS_NAMES` order."""
    return [task for task in TASKS_NAMES if task in config["tasks"]]


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


# --------------------------------------------------------------------------------------------
# Per-run settings
# --------------------------------------------------------------------------------------------


def _run_context(config: Mapping[str, Any], task: str, dataset: str) -> dict[str, Any]:
    if task not in TASKS_NAMES:
        raise ConfigError(f"task {task!r}: unknown; valid: {', '.join(TASKS_NAMES)}")
    dataset_task = dataset_task_of(config, dataset)
    if dataset_task is None:
        raise ConfigError(
            f"datasets.{dataset}: unknown dataset; add it under 'datasets:' with 'task: {task}'"
        )
    if dataset_task != task:
        raise ConfigError(f"datasets.{dataset}: is {dataset_task} data, not {task}")
    return config["datasets"].get(dataset, {})


def check_dataset(config: Mapping[str, Any], task: str, dataset: str) -> None:
    """Raise :class:`ConfigError` unless ``dataset`` is known and is ``task`` data."""
    _run_context(config, task, dataset)


def resolve_hparams(
    config: Mapping[str, Any], task: str, dataset: str, model: str
) -> dict[str, Any]:
    """The training settings (``--hparams``) of one run, every key of docs/architecture.md.

    Raises:
        ConfigError: unknown task, model or dataset, or a setting that the task cannot use.
    """
    spec = parse_model_name(model)
    block = _run_context(config, task, dataset)
    task_block = config["task_settings"].get(task, {})
    hparams: dict[str, Any] = dict(config["train"])
    hparams.update(task_block.get("train", {}))
    for pattern, train in task_block.get("model_train", {}).items():
        if fnmatch.fnmatchcase(model, pattern):
            hparams.update(train)
    hparams.update(block.get("train", {}))

    spectral = hparams["spectral_norm"]
    hparams["spectral_norm"] = spectral if isinstance(spectral, bool) else spec.family in spectral
    factor = task_block.get("input_scale_factor", {}).get(spec.filter, 1.0) if spec.filter else 1.0
    hparams["input_scale"] = float(hparams["input_scale"]) * float(factor)
    if task not in FULL_BATCH_TASKS and hparams["batch_size"] is None:
        raise ConfigError(
            f"task_settings.{task}.train.batch_size: {task} trains on minibatches; "
            "give a positive integer (null means full batch)"
        )
    full_batch = task in FULL_BATCH_TASKS and hparams["batch_size"] is None
    hparams["amortize"] = bool(hparams["amortize"]) and spec.is_deq and full_batch
    hparams["device"] = config["device"]

    resolved: dict[str, Any] = {}
    for key in HPARAM_KEYS:
        value = hparams[key]
        if value is not None and key in _INT_KEYS:
            value = int(value)
        elif value is not None and key in _FLOAT_KEYS:
            value = float(value)
        resolved[key] = value
    return resolved


def shadowed_train_keys(config: Mapping[str, Any], written: Mapping[str, Any]) -> list[str]:
    """Warnings for keys written in the global ``train`` block (``written``: the config before
    validation filled in defaults) that every selected task's ``task_settings.<task>.train`` of
    the validated ``config`` sets too, so that they change nothing (an easy trap with
    ``--config 'train={steps: 100}'``: the paper's config sets ``steps`` per task)."""
    tasks = selected_tasks(config)
    user_train = written.get("train")
    warnings = []
    for key in user_train if isinstance(user_train, Mapping) else ():
        if tasks and all(key in config["task_settings"][t].get("train", {}) for t in tasks):
            warnings.append(
                f"train.{key} has no effect: task_settings.<task>.train.{key} is set for every "
                f"selected task ({', '.join(tasks)}); set it there, e.g. --config "
                f"'task_settings={{{tasks[0]}: {{train: {{{key}: ...}}}}}}'"
            )
    return warnings


def resolve_resources(
    config: Mapping[str, Any], task: str, dataset: str, stage: str
) -> dict[str, int]:
    """Job resources of one stage (``prepare``, ``train``, ``evaluate``) of (task, dataset):
    ``threads``, ``mem_mb``, ``runtime`` (minutes, first attempt) and ``gpu``."""
    if stage not in STAGES:
        raise ConfigError(f"resources.{stage}: unknown stage; valid: {', '.join(STAGES)}")
    values = dict(config["resources"][stage])
    values.update(config["task_settings"].get(task, {}).get("resources", {}).get(stage, {}))
    values.update(config["datasets"].get(dataset, {}).get("resources", {}).get(stage, {}))
    return {key: int(value) for key, value in values.items()}


def dataset_spec(config: Mapping[str, Any], dataset: str, stage: str = "prepare") -> dict[str, Any]:
    """The dataset's config block for ``--spec`` (``{}`` for a registry dataset used as is).

    Workflow-only keys (``models``, ``train``, ``resources``) are left out so that changing them
    does not re-run data jobs; for ``stage='download'`` the ``prepare`` options are left out too.
    """
    block = config.get("datasets", {}).get(dataset) or {}
    spec = {key: copy.deepcopy(value) for key, value in block.items()}
    for key in WORKFLOW_DATASET_KEYS:
        spec.pop(key, None)
    if stage == "download":
        spec.pop("prepare", None)
    return spec


def to_json(payload: Any) -> str:
    """Compact, key-sorted JSON (stable, so that Snakemake's params trigger sees no change)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Paths (targets of the Snakefile)
# --------------------------------------------------------------------------------------------


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


def final_targets(config: Mapping[str, Any]) -> list[str]:
    """What ``rule all`` builds: per-task tables, ``paper.tex`` and the figures."""
    return [*table_paths(config), PAPER_TEX, *figure_paths(config)]


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
