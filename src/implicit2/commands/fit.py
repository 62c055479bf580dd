"""``implicit2 fit PATH --model M --out DIR``: fit a model to your own file without Snakemake.

The task is inferred from the file (image, audio, video or mesh); every setting not given on the
command line is the task's default from the workflow config
(:mod:`implicit2.pipeline.run_settings`).
The run directory gets what a workflow run gets: ``data.npz`` (prepared), ``model.pt``,
``curve.csv``, ``train.json``, ``recon/`` and ``metrics.json``. Run it again with the same
arguments and it resumes from ``DIR/ckpt/``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from implicit2.commands import device_name
from implicit2.commands.train import INTERRUPTED
from implicit2.data.checksums import sha256_file
from implicit2.data.download import fetch_files
from implicit2.data.infer import infer_task
from implicit2.data.manifest import read_manifest, write_manifest
from implicit2.data.registry import resolve_dataset
from implicit2.names import TASK_NAMES
from implicit2.pipeline.config import validate
from implicit2.pipeline.run_settings import resolve_hparams
from implicit2.tasks import get_task
from implicit2.training.checkpoint import TrainingInterrupted
from implicit2.training.runs import evaluate_dir, load_data, train_to_dir
from implicit2.training.settings import TrainSettings

log = logging.getLogger(__name__)

#: The dataset name a fitted file gets in the run's records.
DATASET = "fit"


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
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    parser.add_argument("--input-scale", type=float, default=None, help="filter input scale")
    parser.add_argument(
        "--device", type=device_name, default="auto", help="where to train: auto, cpu or cuda[:N]"
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed")
    parser.add_argument(
        "--checkpoint-every", type=int, default=None, help="steps between resume checkpoints"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def fit_settings(task: str, path: Path, model: str, args: argparse.Namespace) -> dict[str, Any]:
    """The task's default training settings for ``model`` with the command-line overrides."""
    config = validate(
        {
            "tasks": [task],
            "datasets": {DATASET: {"path": str(path), "task": task}},
        }
    )
    hparams = resolve_hparams(config, task, DATASET, model)
    overrides = {"steps": args.steps, "lr": args.lr, "input_scale": args.input_scale}
    overrides["device"] = args.device
    hparams.update({key: value for key, value in overrides.items() if value is not None})
    if args.checkpoint_every is not None:
        hparams["checkpoint_every"] = args.checkpoint_every
    return hparams


def prepare_into(task: str, path: Path, out_dir: Path) -> Path:
    """Prepare ``path`` as ``out_dir/data.npz``, again only when the file or its content changed."""
    prepared, raw = out_dir / "data.npz", out_dir / "raw"
    source = resolve_dataset(DATASET, {"path": str(path), "task": task})
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
    settings = TrainSettings.from_dict(fit_settings(task, path, args.model, args))
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_data(task, prepare_into(task, path, args.out))
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
    score = {key: metrics.get(key) for key in ("psnr", "iou_easy", "iou_hard")}
    shown = ", ".join(f"{k} {v:.3f}" for k, v in score.items() if v is not None)
    log.info("%s %s: %s (%s)", args.model, metrics["status"], shown, args.out / "metrics.json")
    return 0
