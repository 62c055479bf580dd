"""Evaluate a trained run: metrics.json and reconstructions in RUN/recon/.

Like ``train``, it leases a GPU of its own on a box with several visible GPUs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from implicit2 import io as atomic
from implicit2.commands import device_name
from implicit2.training import lease as gpu_lease
from implicit2.training.runs import evaluate_dir, load_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run``, ``--data``, ``--out`` and ``--device``."""
    parser.add_argument("--run", type=Path, required=True, help="run directory (holds train.json)")
    parser.add_argument("--data", type=Path, required=True, help="prepared .npz")
    parser.add_argument("--out", type=Path, required=True, help="metrics.json to write")
    parser.add_argument(
        "--device",
        type=device_name,
        default=None,
        help="auto, cpu or cuda[:N] (default: as trained)",
    )


def run(args: argparse.Namespace) -> int:
    """Evaluate the run on its data and write metrics.json; 0 on success."""
    record = atomic.read_json(args.run / "train.json")
    if not isinstance(record, dict) or "task" not in record:
        raise ValueError(
            f"{args.run / 'train.json'} names no task: it was not written by `implicit2 train`; "
            "train the run again"
        )
    data = load_data(record["task"], args.data)
    device = args.device or record.get("hparams", {}).get("device", "auto")
    lease = gpu_lease.lease_for_job(device)
    try:
        evaluate_dir(record["task"], data, args.run, args.out, device)
    finally:
        if lease is not None:
            lease.release()
    return 0
