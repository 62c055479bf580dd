"""The interface every task implements (image, audio, video, occupancy).

A task turns raw files into one canonical ``.npz`` (``prepare``), loads it back as
:class:`PreparedData` (``load``), says how to draw training batches and how to score a model
(``sample_index``, ``loss``, ``evaluate``) and writes what a person looks at (``export``).

Conventions shared by all tasks:
- Coordinates are float32 in [-1, 1] (occupancy: the unit cube the authors use), shape (N, in_dim).
- Targets are float32 in *model space* (images, video: intensities mapped to [-1, 1]; audio: the
  waveform divided by its peak; occupancy: labels in {0, 1}), shape (N, out_dim).
- Several signals of one dataset (CelebA's 100 faces, DIV2K's images) share one coordinate grid, so
  the trainer can fit them all at once with a leading signal axis S.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from implicit2.names import TASK_INFO

# predict(coords) -> model-space outputs; coords (S, N, in_dim) or (N, in_dim) tensor on any device.
# The trainer supplies it, chunked so that millions of points fit in memory.
Predict = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PreparedData:
    """One prepared dataset: S signals on shared coordinates.

    Attributes:
        task: task name (``image_representation`` …).
        dataset: dataset name.
        train_coords: (N, in_dim) float32 training coordinates, shared by all signals.
        train_targets: (S, N, out_dim) float32 model-space targets.
        test_coords: (M, in_dim) float32 evaluation coordinates.
        test_targets: (S, M, out_dim) float32 model-space targets.
        signal_names: S names, used in per-signal metrics and file names.
        meta: task-specific facts needed to export (grid shapes, sample rate, fps, mesh …).
        extra: task-specific arrays (occupancy: the 'hard' test set, the training-point pool).
    """

    task: str
    dataset: str
    train_coords: np.ndarray
    train_targets: np.ndarray
    test_coords: np.ndarray
    test_targets: np.ndarray
    signal_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def in_dim(self) -> int:
        return int(self.train_coords.shape[-1])

    @property
    def out_dim(self) -> int:
        return int(self.train_targets.shape[-1])

    @property
    def num_signals(self) -> int:
        return int(self.train_targets.shape[0])


class Task(ABC):
    """A task of the paper. Subclasses are stateless; register them in ``implicit2.tasks``."""

    name: str
    #: "mse" (regression in model space) or "bce" (occupancy logits).
    loss_kind: str = "mse"
    #: Peak-to-peak range of model-space targets that PSNR is measured against: 2.0 where
    #: [-1, 1] maps back to [0, 1] (images, video), 1.0 for audio (PSNR on the normalised wave).
    model_range: float = 2.0

    @property
    def full_batch(self) -> bool:
        """Every step sees every training coordinate (the amortized DEQ schedule applies); from
        the task table :data:`implicit2.names.TASK_INFO`."""
        return TASK_INFO[self.name].full_batch

    @abstractmethod
    def prepare(self, raw: Path, out: Path, options: dict[str, Any]) -> None:
        """Read the raw file(s) under/at ``raw``; write the canonical npz at ``out`` atomically."""

    @abstractmethod
    def load(self, npz: Path) -> PreparedData:
        """Load and validate a prepared npz; errors name the file and the problem."""

    def sample_index(
        self, data: PreparedData, batch_size: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Indices (N_b,) into the training coordinates of a random minibatch, a CPU tensor.

        Called when the task is not ``full_batch`` or the settings give a ``batch_size``. The
        default draws training coordinates uniformly (with replacement). The trainer keys its
        warm-start cache by these indices.
        """
        count = data.train_coords.shape[0]
        return torch.randint(0, count, (batch_size,), generator=generator)

    def batch_at(
        self, data: PreparedData, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coords (N_b, in_dim) and targets (S, N_b, out_dim) of the training points ``index``."""
        coords = torch.from_numpy(data.train_coords)[index]
        targets = torch.from_numpy(data.train_targets)[:, index]
        return coords, targets

    def loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-signal loss, shape (S,): mean over points (the trainer sums over signals)."""
        if self.loss_kind == "bce":
            return torch.nn.functional.binary_cross_entropy_with_logits(
                prediction, target, reduction="none"
            ).mean(dim=(-2, -1))
        return (prediction - target).square().mean(dim=(-2, -1))

    @abstractmethod
    def evaluate(self, predict: Predict, data: PreparedData) -> tuple[dict[str, Any], np.ndarray]:
        """Score the model on the test set.

        Returns (metrics, predictions). ``metrics`` holds the headline numbers (``psnr`` or
        ``iou_easy``/``iou_hard``), their per-signal lists (``psnr_per_signal``: one per image,
        or per frame for video) and anything else worth tabulating; ``predictions`` are what
        ``export`` needs (model-space test outputs, shape task-specific).
        """

    @abstractmethod
    def export(
        self, predictions: np.ndarray, data: PreparedData, out_dir: Path, predict: Predict | None
    ) -> list[Path]:
        """Write reconstructions a person can look at or listen to; return the files written."""
