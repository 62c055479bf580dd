"""Resume checkpoints in a run's undeclared ``ckpt/`` folder.

A checkpoint holds the model, optimiser, scheduler and batch-generator states, the step, the
amortized z cache and the curve so far, so a resumed run continues bit-identically on CPU. It is
tagged with the run's identity (model, seed, signal batch and every training setting): one written
under other settings is refused with an error, never silently used. A truncated or corrupt file is
skipped with a warning in favour of the previous one (the two newest are kept), or training
restarts from scratch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from implicit2 import io as atomic

log = logging.getLogger(__name__)

FORMAT = "implicit2-checkpoint-v1"
KEEP = 2


@dataclass(frozen=True)
class RunIdentity:
    """What must match for a checkpoint to be resumed."""

    model: str
    seed: int
    first_signal: int
    num_signals: int
    settings: dict[str, Any]

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was written because SIGTERM/SIGINT arrived."""


class Checkpointer:
    """Writes and restores checkpoints of one run directory's signal batches."""

    def __init__(self, folder: Path, every: int | None = None) -> None:
        self.folder = folder
        self.every = every
        self.stop_requested = False

    def install_signal_handlers(self) -> None:
        """On SIGTERM (SLURM's pre-kill signal) or SIGINT: checkpoint at the next step, stop."""

        def request_stop(signum: int, frame: object) -> None:
            log.warning("received signal %d: checkpointing and stopping", signum)
            self.stop_requested = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def due(self, done_steps: int, default_every: int) -> bool:
        """Whether to checkpoint after ``done_steps`` steps (interval or pending stop)."""
        every = self.every or default_every
        return self.stop_requested or done_steps % every == 0

    def _files(self, identity: RunIdentity) -> list[Path]:
        pattern = f"signals{identity.first_signal}-step*.pt"
        return sorted(self.folder.glob(pattern), key=_step_of, reverse=True)

    def save(
        self,
        identity: RunIdentity,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        generator: torch.Generator,
        state: dict[str, Any],
    ) -> None:
        """Write a checkpoint atomically and prune old ones; raise TrainingInterrupted on a stop."""
        payload = {
            "format": FORMAT,
            "identity": dataclasses.asdict(identity),
            "digest": identity.digest(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "state": {k: _to_cpu(v) for k, v in state.items()},
        }
        path = self.folder / f"signals{identity.first_signal}-step{state['step']}.pt"
        with atomic.atomic_path(path) as temp:
            torch.save(payload, temp)
        for old in self._files(identity)[KEEP:]:
            old.unlink(missing_ok=True)
        log.info("checkpoint written: %s", path)
        if self.stop_requested:
            raise TrainingInterrupted(f"stopped by signal after step {state['step']}; {path} saved")

    def load(
        self,
        identity: RunIdentity,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        generator: torch.Generator,
    ) -> dict[str, Any] | None:
        """Restore the newest valid checkpoint of this signal batch; None when there is none."""
        for path in self._files(identity):
            try:
                payload = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as error:
                log.warning("checkpoint %s is unreadable (%s): trying an older one", path, error)
                continue
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                log.warning("checkpoint %s has an unknown format: trying an older one", path)
                continue
            if payload["digest"] != identity.digest():
                raise ValueError(
                    f"checkpoint {path} was written by a run with different settings "
                    f"({payload['identity']}); delete {self.folder} to start this run afresh"
                )
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            generator.set_state(payload["generator"])
            device = next(model.parameters()).device
            state = {k: _to_device(v, device) for k, v in payload["state"].items()}
            log.info("resuming from %s (step %d)", path, state["step"])
            return state
        if self.folder.exists() and any(self.folder.iterdir()):
            log.warning("no usable checkpoint in %s: training from scratch", self.folder)
        return None


def _step_of(path: Path) -> int:
    try:
        return int(path.stem.rsplit("step", 1)[1])
    except (IndexError, ValueError):
        return -1


def _to_cpu(value: Any) -> Any:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def _to_device(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value
