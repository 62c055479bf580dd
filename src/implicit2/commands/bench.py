"""Speed and memory benchmarks: amortized full-batch training of several models on one image."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from implicit2 import io as atomic
from implicit2.bench import run_benchmark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="model names to measure")
    parser.add_argument("--image", default="camera", help="'camera' (skimage) or an image path")
    parser.add_argument("--size", type=int, default=256, help="image side after resizing")
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--input-scale", type=float, default=256.0, help="filter frequency scale")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")


def run(args: argparse.Namespace) -> int:
    payload = run_benchmark(
        args.models,
        args.image,
        args.size,
        args.steps,
        args.lr,
        args.input_scale,
        args.threads,
        args.device,
    )
    atomic.write_json(args.out, payload)
    for name, figures in payload["models"].items():
        logging.getLogger(__name__).info(
            "%s: %.4f s/step, %.1f GFLOP/s, PSNR %.2f dB",
            name,
            figures["step_seconds_median"],
            figures["gflops"] or 0.0,
            figures["psnr"],
        )
    return 0
