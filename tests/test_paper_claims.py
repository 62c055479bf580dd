"""The paper's claims checked from runs: verdicts that follow the numbers, seed noise, missing
runs, the paper's scale, the reference, and claims.csv / paper.tex / claims.html."""

from __future__ import annotations

import json
import logging
import math
import shutil
import statistics
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from implicit2.cli import main
from implicit2.paper import latex, write_figures, write_tables
from implicit2.paper import pdf as pdf_module
from implicit2.paper.claims import CLAIM_COLUMNS, VERDICTS
from implicit2.paper.figures import FIGURES
from implicit2.paper.pdf import PdflatexMissing, compile_pdf
from implicit2.paper.scale import load_paper_scale
from implicit2.paper.seeds import estimate

TASK = "image_representation"
OCC = "occupancy"
FILTERS = ("fourier", "gabor")
SIZE = "1L64D"
SIGNALS = ("a", "b")
DEMO_HPARAMS = {"steps": 200, "batch_size": None, "amortize": False}
PAPER_HPARAMS = {"steps": 5000, "batch_size": None, "amortize": False}


def run_path(root: Path, task: str, dataset: str, model: str, seed: int) -> Path:
    return root / "results" / "runs" / task / dataset / model / f"seed{seed}" / "metrics.json"


def write_run(root: Path, task: str, dataset: str, model: str, seed: int, **fields) -> Path:
    """One finished run's metrics.json; ``psnr`` (a number) becomes per-signal values."""
    path = run_path(root, task, dataset, model, seed)
    hparams = fields.pop("hparams", DEMO_HPARAMS)
    payload = {
        "task": task,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "status": "ok",
        "diverged_step": None,
        "steps": hparams.get("steps", 100),
        "params": 1000,
        "train_seconds": 10.0,
        "step_seconds_median": 0.01,
        "peak_memory_bytes": 2**20,
        "solver_steps_first": 10 if model.startswith("deq") else 0,
        "solver_steps_eval": 12.0 if model.startswith("deq") else 0.0,
        "inference_seconds": 0.1,
        "signal_names": list(SIGNALS),
        "hparams": hparams,
        "provenance": {},
    }
    psnr = fields.pop("psnr", None)
    if psnr is not None:
        values = [psnr - 0.5, psnr + 0.5]  # mean over the signals = psnr
        payload.update(psnr=psnr, psnr_std=0.5, psnr_per_signal=values)
    payload.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def claims_of(paths: list[Path], out: Path, **kwargs) -> pd.DataFrame:
    write_tables(paths, out, **kwargs)
    frame = pd.read_csv(out / "claims.csv", keep_default_na=False)
    assert tuple(frame.columns) == CLAIM_COLUMNS
    return frame


def row(frame: pd.DataFrame, claim: str, task: str) -> dict:
    found = frame[(frame["claim"] == claim) & (frame["task"] == task)]
    assert len(found) == 1, (claim, task, frame[["claim", "task"]].to_numpy().tolist())
    return found.iloc[0].to_dict()


def quality_grid(root: Path, seeds=(0,), deq_gain: float = 1.0) -> list[Path]:
    """DEQ and explicit twin per filter on two datasets; the DEQ ``deq_gain`` dB better."""
    paths = []
    for dataset, base in (("camera", 30.0), ("faces", 25.0)):
        for index, filter_name in enumerate(FILTERS):
            for seed in seeds:
                level = base + index + 0.1 * seed
                paths.append(
                    write_run(root, TASK, dataset, f"mfn-{filter_name}-{SIZE}", seed, psnr=level)
                )
                paths.append(
                    write_run(
                        root,
                        TASK,
                        dataset,
                        f"deq-{filter_name}-{SIZE}",
                        seed,
                        psnr=level + deq_gain,
                    )
                )
    return paths


def swap_deq_and_explicit(root: Path, copy: Path) -> list[Path]:
    """A copy of the runs in which every DEQ and its explicit twin trade metrics.json."""
    shutil.copytree(root / "results", copy / "results")
    runs = copy / "results" / "runs"
    swapped = []
    for deq in sorted(runs.glob("*/*/deq-*/seed*/metrics.json")):
        twin = deq.parents[2] / deq.parts[-3].replace("deq-", "mfn-", 1) / deq.parts[-2]
        twin = twin / "metrics.json"
        first, second = json.loads(deq.read_text()), json.loads(twin.read_text())
        for key in ("psnr", "psnr_std", "psnr_per_signal"):
            first[key], second[key] = second[key], first[key]
        deq.write_text(json.dumps(first))
        twin.write_text(json.dumps(second))
        swapped += [deq, twin]
    return swapped


def test_quality_verdict_flips_when_deq_and_explicit_swap(tmp_path: Path) -> None:
    paths = quality_grid(tmp_path / "runs")
    before = claims_of(paths, tmp_path / "before")
    assert row(before, "quality", "all")["verdict"] == "supported"
    assert row(before, "quality", TASK)["verdict"] == "supported"
    evidence = row(before, "quality", TASK)["evidence"]
    assert "Holds in 4 of 4 cells" in evidence and "one seed" in evidence
    assert "camera fourier 1L64D: 31.00 vs 30.00 dB (+1.00)" in evidence

    swapped = swap_deq_and_explicit(tmp_path / "runs", tmp_path / "swapped")
    assert len(swapped) == len(paths)
    after = claims_of(swapped, tmp_path / "after")
    assert row(after, "quality", "all")["verdict"] == "not supported"
    assert row(after, "quality", TASK)["verdict"] == "not supported"
    assert (
        "camera fourier 1L64D: 30.00 vs 31.00 dB (-1.00)" in row(after, "quality", TASK)["evidence"]
    )


def test_some_cells_failing_is_mixed(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    paths = quality_grid(root)
    # The Gabor DEQ on faces falls 2 dB below its twin: one cell of four fails.
    paths.append(write_run(root, TASK, "faces", f"deq-gabor-{SIZE}", 0, psnr=24.0))
    frame = claims_of(paths, tmp_path / "out")
    quality = row(frame, "quality", TASK)
    assert quality["verdict"] == "mixed"
    assert "Holds in 3 of 4 cells, fails in 1" in quality["evidence"]
    assert "faces gabor 1L64D: 24.00 vs 26.00 dB (-2.00)" in quality["evidence"]


def test_removed_runs_give_not_enough_runs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    paths = quality_grid(root)
    removed = run_path(root, TASK, "camera", f"mfn-fourier-{SIZE}", 0)
    removed.unlink()  # still listed: a missing run
    frame = claims_of(paths, tmp_path / "missing")
    quality = row(frame, "quality", TASK)
    assert quality["verdict"] == "not enough runs"
    assert "1 without runs" in quality["evidence"]
    assert "camera fourier 1L64D: mfn-fourier-1L64D missing (seed 0)" in quality["evidence"]

    # No explicit model at all: every cell lacks its twin.
    deq_only = [p for p in paths if "/mfn-" not in p.as_posix()]
    frame = claims_of(deq_only, tmp_path / "deq_only")
    assert row(frame, "quality", "all")["verdict"] == "not enough runs"
    assert "no mfn-gabor-1L64D run" in row(frame, "quality", TASK)["evidence"]


def test_three_seeds_use_the_t_interval_and_small_gaps_are_noise(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    seeds = (0, 1, 2)
    jitter = {0: 0.0, 1: 0.9, 2: -0.6}  # the DEQ's gain varies by seed
    paths = []
    for seed in seeds:
        paths.append(write_run(root, TASK, "camera", f"mfn-fourier-{SIZE}", seed, psnr=30.0))
        paths.append(
            write_run(root, TASK, "camera", f"deq-fourier-{SIZE}", seed, psnr=30.2 + jitter[seed])
        )
        paths.append(write_run(root, TASK, "camera", f"mfn-gabor-{SIZE}", seed, psnr=30.0))
        paths.append(
            write_run(root, TASK, "camera", f"deq-gabor-{SIZE}", seed, psnr=33.0 + jitter[seed])
        )
    frame = claims_of(paths, tmp_path / "out")
    quality = row(frame, "quality", TASK)
    diffs = [0.2 + jitter[s] for s in seeds]
    half = stats.t.ppf(0.975, 2) * statistics.stdev(diffs) / math.sqrt(3)
    assert f"(+{statistics.fmean(diffs):.2f} +/- {half:.2f})" in quality["evidence"]
    assert half > statistics.fmean(diffs)  # the Fourier gain is inside the noise, Gabor's not
    assert "3 seeds, 95% t-interval over seeds" in quality["evidence"]
    assert "Holds in 1 of 2 cells, 1 within seed noise" in quality["evidence"]
    assert quality["verdict"] == "not enough runs"


def cost_grid(root: Path, deq_step: float, deq_memory: int) -> list[Path]:
    """A one-layer DEQ and the four-layer explicit model of its filter and width."""
    paths = []
    for seed in (0,):
        paths.append(
            write_run(
                root,
                TASK,
                "camera",
                "deq-fourier-1L64D",
                seed,
                psnr=30.0,
                step_seconds_median=deq_step,
                train_seconds=200 * deq_step,
                peak_memory_bytes=deq_memory,
            )
        )
        paths.append(
            write_run(
                root,
                TASK,
                "camera",
                "mfn-fourier-4L64D",
                seed,
                psnr=30.0,
                step_seconds_median=0.02,
                train_seconds=4.0,
                peak_memory_bytes=4 * 2**20,
            )
        )
    return paths


def test_speed_and_memory_compare_deq_1l_with_explicit_4l(tmp_path: Path) -> None:
    fast = claims_of(cost_grid(tmp_path / "fast", 0.01, 2**20), tmp_path / "fast_out")
    speed = row(fast, "speed", TASK)
    assert speed["verdict"] == "supported"
    assert (
        "camera fourier 1L64D vs 4L64D, time per step: 10.00 vs 20.00 ms (0.50x)"
        in (speed["evidence"])
    )
    assert "train time: 2.0 vs 4.0 s (0.50x)" in speed["evidence"]
    memory = row(fast, "memory", TASK)
    assert memory["verdict"] == "supported" and "1.0 vs 4.0 MiB (0.25x)" in memory["evidence"]

    slow = claims_of(cost_grid(tmp_path / "slow", 0.03, 8 * 2**20), tmp_path / "slow_out")
    assert row(slow, "speed", TASK)["verdict"] == "not supported"
    assert row(slow, "memory", "all")["verdict"] == "not supported"


def test_speed_without_a_multilayer_model_is_not_enough_runs(tmp_path: Path) -> None:
    frame = claims_of(quality_grid(tmp_path / "runs"), tmp_path / "out")
    speed = row(frame, "speed", TASK)
    assert speed["verdict"] == "not enough runs"
    assert "no run of mfn-fourier-NL64D, N > 1" in speed["evidence"]


def amortized_runs(root: Path, **deq_fields) -> list[Path]:
    full_batch = {"steps": 200, "batch_size": None, "amortize": True}
    return [
        write_run(root, TASK, "camera", "deq-fourier-1L64D", 0, psnr=30, hparams=full_batch,
                  **deq_fields),
        write_run(root, TASK, "camera", "mfn-fourier-1L64D", 0, psnr=30,
                  hparams={**full_batch, "amortize": False}, step_seconds_median=0.01),
    ]  # fmt: skip


def test_amortization_reads_solver_steps_mean(tmp_path: Path) -> None:
    # 200 steps: a first solve of 21 iterations, then one per step -> mean (21 + 199) / 200.
    good = claims_of(
        amortized_runs(tmp_path / "good", solver_steps_first=21, solver_steps_mean=220 / 200),
        tmp_path / "good_out",
    )
    amortization = row(good, "amortization", TASK)
    assert amortization["verdict"] == "supported"
    assert (
        "1.00 solver iterations per step after the first (first step 21)"
        in (amortization["evidence"])
    )
    bad = claims_of(
        amortized_runs(tmp_path / "bad", solver_steps_first=21, solver_steps_mean=8.0),
        tmp_path / "bad_out",
    )
    assert row(bad, "amortization", TASK)["verdict"] == "not supported"


def test_amortization_without_solver_steps_mean_times_the_twin(tmp_path: Path) -> None:
    frame = claims_of(
        amortized_runs(tmp_path / "runs", step_seconds_median=0.012), tmp_path / "out"
    )
    amortization = row(frame, "amortization", TASK)
    assert amortization["verdict"] == "supported"
    assert "solver_steps_mean not recorded" in amortization["evidence"]
    assert "a median step takes 1.20x its explicit twin's" in amortization["evidence"]
    slow = claims_of(
        amortized_runs(tmp_path / "slow", step_seconds_median=0.05), tmp_path / "slow_out"
    )
    assert row(slow, "amortization", TASK)["verdict"] == "not supported"


def test_scale_separates_paper_scale_runs_from_demo_runs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    paper = [
        write_run(root, TASK, "camera", model, 0, psnr=30.0, hparams=PAPER_HPARAMS)
        for model in ("deq-fourier-1L256D", "mfn-fourier-1L256D")
    ]
    at_scale = claims_of(paper, tmp_path / "paper_out")
    assert row(at_scale, "scale", TASK)["verdict"] == "supported"
    assert row(at_scale, "quality", TASK)["evidence"].startswith("At the paper's scale.")

    demo = [write_run(root, TASK, "faces", f"deq-fourier-{SIZE}", 0, psnr=31.0)]
    mixed = claims_of(paper + demo, tmp_path / "mixed_out")
    scale = row(mixed, "scale", TASK)
    assert scale["verdict"] == "mixed"
    assert scale["evidence"].startswith("2 of 3 runs at the paper's scale")
    assert "dataset not in the paper's grid: faces (1 run)" in scale["evidence"]
    assert "model size not in the paper's grid: 1L64D (1 run)" in scale["evidence"]
    assert "steps: 200 < 5000 (1 run)" in scale["evidence"]

    demo_only = claims_of(quality_grid(tmp_path / "demo"), tmp_path / "demo_out")
    assert row(demo_only, "scale", "all")["verdict"] == "not supported"
    for evidence in demo_only.loc[demo_only["claim"] != "scale", "evidence"]:
        assert evidence.startswith("Below the paper's scale: a verdict on these runs, not on")


def test_occupancy_quality_compares_both_ious(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    paths = [
        write_run(root, OCC, "dragon", "deq-fourier-1L64D", 0, iou_easy=0.95, iou_hard=0.80),
        write_run(root, OCC, "dragon", "mfn-fourier-1L64D", 0, iou_easy=0.90, iou_hard=0.85),
    ]
    frame = claims_of(paths, tmp_path / "out")
    quality = row(frame, "quality", OCC)
    assert quality["verdict"] == "mixed"
    assert "dragon fourier 1L64D iou_easy: 0.950 vs 0.900 (+0.050)" in quality["evidence"]
    assert "dragon fourier 1L64D iou_hard: 0.800 vs 0.850 (-0.050)" in quality["evidence"]


def test_reference_values_give_ours_minus_paper(tmp_path: Path) -> None:
    paths = quality_grid(tmp_path / "runs")
    empty = claims_of(paths, tmp_path / "empty")
    assert "reference" not in set(empty["claim"])
    tex = (tmp_path / "empty" / "paper.tex").read_text()
    assert "No printed values of the paper were given, so the tables show" in tex

    reference = tmp_path / "reference.yaml"
    reference.write_text(
        f"{TASK}:\n  camera:\n    deq-fourier-{SIZE}: {{psnr: 30.5}}\n"
        f"    deq-gabor-{SIZE}: {{psnr: 33.0}}\n"
    )
    filled = claims_of(paths, tmp_path / "filled", reference=reference)
    ref_row = row(filled, "reference", TASK)
    assert "camera deq-fourier-1L64D psnr: 31.00 vs paper 30.5 dB (+0.50)" in ref_row["evidence"]
    assert "camera deq-gabor-1L64D psnr: 32.00 vs paper 33 dB (-1.00)" in ref_row["evidence"]
    assert ref_row["verdict"] == "mixed"
    tex = (tmp_path / "filled" / "paper.tex").read_text()
    assert "(2 given); the claims table compares them with ours." in tex


def test_claims_csv_paper_tex_and_html(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    paths = quality_grid(root)
    out = tmp_path / "tables"
    written = write_tables(paths, out, figures_dir=tmp_path / "figures")
    assert [p.name for p in written] == [
        f"{TASK}.csv",
        "claims.csv",
        "claims.html",
        "paper.tex",
    ]
    frame = pd.read_csv(out / "claims.csv", keep_default_na=False)
    assert set(frame["verdict"]) <= set(VERDICTS)
    for claim in ("quality", "speed", "memory", "scale"):
        assert claim in set(frame["claim"])
    assert "amortization" not in set(frame["claim"])  # no run trained amortized
    tex = (out / "paper.tex").read_text()
    claims_at = tex.index("\\section*{Claims}")
    assert claims_at < tex.index("\\begin{table}") and claims_at < tex.index("\\subsection*")
    for _, claim in frame.iterrows():
        assert f"\\textbf{{{claim['verdict']}}} & {latex.escape(claim['evidence'])}" in tex
    assert "\\IfFileExists{../figures/image_representation/curves.pdf}" in tex
    for name in ("cost", "reconstructions"):
        assert f"{{../figures/image_representation/{name}.pdf}}" in tex
    assert tex.isascii()
    html = (out / "claims.html").read_text()
    assert "<table>" in html and "quality" in html and "not enough runs" in html


def test_cli_tables_writes_claims_with_paper_config(tmp_path: Path) -> None:
    paths = quality_grid(tmp_path / "runs")
    config = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    out = tmp_path / "out"
    args = ["tables", "--metrics", *map(str, paths), "--out-dir", str(out)]
    assert main([*args, "--paper-config", str(config)]) == 0
    frame = pd.read_csv(out / "claims.csv", keep_default_na=False)
    assert "config.yaml" in row(frame, "scale", "all")["evidence"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [nonsense]\n")
    assert main([*args, "--paper-config", str(bad)]) == 2
    assert main([*args, "--paper-config", str(tmp_path / "absent.yaml")]) == 2


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_paper_pdf_compiles_with_every_figure(tmp_path: Path, caplog) -> None:
    paths = quality_grid(tmp_path / "runs")
    out, figures = tmp_path / "results" / "tables", tmp_path / "results" / "figures"
    write_tables(paths, out, figures_dir=figures)
    caplog.set_level(logging.DEBUG, logger="implicit2.paper.pdf")
    compile_pdf(out / "paper.tex", out / "paper.pdf")  # figures not drawn yet: framed notes
    assert "figures/image_representation" not in caplog.text
    caplog.clear()
    write_figures(TASK, paths, figures / TASK)
    pdf = compile_pdf(out / "paper.tex", out / "paper.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    for name in FIGURES:
        assert f"<../figures/image_representation/{name}.pdf" in caplog.text  # included
    assert "Overfull \\hbox" not in caplog.text
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{TASK}.csv", "claims.csv", "claims.html", "paper.tex", "paper.pdf"]
    )  # pdflatex's auxiliary files stay out of the tables folder


def test_pdf_without_pdflatex_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(pdf_module.shutil, "which", lambda name: None)
    tex = tmp_path / "paper.tex"
    tex.write_text("\\documentclass{article}\\begin{document}x\\end{document}\n")
    with pytest.raises(PdflatexMissing, match="apt-get install texlive-latex-base"):
        compile_pdf(tex, tmp_path / "paper.pdf")
    assert main(["pdf", "--tex", str(tex), "--out", str(tmp_path / "paper.pdf")]) == 2
    assert not (tmp_path / "paper.pdf").exists()


def test_seed_estimates_without_spread_and_at_the_limit() -> None:
    single = estimate([0.4])
    assert single.half_width is None and single.plus_minus(2) == ""
    assert single.side(0.0, True) == "holds" and single.side(0.0, False) == "fails"
    assert estimate([1.0, 1.0, 1.0]).side(1.0, True) == "unclear"  # exactly at the limit
    with pytest.raises(ValueError, match="at least one finite value"):
        estimate([1.0, math.nan])


def test_scale_checks_the_batch_of_minibatch_tasks(tmp_path: Path) -> None:
    scale = load_paper_scale(None)
    assert scale is not None  # the checkout's config/config.yaml
    video = {"steps": 10000, "batch_size": 2048}
    found = scale.shortfalls("video", "bikes", "deq-fourier-1L1024D", video)
    assert [(s.kind, s.text) for s in found] == [("batch", "2048 < 65536 points")]
    for enough in (65536, None):  # the paper's batch, or every point (full batch)
        run = {**video, "batch_size": enough}
        assert not scale.shortfalls("video", "bikes", "deq-fourier-1L1024D", run)
