"""Train and evaluate a few runs of every task of a config on one device, through the CLI.

Two steps, so that the device machine needs neither the config schema nor Snakemake:

    python scripts/device_tasks_check.py plan CONFIG PLAN.json [MODEL ...]
    python scripts/device_tasks_check.py run PLAN.json DATA_ROOT OUT_DIR DEVICE

``plan`` resolves each (task, dataset) of CONFIG's grid × MODELs (default: the one-layer Fourier
DEQ and its explicit twin) to its ``--hparams`` (CONFIG is merged over config/config.yaml, as the
demo is). ``run`` trains and evaluates each on DEVICE (``implicit2 train`` / ``evaluate``), with
DATA_ROOT holding ``{task}/{dataset}.npz``, and writes OUT_DIR/summary.json: per run its status,
its metrics and its median step time. Comparing a CPU and a CUDA summary checks every task's
device path end to end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from implicit2.cli import main as cli

DEFAULT_MODELS = ("deq-fourier-1L64D", "mfn-fourier-1L64D")
RECORDED = ("status", "step_seconds_median", "train_seconds", "peak_memory_bytes")
METRICS = ("psnr", "ssim", "iou_easy", "iou_hard", "accuracy_easy", "accuracy_hard")


def plan(config_path: str, plan_path: str, *models: str) -> None:
    """Write the runs and their resolved hparams to ``plan_path``."""
    from implicit2.pipeline import config as i2config
    from implicit2.pipeline import grid as config_grid
    from implicit2.pipeline import run_settings as config_settings

    config = i2config.load_config(config_path, base="config/config.yaml")
    runs = [
        {
            "task": task,
            "dataset": dataset,
            "model": model,
            "hparams": config_settings.resolve_hparams(config, task, dataset, model),
        }
        for task, dataset in config_grid.grid_datasets(config)
        for model in models or DEFAULT_MODELS
    ]
    Path(plan_path).write_text(json.dumps(runs, indent=1), encoding="utf-8")
    print(f"{len(runs)} runs → {plan_path}")


def run(plan_path: str, data_root: str, out_dir: str, device: str) -> None:
    """Train and evaluate every planned run on ``device``; write ``out_dir``/summary.json."""
    summary = []
    for entry in json.loads(Path(plan_path).read_text(encoding="utf-8")):
        task, dataset, model = entry["task"], entry["dataset"], entry["model"]
        data = Path(data_root) / task / f"{dataset}.npz"
        folder = Path(out_dir) / task / dataset / model
        hparams = json.dumps({**entry["hparams"], "device": device})
        train = ["train", "--task", task, "--dataset", dataset, "--model", model]
        train += ["--data", str(data), "--hparams", hparams, "--out", str(folder), "--no-progress"]
        code = cli(train)
        if code == 0:
            metrics_path = str(folder / "metrics.json")
            code = cli(
                ["evaluate", "--run", str(folder), "--data", str(data), "--out", metrics_path]
            )
        record = {"task": task, "dataset": dataset, "model": model, "exit": code}
        if code == 0:
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            record |= {key: metrics[key] for key in RECORDED if key in metrics}
            record |= {key: metrics[key] for key in METRICS if metrics.get(key) is not None}
        print(json.dumps(record), flush=True)
        summary.append(record)
    Path(out_dir, "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    commands = {"plan": plan, "run": run}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
