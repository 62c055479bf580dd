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


def peak_memory_bytes(device: torch.device, saved_bytes: int) -> int:
    """Peak allocated CUDA memory, or on CPU the saved-for-backward byte count of one step."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(saved_bytes)
