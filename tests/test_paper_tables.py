"""``implicit2 tables``: CSVs and paper.tex from a folder of synthetic metrics.json files."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from implicit2.cli import main
from implicit2.paper import write_tables

SEEDS = (0, 1)
IMAGE_TASK = "image_representation"
OCC_TASK = "occupancy"
MODELS = (  # deliberately not in table order
    "ffn-3L256D",
    "mfn-gabor-1L256D",
    "deq-fourier-1L256D",
    "siren-3L256D",
    "deq-gabor-1L256D",
    "mfn-fourier-1L256D",
)
TABLE_ORDER = (
    "deq-fourier-1L256D",
    "mfn-fourier-1L256D",
    "deq-gabor-1L256D",
    "mfn-gabor-1L256D",
    "siren-3L256D",
    "ffn-3L256D",
)
DATASETS = ("camera", "cel_eba")
SIGNALS = {"camera": ["cameraman"], "cel_eba": ["face0", "face1"]}
BASE = {
    ("camera", "deq-fourier-1L256D"): 30.0,
    ("camera", "mfn-fourier-1L256D"): 31.0,  # best on camera
    ("camera", "deq-gabor-1L256D"): 29.0,
    ("camera", "mfn-gabor-1L256D"): 28.0,
    ("camera", "siren-3L256D"): 27.0,
    ("camera", "ffn-3L256D"): 26.0,
    ("cel_eba", "deq-fourier-1L256D"): 29.0,  # best on cel_eba
    ("cel_eba", "mfn-fourier-1L256D"): 28.0,
    ("cel_eba", "deq-gabor-1L256D"): 27.5,
    ("cel_eba", "mfn-gabor-1L256D"): 27.0,
    ("cel_eba", "siren-3L256D"): 26.0,
    ("cel_eba", "ffn-3L256D"): 25.0,
}
PARAMS = {model: 1000 * (i + 1) for i, model in enumerate(MODELS)}
DIVERGED = {("camera", "deq-gabor-1L256D", 0), ("camera", "deq-gabor-1L256D", 1)}
MISSING = {
    ("cel_eba", "mfn-gabor-1L256D", 0),
    ("cel_eba", "mfn-gabor-1L256D", 1),
    ("camera", "siren-3L256D", 1),  # a partial cell: one seed of two
}
OCC_MODELS = ("deq-fourier-1L256D", "mfn-fourier-1L256D", "ffn-3L256D")
REFERENCE = """\
image_representation:
  camera:
    deq-fourier-1L256D: {psnr: 30.42}
  cel_eba:
    mfn-gabor-1L256D: {psnr: 27.25}
occupancy:
  dragon:
    mfn-fourier-1L256D: {iou_easy: 0.9, iou_hard: null}
"""
CSV_COLUMNS_IMAGE = [
    "task", "dataset", "model", "family", "filter", "layer", "size", "layers", "width",
    "n_runs", "n_ok", "n_diverged", "n_missing", "seeds", "diverged_seeds", "missing_seeds",
    "n_signals", "psnr_mean", "psnr_std", "psnr_count", "psnr_ref", "psnr_diff",
    "params", "step_seconds_median", "peak_memory_bytes", "solver_steps_first",
    "solver_steps_eval", "train_seconds", "inference_seconds",
]  # fmt: skip


def psnr_values(dataset: str, model: str, seed: int) -> list[float]:
    """The per-signal PSNRs written for one run."""
    return [BASE[(dataset, model)] + 0.3 * seed + 0.1 * i for i in range(len(SIGNALS[dataset]))]


def iou_values(model: str, seed: int) -> tuple[float, float]:
    return 0.8 + 0.05 * OCC_MODELS.index(model) + 0.02 * seed, 0.6 + 0.02 * seed


def step_seconds(model: str, seed: int) -> float:
    return 0.001 * (len(model) + seed)


def run_path(root: Path, task: str, dataset: str, model: str, seed: int) -> Path:
    return root / "results" / "runs" / task / dataset / model / f"seed{seed}" / "metrics.json"


def base_metrics(task: str, dataset: str, model: str, seed: int, status: str) -> dict:
    return {
        "task": task,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "status": status,
        "diverged_step": 17 if status == "diverged" else None,
        "steps": 100,
        "params": PARAMS[model],
        "train_seconds": 10.0 + seed,
        "step_seconds_median": step_seconds(model, seed),
        "peak_memory_bytes": 2**20 * (seed + 1),
        "solver_steps_first": 12 if model.startswith("deq") else 0,
        "solver_steps_eval": 20.0 + seed if model.startswith("deq") else 0,
        "inference_seconds": 0.5,
        "signal_names": SIGNALS.get(dataset, ["dragon"]),
        "provenance": {"git_commit": "test"},
        "hparams": {"steps": 100},
    }


def write_runs(root: Path) -> list[Path]:
    """Write the synthetic grid; return every metrics path (missing ones included)."""
    paths = []
    for dataset in DATASETS:
        for model in MODELS:
            for seed in SEEDS:
                path = run_path(root, IMAGE_TASK, dataset, model, seed)
                paths.append(path)
                if (dataset, model, seed) in MISSING:
                    continue
                diverged = (dataset, model, seed) in DIVERGED
                payload = base_metrics(
                    IMAGE_TASK, dataset, model, seed, "diverged" if diverged else "ok"
                )
                values = None if diverged else psnr_values(dataset, model, seed)
                payload.update(
                    psnr=None if values is None else statistics.mean(values),
                    psnr_std=None if values is None else statistics.pstdev(values),
                    psnr_per_signal=values,
                )
                path.parent.mkdir(parents=True)
                path.write_text(json.dumps(payload))
    for model in OCC_MODELS:
        for seed in SEEDS:
            path = run_path(root, OCC_TASK, "dragon", model, seed)
            paths.append(path)
            payload = base_metrics(OCC_TASK, "dragon", model, seed, "ok")
            payload["iou_easy"], payload["iou_hard"] = iou_values(model, seed)
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(payload))
    return paths


@pytest.fixture()
def built(tmp_path: Path) -> dict[str, object]:
    """Write runs and a reference, build the tables; return paths and outputs."""
    paths = write_runs(tmp_path)
    reference = tmp_path / "reference.yaml"
    reference.write_text(REFERENCE)
    out = tmp_path / "tables"
    written = write_tables(paths, out, reference)
    return {"paths": paths, "out": out, "written": written, "tex": (out / "paper.tex").read_text()}


def expected_image_rows() -> list[dict[str, object]]:
    rows = []
    for dataset in DATASETS:
        for model in TABLE_ORDER:
            ok = [s for s in SEEDS if (dataset, model, s) not in DIVERGED | MISSING]
            values = [v for s in ok for v in psnr_values(dataset, model, s)]
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "n_ok": len(ok),
                    "n_diverged": sum((dataset, model, s) in DIVERGED for s in SEEDS),
                    "n_missing": sum((dataset, model, s) in MISSING for s in SEEDS),
                    "psnr_count": len(values),
                    "psnr_mean": statistics.mean(values) if values else None,
                    "psnr_std": statistics.stdev(values) if len(values) > 1 else None,
                    "step": statistics.mean(step_seconds(model, s) for s in ok) if ok else None,
                }
            )
    return rows


def test_writes_one_csv_per_task_and_paper(built: dict) -> None:
    out: Path = built["out"]
    assert sorted(p.name for p in out.iterdir()) == [
        "claims.csv",
        "claims.html",
        "image_representation.csv",
        "occupancy.csv",
        "paper.tex",
    ]
    assert built["written"][-1] == out / "paper.tex"


def test_image_csv_matches_expected(built: dict) -> None:
    frame = pd.read_csv(built["out"] / "image_representation.csv", keep_default_na=False)
    assert list(frame.columns) == CSV_COLUMNS_IMAGE
    expected = expected_image_rows()
    assert list(zip(frame["dataset"], frame["model"], strict=True)) == [
        (row["dataset"], row["model"]) for row in expected
    ]
    numeric = pd.read_csv(built["out"] / "image_representation.csv")
    for (_, got), want in zip(numeric.iterrows(), expected, strict=True):
        assert got["n_runs"] == len(SEEDS)
        for key in ("n_ok", "n_diverged", "n_missing", "psnr_count"):
            assert got[key] == want[key], (want["model"], key)
        for key in ("psnr_mean", "psnr_std"):
            if want[key] is None:
                assert pd.isna(got[key]), (want["model"], key)
            else:
                assert got[key] == pytest.approx(want[key], abs=1e-9), (want["model"], key)
        if want["step"] is None:
            assert pd.isna(got["step_seconds_median"]) and pd.isna(got["params"])
        else:
            assert got["step_seconds_median"] == pytest.approx(want["step"])
            assert got["params"] == PARAMS[want["model"]]
    camera = numeric[(numeric["dataset"] == "camera")].set_index("model")
    mean = statistics.mean(psnr_values("camera", "deq-fourier-1L256D", s)[0] for s in SEEDS)
    assert camera.loc["deq-fourier-1L256D", "psnr_ref"] == 30.42
    assert camera.loc["deq-fourier-1L256D", "psnr_diff"] == pytest.approx(mean - 30.42)
    assert camera.loc["deq-gabor-1L256D", "diverged_seeds"] == "0 1"
    assert camera.loc["siren-3L256D", "missing_seeds"] == "1"
    assert camera.loc["deq-fourier-1L256D", "layer"] == "DEQ"
    assert camera.loc["mfn-fourier-1L256D", "layer"] == "explicit"
    assert camera.loc["ffn-3L256D", "family"] == "ffn"
    celeba = numeric[(numeric["dataset"] == "cel_eba")].set_index("model")
    assert celeba.loc["deq-fourier-1L256D", "n_signals"] == 2
    assert celeba.loc["deq-fourier-1L256D", "psnr_count"] == 4  # 2 signals x 2 seeds


def test_occupancy_csv_has_both_ious(built: dict) -> None:
    frame = pd.read_csv(built["out"] / "occupancy.csv").set_index("model")
    assert list(frame.index) == list(OCC_MODELS)
    for metric, index in (("iou_easy", 0), ("iou_hard", 1)):
        assert f"{metric}_mean" in frame.columns and "psnr_mean" not in frame.columns
        for model in OCC_MODELS:
            values = [iou_values(model, s)[index] for s in SEEDS]
            assert frame.loc[model, f"{metric}_mean"] == pytest.approx(statistics.mean(values))
            assert frame.loc[model, f"{metric}_std"] == pytest.approx(statistics.stdev(values))
            assert frame.loc[model, f"{metric}_count"] == len(SEEDS)
    assert frame.loc["mfn-fourier-1L256D", "iou_easy_ref"] == 0.9
    assert pd.isna(frame.loc["mfn-fourier-1L256D", "iou_hard_ref"])


def _table(tex: str, label: str) -> str:
    """The ``table`` environment that carries ``label``."""
    for block in re.findall(r"\\begin\{table\}.*?\\end\{table\}", tex, flags=re.S):
        if f"\\label{{{label}}}" in block:
            return block
    raise AssertionError(f"no table labelled {label}")


def _body_rows(table: str) -> list[list[str]]:
    """Cells of the body rows (between the header's midrule and bottomrule)."""
    body = table.split("\\midrule", 1)[1].split("\\bottomrule", 1)[0]
    lines = [line for line in body.splitlines() if " & " in line]
    return [[cell.strip() for cell in line.rstrip("\\ ").split(" & ")] for line in lines]


def test_paper_tex_structure(built: dict) -> None:
    tex: str = built["tex"]
    assert re.match(r"\\documentclass(\[[^\]]*\])?\{article\}", tex)
    assert "\\usepackage{booktabs}" in tex and tex.rstrip().endswith("\\end{document}")
    assert tex.count("\\begin{table}") == 2  # one results table per task
    assert tex.index("tab:image-representation}") < tex.index("tab:occupancy}")
    assert tex.count("\\begin{longtable}") == 3  # the claims, then one cost table per task
    assert "cel_eba" not in tex and "cel\\_eba" in tex  # escaped
    assert tex.isascii()


def test_results_table_layout_bold_dash_notes_and_reference(built: dict) -> None:
    table = _table(built["tex"], "tab:image-representation")
    assert "\\toprule" in table and "\\bottomrule" in table
    assert "Size & Model & Layer & camera & cel\\_eba \\\\" in table
    assert "camera $1 \\times 2$" in table and "cel\\_eba $2 \\times 2$" in table
    rows = _body_rows(table)
    assert len(rows) == len(TABLE_ORDER)
    assert [row[2] for row in rows] == ["DEQ", "explicit", "DEQ", "explicit"] + ["baseline"] * 2
    assert [row[0] for row in rows[:4]] == ["1L256D", "", "", ""]  # size written once per block
    assert [row[1] for row in rows] == ["Fourier", "", "Gabor", "", "SIREN", "FFN"]
    cells = {
        model: dict(zip(DATASETS, row[3:], strict=True))
        for model, row in zip(TABLE_ORDER, rows, strict=True)
    }
    expected = {(r["dataset"], r["model"]): r for r in expected_image_rows()}
    for dataset in DATASETS:
        best = max(
            (r for r in expected.values() if r["dataset"] == dataset and r["psnr_mean"]),
            key=lambda r: r["psnr_mean"],
        )
        for model in TABLE_ORDER:
            cell = cells[model][dataset]
            bold = "\\textbf{" in cell
            assert bold == (model == best["model"]), (dataset, model, cell)
            want = expected[(dataset, model)]
            if want["psnr_std"] is not None:
                assert f"{want['psnr_mean']:.2f} $\\pm$ {want['psnr_std']:.2f}" in cell
    # Diverged (camera) and missing (cel_eba) cells: a dash with a note mark, never a number.
    assert cells["deq-gabor-1L256D"]["camera"].startswith("---$^{\\mathrm{")
    assert cells["mfn-gabor-1L256D"]["cel_eba"].startswith(
        "\\begin{tabular}[t]{@{}c@{}}---$^{\\mathrm{"
    )
    assert "ref 27.25" in cells["mfn-gabor-1L256D"]["cel_eba"]  # reference still shown
    assert "deq-{}gabor-{}1L256D: no result; diverged (seeds 0, 1)." in table
    assert "cel\\_eba / mfn-{}gabor-{}1L256D: no result; missing (seeds 0, 1)." in table
    assert "siren-{}3L256D: mean over 1 of 2 runs; missing (seed 1)." in table
    # The reference value beside the reproduced one, with the difference.
    mean = expected[("camera", "deq-fourier-1L256D")]["psnr_mean"]
    assert f"(ref 30.42, ${mean - 30.42:+.2f}$)" in cells["deq-fourier-1L256D"]["camera"]


def test_partial_cell_shows_mean_of_finished_runs_with_note(built: dict) -> None:
    table = _table(built["tex"], "tab:image-representation")
    cell = _body_rows(table)[TABLE_ORDER.index("siren-3L256D")][3]
    only = psnr_values("camera", "siren-3L256D", 0)[0]
    assert cell.startswith(f"{only:.2f}$^{{\\mathrm{{")  # one value: no std, a note mark


def test_occupancy_table_has_easy_hard_subcolumns(built: dict) -> None:
    table = _table(built["tex"], "tab:occupancy")
    assert "\\multicolumn{2}{c}{dragon}" in table and "\\cmidrule(lr){4-5}" in table
    assert " & & & easy & hard \\\\" in table
    rows = _body_rows(table)
    best_easy = max(OCC_MODELS, key=lambda m: iou_values(m, 0)[0])
    for model, row in zip(OCC_MODELS, rows, strict=True):
        easy = statistics.mean(iou_values(model, s)[0] for s in SEEDS)
        want = f"\\textbf{{{easy:.3f}" if model == best_easy else f"{easy:.3f}"
        assert want in row[3] and row[3].count("\\textbf") == (model == best_easy)
        assert "\\textbf{" in row[4]  # hard IoU ties across models: all bold


def test_cost_table_rows(built: dict) -> None:
    tex: str = built["tex"]
    cost = tex.split("\\label{tab:image-representation-cost}", 1)[1].split("\\end{longtable}")[0]
    lines = [line for line in cost.splitlines() if " & " in line and "Dataset" not in line]
    assert len(lines) == len(DATASETS) * len(TABLE_ORDER)
    first = lines[0].split(" & ")
    assert first[:4] == ["camera", "1L256D", "Fourier", "DEQ"]
    assert first[4] == f"{PARAMS['deq-fourier-1L256D'] / 1e3:.1f}k"
    diverged = lines[TABLE_ORDER.index("deq-gabor-1L256D")].split(" & ")
    assert diverged[4:] == ["---"] * 4 + ["--- \\\\"]


def test_cli_tables(tmp_path: Path) -> None:
    paths = write_runs(tmp_path / "runs")
    out = tmp_path / "out"
    args = ["tables", "--metrics", *map(str, paths), "--out-dir", str(out)]
    assert main(args) == 0
    assert (out / "paper.tex").is_file() and (out / "image_representation.csv").is_file()
    assert "ref " not in (out / "paper.tex").read_text()  # no --reference: no reference values


def reference_values(path: Path) -> dict[tuple[str, str, str, str], float]:
    """The non-null (task, dataset, model, metric) values of a reference YAML, read directly."""
    data = yaml.safe_load(path.read_text()) or {}
    return {
        (task, dataset, model, metric): value
        for task, datasets in data.items()
        for dataset, models in (datasets or {}).items()
        for model, metrics in (models or {}).items()
        for metric, value in (metrics or {}).items()
        if value is not None
    }


def test_repository_reference_file_is_valid(tmp_path: Path) -> None:
    """The shipped reference loads, and its values (or none) reach the CSVs and paper.tex."""
    reference = Path(__file__).resolve().parents[1] / "config" / "paper_reference.yaml"
    given = reference_values(reference)
    paths = write_runs(tmp_path)
    out = tmp_path / "out"
    written = write_tables(paths, out, reference)
    assert written == [
        out / f"{IMAGE_TASK}.csv",
        out / f"{OCC_TASK}.csv",
        out / "claims.csv",
        out / "claims.html",
        out / "paper.tex",
    ]

    frame = pd.read_csv(out / f"{IMAGE_TASK}.csv")
    expected = expected_image_rows()
    assert list(zip(frame["dataset"], frame["model"], strict=True)) == [
        (row["dataset"], row["model"]) for row in expected
    ]
    for (_, got), want in zip(frame.iterrows(), expected, strict=True):
        ref = given.get((IMAGE_TASK, want["dataset"], want["model"], "psnr"))
        if want["psnr_mean"] is None:
            assert pd.isna(got["psnr_mean"])
        else:
            assert got["psnr_mean"] == pytest.approx(want["psnr_mean"], abs=1e-9)
        if ref is None:
            assert pd.isna(got["psnr_ref"]) and pd.isna(got["psnr_diff"]), want["model"]
        else:
            assert got["psnr_ref"] == pytest.approx(ref)
            if want["psnr_mean"] is not None:
                assert got["psnr_diff"] == pytest.approx(want["psnr_mean"] - ref)
    occupancy = pd.read_csv(out / f"{OCC_TASK}.csv").set_index("model")
    for model in OCC_MODELS:
        mean = statistics.mean(iou_values(model, s)[0] for s in SEEDS)
        assert occupancy.loc[model, "iou_easy_mean"] == pytest.approx(mean)
        ref = given.get((OCC_TASK, "dragon", model, "iou_easy"))
        got = occupancy.loc[model, "iou_easy_ref"]
        assert pd.isna(got) if ref is None else got == pytest.approx(ref), model

    tex = (out / "paper.tex").read_text()
    runs = len(DATASETS) * len(MODELS) * len(SEEDS) + len(OCC_MODELS) * len(SEEDS)
    ok = runs - len(DIVERGED) - len(MISSING)
    assert (
        f"from {runs} runs: {ok} finished, {len(DIVERGED)} diverged, {len(MISSING)} missing." in tex
    )
    assert "paper\\_reference.yaml}" in tex
    if given:
        assert f"({len(given)} given); the claims table compares them with ours." in tex
    else:  # said once, instead of empty reference entries in every table
        assert "No printed values of the paper were given" in tex and "ref " not in tex
    cells = {(IMAGE_TASK, d, m) for d in DATASETS for m in MODELS}
    cells |= {(OCC_TASK, "dragon", m) for m in OCC_MODELS}
    shown = [key for key in given if key[:3] in cells]
    assert ("ref " in tex) == bool(shown)  # reference values appear only where given


def test_malformed_metrics_names_the_file(tmp_path: Path) -> None:
    path = run_path(tmp_path, IMAGE_TASK, "camera", "deq-fourier-1L256D", 0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"task": IMAGE_TASK, "dataset": "camera", "model": "x"}))
    with pytest.raises(ValueError, match=r"metrics\.json: missing key 'seed'"):
        write_tables([path], tmp_path / "out")


def test_missing_path_outside_the_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot tell the run from the path"):
        write_tables([tmp_path / "nowhere.json"], tmp_path / "out")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_paper_tex_compiles_with_pdflatex(built: dict) -> None:
    out: Path = built["out"]
    command = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"]
    for _ in range(2):  # the second pass settles longtable column widths
        result = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout[-3000:]
    pdf = out / "paper.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
    log = (out / "paper.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log
