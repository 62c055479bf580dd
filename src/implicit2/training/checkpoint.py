"""Resume checkpoints in a run's undeclared ``ckpt/`` folder.

A checkpoint holds the model, optimiser, scheduler and batch-generator states, torch's global RNG
states, the step, the amortized z cache and the curve so far, so a resumed run continues
bit-identically on CPU. It is tagged with the run's identity (model, seed, signal batch, every
training setting that changes the result, and a fingerprint of the training data): one written
under other settings or for other data is refused with an error naming the file, never silently
used. A truncated or corrupt file is skipped with a warning in favour of the previous one (the two
newest are kept), or training restarts from scratch, said in the log. A finished run deletes its
checkpoints (:meth:`Checkpointer.clear`), so a later re-run of the job trains again rather than
returning stale weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from implicit2 import io as atomic

log = logging.getLogger(__name__)

FORMAT = "implicit2-checkpoint-v1"
KEEP = 2
#: The signal batch that ``signal_batch: 0`` chose, kept so that a resumed run batches alike.
SIGNAL_BATCH_FILE = "signal_batch.json"
#: Settings that do not change what a run computes (the warm-start budget changes only solver
#: iteration counts, not the fixed points beyond the tolerance): a checkpoint stays valid when
#: they change, and one written before a setting existed still matches.
NEUTRAL_SETTINGS = ("checkpoint_every", "warm_cache_mb")
_PAYLOAD_KEYS = ("identity", "digest", "model", "optimizer", "scheduler", "generator", "state")


@dataclass(frozen=True)
class RunIdentity:
    """What must match for a checkpoint to be resumed."""

    model: str
    seed: int
    first_signal: int
    num_signals: int
    settings: dict[str, Any]
    data: str = ""

    def digest(self) -> str:
        """A hash of the identity, leaving out the settings that do not change the trajectory."""
        values = dataclasses.asdict(self)
        values["settings"] = {k: v for k, v in self.settings.items() if k not in NEUTRAL_SETTINGS}
        text = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the arrays' shapes, dtypes and bytes (what a checkpoint was trained on)."""
    digest = hashlib.blake2b(digest_size=12)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data.cast("B"))  # the buffer itself, as memoryview(array)
    return digest.hexdigest()


class TrainingInterrupted(Exception):
    """Raised after a checkpoint was written because SIGTERM/SIGINT arrived."""


class CheckpointMismatch(ValueError):
    """A checkpoint in the run's folder belongs to another configuration or other data."""


@dataclass
class Checkpointer:
    """Writes and restores checkpoints of one run directory's signal batches."""

    folder: Path
    every: int | None = None
    stop_requested: bool = False
    #: (first signal, step) of every checkpoint resumed from, for the run's record.
    resumed: list[tuple[int, int]] = field(default_factory=list)
    _previous: dict[int, Any] = field(default_factory=dict, repr=False)

    def install_signal_handlers(self) -> None:
        """On SIGTERM (SLURM's pre-kill signal) or SIGINT: checkpoint after this step, stop.

        A second signal while the stop is pending ends the process the default way.
        """

        def request_stop(signum: int, frame: object) -> None:
            if self.stop_requested:
                log.warning("second signal %d: stopping without a checkpoint", signum)
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            log.warning("received signal %d: checkpointing and stopping", signum)
            self.stop_requested = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, request_stop)

    def restore_signal_handlers(self) -> None:
        """Put back the handlers that :meth:`install_signal_handlers` replaced."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def due(self, done_steps: int, default_every: int, last: bool = False) -> bool:
        """Whether to checkpoint after ``done_steps`` steps (interval, last step, pending stop)."""
        every = self.every or default_every
        return self.stop_requested or last or done_steps % every == 0

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
        device = next(model.parameters()).device
        payload = {
            "format": FORMAT,
            "identity": dataclasses.asdict(identity),
            "digest": identity.digest(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            # The training device's generator only: a resume may see another number of GPUs.
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "state": {k: _to_cpu(v) for k, v in state.items()},
        }
        path = self.folder / f"signals{identity.first_signal}-step{state['step']}.pt"
        try:
            with atomic.atomic_path(path) as temp:
                torch.save(payload, temp)
            for old in self._files(identity)[KEEP:]:
                old.unlink(missing_ok=True)
        except (OSError, RuntimeError) as error:
            # A lost checkpoint costs only time: keep training (the run folder may have been
            # deleted under us, or the disk is briefly full); the next interval tries again.
            log.warning("could not write checkpoint %s (%s): training goes on", path, error)
            saved = f"no checkpoint could be written ({error})"
        else:
            log.info("checkpoint written: %s", path)
            saved = f"{path} saved"
        if self.stop_requested:
            raise TrainingInterrupted(f"stopped by signal after step {state['step']}; {saved}")

    def load(
        self,
        identity: RunIdentity,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        generator: torch.Generator,
        total_steps: int | None = None,
    ) -> dict[str, Any] | None:
        """Restore the newest valid checkpoint of this signal batch; None when there is none.

        Raises:
            CheckpointMismatch: the newest readable checkpoint belongs to other settings or data.
        """
        self._remove_partial_writes()
        for path in self._files(identity):
            payload = self._read(path, total_steps)
            if payload is None:
                continue
            if payload["digest"] != identity.digest():
                raise CheckpointMismatch(
                    f"checkpoint {path} was written by a run with different settings or data "
                    f"({_difference(payload['identity'], dataclasses.asdict(identity))}); "
                    f"delete {self.folder} to start this run afresh"
                )
            try:
                model.load_state_dict(payload["model"])
                optimizer.load_state_dict(payload["optimizer"])
                scheduler.load_state_dict(payload["scheduler"])
                generator.set_state(payload["generator"])
            except (RuntimeError, ValueError, KeyError, TypeError) as error:
                raise CheckpointMismatch(
                    f"checkpoint {path} does not fit this model ({error}); it was written by "
                    f"other code: delete {self.folder} to start this run afresh"
                ) from error
            if payload.get("torch_rng") is not None:
                torch.set_rng_state(payload["torch_rng"])
            device = next(model.parameters()).device
            if isinstance(payload.get("cuda_rng"), torch.Tensor) and device.type == "cuda":
                torch.cuda.set_rng_state(payload["cuda_rng"], device)
            state = {k: _to_device(v, device) for k, v in payload["state"].items()}
            log.info("resuming from %s (step %d)", path, state["step"])
            self.resumed.append((identity.first_signal, int(state["step"])))
            return state
        if self._files(identity):
            log.warning(
                "no usable checkpoint for signals %d in %s: training from scratch",
                identity.first_signal,
                self.folder,
            )
        return None

    def _read(self, path: Path, total_steps: int | None) -> dict[str, Any] | None:
        """A checkpoint's payload, or None (with a warning) when it is unreadable or malformed."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:
            log.warning("checkpoint %s is unreadable (%s): trying an older one", path, error)
            return None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            log.warning("checkpoint %s has an unknown format: trying an older one", path)
            return None
        missing = [key for key in _PAYLOAD_KEYS if key not in payload]
        state = payload.get("state")
        if missing or not isinstance(state, dict) or not isinstance(state.get("step"), int):
            log.warning("checkpoint %s is incomplete (%s): trying an older one", path, missing)
            return None
        step = state["step"]
        if step != _step_of(path) or step < 0 or (total_steps is not None and step > total_steps):
            log.warning("checkpoint %s holds step %d: trying an older one", path, step)
            return None
        return payload

    def remembered_signal_batch(self) -> int | None:
        """The signal batch an interrupted run of this folder chose for ``signal_batch: 0``.

        On CUDA that choice follows the free memory of the moment; a resumed run must batch its
        signals as before, or its checkpoints would not match. None when nothing was recorded.
        """
        path = self.folder / SIGNAL_BATCH_FILE
        if not path.is_file():
            return None
        try:
            batch = atomic.read_json(path)["signal_batch"]
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignoring %s (%s): choosing the signal batch afresh", path, error)
            return None
        if not isinstance(batch, int) or batch < 1:
            log.warning("ignoring %s (signal_batch %r): choosing it afresh", path, batch)
            return None
        log.info("resuming with the signal batch chosen before: %d (%s)", batch, path)
        return batch

    def remember_signal_batch(self, batch: int) -> None:
        """Record the signal batch chosen for ``signal_batch: 0`` (see above)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic.write_json(self.folder / SIGNAL_BATCH_FILE, {"signal_batch": batch})

    def _remove_partial_writes(self) -> None:
        """Delete temporary files left by a process killed while writing a checkpoint."""
        for temp in self.folder.glob(".signals*-step*.tmp.pt"):
            log.info("removing the partial checkpoint %s", temp)
            temp.unlink(missing_ok=True)

    def clear(self) -> None:
        """Delete the checkpoint folder (after the run's outputs were written)."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder, ignore_errors=True)


def _difference(stored: dict[str, Any], current: dict[str, Any]) -> str:
    """The keys whose values differ between two identities, for the error message."""
    changes = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            for name in sorted(set(old) | set(new)):
                if name not in NEUTRAL_SETTINGS and old.get(name) != new.get(name):
                    changes.append(f"{key}.{name}: {old.get(name)!r} there, {new.get(name)!r} now")
        elif old != new:
            changes.append(f"{key}: {old!r} there, {new!r} now")
    return "; ".join(changes) or "format change"


def _step_of(path: Path) -> int:
    try:
        return int(path.stem.rsplit("step", 1)[1])
    except (IndexError, ValueError):
        return -1


def _to_cpu(value: Any) -> Any:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def _to_device(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value
