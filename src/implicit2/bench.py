"""Speed and memory benchmarks of full-batch training with the amortized DEQ schedule.

All models are measured in one process on the same image, next to a plain matmul of the same
shape (the machine's attainable GFLOP/s), so the figures are comparable:
step time (median), bytes saved for backward, peak memory, matmul FLOPs per step (counted by
``torch.utils.flop_counter``), achieved GFLOP/s, PSNR after the run, solver steps at step 0.
"""

from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from implicit2.models import INR, build_model, count_parameters, parse_model_name
from implicit2.profiling import SavedTensorMeter, peak_memory_bytes
from implicit2.settings import resolve_device

log = logging.getLogger(__name__)


def load_image(name: str, size: int) -> np.ndarray:
    """``camera`` (skimage) or an image path → (size, size, C) float32 in [0, 1].

    Downsamples by block means when ``size`` divides the side, else resizes with anti-aliasing.
    """
    import skimage.data
    import skimage.io
    import skimage.transform

    if name == "camera":
        image = skimage.data.camera()
    else:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"--image {name}: neither 'camera' nor an existing image file")
        image = skimage.io.imread(path)
    image = np.asarray(image, dtype=np.float32)
    image = image / 255.0 if image.max() > 1.0 else image
    image = image[..., None] if image.ndim == 2 else image[..., :3]
    side = min(image.shape[:2])
    image = image[:side, :side]
    if side % size == 0:
        factor = side // size
        image = image.reshape(size, factor, size, factor, -1).mean(axis=(1, 3))
    else:
        image = skimage.transform.resize(image, (size, size), anti_aliasing=True)
    return image.astype(np.float32)


def image_grid(size: int) -> torch.Tensor:
    """(size², 2) coordinates in [-1, 1], row-major like the image."""
    axis = torch.linspace(-1.0, 1.0, size)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([cols, rows], dim=-1).reshape(-1, 2)


def matmul_gflops(points: int, width: int, device: torch.device, repeats: int = 10) -> float:
    """Attainable GFLOP/s of a plain (points × width) @ (width × width) float32 matmul."""
    a = torch.randn(points, width, device=device)
    b = torch.randn(width, width, device=device)
    out = torch.empty(points, width, device=device)
    times = []
    for _ in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2.0 * points * width * width / statistics.median(times[2:]) / 1e9


def psnr(model: INR, coords: torch.Tensor, image: torch.Tensor) -> float:
    """PSNR (dB) of the model's reconstruction, solved from z = 0 in eval mode."""
    model.eval()
    with torch.no_grad():
        out = model(coords.unsqueeze(0)).y
    model.train()
    recon = ((out + 1) / 2).clamp(0, 1)
    mse = float((recon - image).square().mean())
    return -10.0 * math.log10(max(mse, 1e-30))


def bench_model(
    name: str,
    coords: torch.Tensor,
    image: torch.Tensor,
    steps: int,
    lr: float,
    input_scale: float,
    device: torch.device,
    seed: int = 0,
) -> dict[str, Any]:
    """Train ``name`` full-batch for ``steps`` steps with the amortized schedule and measure it."""
    torch.manual_seed(seed)
    in_dim, out_dim = coords.shape[-1], image.shape[-1]
    model = build_model(
        name, in_dim, out_dim, seed=seed, input_scale=input_scale, spectral_norm=True
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x = coords.unsqueeze(0)
    target = (image * 2 - 1).unsqueeze(0)
    cache = None
    times: list[float] = []
    flops = saved = first_solver_steps = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(steps):
        counter = FlopCounterMode(display=False) if step == 1 else None
        meter = SavedTensorMeter() if step == 2 else None
        _sync(device)
        start = time.perf_counter()
        with (
            counter or contextlib.nullcontext(),
            meter.track() if meter else contextlib.nullcontext(),
        ):
            out = model(x, z0=cache, solve=cache is None)
            loss = (out.y - target).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()
        cache = out.z
        _sync(device)
        elapsed = time.perf_counter() - start
        if step == 0:
            first_solver_steps = out.solver_steps
        if counter is not None:
            flops = counter.get_total_flops()
        if meter is not None:
            saved = meter.bytes
        if step >= 3:
            times.append(elapsed)
    median = statistics.median(times) if times else float("nan")
    return {
        "step_seconds_median": median,
        "saved_bytes_per_step": saved,
        "peak_memory_bytes": peak_memory_bytes(device, saved),
        "step_gflop": flops / 1e9,
        "gflops": flops / 1e9 / median if times else None,
        "psnr": psnr(model, x[0], image),
        "params": count_parameters(name, in_dim, out_dim),
        "solver_steps_first": first_solver_steps,
        "final_loss": float(loss.detach()),
    }


def run_benchmark(
    models: list[str],
    image_name: str,
    size: int,
    steps: int,
    lr: float,
    input_scale: float,
    threads: int | None,
    device_name: str = "auto",
) -> dict[str, Any]:
    """Benchmark every model on one image; returns the bench.json payload."""
    for name in models:
        parse_model_name(name)
    if steps < 4:
        raise ValueError(f"--steps must be at least 4 (3 warm-up/measurement steps), got {steps}")
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    pixels = load_image(image_name, size)
    image = torch.from_numpy(pixels.reshape(-1, pixels.shape[-1])).to(device)
    coords = image_grid(size).to(device)
    width = max(parse_model_name(name).width for name in models)
    machine = {
        "matmul_gflops": matmul_gflops(size * size, width, device),
        "matmul_shape": [size * size, width, width],
        "device": str(device),
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    results = {}
    for name in models:
        log.info("benchmarking %s", name)
        results[name] = bench_model(name, coords, image, steps, lr, input_scale, device)
    return {
        "machine": machine,
        "settings": {
            "image": image_name,
            "size": size,
            "steps": steps,
            "lr": lr,
            "input_scale": input_scale,
        },
        "models": results,
    }


def _device_name(device: torch.device) -> str:
    from implicit2.provenance import device_name

    return device_name(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
