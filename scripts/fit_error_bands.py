"""Where in frequency a fit's error lies: the DCT energy of an image and of each run's error, by
radial band, and the image's white-noise floor (the median DCT power of the outer quarter of
every axis, the chi-square median corrected to a mean).

Each run is ``scale,lr`` with ``implicit2 fit``'s other settings (as ``fit_scale_sweep.py``); the
error is the run's reconstruction (``recon/``, 8-bit) minus the training pixels, in the units the
model fits (the [-1, 1] range). The cell micrograph's analysis in docs/fit_defaults.md.

    python scripts/fit_error_bands.py cell.png --runs 32,0.001 64,0.001 64,0.0167
"""

from __future__ import annotations

import argparse
import itertools
import logging
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from fit_scale_sweep import fit_choices, train_as_fit  # a sibling script: scripts/ is on sys.path
from scipy.fft import dctn
from scipy.stats import chi2

from implicit2.commands import fit
from implicit2.data.infer import infer_task
from implicit2.pipeline.scale_rule import signal_bandwidth
from implicit2.training.runs import evaluate_dir, load_data

#: Band edges, radians per unit of the [-1, 1] span (as the scale rule's bandwidth).
EDGES = (0.0, 16.0, 32.0, 64.0, 128.0, np.inf)


def band_energy(values: np.ndarray) -> list[float]:
    """Energy per pixel of ``values`` (H, W, C) in each band of :data:`EDGES`, mean left out."""
    grid = values.shape[:2]
    power = np.square(dctn(values - values.mean(axis=(0, 1)), axes=(0, 1), norm="ortho"))
    steps = [np.pi * np.arange(n) * (n - 1) / (2 * n) for n in grid]
    radius = np.sqrt(sum(np.square(w) for w in np.meshgrid(*steps, indexing="ij")))
    total = power.sum(axis=-1)
    return [
        float(total[(radius >= a) & (radius < b)].sum()) / total.size
        for a, b in itertools.pairwise(EDGES)
    ]


def noise_floor(values: np.ndarray) -> float:
    """The white-noise power per DCT coefficient that the outer quarter of every axis shows."""
    power = np.square(dctn(values - values.mean(axis=(0, 1)), axes=(0, 1), norm="ortho"))
    outer = power[tuple(slice((3 * n) // 4, None) for n in values.shape[:2])].sum(axis=-1)
    channels = values.shape[-1]
    return float(np.median(outer) * channels / chi2.ppf(0.5, channels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--runs", nargs="+", required=True, help="scale,lr pairs")
    parser.add_argument("--model", default="deq-fourier-1L64D")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    path = args.file.resolve()
    task = infer_task(path)
    with tempfile.TemporaryDirectory() as folder:
        data = load_data(task, fit.prepare_into(task, path, Path(folder)))
        height, width, channels = data.meta["image_shape"]
        pixels = np.asarray(data.train_targets, dtype=np.float64).reshape(height, width, channels)
        floor = noise_floor(pixels)
        bandwidth = signal_bandwidth(pixels[None])
        print(
            f"{path.name}: variance {pixels.var():.3g}, noise floor {floor:.3g} per coefficient "
            f"({floor / pixels.var():.2g} of the variance), k99.9 {bandwidth:.4g} rad/unit"
        )
        names = [f"{a:g}–{b:g}" for a, b in itertools.pairwise(EDGES)]
        print("| energy per pixel | MSE | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 2) + "|")
        print("| the image | — | " + " | ".join(f"{v:.3g}" for v in band_energy(pixels)) + " |")
        for run in args.runs:
            scale, lr = (float(part) for part in run.split(","))
            run_dir = Path(folder) / f"run_{scale:g}_{lr:g}"
            chosen, _record = fit_choices(task, path, data, args.model, args.steps, scale, lr)
            train_as_fit(task, data, args.model, chosen, run_dir)
            evaluate_dir(task, data, run_dir, run_dir / "metrics.json", "cpu")
            recon = next((run_dir / "recon").glob("00_*.png"))
            image = iio.imread(recon).astype(np.float64)
            image = image.reshape(height, width, -1)[..., :channels] / 255.0 * 2.0 - 1.0
            error = image - pixels
            bands = " | ".join(f"{v:.3g}" for v in band_energy(error))
            print(
                f"| error at scale {scale:g}, lr {lr:g} | {np.mean(error**2):.3g} | {bands} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
