"""Running a ``predict`` callable and scoring its outputs (PSNR, IoU).

PSNR is ``-10 log10(MSE)`` with the MSE floored at ``MSE_FLOOR`` (so a perfect reconstruction
scores 120 dB instead of infinity, which JSON cannot hold).
"""

from __future__ import annotations

import numpy as np
import torch

from implicit2.tasks.base import Predict

MSE_FLOOR = 1e-12


class NonFinitePrediction(ValueError):
    """A model predicted NaN or inf: it diverged (weights) or its solve did (a DEQ from z = 0)."""


def run_predict(predict: Predict, coords: np.ndarray, signals: int, out_dim: int) -> np.ndarray:
    """Call ``predict`` on (M, in_dim) coordinates and return float32 (S, M, out_dim).

    ``predict`` may return (S, M, out_dim) or, for one signal, (M, out_dim).
    """
    with torch.no_grad():
        output = predict(torch.from_numpy(np.ascontiguousarray(coords)))
    if not isinstance(output, torch.Tensor):
        raise ValueError(f"predict must return a torch.Tensor, got {type(output).__name__}")
    array = output.detach().to(torch.float32).cpu().numpy()
    count = coords.shape[0]
    if array.shape == (count, out_dim) and signals == 1:
        array = array[None]
    if array.shape != (signals, count, out_dim):
        raise ValueError(
            f"predict returned shape {tuple(array.shape)} for {count} coordinates; expected "
            f"({signals}, {count}, {out_dim})"
            + (f" or ({count}, {out_dim})" if signals == 1 else "")
        )
    if not np.isfinite(array).all():
        raise NonFinitePrediction("predict returned non-finite values (NaN or inf)")
    return array


def psnr(prediction: np.ndarray, target: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """``-10 log10(mean((prediction - target)²))`` over ``axis`` (float64 arithmetic)."""
    error = prediction.astype(np.float64) - target.astype(np.float64)
    mse = np.mean(np.square(error), axis=axis)
    return -10.0 * np.log10(np.maximum(mse, MSE_FLOOR))


def unit_psnr(prediction: np.ndarray, target: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """PSNR of model-space [-1, 1] intensities mapped back to [0, 1], the prediction clamped."""
    return psnr(np.clip((prediction + 1.0) / 2.0, 0.0, 1.0), (target + 1.0) / 2.0, axis)


def psnr_summary(values: np.ndarray) -> dict[str, float | list[float]]:
    """``psnr`` (mean), ``psnr_std`` (population std) and ``psnr_per_signal``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return {
        "psnr": float(values.mean()),
        "psnr_std": float(values.std()),
        "psnr_per_signal": [float(v) for v in values],
    }


def iou(occupied: np.ndarray, labels: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    occupied, labels = occupied.astype(bool), labels.astype(bool)
    union = np.count_nonzero(occupied | labels)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(occupied & labels) / union)
