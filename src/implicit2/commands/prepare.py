"""``implicit2 prepare``: turn a dataset's raw files into ``results/data/{task}/{dataset}.npz``.

Reads the manifest in ``--raw`` (written by ``download``), applies the registry's and the config
block's ``prepare:`` options, and writes the task's canonical npz atomically. A dataset of another
task is refused.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from implicit2.commands.download import parse_spec
from implicit2.data.manifest import read_manifest
from implicit2.data.registry import resolve_dataset
from implicit2.tasks import get_task

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--task``, ``--dataset``, ``--raw``, ``--spec`` and ``--out``."""
    parser.add_argument("--task", required=True, help="task name")
    parser.add_argument("--dataset", required=True, help="dataset name (registry or config)")
    parser.add_argument("--raw", required=True, type=Path, help="resources/raw/NAME (a manifest)")
    parser.add_argument(
        "--spec", default="{}", help="the dataset's config block as JSON ({} for the registry's)"
    )
    parser.add_argument("--out", required=True, type=Path, help="results/data/TASK/NAME.npz")


def run(args: argparse.Namespace) -> int:
    """Check task and dataset agree, then prepare; returns 0."""
    task = get_task(args.task)
    source = resolve_dataset(args.dataset, parse_spec(args.spec))
    if source.task != task.name:
        raise ValueError(
            f"dataset {source.name} is registered for task {source.task}, not {task.name}; to "
            f"use it for {task.name}, set task: {task.name} in its config block"
        )
    manifest = read_manifest(args.raw)
    if manifest.get("dataset") not in (None, source.name):
        raise ValueError(
            f"{args.raw / 'manifest.json'} is for dataset {manifest.get('dataset')!r}, not "
            f"{source.name}; check --raw"
        )
    task.prepare(args.raw, args.out, dict(source.prepare))
    logger.info("prepared %s for %s → %s", source.name, task.name, args.out)
    return 0
