"""The evidence table of docs/fit_defaults.md from ``fit_scale_sweep.py``'s JSON lines.

For each signal: its sampling, the scale ``implicit2 fit`` derives for it now, the PSNR of the
run at that scale (a run of the sweep files with the same scale; "not run" when there is none),
the best PSNR of all its runs, and the gap. Runs of ``--model`` for 300 steps only, at the learning
rate ``fit`` takes for them (a picture's short-run rate, 1.67e-2; audio's 1e-3; ``--lr``: at that
rate instead; a run recorded without its rate was at the task's 1e-3); rows in the order the files
are given.

    python scripts/fit_table.py SIGNAL... --runs results/fit_defaults/*.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
from pathlib import Path

from fit_scale_sweep import fit_choices  # a sibling script: scripts/ is on sys.path

from implicit2.commands import fit
from implicit2.data.infer import infer_task
from implicit2.training.runs import load_data


def derived_scale(path: Path, model: str, lr: float | None) -> tuple[float, str, str, float]:
    """``fit``'s derived scale for ``path`` at 300 steps, the bound that set it, a sampling
    description and the learning rate (``lr``, or the one ``fit`` takes)."""
    task = infer_task(path)
    with tempfile.TemporaryDirectory() as folder:
        data = load_data(task, fit.prepare_into(task, path, Path(folder)))
    chosen, record = fit_choices(task, path, data, model, 300, None, lr)
    reason = record["input_scale"]["reason"]
    if "image_shape" in data.meta:
        height, width, channels = data.meta["image_shape"]
        sampling = f"{height}×{width}, {'RGB' if channels == 3 else 'gray'}"
    else:
        rate = data.meta["sample_rate"]
        sampling = f"{len(data.train_coords)} samples, {rate / 1000:g} kHz"
    return float(chosen["input_scale"]), reason.split(":")[0], sampling, float(chosen["lr"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("signals", type=Path, nargs="+")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="JSON lines files")
    parser.add_argument("--model", default="deq-fourier-1L64D")
    parser.add_argument("--lr", type=float, default=None, help="default: the rate fit takes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = [
        json.loads(line)
        for file in args.runs
        for line in file.read_text(encoding="utf-8").splitlines()
    ]
    print(
        "| signal | sampling | default scale (bound) | PSNR at it | sweep (scale: PSNR) | best |",
        end="",
    )
    print(" gap |")
    print("|---|---|---|---|---|---|---|")
    for path in args.signals:
        scale, bound, sampling, lr = derived_scale(path.resolve(), args.model, args.lr)
        sweep = {
            round(row["input_scale"], 6): row["psnr"]
            for row in rows
            if (row["file"], row["model"], row["steps"]) == (path.name, args.model, 300)
            and math.isclose(row.get("lr", 1e-3), lr, rel_tol=1e-6)
        }
        # scales recorded rounded (to 2 decimals, or whole for audio) match within 0.05 %
        at = next((p for s, p in sweep.items() if math.isclose(s, scale, rel_tol=5e-4)), None)
        best_scale = max(sweep, key=sweep.__getitem__) if sweep else math.nan
        best = sweep.get(best_scale, math.nan)
        shown = ", ".join(f"{s:.4g}: {p:.2f}" for s, p in sorted(sweep.items()))
        psnr = "not run" if at is None else f"{at:.2f}"
        gap = "—" if at is None else f"{best - at:.2f}"
        print(
            f"| {path.name} | {sampling} | {scale:.4g} ({bound.split(' of')[0]}) | {psnr} | "
            f"{shown} | {best:.2f} at {best_scale:.4g} | {gap} |"
        )


if __name__ == "__main__":
    main()
