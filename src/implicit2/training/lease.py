"""One GPU per training job on a box with several GPUs.

Snakemake's ``--resources gpu=N`` only caps how many GPU jobs run at once: every job still sees
every GPU and would land on ``cuda:0``. A job therefore leases a device before it touches CUDA:
one lock file per visible device in a shared lock directory, held with ``fcntl.flock`` for the
life of the process. The kernel drops the lock when the process exits for any reason (SIGKILL and
out-of-memory kills included), so a dead job never keeps its GPU.

The lock directory is ``$IMPLICIT2_GPU_LOCK_DIR`` when set, else
``$XDG_RUNTIME_DIR/implicit2-gpu-locks``, else ``<tmp>/implicit2-gpu-locks-<uid>``. Jobs that
should share the GPUs of one box must use the same directory (the default does, for one user).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Environment variable that overrides the lock directory.
LOCK_DIR_ENV = "IMPLICIT2_GPU_LOCK_DIR"
#: Device settings that may be given a leased GPU (``cuda:N`` and ``cpu`` are left alone).
LEASED_SETTINGS = ("auto", "cuda")


@dataclass
class GpuLease:
    """A held lease on one device; release it, or let the process exit."""

    index: int
    """Position of the device among the devices visible before the lease (``cuda:index``)."""
    device_id: str
    """The device's ``CUDA_VISIBLE_DEVICES`` entry (a physical index or a GPU UUID)."""
    count: int
    """How many devices were visible."""
    path: Path
    """The lock file."""
    _fd: int | None = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            log.debug("released GPU %s (%s)", self.device_id, self.path)

    def __enter__(self) -> GpuLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LeaseTimeout(TimeoutError):
    """No device became free within the timeout."""


def lock_dir() -> Path:
    """The lock directory (see the module docstring)."""
    override = os.environ.get(LOCK_DIR_ENV)
    if override:
        return Path(override)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "implicit2-gpu-locks"
    return Path(tempfile.gettempdir()) / f"implicit2-gpu-locks-{os.getuid()}"


def visible_devices() -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` entries of the devices this process can use, in order.

    Without ``CUDA_VISIBLE_DEVICES`` the entries are ``"0" … "n-1"``. The count comes from
    ``torch.cuda.device_count()``, which asks NVML and so does not start CUDA (unlike
    ``torch.cuda.is_available()``); CUDA must not start before the lease narrows the devices.
    """
    import torch

    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    entries = [entry.strip() for entry in listed.split(",") if entry.strip()]
    return entries[:count]


def _lock_name(device_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in device_id)
    return f"gpu-{safe}.lock"


def try_acquire(devices: Sequence[str], directory: Path | None = None) -> GpuLease | None:
    """Lease the first free device of ``devices`` without waiting; None when all are held."""
    directory = lock_dir() if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for index, device_id in enumerate(devices):
        path = directory / _lock_name(device_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # made by another user: a read-only descriptor locks as well
            fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                continue
            raise
        # For people looking at the lock directory: who holds the device.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} device {device_id}\n".encode())
        return GpuLease(index, device_id, len(devices), path, fd)
    return None


def acquire(
    devices: Sequence[str],
    directory: Path | None = None,
    *,
    timeout: float | None = None,
    poll: float = 1.0,
) -> GpuLease:
    """Lease one of ``devices``, waiting for a free one (forever when ``timeout`` is None).

    Raises:
        ValueError: ``devices`` is empty.
        LeaseTimeout: every device stayed held for ``timeout`` seconds.
    """
    if not devices:
        raise ValueError("no devices to lease")
    directory = lock_dir() if directory is None else Path(directory)
    start = time.monotonic()
    next_note = start + 60.0
    while True:
        lease = try_acquire(devices, directory)
        if lease is not None:
            return lease
        now = time.monotonic()
        if timeout is not None and now - start >= timeout:
            raise LeaseTimeout(
                f"all {len(devices)} GPUs ({', '.join(devices)}) stayed leased for {timeout:g} s "
                f"(locks in {directory}); run fewer GPU jobs at once (--resources gpu=N)"
            )
        if now >= next_note:
            log.warning(
                "waiting for a free GPU: all %d are leased (locks in %s)", len(devices), directory
            )
            next_note = now + 60.0
        time.sleep(poll)


def lease_for_job(
    device_setting: str,
    devices: Sequence[str] | None = None,
    directory: Path | None = None,
    *,
    timeout: float | None = None,
) -> GpuLease | None:
    """Give this process a GPU of its own when it would otherwise share ``cuda:0``.

    Only for the device settings ``auto`` and ``cuda`` with more than one visible device (a SLURM
    job that was given one GPU sees exactly one and needs no lease). The leased device becomes
    the only visible one (``CUDA_VISIBLE_DEVICES``), so ``cuda`` means it; if CUDA had been
    initialised already, it is made the current device instead. Call before any CUDA work.

    Args:
        device_setting: the run's ``device`` setting.
        devices: the visible devices' ``CUDA_VISIBLE_DEVICES`` entries (default:
            :func:`visible_devices`).
        directory: the lock directory (default: :func:`lock_dir`).
        timeout: seconds to wait for a free device (None: wait as long as it takes).
    """
    if device_setting not in LEASED_SETTINGS:
        return None
    devices = list(visible_devices() if devices is None else devices)
    if len(devices) <= 1:
        return None
    lease = acquire(devices, directory, timeout=timeout)
    _select(lease)
    log.info(
        "leased GPU index %d of %d visible (CUDA_VISIBLE_DEVICES entry %s; lock %s)",
        lease.index,
        lease.count,
        lease.device_id,
        lease.path,
    )
    return lease


def _select(lease: GpuLease) -> None:
    """Make the leased device the one that ``cuda`` means in this process."""
    import torch

    os.environ["CUDA_VISIBLE_DEVICES"] = lease.device_id
    # CUDA reads CUDA_VISIBLE_DEVICES once, when it starts. Ask CUDA itself (not NVML, which
    # follows the variable) how many devices it sees: if it had started before the variable was
    # set, it still sees every device, and the leased one is made the current device instead.
    if _cuda_device_count(torch) > 1:
        torch.cuda.set_device(lease.index)


def _cuda_device_count(torch: Any) -> int:
    """Devices the CUDA runtime of this process sees (0 without a CUDA build of torch)."""
    count = getattr(torch._C, "_cuda_getDeviceCount", None)
    if count is None:
        return 0
    try:
        return int(count())
    except RuntimeError:  # no driver or no device
        return 0
