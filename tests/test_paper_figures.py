"""``implicit2 figures``: curves, cost bars and reconstruction grids from synthetic runs."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from implicit2.cli import main
from implicit2.paper import Collection, collect, figstyle, recon_grid, write_figures
from implicit2.paper.cost_plot import plot_cost
from implicit2.paper.curves import plot_curves
from implicit2.paper.figstyle import (
    COST_PANEL,
    CURVE_PANEL,
    DPI,
    LEGEND_HEIGHT,
    RECON_COLUMNS,
    RECON_PANEL,
)

TASK = "image_representation"
DATASETS = ("camera", "celeba")
MODELS = ("deq-fourier-1L256D", "mfn-fourier-1L256D", "siren-3L256D")
SEEDS = (0, 1)
DIVERGED = ("camera", "deq-fourier-1L256D", 1)
MISSING = ("celeba", "siren-3L256D", 0)
NO_PREVIEW = ("camera", "mfn-fourier-1L256D", 0)
EXPECTED = {
    f"{name}.{ext}" for name in ("curves", "cost", "reconstructions") for ext in ("pdf", "png")
}


STEPS = np.arange(0, 50, 10)
#: Panels of the curves figure: model size -> the models drawn in it, in plotting order.
SIZES = {"1L256D": MODELS[:2], "3L256D": MODELS[2:]}
LINESTYLE = {"deq-fourier-1L256D": "-", "mfn-fourier-1L256D": "--", "siren-3L256D": ":"}


def metrics_path(root: Path, task: str, dataset: str, model: str, seed: int) -> Path:
    return root / "results" / "runs" / task / dataset / model / f"seed{seed}" / "metrics.json"


def psnr_curve(seed: int, status: str) -> np.ndarray:
    """The PSNR column of a run's curve.csv at :data:`STEPS` (NaN where it has no value)."""
    psnr = np.round(20 + np.log1p(STEPS) + seed, 3)  # curve.csv keeps 3 decimals
    if status == "diverged":
        psnr[-2:] = np.nan  # the curve stops where training blew up
    return psnr


def write_run(root: Path, task: str, dataset: str, model: str, seed: int, status: str) -> Path:
    """A run folder: metrics.json, curve.csv and (usually) recon/preview.png."""
    path = metrics_path(root, task, dataset, model, seed)
    path.parent.mkdir(parents=True)
    ok = status == "ok"
    payload = {
        "task": task,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "status": status,
        "params": 5000,
        "step_seconds_median": 0.01 * (2 if model.startswith("deq") else 1) if ok else None,
        "peak_memory_bytes": 2**20 * (3 + seed) if ok else None,
        "solver_steps_first": 10,
        "solver_steps_eval": 12,
        "signal_names": ["s0"],
    }
    if task == "occupancy":
        payload.update(iou_easy=0.9 if ok else None, iou_hard=0.7 if ok else None)
    else:
        payload.update(psnr=25.0 if ok else None, psnr_per_signal=[25.0] if ok else None)
    path.write_text(json.dumps(payload))
    psnr = psnr_curve(seed, status)
    lines = ["step,loss,psnr,seconds"]
    for step, value in zip(STEPS, psnr, strict=True):
        text = "" if task == "occupancy" or np.isnan(value) else f"{value:.3f}"
        lines.append(f"{step},{1.0 / (step + 1):.5f},{text},{step * 0.1:.2f}")
    (path.parent / "curve.csv").write_text("\n".join(lines) + "\n")
    if (dataset, model, seed) != NO_PREVIEW and ok:
        (path.parent / "recon").mkdir()
        rng = np.random.default_rng(seed)
        if model.startswith("deq"):
            mpimg.imsave(path.parent / "recon" / "preview.png", rng.random((6, 12, 3)))
        else:
            mpimg.imsave(path.parent / "recon" / "preview.png", rng.random((6, 12)), cmap="gray")
    return path


def write_grid(root: Path) -> list[Path]:
    paths = []
    for dataset in DATASETS:
        for model in MODELS:
            for seed in SEEDS:
                key = (dataset, model, seed)
                if key == MISSING:
                    paths.append(metrics_path(root, TASK, *key))
                    continue
                status = "diverged" if key == DIVERGED else "ok"
                paths.append(write_run(root, TASK, dataset, model, seed, status))
    return paths


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def pixels(width_in: float, height_in: float) -> tuple[int, int]:
    return round(width_in * DPI), round(height_in * DPI)


def check_files(out: Path) -> None:
    assert {p.name for p in out.iterdir()} == EXPECTED  # exactly these, no temp files left
    for path in out.iterdir():
        assert path.stat().st_size > 1000, path
        if path.suffix == ".pdf":
            assert path.read_bytes()[:5] == b"%PDF-"


def expected_curve(dataset: str, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-seed PSNR rows, steps with a value, their seed mean) of one model on one dataset."""
    seeds = [seed for seed in SEEDS if (dataset, model, seed) != MISSING]
    status = {seed: "diverged" if (dataset, model, seed) == DIVERGED else "ok" for seed in seeds}
    per_seed = np.stack([psnr_curve(seed, status[seed]) for seed in seeds])
    drawn = ~np.isnan(per_seed).all(axis=0)
    return per_seed, STEPS[drawn], np.nanmean(per_seed[:, drawn], axis=0)


def mean_cost(paths: list[Path], dataset: str, model: str, key: str) -> float:
    """Mean of ``key`` over the finished runs of one model, read back from their metrics.json."""
    runs = [json.loads(path.read_text()) for path in paths if path.is_file()]
    cell = [r for r in runs if (r["dataset"], r["model"], r["status"]) == (dataset, model, "ok")]
    return float(np.mean([run[key] for run in cell]))


def plot(function: Callable[[Collection, str], Figure], paths: list[Path]) -> Figure:
    """One figure of :data:`TASK`, drawn (not saved) the way ``write_figures`` draws it."""
    with figstyle.style():
        return function(collect(paths), TASK)


def panels(figure: Figure) -> dict[str, Axes]:
    return {axes.get_title(): axes for axes in figure.axes}


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_grid(tmp_path_factory.mktemp("grid"))


@pytest.fixture(scope="module")
def figures(grid: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("figures") / "out"
    write_figures(TASK, grid, out)
    return out


def test_writes_exactly_six_non_empty_files(figures: Path) -> None:
    check_files(figures)


def test_curves_size(figures: Path) -> None:
    sizes = 2  # 1L256D (deq/mfn) and 3L256D (siren) panels
    width, height = CURVE_PANEL[0] * sizes, CURVE_PANEL[1] * len(DATASETS) + LEGEND_HEIGHT
    assert png_size(figures / "curves.png") == pixels(width, height)


def test_cost_size(figures: Path) -> None:
    width, height = COST_PANEL[0] * 2, COST_PANEL[1] * len(DATASETS) + LEGEND_HEIGHT
    assert png_size(figures / "cost.png") == pixels(width, height)


def test_curves_draw_one_line_per_model_at_the_seed_mean(grid: list[Path]) -> None:
    """Each dataset × size panel: one line per model through the mean of its seeds' curves."""
    figure = panels(plot(plot_curves, grid))
    assert set(figure) == {f"{dataset} · {size}" for dataset in DATASETS for size in SIZES}
    for dataset in DATASETS:
        for size, models in SIZES.items():
            axes = figure[f"{dataset} · {size}"]
            assert axes.get_ylabel() == "PSNR (dB)"
            lines = axes.get_lines()
            assert len(lines) == len(models), (dataset, size)
            bands = iter(axes.collections)
            for line, model in zip(lines, models, strict=True):
                per_seed, steps, mean = expected_curve(dataset, model)
                np.testing.assert_array_equal(line.get_xdata(), steps)
                np.testing.assert_allclose(line.get_ydata(), mean, rtol=0, atol=1e-9)
                assert line.get_linestyle() == LINESTYLE[model]
                if len(per_seed) > 1:  # a min-max band over the seeds
                    band = next(bands).get_paths()[0].vertices[:, 1]
                    assert band.min() == pytest.approx(np.nanmin(per_seed))
                    assert band.max() == pytest.approx(np.nanmax(per_seed))
            assert next(bands, None) is None, (dataset, size)  # no band for a single seed


def test_diverged_run_curve_stops_at_its_diverged_step(tmp_path: Path) -> None:
    """A diverged run alone in its cell is drawn only up to its last finite value."""
    paths = [
        write_run(tmp_path, TASK, "camera", "deq-fourier-1L256D", 1, "diverged"),
        write_run(tmp_path, TASK, "camera", "mfn-fourier-1L256D", 0, "ok"),
    ]
    (axes,) = plot(plot_curves, paths).axes
    diverged, finished = axes.get_lines()
    psnr = psnr_curve(1, "diverged")
    last = int(np.flatnonzero(~np.isnan(psnr))[-1])
    assert last < len(STEPS) - 1  # the fixture really diverged early
    np.testing.assert_array_equal(diverged.get_xdata(), STEPS[: last + 1])
    np.testing.assert_allclose(diverged.get_ydata(), psnr[: last + 1], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(finished.get_xdata(), STEPS)
    np.testing.assert_allclose(finished.get_ydata(), psnr_curve(0, "ok"), rtol=0, atol=1e-9)


def test_cost_bars_are_the_mean_cost_of_finished_runs(grid: list[Path]) -> None:
    """Per dataset: time per step (ms) and peak memory (MiB) bars, one per model, in order."""
    figure = plot(plot_cost, grid)
    assert len(figure.axes) == len(DATASETS) * 2  # row-major: dataset × (time, memory)
    quantities = (("step_seconds_median", "(ms)", 1e3), ("peak_memory_bytes", "(MiB)", 2**-20))
    for index, axes in enumerate(figure.axes):
        dataset = DATASETS[index // 2]
        key, unit, scale = quantities[index % 2]
        assert axes.get_title() == dataset and unit in axes.get_ylabel()
        assert [label.get_text() for label in axes.get_xticklabels()] == list(MODELS)
        heights = [bar.get_height() for bar in axes.patches]
        want = [scale * mean_cost(grid, dataset, model, key) for model in MODELS]
        assert heights == pytest.approx(want), (dataset, key)
        assert len(set(heights)) > 1  # the fixture's costs differ between models


def test_reconstructions_size_and_content(figures: Path) -> None:
    runs = len(DATASETS) * len(MODELS) * len(SEEDS)  # missing runs get a panel too
    cols = RECON_COLUMNS
    rows = -(-runs // cols)
    assert png_size(figures / "reconstructions.png") == pixels(
        RECON_PANEL[0] * cols, RECON_PANEL[1] * rows
    )
    image = mpimg.imread(figures / "reconstructions.png")
    assert image.std() > 0.05  # previews were drawn, not a blank canvas


def test_occupancy_plots_loss_and_survives_no_previews(tmp_path: Path) -> None:
    paths = [
        write_run(tmp_path, "occupancy", "dragon", model, 0, "ok")
        for model in ("deq-gabor-1L256D", "mfn-gabor-1L256D")
    ]
    paths.append(metrics_path(tmp_path, "occupancy", "dragon", "ffn-3L256D", 0))  # missing
    out = tmp_path / "out"
    write_figures("occupancy", paths, out)
    check_files(out)
    assert png_size(out / "curves.png") == pixels(
        CURVE_PANEL[0] * 2, CURVE_PANEL[1] + LEGEND_HEIGHT
    )


def test_no_runs_of_the_task_still_writes_every_figure(tmp_path: Path) -> None:
    other = write_run(tmp_path, "audio", "bach", "deq-fourier-1L256D", 0, "ok")
    out = tmp_path / "out"
    write_figures(TASK, [other], out)
    check_files(out)


def test_cli_figures(tmp_path: Path) -> None:
    paths = [write_run(tmp_path, "audio", "bach", m, 0, "ok") for m in MODELS]
    out = tmp_path / "figures" / "audio"
    args = ["figures", "--task", "audio", "--metrics", *map(str, paths), "--out-dir", str(out)]
    assert main(args) == 0
    check_files(out)


def test_oversized_reconstruction_grid_is_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recon_grid, "MAX_ROWS", 1)
    out = tmp_path / "out"
    write_figures(TASK, write_grid(tmp_path), out)
    check_files(out)
    cols = RECON_COLUMNS
    assert png_size(out / "reconstructions.png") == pixels(RECON_PANEL[0] * cols, RECON_PANEL[1])
