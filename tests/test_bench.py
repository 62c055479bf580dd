"""`implicit2 bench`: the single-image interface, --signals with --compare-sequential, --grid."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from implicit2.bench.efficiency import grid_models
from implicit2.cli import main

COMMON = ["--image", "camera", "--size", "16", "--steps", "6", "--lr", "1e-3"]
COMMON += ["--input-scale", "16", "--threads", "1", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_single_image_interface_is_unchanged(tmp_path: Path, monkeypatch):
    import implicit2.bench.measure

    monkeypatch.setattr(implicit2.bench.measure, "PROBE_EVERY", 2)  # reference matmuls at steps 4
    out = tmp_path / "bench.json"
    models = ["deq-fourier-1L16D", "mfn-fourier-1L16D", "mfn-fourier-2L16D"]
    assert main(["bench", "--models", *models, *COMMON, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert {"matmul_gflops", "device", "threads"} <= set(payload["machine"])
    readings = payload["machine"]["matmul_gflops_readings"]
    assert len(readings) == 2 and payload["machine"]["matmul_gflops"] == max(readings) > 0
    assert payload["machine"]["device"] == "cpu" and payload["machine"]["threads"] == 1
    assert list(payload["models"]) == models
    keys = {"step_seconds_median", "saved_bytes_per_step", "peak_memory_bytes", "step_gflop"}
    keys |= {"gflops", "psnr", "params", "solver_steps_first"}
    for name, figures in payload["models"].items():
        assert keys <= set(figures), name
        assert figures["step_seconds_median"] > 0 and figures["step_gflop"] > 0
        assert figures["peak_memory_bytes"] == figures["saved_bytes_per_step"] > 0
        assert figures["matmul_fraction"] == pytest.approx(
            figures["gflops"] / payload["machine"]["matmul_gflops"]
        )
        assert figures["matmul_gflops_during"] > 0
        assert figures["matmul_fraction_during"] == pytest.approx(
            figures["gflops"] / figures["matmul_gflops_during"]
        )
    assert payload["models"]["deq-fourier-1L16D"]["solver_steps_first"] > 1
    assert payload["models"]["mfn-fourier-1L16D"]["solver_steps_first"] == 0
    # two layers cost more than one
    assert (
        payload["models"]["mfn-fourier-2L16D"]["params"]
        > payload["models"]["mfn-fourier-1L16D"]["params"]
    )


def test_signals_compare_sequential(tmp_path: Path):
    out = tmp_path / "signals.json"
    argv = ["bench", "--models", "deq-fourier-1L16D", *COMMON, "--signals", "3"]
    assert main([*argv, "--compare-sequential", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["settings"]["signals"] == 3 and payload["settings"]["compare_sequential"]
    figures = payload["models"]["deq-fourier-1L16D"]
    assert figures["batched_seconds"] > 0 and figures["sequential_seconds"] > 0
    assert figures["speedup"] == pytest.approx(
        figures["sequential_seconds"] / figures["batched_seconds"]
    )
    assert len(figures["psnr_batched"]) == len(figures["psnr_sequential"]) == 3
    assert len(set(figures["psnr_batched"])) == 3  # distinct crops
    assert 0.0 <= figures["psnr_max_abs_diff"] < 1e-3
    # three signals at once save three signals' tensors
    assert figures["batched_saved_bytes_per_step"] > 2 * figures["sequential_saved_bytes_per_step"]


def test_sequential_on_a_subset_is_scaled_to_all_signals(tmp_path: Path):
    out = tmp_path / "subset.json"
    argv = ["bench", "--models", "deq-fourier-1L16D", *COMMON, "--signals", "4"]
    argv += ["--compare-sequential", "--sequential-signals", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    figures = payload["models"]["deq-fourier-1L16D"]
    assert payload["settings"]["sequential_signals"] == figures["sequential_signals"] == 2
    assert figures["sequential_seconds"] == pytest.approx(
        2 * figures["sequential_seconds_measured"]
    )
    assert len(figures["psnr_batched"]) == 4 and len(figures["psnr_sequential"]) == 2
    assert 0.0 <= figures["psnr_max_abs_diff"] < 1e-3
    assert main([*argv[:-1], "5", "--out", str(out)]) == 2  # M > K
    assert main([*argv[:-3], "--sequential-signals", "2", "--out", str(out)]) == 2  # no compare


def test_signals_without_comparison_and_argument_errors(tmp_path: Path):
    out = tmp_path / "b.json"
    argv = ["bench", "--models", "mfn-fourier-1L16D", *COMMON, "--signals", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    figures = json.loads(out.read_text())["models"]["mfn-fourier-1L16D"]
    assert "sequential_seconds" not in figures and figures["batched_seconds"] > 0
    assert main(["bench", "--models", "deq-fourier-1L16D", *COMMON, "--compare-sequential",
                 "--out", str(out)]) == 2  # fmt: skip
    assert main(["bench", "--models", "deq-fourier-1L16D", *COMMON]) == 2  # no --out
    assert main(["bench", "--grid", *COMMON]) == 2  # no --out-dir


@pytest.mark.slow
def test_signals_with_compiled_steps(tmp_path: Path):
    """--compile runs both the batched and the one-by-one training through torch.compile."""
    out = tmp_path / "compiled.json"
    argv = ["bench", "--models", "deq-fourier-1L16D", *COMMON, "--signals", "2"]
    assert main([*argv, "--compare-sequential", "--compile", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    figures = payload["models"]["deq-fourier-1L16D"]
    assert payload["settings"]["compile"] is True and figures["compile"] is True
    assert 0.0 <= figures["psnr_max_abs_diff"] < 1e-3
    assert main(["bench", "--models", "deq-fourier-1L16D", *COMMON, "--compile",
                 "--out", str(out)]) == 2  # fmt: skip


def test_grid_writes_one_json_per_model_and_the_figure(tmp_path: Path):
    out_dir = tmp_path / "bench"
    argv = ["bench", "--grid", "--filters", "fourier", "siren", "--sizes", "1L8D", "1L16D"]
    assert main([*argv, *COMMON, "--out-dir", str(out_dir)]) == 0
    models = grid_models(["fourier", "siren"], ["1L8D", "1L16D"])
    assert len(models) == 8 and "deq-siren-1L8D" in models and "mfn-fourier-1L16D" in models
    for name in models:
        payload = json.loads((out_dir / f"{name}.json").read_text())
        assert payload["model"] == name and payload["machine"]["device"] == "cpu"
        assert payload["figures"]["step_seconds_median"] > 0
    assert (out_dir / "efficiency.pdf").stat().st_size > 1000
    with Image.open(out_dir / "efficiency.png") as image:
        assert image.width > 500 and image.height > 200


def test_signals_from_a_prepared_dataset(tmp_path: Path):
    from implicit2.bench.inputs import image_crops
    from implicit2.tasks import imaging
    from implicit2.tasks.storage import save_prepared

    npz = tmp_path / "faces.npz"
    images = imaging.pack_unit(image_crops("camera", 12, 3, seed=5))
    names = np.array(["a", "b", "c"])
    save_prepared(npz, "image_representation", "faces", {}, images=images, signal_names=names)
    out = tmp_path / "data.json"
    argv = ["bench", "--models", "mfn-fourier-1L8D", *COMMON, "--data", str(npz), "--signals", "2"]
    assert main([*argv, "--compare-sequential", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["settings"]["data"] == str(npz) and payload["settings"]["signals"] == 2
    figures = payload["models"]["mfn-fourier-1L8D"]
    assert figures["signals"] == 2 and figures["points"] == 144
    assert figures["psnr_max_abs_diff"] < 1e-3
    assert main([*argv[:-1], "4", "--out", str(out)]) == 2  # only 3 signals in the file


def test_no_tf32_reaches_the_trainer(monkeypatch):
    import implicit2.bench.measure as bench
    from implicit2.bench.inputs import crop_dataset, image_crops

    seen = []
    real_train = bench.train

    def spy(task, data, name, seed, settings, device, *args, **kwargs):
        seen.append(settings.tf32)
        return real_train(task, data, name, seed, settings, device, *args, **kwargs)

    monkeypatch.setattr(bench, "train", spy)
    data = crop_dataset(image_crops("camera", 8, 2))
    device = torch.device("cpu")
    bench.compare_batched("mfn-fourier-1L8D", data, 4, 1e-3, 8.0, device, True, tf32=False)
    assert seen == [False, False, False]  # warm-up, batched, one by one


def test_cuda_peak_memory_starts_after_init_and_leaves_out_the_probe(monkeypatch):
    """On an explicit cuda:N the counters are reset only after CUDA is initialised (else the
    reset fails), and a benchmark's peak leaves out the reference matmul's buffers."""
    from implicit2.bench.measure import MatmulProbe
    from implicit2.training.profiling import peak_memory_bytes, reset_peak_memory

    calls: list[object] = []
    monkeypatch.setattr(torch.cuda, "init", lambda: calls.append("init"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(str(d)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 5_000_000)
    gpu, cpu = torch.device("cuda:1"), torch.device("cpu")
    reset_peak_memory(gpu)
    reset_peak_memory(cpu)
    assert calls == ["init", "cuda:1"]
    probe = MatmulProbe(100, 8, cpu)
    assert probe.nbytes == (100 * 8 + 8 * 8 + 100 * 8) * 4
    assert peak_memory_bytes(gpu, 7, held_elsewhere=probe.nbytes) == 5_000_000 - probe.nbytes
    assert peak_memory_bytes(cpu, 7, held_elsewhere=probe.nbytes) == 7  # CPU: saved bytes


def test_a_16_bit_image_is_read_as_the_image_task_reads_it(tmp_path):
    import imageio.v3 as iio

    from implicit2.bench.inputs import read_image
    from implicit2.tasks.image import read_images

    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    iio.imwrite(tmp_path / "deep.png", ramp)
    image = read_image(str(tmp_path / "deep.png"))
    assert image.shape == (32, 32, 1) and image.max() == 1.0
    assert np.array_equal(image, read_images(tmp_path / "deep.png", {})[0][0])
    assert np.allclose(image[..., 0], ramp / 65535.0, atol=1e-6)


@pytest.mark.parametrize("model", ["deq-fourier-1L8D", "mfn-gabor-2L8D"])
def test_the_single_image_bench_trains_as_the_trainer_does(model):
    """bench_model drives the trainer's own step: after the same steps from the same seed, its last
    loss is the trainer's, to the bit."""
    from implicit2.bench.inputs import crop_dataset, load_image
    from implicit2.bench.measure import bench_model, bench_settings
    from implicit2.tasks import get_task
    from implicit2.training.loop import train

    device = torch.device("cpu")
    data = crop_dataset(load_image("camera", 16)[None])
    settings = bench_settings(model, 6, 1e-3, 16.0, device)
    figures = bench_model(model, data, settings, device)
    every_step = dataclasses.replace(settings, log_every=1)
    result = train(get_task("image_representation"), data, model, 0, every_step, device)
    assert figures["final_loss"] == result.chunks[0].curve[-1]["loss"]
    assert figures["solver_steps_first"] == result.chunks[0].solver_steps_first
