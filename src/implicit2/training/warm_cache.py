"""Warm starts for minibatch DEQ training: per training-pool point, its last fixed point.

Video and occupancy draw their minibatches from a finite pool of training points (pixels of a
fixed grid, a labelled point pool), each point many times over a run. The cache keeps, per pool
point and signal, the last state f(z*) found for it, and the next solve of that point starts
there (z = 0 for a point never drawn). The solver stops at the same tolerance, so only the number
of iterations changes.

States are kept in float16 (a warm start needs no more), on the training device, within a byte
budget: when the whole pool does not fit, the first ``capacity`` pool points are cached and the
others start from zero; which points are drawn never changes. The states tensor has one extra
row, a scratch slot that uncached points read and write without a host sync; it is zeroed after
every write, so it always reads as z = 0.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

log = logging.getLogger(__name__)

#: Storage type of the cached states.
CACHE_DTYPE = torch.float16
#: ``warm_cache_mb: null`` on CPU: the budget in MB (host memory is shared with everything else).
CPU_DEFAULT_MB = 4096
#: ``warm_cache_mb: null`` on CUDA: this share of the device memory free when a signal batch
#: starts (``signal_batch: 0`` plans its steps to fill 80 % of it: together at most 95 %).
CUDA_FREE_SHARE = 0.15


def default_budget_bytes(device: torch.device) -> int:
    """The cache budget that ``warm_cache_mb: null`` means on ``device``."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(CUDA_FREE_SHARE * free)
    return CPU_DEFAULT_MB << 20


class WarmStartCache:
    """Cached fixed points of the first ``capacity`` pool points, for ``signals`` signals."""

    def __init__(
        self, signals: int, pool_points: int, width: int, budget_bytes: int, device: torch.device
    ) -> None:
        per_point = signals * width * torch.finfo(CACHE_DTYPE).bits // 8
        self.capacity = max(0, min(pool_points, budget_bytes // per_point - 1))
        self.pool_points = pool_points
        self.states = torch.zeros(
            (signals, self.capacity + 1, width), dtype=CACHE_DTYPE, device=device
        )
        if self.capacity < pool_points:
            log.info(
                "warm-start cache: %d of %d pool points fit in %.0f MB",
                self.capacity,
                pool_points,
                budget_bytes / 2**20,
            )

    @property
    def nbytes(self) -> int:
        """Bytes the cached states take."""
        return self.states.numel() * self.states.element_size()

    def slots(self, index: Tensor) -> Tensor:
        """The rows of pool points ``index`` (on the cache's device): uncached points share the
        scratch row."""
        index = index.to(self.states.device)
        return index if self.capacity == self.pool_points else index.clamp(max=self.capacity)

    def start(self, slots: Tensor) -> Tensor:
        """The float32 warm-start state (S, N_b, D) of the points at ``slots``."""
        return self.states.index_select(1, slots).float()

    def store(self, slots: Tensor, z: Tensor) -> None:
        """Keep ``z`` (S, N_b, D) as the points' next start; non-finite values are kept as 0 or
        the largest float16 (a diverging step must not poison later solves)."""
        limit = torch.finfo(CACHE_DTYPE).max
        low = z.to(CACHE_DTYPE).nan_to_num_(nan=0.0, posinf=limit, neginf=-limit)
        self.states.index_copy_(1, slots, low)
        self.states[:, self.capacity].zero_()

    def load(self, saved: Tensor) -> None:
        """Restore states saved from a cache of the same signals and width; when the capacities
        differ (another budget), the points cached by both are restored, the others start
        from zero."""
        if saved.shape[0] != self.states.shape[0] or saved.shape[2] != self.states.shape[2]:
            raise ValueError(
                f"a warm-start cache of shape {tuple(saved.shape)} does not fit "
                f"{tuple(self.states.shape)}"
            )
        rows = min(saved.shape[1], self.states.shape[1]) - 1
        self.states[:, :rows] = saved[:, :rows].to(self.states)
