"""A calibration for an NVIDIA H200 fitted to the step times and peaks measured there
(docs/benchmarks.md, "GPU figures"), for predicting the paper grid before a GPU is at hand.

    python scripts/h200_calibration.py docs/calibration/h200-from-benchmarks.json
    python -m implicit2 plan --calibration docs/calibration/h200-from-benchmarks.json

What was not measured on the H200 is filled in and said so in the file's ``source``: a solver
iteration is a third of a training step's per-unit costs (a forward without backward) plus the
launch-bound fixed cost seen in the demo's minibatch DEQs; the SIREN and FFN baselines take the
unit costs of mfn-siren and mfn-fourier with their own fixed cost from the demo runs; the job
start-up is the issue's 5–10 s estimate (7.5 s); checkpoints cost what a calibration on this CPU
measured (``--checkpoint-from``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from implicit2 import io as atomic
from implicit2.bench.calibrate import fit_costs, memory_features, time_features
from implicit2.names import parse_model_name
from implicit2.pipeline.cost import (
    KINDS,
    Calibration,
    KindCosts,
    MemoryCosts,
    UnitCosts,
    load_calibration,
)

MIB = 2**20
GB = 10**9
#: (model, point-signals per step, ms per step, peak bytes or None), amortized full batch, TF32:
#: the efficiency grid (camera 256², 65,536 points), camera 512² (second session; the 1L256D
#: MFN and the three-model paper-scale run), 8 crops of 256² and 100 crops of 128².
STEPS: tuple[tuple[str, int, float, float | None], ...] = (
    ("deq-fourier-1L64D", 65536, 2.91, 225 * MIB),
    ("deq-fourier-1L256D", 65536, 3.02, 770 * MIB),
    ("deq-fourier-4L256D", 65536, 8.26, 1478 * MIB),
    ("mfn-fourier-1L64D", 65536, 2.42, 193 * MIB),
    ("mfn-fourier-1L256D", 65536, 2.59, 579 * MIB),
    ("mfn-fourier-4L256D", 65536, 7.77, 1350 * MIB),
    ("deq-gabor-1L64D", 65536, 4.00, 337 * MIB),
    ("deq-gabor-1L256D", 65536, 5.13, 1154 * MIB),
    ("deq-gabor-4L256D", 65536, 12.35, 2438 * MIB),
    ("mfn-gabor-1L64D", 65536, 4.03, 289 * MIB),
    ("mfn-gabor-1L256D", 65536, 4.00, 963 * MIB),
    ("mfn-gabor-4L256D", 65536, 11.67, 2310 * MIB),
    ("deq-siren-1L64D", 65536, 2.72, 225 * MIB),
    ("deq-siren-1L256D", 65536, 3.28, 706 * MIB),
    ("deq-siren-4L256D", 65536, 7.89, 1159 * MIB),
    ("mfn-siren-1L64D", 65536, 2.73, 161 * MIB),
    ("mfn-siren-1L256D", 65536, 2.59, 450 * MIB),
    ("mfn-siren-4L256D", 65536, 6.93, 966 * MIB),
    ("deq-fourier-1L256D", 262144, 4.91, 2.99 * GB),
    ("mfn-fourier-4L256D", 262144, 12.97, 5.45 * GB),
    ("deq-gabor-1L256D", 262144, 10.56, 4.64 * GB),
    ("mfn-gabor-4L256D", 262144, 26.38, 9.47 * GB),
    ("deq-siren-1L256D", 262144, 4.96, 2.76 * GB),
    ("mfn-siren-4L256D", 262144, 11.08, 3.84 * GB),
    ("mfn-fourier-1L256D", 262144, 4.15, 2.22 * GB),
    ("deq-fourier-1L256D", 8 * 65536, 9.76, 5.98 * GB),
    ("deq-fourier-1L256D", 100 * 16384, 27.0, 18.6 * GB),
)
#: ms per step of the demo's minibatch runs on the H200 at 2048 points (bikes, demo_shape):
#: (DEQ fourier, its MFN twin) — the DEQ solves every step, about 12 iterations (their evaluation).
DEMO_SOLVES = ((8.5, 1.8), (11.2, 1.9))
DEMO_ITERATIONS = 12
#: ms per step of the demo's SIREN baseline on the H200 (six datasets, ≤ 8,000 point-signals).
SIREN_DEMO_MS = (1.6, 1.4, 1.8, 1.5, 2.4, 1.3)
DEVICE_MEMORY = 143_771 * MIB
STARTUP_SECONDS = 7.5
BASELINE_COSTS = {"siren": "mfn-siren", "ffn": "mfn-fourier"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--checkpoint-from",
        type=Path,
        required=True,
        help="a calibration measured on this machine (its checkpoint costs and host memory)",
    )
    args = parser.parse_args()
    local = load_calibration(args.checkpoint_from)
    kinds: dict[str, KindCosts] = {}
    solve_fixed = sum(deq - mfn for deq, mfn in DEMO_SOLVES) / len(DEMO_SOLVES) / DEMO_ITERATIONS
    for kind in KINDS:
        if kind in BASELINE_COSTS:
            continue
        points = [row for row in STEPS if row[0].startswith(f"{kind}-")]
        specs = [parse_model_name(name) for name, *_ in points]
        times = [ms / 1e3 for _, _, ms, _ in points]
        step = UnitCosts(
            *fit_costs(
                [time_features(s, n) for s, (_, n, _, _) in zip(specs, points, strict=True)], times
            )
        )
        memory = MemoryCosts(
            *fit_costs(
                [memory_features(s, n) for s, (_, n, _, _) in zip(specs, points, strict=True)],
                [float(peak) for *_, peak in points],
            )
        )
        solve = None
        if kind.startswith("deq-"):
            solve = UnitCosts(solve_fixed / 1e3, step.per_element / 3, step.per_matmul / 3)
        kinds[kind] = KindCosts(step, memory, solve)
    siren_fixed = sum(SIREN_DEMO_MS) / len(SIREN_DEMO_MS) / 1e3
    for baseline, like in BASELINE_COSTS.items():
        step = kinds[like].step
        kinds[baseline] = KindCosts(
            UnitCosts(siren_fixed, step.per_element, step.per_matmul), kinds[like].memory
        )
    calibration = Calibration(
        device="cuda",
        device_name="NVIDIA H200",
        threads=16,
        device_memory_bytes=DEVICE_MEMORY,
        startup_seconds=STARTUP_SECONDS,
        first_run_seconds=0.0,
        checkpoint=local.checkpoint,
        host_base_bytes=local.host_base_bytes,
        kinds=kinds,
        source=(
            "fitted by scripts/h200_calibration.py to the H200 step times and peaks of "
            "docs/benchmarks.md; assumed, not measured: solver iterations (a third of a step's "
            "unit costs plus the demo's per-iteration launch cost), the siren/ffn baselines "
            "(mfn-siren/mfn-fourier unit costs), job start-up 7.5 s (issue 18's 5-10 s), "
            "checkpoint costs and host memory of this CPU's calibration"
        ),
    )
    atomic.write_json(args.out, calibration.to_dict())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
