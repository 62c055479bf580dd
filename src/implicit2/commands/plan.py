"""Predict the grid's cost before it runs: results/plan/jobs.csv and the totals.

plan                                          # config/config.yaml, this machine's device
plan --configfile config/demo.yaml            # merged over config/config.yaml, as Snakemake does
plan --calibration h200.json                  # predict for the device that file was measured on
plan --calibrate --calibration PATH           # measure this device (again) into PATH first
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

from implicit2 import io as atomic
from implicit2.commands import device_name
from implicit2.pipeline import plan as i2plan
from implicit2.pipeline.config import load_config, validate
from implicit2.pipeline.cost import Calibration, load_calibration
from implicit2.pipeline.run_settings import resolve_resources

log = logging.getLogger(__name__)

#: The Snakefile's own config file, under which ``--configfile`` is merged.
BASE_CONFIG = Path("config/config.yaml")
#: Where a device's calibration is cached when neither the config nor ``--calibration`` names one.
CALIBRATION_DIR = Path("results/plan/calibration")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Config, calibration and output options."""
    parser.add_argument(
        "--configfile", type=Path, default=None, help="config merged over config/config.yaml"
    )
    parser.add_argument(
        "--config", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, as snakemake's"
    )
    parser.add_argument(
        "--config-json", default=None, help="an already merged config as JSON (the Snakemake rule)"
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="calibration JSON (default: the config's plan.calibration, else "
        "results/plan/calibration/<device>-<threads>threads.json, measured here when missing)",
    )
    parser.add_argument(
        "--calibrate", action="store_true", help="measure this device into the calibration first"
    )
    parser.add_argument(
        "--device", type=device_name, default=None, help="device to calibrate (default: config)"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads to calibrate with")
    parser.add_argument("--root", type=Path, default=Path("."), help="where results/data lives")
    parser.add_argument("--out", type=Path, default=Path(i2plan.JOBS_CSV), help="jobs CSV")


def run(args: argparse.Namespace) -> int:
    """Load the config and the calibration, write the jobs CSV, print the totals."""
    config = _config(args)
    calibration = _calibration(args, config)
    rows = i2plan.plan_rows(config, calibration, args.root)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=i2plan.JOB_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(args.out, buffer.getvalue())
    print(format_totals(i2plan.totals(rows), calibration))
    print(f"wrote {len(rows)} jobs to {args.out}")
    return 0


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if args.config_json is not None:
        try:
            return validate(json.loads(args.config_json))
        except json.JSONDecodeError as error:
            raise ValueError(f"--config-json is not valid JSON ({error})") from None
    if args.configfile is None or args.configfile.resolve() == BASE_CONFIG.resolve():
        return load_config(BASE_CONFIG, args.config)
    base = BASE_CONFIG if BASE_CONFIG.exists() else None
    return load_config(args.configfile, args.config, base=base)


def _calibration(args: argparse.Namespace, config: dict[str, Any]) -> Calibration:
    path = args.calibration or config["plan"]["calibration"]
    if path is not None and not args.calibrate:
        return load_calibration(path)
    from implicit2.bench.calibrate import calibrate, save_calibration
    from implicit2.bench.calibrate import device_name as name_of
    from implicit2.training.settings import resolve_device

    device = resolve_device(args.device or config["device"])
    threads = args.threads or _train_threads(config)
    if path is None:
        name = f"{device.type}-{_slug(name_of(device))}-{threads}threads.json"
        path = CALIBRATION_DIR / name
        if Path(path).exists() and not args.calibrate:
            return load_calibration(path)
    log.info("calibrating %s with %d threads into %s", device, threads, path)
    calibration = calibrate(device, threads)
    save_calibration(calibration, path)
    return calibration


def _train_threads(config: dict[str, Any]) -> int:
    runs = i2plan.expand_grid(config)
    if not runs:
        return 1
    return resolve_resources(config, runs[0].task, runs[0].dataset, "train")["threads"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def format_totals(summary: dict[str, dict[str, float]], calibration: Calibration) -> str:
    """The totals per task and for the grid, as a text table."""
    lines = [
        f"predicted on {calibration.device}: {calibration.device_name} "
        f"({calibration.threads} threads; job start-up {calibration.startup_seconds:.1f} s)",
        f"{'task':<22} {'jobs':>5} {'train h':>9} {'evaluate h':>11} {'total h':>9} "
        f"{'max memory':>12}",
    ]
    for task, entry in summary.items():
        total = entry["train_seconds"] + entry["evaluate_seconds"]
        lines.append(
            f"{task:<22} {int(entry['jobs']):>5} {entry['train_seconds'] / 3600:>9.3f} "
            f"{entry['evaluate_seconds'] / 3600:>11.3f} {total / 3600:>9.3f} "
            f"{entry['max_memory'] / 1e6:>9.1f} MB"
        )
    return "\n".join(lines)
