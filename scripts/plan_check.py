"""Compare a plan (results/plan/jobs.csv) with the runs it predicted, once they have run.

    python scripts/plan_check.py results/plan/jobs.csv RESULTS_ROOT [--markdown]

RESULTS_ROOT is the working directory the workflow ran in (its results/runs/ and benchmarks/).
Per training run: predicted against measured training-loop seconds (train.json train_seconds),
peak memory (peak_memory_bytes) and, per job, whole-job wall seconds and resident memory (the
Snakemake benchmark TSVs: s and max_rss). Prints the error distribution of each, the training
loops' per task and per model kind (a systematic error shows there), and with --markdown a
per-run table.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

RUN = "results/runs/{task}/{dataset}/{model}/seed{seed}"
BENCHMARK = "benchmarks/{rule}/{task}/{dataset}/{model}/seed{seed}.tsv"
TOLERANCE = 0.30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", type=Path)
    parser.add_argument("root", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print the per-run table")
    args = parser.parse_args()
    with open(args.jobs, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    errors: dict[str, list[float]] = {}
    groups: dict[str, list[float]] = {}
    table = []
    for row in rows:
        bench = _benchmark(args.root / BENCHMARK.format(**row))
        if bench is not None:
            _add(errors, f"{row['rule']} job seconds", row["predicted_seconds"], bench["s"])
            _add(
                errors,
                f"{row['rule']} job CPU seconds",
                row["predicted_seconds"],
                bench["cpu_time"],
            )
            _add(
                errors,
                f"{row['rule']} job max_rss",
                row["predicted_host_bytes"],
                float(bench["max_rss"]) * 2**20,
            )
        if row["rule"] != "train":
            continue
        record = json.loads((args.root / RUN.format(**row) / "train.json").read_text())
        seconds_of = record["train_seconds"]
        seconds = _add(errors, "train loop seconds", row["predicted_compute_seconds"], seconds_of)
        kind = row["model"].rsplit("-", 1)[0]
        for group in (f"task {row['task']}", kind):
            _add(
                groups, f"train loop seconds, {group}", row["predicted_compute_seconds"], seconds_of
            )
        if bench is not None:
            # The loop's CPU time, estimated: its wall time x the job's share of a core
            # (cpu_time / s). Under load the wall time measures the other processes too.
            loop_cpu = record["train_seconds"] * bench["cpu_time"] / bench["s"]
            _add(
                errors,
                "train loop CPU seconds (estimated)",
                row["predicted_compute_seconds"],
                loop_cpu,
            )
            for group in (f"task {row['task']}", kind):
                _add(
                    groups,
                    f"train job CPU seconds, {group}",
                    row["predicted_seconds"],
                    bench["cpu_time"],
                )
                _add(
                    groups,
                    f"train loop CPU seconds, {group}",
                    row["predicted_compute_seconds"],
                    loop_cpu,
                )
        cpu = None if bench is None else float(row["predicted_seconds"]) / bench["cpu_time"] - 1
        memory = _add(
            errors, "peak memory", row["predicted_memory_bytes"], record["peak_memory_bytes"]
        )
        table.append((row, record, seconds, memory, cpu, bench))
    for name, values in errors.items():
        print(_distribution(name, values))
    for name, values in sorted(groups.items()):
        print(_distribution(name, values))
    if args.markdown:
        print(
            "\n| task | dataset | model | train loop s predicted / measured | error |"
            " train job CPU s predicted / measured | error | peak memory MB predicted / measured"
            " | error |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for row, record, seconds, memory, cpu, bench in table:
            job = (
                "– | –"
                if bench is None
                else (
                    f"{float(row['predicted_seconds']):.2f} / {bench['cpu_time']:.2f} | {cpu:+.0%}"
                )
            )
            print(
                f"| {row['task']} | {row['dataset']} | `{row['model']}` | "
                f"{float(row['predicted_compute_seconds']):.2f} / {record['train_seconds']:.2f} | "
                f"{seconds:+.0%} | {job} | {int(row['predicted_memory_bytes']) / 1e6:.2f} / "
                f"{record['peak_memory_bytes'] / 1e6:.2f} | {memory:+.0%} |"
            )


def _benchmark(path: Path) -> dict[str, float] | None:
    if not path.exists():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {key: float(value) for key, value in row.items() if key in ("s", "max_rss", "cpu_time")}


def _add(
    errors: dict[str, list[float]], name: str, predicted: str | float, measured: float
) -> float:
    error = float(predicted) / float(measured) - 1.0
    errors.setdefault(name, []).append(error)
    return error


def _distribution(name: str, values: list[float]) -> str:
    inside = sum(abs(v) <= TOLERANCE for v in values)
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return (
        f"{name}: {len(values)} jobs, within ±{TOLERANCE:.0%}: {inside} "
        f"({inside / len(values):.0%}); "
        f"error min {min(values):+.0%}, quartiles {quartiles[0]:+.0%} / {quartiles[1]:+.0%} / "
        f"{quartiles[2]:+.0%}, max {max(values):+.0%}"
    )


if __name__ == "__main__":
    main()
