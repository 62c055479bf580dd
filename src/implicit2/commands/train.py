"""Train one model on one prepared dataset into a run directory (resumes from its ckpt/).

An ``input_scale`` of null in ``--hparams`` (the workflow's own files without a configured scale,
:func:`implicit2.pipeline.run_settings.derives_input_scale`) is derived from the prepared signal
by the scale rule that ``implicit2 fit`` uses, and logged with its reason.

On a box with several visible GPUs and device ``auto``/``cuda``, the job first leases a GPU of its
own (:mod:`implicit2.training.lease`) so that concurrent jobs do not all land on ``cuda:0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from implicit2.pipeline.run_settings import builtin_hparams
from implicit2.training import lease as gpu_lease
from implicit2.training.checkpoint import TrainingInterrupted
from implicit2.training.runs import load_data, train_to_dir
from implicit2.training.scale_search import derive_scale
from implicit2.training.settings import TrainSettings

#: Exit code of a run stopped by SIGTERM/SIGINT after writing its checkpoint (128 + SIGTERM).
INTERRUPTED = 143


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run's task, dataset, model, seed, data, hparams and output folder."""
    parser.add_argument("--task", required=True, help="task name, e.g. image_representation")
    parser.add_argument("--dataset", required=True, help="dataset name (for the record)")
    parser.add_argument("--model", required=True, help="model name, e.g. deq-fourier-1L256D")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and sampling seed")
    parser.add_argument("--data", type=Path, required=True, help="prepared .npz")
    parser.add_argument("--hparams", default="{}", help="training settings as JSON")
    parser.add_argument(
        "--checkpoint-every", type=int, default=None, help="steps between checkpoints"
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Train one run into ``--out`` (resuming from its checkpoints); 0, or 143 when interrupted."""
    try:
        values = json.loads(args.hparams)
    except json.JSONDecodeError as error:
        raise ValueError(f"--hparams is not valid JSON ({error}): {args.hparams!r}") from error
    derive = "input_scale" in values and values["input_scale"] is None
    placeholder = {"input_scale": 1.0} if derive else {}  # the other settings fail before loading
    settings = TrainSettings.from_dict(values | placeholder)
    data = load_data(args.task, args.data)
    if derive:
        paper = builtin_hparams(args.task, args.model)
        lr_ratio = settings.lr / float(paper["lr"])
        derived = derive_scale(data, args.model, float(paper["input_scale"]), lr_ratio)
        settings = dataclasses.replace(settings, input_scale=derived.input_scale)
        logging.getLogger(__name__).info(
            "input_scale %.4g (%s)", derived.input_scale, derived.reason
        )
    if data.dataset != args.dataset:
        logging.getLogger(__name__).warning(
            "%s holds dataset %r, not %r", args.data, data.dataset, args.dataset
        )
    # Before any CUDA work: the lease may narrow CUDA_VISIBLE_DEVICES to one device. The kernel
    # frees the lease if this process dies; `finally` frees it on every normal exit.
    lease = gpu_lease.lease_for_job(settings.device)
    try:
        train_to_dir(
            args.task,
            data,
            args.model,
            args.seed,
            settings,
            args.out,
            checkpoint_every=args.checkpoint_every,
            progress=not args.no_progress,
        )
    except TrainingInterrupted as stop:
        logging.getLogger(__name__).warning("%s", stop)
        return INTERRUPTED
    finally:
        if lease is not None:
            lease.release()
    return 0
