"""The trained-model file ``model.pt``: one state dict per signal batch, with what rebuilds them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from implicit2 import io as atomic
from implicit2.models import INR, build_model

MODEL_FORMAT = "implicit2-model-v1"
REQUIRED_KEYS = ("format", "model", "in_dim", "out_dim", "seed", "build", "chunks", "states")


def save_models(
    path: Path, meta: dict[str, Any], chunks: Sequence[tuple[int, int, dict[str, Tensor]]]
) -> None:
    """Write ``meta`` (model, in_dim, out_dim, seed, build) and the (first, count, state) of each
    signal batch to ``path``, atomically."""
    payload = {
        "format": MODEL_FORMAT,
        **meta,
        "chunks": [(first, count) for first, count, _ in chunks],
        "states": [state for _, _, state in chunks],
    }
    with atomic.atomic_path(path) as temp:
        torch.save(payload, temp)


def iterate_chunks(payload: dict[str, Any]) -> Iterator[tuple[int, int, dict[str, Tensor]]]:
    """(first, count, state_dict) of each signal batch stored in a model.pt payload."""
    for (first, count), state in zip(payload["chunks"], payload["states"], strict=True):
        yield int(first), int(count), state


def load_models(path: Path, device: torch.device) -> tuple[dict[str, Any], list[INR]]:
    """Load a run's ``model.pt``: its metadata and one eval-mode model per signal batch."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(f"{path}: not a readable model file ({error}); re-run training") from error
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: not an implicit2 model file (expected format {MODEL_FORMAT})")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"{path}: model file lacks {missing}; re-run training")
    models = []
    for first, count, state in iterate_chunks(payload):
        model = build_model(
            payload["model"],
            payload["in_dim"],
            payload["out_dim"],
            num_signals=count,
            seed=payload["seed"],
            first_signal=first,
            **payload["build"],
        )
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ValueError(f"{path}: weights do not fit {payload['model']} ({error})") from error
        models.append(model.to(device).eval())
    return payload, models
