"""Speed and memory benchmarks: amortized full-batch training of several models on one image.

bench --models M1 M2 … --image camera --size 256 --steps 300 --out bench.json
bench --models deq-fourier-1L64D --signals 32 --size 64 --compare-sequential --out b.json
bench --grid --filters fourier gabor siren --sizes 1L64D 1L128D --out-dir results/bench
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from implicit2 import io as atomic
from implicit2.bench.efficiency import grid_models, write_grid
from implicit2.bench.measure import run_benchmark
from implicit2.commands import device_name

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The single-image, ``--signals`` and ``--grid`` options."""
    parser.add_argument("--models", nargs="+", default=None, help="model names to measure")
    parser.add_argument("--image", default="camera", help="'camera' (skimage) or an image path")
    parser.add_argument("--size", type=int, default=256, help="image (or crop) side")
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--input-scale", type=float, default=256.0, help="filter frequency scale")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--no-tf32", action="store_true", help="full float32 matmuls on CUDA")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    batched = parser.add_argument_group("many signals at once")
    batched.add_argument(
        "--signals",
        type=int,
        default=None,
        help="train one model per crop on K distinct --size crops of the full-resolution image",
    )
    batched.add_argument(
        "--compare-sequential",
        action="store_true",
        help="with --signals: also train the crops one by one and compare time and PSNR",
    )
    batched.add_argument(
        "--sequential-signals",
        type=int,
        default=None,
        help="with --compare-sequential: train only the first M signals one by one and scale "
        "their time by K / M (sequential_seconds_measured keeps the clock)",
    )
    batched.add_argument("--crop-seed", type=int, default=0, help="seed of the crop positions")
    batched.add_argument(
        "--compile",
        action="store_true",
        help="with --signals: run the training steps (both runs) through torch.compile",
    )
    batched.add_argument(
        "--data", type=Path, default=None, help="with --signals: a prepared .npz instead of crops"
    )
    batched.add_argument("--task", default="image_representation", help="the task of --data")
    grid = parser.add_argument_group("size/filter grid")
    grid.add_argument(
        "--grid",
        action="store_true",
        help="measure DEQ vs explicit MFN over --filters × --sizes (or --models); write "
        "OUT_DIR/{model}.json and OUT_DIR/efficiency.{pdf,png}",
    )
    grid.add_argument("--filters", nargs="+", default=["fourier", "gabor", "siren"])
    grid.add_argument("--sizes", nargs="+", default=None, help="e.g. 1L64D 1L256D 4L256D")
    grid.add_argument("--out-dir", type=Path, default=None, help="folder of the grid's files")


def run(args: argparse.Namespace) -> int:
    """Run the chosen benchmark and write its JSON (and figure); 0 on success."""
    models = args.models
    if args.grid:
        if args.out_dir is None:
            raise ValueError("--grid writes into --out-dir DIR; give one")
        if args.signals:
            raise ValueError("--grid measures one image per model; drop --signals")
        if models is None:
            if not args.sizes:
                raise ValueError("--grid needs --sizes (e.g. 1L64D 1L256D) or --models")
            models = grid_models(args.filters, args.sizes)
    elif models is None or args.out is None:
        raise ValueError("bench needs --models M1 … and --out FILE (or --grid --out-dir DIR)")
    payload = run_benchmark(
        models,
        args.image,
        args.size,
        args.steps,
        args.lr,
        args.input_scale,
        args.threads,
        args.device,
        signals=args.signals,
        compare_sequential=args.compare_sequential,
        sequential_signals=args.sequential_signals,
        crop_seed=args.crop_seed,
        tf32=not args.no_tf32,
        compile_steps=args.compile,
        data_path=args.data,
        task_name=args.task,
    )
    if args.out is not None:
        atomic.write_json(args.out, payload)
    if args.grid:
        for path in write_grid(payload, args.out_dir):
            log.info("wrote %s", path)
    for name, figures in payload["models"].items():
        if args.signals:
            log.info(
                "%s × %d signals: batched %.2f s, sequential %s s, PSNR %.2f dB (max |Δ| %s dB)",
                name,
                args.signals,
                figures["batched_seconds"],
                _fmt(figures.get("sequential_seconds")),
                figures["psnr_batched_mean"],
                _fmt(figures.get("psnr_max_abs_diff"), ".4f"),
            )
        else:
            log.info(
                "%s: %.4f s/step, %.1f GFLOP/s (%.1f %% of the best matmul reading, %.1f %% of "
                "the matmul timed during its run), PSNR %.2f dB",
                name,
                figures["step_seconds_median"],
                figures["gflops"] or 0.0,
                100.0 * (figures.get("matmul_fraction") or 0.0),
                100.0 * (figures.get("matmul_fraction_during") or 0.0),
                figures["psnr"],
            )
    return 0


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)
