"""Memory accounting: bytes saved for backward (any device) and peak CUDA memory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor


class SavedTensorMeter:
    """Counts the bytes autograd saves for backward inside a ``with meter.track():`` block.

    Storages are counted once, however many saved tensors view them; parameters (leaf tensors
    that require grad) are excluded since they exist anyway.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self._seen: set[int] = set()

    def _pack(self, tensor: Tensor) -> Tensor:
        if not (tensor.is_leaf and tensor.requires_grad):
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key not in self._seen:
                self._seen.add(key)
                self.bytes += storage.nbytes()
        return tensor

    @contextlib.contextmanager
    def track(self) -> Iterator[SavedTensorMeter]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor):
            yield self


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA); a no-op on CPU. Timers read after it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start counting the peak CUDA memory of ``device`` afresh (nothing to do on CPU).

    CUDA is initialised first: resetting the counters of an explicit ``cuda:N`` before any other
    CUDA work fails ("did you call init?").
    """
    if device.type == "cuda":
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device, saved_bytes: int, held_elsewhere: int = 0) -> int:
    """Peak allocated CUDA memory less ``held_elsewhere`` (bytes that other code kept allocated
    throughout, e.g. a benchmark's reference buffers), or on CPU the saved-for-backward byte
    count of one step."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)) - held_elsewhere
    return int(saved_bytes)
