"""``implicit2 fit PATH --model M --out DIR``: fit a model to your own file without Snakemake.

The task is inferred from the file (image, audio, video or mesh); every setting not given on the
command line is the task's default from the workflow config
(:mod:`implicit2.pipeline.run_settings`), except the input scale, which is derived from the
signal's sampling and the model's capacity (:mod:`implicit2.pipeline.scale_rule`) unless
``--input-scale`` gives it, and, for a picture trained for fewer steps than the task's, the
learning rate (the same module); ``--tune`` refines the scale with a short search
(:mod:`implicit2.training.scale_search`). A signal whose full batch does not fit in memory trains
on minibatches (:mod:`implicit2.training.batch_fallback`).
The choices are logged in one line and recorded in ``metrics.json`` under ``fit_settings``.
The run directory gets what a workflow run gets: ``data.npz`` (prepared), ``model.pt``,
``curve.csv``, ``train.json``, ``recon/`` and ``metrics.json``. Run it again with the same
arguments and it resumes from ``DIR/ckpt/``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from implicit2 import io as atomic
from implicit2.commands import device_name
from implicit2.commands.train import INTERRUPTED
from implicit2.data.checksums import sha256_file
from implicit2.data.download import fetch_files
from implicit2.data.infer import infer_task
from implicit2.data.manifest import read_manifest, write_manifest
from implicit2.data.registry import resolve_dataset
from implicit2.names import TASK_NAMES
from implicit2.pipeline.run_settings import builtin_hparams
from implicit2.pipeline.scale_rule import derive_lr
from implicit2.tasks import get_task
from implicit2.tasks.base import PreparedData
from implicit2.training.batch_fallback import fallback_batch
from implicit2.training.checkpoint import TrainingInterrupted
from implicit2.training.runs import evaluate_dir, load_data, train_to_dir
from implicit2.training.scale_search import derive_scale, search_scale
from implicit2.training.settings import TrainSettings, resolve_device

log = logging.getLogger(__name__)

#: The dataset name a fitted file gets in the run's records.
DATASET = "fit"


def positive_seconds(value: str) -> float:
    """argparse type of ``--tune-seconds``: a positive number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """PATH, ``--model``, ``--out`` and the optional overrides of the task's defaults."""
    parser.add_argument(
        "path",
        type=Path,
        help="image, audio, video (mp4, or a 4-D .npy whose name contains 'video') or mesh file",
    )
    parser.add_argument(
        "--task",
        choices=TASK_NAMES,
        default=None,
        help="the task, where the file type does not tell it (e.g. a 4-D .npy video)",
    )
    parser.add_argument("--model", required=True, help="model name, e.g. deq-fourier-1L256D")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--steps", type=int, default=None, help="training steps (task default)")
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="Adam learning rate (default: the task's; higher for a picture given fewer --steps)",
    )
    parser.add_argument(
        "--input-scale",
        type=float,
        default=None,
        help="filter input scale (default: derived from the signal's sampling)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="try the derived input scale, half and twice it for 100 steps each; keep the best",
    )
    parser.add_argument(
        "--tune-seconds",
        type=positive_seconds,
        default=300.0,
        help="time box of --tune: no new candidate starts after this many seconds (300)",
    )
    parser.add_argument(
        "--device", type=device_name, default="auto", help="where to train: auto, cpu or cuda[:N]"
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed")
    parser.add_argument(
        "--checkpoint-every", type=int, default=None, help="steps between resume checkpoints"
    )
    parser.add_argument(
        "--allow-non-watertight",
        action="store_true",
        help="fit a mesh with holes (a scan such as the Stanford bunny): its inside/outside labels "
        "come from ray parity and can be wrong near the holes",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def fit_settings(task: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    """The task's default training settings for ``model`` with the command-line overrides."""
    hparams = copy.deepcopy(builtin_hparams(task, model))  # the cached defaults stay untouched
    overrides = {"steps": args.steps, "lr": args.lr, "input_scale": args.input_scale}
    overrides["device"] = args.device
    hparams.update({key: value for key, value in overrides.items() if value is not None})
    if args.checkpoint_every is not None:
        hparams["checkpoint_every"] = args.checkpoint_every
    return hparams


def choose_settings(
    task: str, data: PreparedData, hparams: dict[str, Any], args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's settings (``hparams`` with the derived, tuned or fallback values) and the record
    of each choice for ``metrics.json`` (``fit_settings``)."""
    chosen = dict(hparams)
    record: dict[str, Any] = {}
    for key, flag in (("steps", args.steps), ("lr", args.lr)):
        source = "command line" if flag is not None else "task default"
        record[key] = {"value": chosen[key], "source": source}
    paper = builtin_hparams(task, args.model)
    if args.lr is None:
        rate = derive_lr(
            task, args.model, float(paper["lr"]), int(paper["steps"]), int(chosen["steps"])
        )
        if rate is not None:
            chosen["lr"] = rate.lr
            record["lr"] = {"value": rate.lr, "source": "short run", "reason": rate.reason}
    if args.input_scale is not None:
        record["input_scale"] = {"value": chosen["input_scale"], "source": "command line"}
    else:
        lr_ratio = float(chosen["lr"]) / float(paper["lr"])
        derived = derive_scale(data, args.model, float(chosen["input_scale"]), lr_ratio)
        chosen["input_scale"] = derived.input_scale
        record["input_scale"] = {
            "value": derived.input_scale,
            "source": "signal",
            "reason": derived.reason,
        }
    device = resolve_device(args.device)
    settings = TrainSettings.from_dict(chosen)
    fallback = fallback_batch(get_task(task), data, args.model, settings, device)
    if fallback is not None:
        points, need, free = fallback
        chosen["batch_size"], chosen["amortize"] = points, False
        log.warning(
            "%d points: a full-batch step needs ≈ %.1f GB, more than half of the %.1f GB "
            "available on %s; training on random minibatches of %d points instead",
            len(data.train_coords),
            need / 1e9,
            free / 1e9,
            device,
            points,
        )
        record["batch_size"] = {"value": points, "source": "memory", "full_batch_bytes": need}
    if args.tune:
        start = chosen["input_scale"]
        best, trials = search_scale(
            get_task(task),
            data,
            args.model,
            args.seed,
            TrainSettings.from_dict(chosen),
            device,
            args.tune_seconds,
        )
        chosen["input_scale"] = best
        tried = ", ".join(f"{t.input_scale:.4g}: loss {t.loss:.4g}" for t in trials)
        seconds = sum(t.seconds for t in trials)
        searched = f"best of {len(trials)} scales around {start:.4g} in {seconds:.0f} s"
        record["input_scale"] = {
            "value": best,
            "source": "tune",
            "reason": f"{searched}: {tried}",
            "start": record["input_scale"],
        }
        record["tune"] = [dataclasses.asdict(trial) for trial in trials]
    return chosen, record


def describe(record: dict[str, Any]) -> str:
    """One line: each chosen setting, its value and where it came from."""
    parts = []
    for key in ("input_scale", "lr", "steps", "batch_size"):
        if key in record:
            entry = record[key]
            why = entry.get("reason", entry["source"])
            parts.append(f"{key} {entry['value']:.4g} ({why})")
    return "; ".join(parts)


def prepare_into(
    task: str, path: Path, out_dir: Path, options: Mapping[str, Any] | None = None
) -> Path:
    """Prepare ``path`` as ``out_dir/data.npz`` (with the task's prepare ``options``), again only
    when the file or its content changed."""
    prepared, raw = out_dir / "data.npz", out_dir / "raw"
    spec = {"path": str(path), "task": task} | ({"prepare": dict(options)} if options else {})
    source = resolve_dataset(DATASET, spec)
    files = fetch_files(source, raw)
    if prepared.is_file() and (raw / "manifest.json").is_file():
        recorded = read_manifest(raw).get("files", [])
        current = [{"path": str(f.path), "sha256": sha256_file(f.path)} for f in files]
        if [{"path": r.get("path"), "sha256": r.get("sha256")} for r in recorded] == current:
            return prepared
    write_manifest(raw, source, files)
    get_task(task).prepare(raw, prepared, dict(source.prepare))
    return prepared


def run(args: argparse.Namespace) -> int:
    """Infer, prepare, train (resuming), evaluate; 0 on success, 143 when interrupted."""
    path = args.path.expanduser().resolve()
    task = args.task or infer_task(path)
    log.info("%s: task %s%s", path, task, "" if args.task else " (from the file type)")
    if args.allow_non_watertight and task != "occupancy":
        raise ValueError(f"--allow-non-watertight applies to meshes (occupancy), not to {task}")
    options = {"allow_non_watertight": True} if args.allow_non_watertight else None
    hparams = fit_settings(task, args.model, args)
    TrainSettings.from_dict(hparams)  # bad settings fail before any preparing
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data(task, prepare_into(task, path, args.out, options))
    chosen, record = choose_settings(task, data, hparams, args)
    log.info("settings: %s", describe(record))
    settings = TrainSettings.from_dict(chosen)
    try:
        train_to_dir(
            task,
            data,
            args.model,
            args.seed,
            settings,
            args.out,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
        )
    except TrainingInterrupted as stop:
        log.warning("%s; run the same command again to resume", stop)
        return INTERRUPTED
    metrics = evaluate_dir(task, data, args.out, args.out / "metrics.json", args.device)
    metrics["fit_settings"] = record
    atomic.write_json(args.out / "metrics.json", metrics)
    score = {key: metrics.get(key) for key in ("psnr", "iou_easy", "iou_hard")}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in score.items() if v is not None)
    log.info("%s %s: %s (%s)", args.model, metrics["status"], shown, args.out / "metrics.json")
    return 0
