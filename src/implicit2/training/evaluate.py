"""Evaluation of a trained run: solve from z = 0 to the evaluation tolerance, score, export."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from implicit2.models import INR
from implicit2.tasks.base import PreparedData, Task
from implicit2.training.model_file import load_models

log = logging.getLogger(__name__)


@dataclass
class Predictor:
    """predict(coords) over every signal batch, in point chunks, counting solver steps."""

    models: list[INR]
    device: torch.device
    chunk_points: int = 1 << 16
    solver_steps: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def warm_up(self, coords: np.ndarray) -> None:
        """One untimed call on a few points (CUDA context and library handles, thread pools), so
        ``seconds`` and ``solver_steps`` count the scoring passes only."""
        self(torch.from_numpy(np.ascontiguousarray(coords)))
        self.seconds, self.solver_steps = 0.0, []

    @torch.no_grad()
    def __call__(self, coords: Tensor) -> Tensor:
        started = time.perf_counter()
        shared = coords.dim() == 2
        coords = coords.unsqueeze(0) if shared else coords
        outputs = []
        first = 0
        for model in self.models:
            count = model.num_signals
            batch = coords if shared or coords.shape[0] == 1 else coords[first : first + count]
            pieces = []
            for start in range(0, batch.shape[1], self.chunk_points):
                x = batch[:, start : start + self.chunk_points].to(self.device, torch.float32)
                out = model(x)
                self.solver_steps.append(out.solver_steps)
                pieces.append(out.y.cpu())
            outputs.append(torch.cat(pieces, dim=1))
            first += count
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - started
        return torch.cat(outputs, dim=0)


def evaluate_run(
    task: Task, data: PreparedData, model_path: Path, recon_dir: Path, device: torch.device
) -> dict[str, Any]:
    """Score a run on its test set and export reconstructions into ``recon_dir``."""
    payload, models = load_models(model_path, device)
    if payload["in_dim"] != data.in_dim or payload["out_dim"] != data.out_dim:
        raise ValueError(
            f"{model_path}: model maps {payload['in_dim']}→{payload['out_dim']} dims but the "
            f"prepared data has {data.in_dim}→{data.out_dim}; was it trained on another dataset?"
        )
    trained = sum(model.num_signals for model in models)
    if trained != data.num_signals:
        raise ValueError(
            f"{model_path}: the model holds {trained} signal(s) but the prepared data has "
            f"{data.num_signals}; was the data prepared again with other options (e.g. limit)? "
            "Train the run again"
        )
    predictor = Predictor(models, device)
    predictor.warm_up(data.test_coords[:2])
    metrics, predictions = task.evaluate(predictor, data)
    # Scoring only: the export (renders, meshes) runs the same predictor again.
    inference_seconds, steps = predictor.seconds, list(predictor.solver_steps)
    task.export(predictions, data, recon_dir, predictor)
    return {
        **metrics,
        "inference_seconds": round(inference_seconds, 4),
        "solver_steps_eval": float(np.mean(steps)) if steps else 0.0,
    }
