"""Per-run settings resolved from a validated config: ``--hparams``, job resources, ``--spec``.

The resolved ``--hparams`` is what :class:`implicit2.training.settings.TrainSettings` reads.
Torch-free: the Snakefile imports it.

Layers, most specific last (a later layer wins key by key):

- training settings (``--hparams``): the defaults of ``train`` ← the built-in per-task defaults
  (both in :mod:`implicit2.pipeline.defaults`; the latter from the authors' code) ← the config's
  ``train`` ← ``task_settings.<task>.train`` ← the matching ``task_settings.<task>.model_train``
  entries (model name patterns, in order) ← ``datasets.<dataset>.train`` ← the model-family rules
  of :func:`resolve_hparams` (``amortize`` only for DEQ models on full-batch tasks,
  ``spectral_norm`` per family, the per-filter ``input_scale_factor``). A key written anywhere in
  the config beats a built-in default.
- job resources: ``resources.<stage>`` ← built-in per-task defaults ← ``task_settings.<task>.
  resources.<stage>`` ← ``datasets.<dataset>.resources.<stage>``.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
from collections.abc import Mapping
from typing import Any

from implicit2.names import FULL_BATCH_TASKS, TASK_NAMES
from implicit2.pipeline.config import ConfigError, dataset_task_of, parse_model_name, validate
from implicit2.pipeline.defaults import train_defaults
from implicit2.pipeline.grid import selected_tasks
from implicit2.pipeline.scale_rule import PAPER_MEASURE

#: The keys of ``--hparams`` (docs/architecture.md), in that order.
HPARAM_KEYS: tuple[str, ...] = tuple(train_defaults())
_INT_KEYS = frozenset({"steps", "max_iter", "unroll_steps", "log_every", "checkpoint_every"})
_INT_KEYS |= {"signal_batch", "batch_size", "warm_cache_mb"}
_FLOAT_KEYS = frozenset({"lr", "lr_decay", "input_scale", "tol", "eval_tol", "gabor_alpha"})
_FLOAT_KEYS |= {"grad_clip"}

#: Job stages with configurable resources.
STAGES: tuple[str, ...] = ("prepare", "train", "evaluate")
#: Dataset-block keys that configure the workflow, not the data (kept out of ``--spec``).
WORKFLOW_DATASET_KEYS: frozenset[str] = frozenset({"models", "train", "resources"})


def _run_context(config: Mapping[str, Any], task: str, dataset: str) -> dict[str, Any]:
    if task not in TASK_NAMES:
        raise ConfigError(f"task {task!r}: unknown; valid: {', '.join(TASK_NAMES)}")
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


@functools.cache
def builtin_hparams(task: str, model: str) -> dict[str, Any]:
    """The training settings the built-in defaults give ``task`` for ``model`` on a file of the
    user's own: the paper's settings.

    Raises:
        ConfigError: unknown task or model.
    """
    config = validate({"tasks": [task], "datasets": {"own": {"path": "own", "task": task}}})
    return resolve_hparams(config, task, "own", model)


def derives_input_scale(config: Mapping[str, Any], task: str, dataset: str, model: str) -> bool:
    """Whether the run's input scale is left to ``implicit2 train`` to derive from the prepared
    signal (:mod:`implicit2.pipeline.scale_rule`): the dataset is the user's own file
    (``path:``) of a task the rule derives, its block sets no ``train.input_scale``, and the
    config resolves the run to the paper's own setting, which was chosen for the paper's signals.
    The paper's and the demo's datasets come from the registry and keep their settings.

    Raises:
        ConfigError: unknown task, model or dataset.
    """
    block = _run_context(config, task, dataset)
    if "path" not in block or task not in PAPER_MEASURE:
        return False
    if "input_scale" in (block.get("train") or {}):
        return False
    resolved = resolve_hparams(config, task, dataset, model)["input_scale"]
    return bool(resolved == builtin_hparams(task, model)["input_scale"])


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
    """Compact, key-sorted JSON of ``--hparams`` or ``--spec`` (stable, so that Snakemake's params
    trigger sees no change)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))
