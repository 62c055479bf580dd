"""Fit files at several input scales with ``implicit2 fit``'s own settings; one JSON line per run.

For each file: prepare once, then train ``--model`` for ``--steps`` at the scale ``fit`` derives
(no ``--input-scale``; ``--no-derived`` skips it) and at each scale of ``--scales`` (absolute
values), with ``fit``'s other settings (``--lrs``: each of these learning rates in turn instead of
the one ``fit`` takes), and score each run as ``fit`` does.
The evidence of docs/fit_defaults.md comes from this script.

    python scripts/fit_scale_sweep.py FILE... --out results/fit_defaults/sweep.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from implicit2.commands import fit
from implicit2.data.infer import infer_task
from implicit2.tasks.base import PreparedData
from implicit2.training.runs import evaluate_dir, load_data, train_to_dir
from implicit2.training.settings import TrainSettings


def fit_choices(
    task: str,
    path: Path,
    data: PreparedData,
    model: str,
    steps: int,
    scale: float | None,
    lr: float | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings ``implicit2 fit`` chooses for ``model`` on ``data`` (prepared from ``path``)
    with these options (None: fit's own scale or rate), and its record of each choice."""
    options = argparse.Namespace(
        model=model,
        steps=steps,
        lr=lr,
        input_scale=scale,
        device="cpu",
        seed=0,
        checkpoint_every=None,
        tune=False,
    )
    return fit.choose_settings(task, data, fit.fit_settings(task, model, options), options)


def train_as_fit(
    task: str, data: PreparedData, model: str, chosen: dict[str, Any], run_dir: Path
) -> TrainSettings:
    """Train ``model`` on ``data`` into ``run_dir`` with the settings ``fit`` chose
    (:func:`fit_choices`)."""
    settings = TrainSettings.from_dict(chosen)
    train_to_dir(task, data, model, 0, settings, run_dir, progress=False)
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--model", default="deq-fourier-1L64D")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--scales", type=float, nargs="*", default=[])
    parser.add_argument("--lrs", type=float, nargs="*", default=[None], help="default: fit's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--no-derived", action="store_true", help="only the --scales, not fit's own choice"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, appended")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for path in args.files:
        path = path.resolve()
        task = infer_task(path)
        with tempfile.TemporaryDirectory() as folder:
            prepared = fit.prepare_into(task, path, Path(folder))
            data = load_data(task, prepared)
            scales = ([] if args.no_derived else [None]) + list(args.scales)
            for scale, lr in itertools.product(scales, args.lrs):
                started = time.perf_counter()
                run_dir = Path(folder) / f"run_{scale}_{lr}"
                chosen, _record = fit_choices(task, path, data, args.model, args.steps, scale, lr)
                settings = train_as_fit(task, data, args.model, chosen, run_dir)
                metrics = evaluate_dir(task, data, run_dir, run_dir / "metrics.json", "cpu")
                row = {
                    "file": path.name,
                    "task": task,
                    "shape": list(data.meta.get("image_shape") or [data.train_coords.shape[0]]),
                    "sample_rate": data.meta.get("sample_rate"),
                    "model": args.model,
                    "steps": args.steps,
                    "derived": scale is None,
                    "input_scale": settings.input_scale,
                    "lr": settings.lr,
                    "psnr": metrics["psnr"],
                    "seconds": round(time.perf_counter() - started, 1),
                }
                print(json.dumps(row), flush=True)
                with args.out.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
