"""Where a result came from: code version, packages, device, host, times."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import implicit2

_PACKAGES = (
    "implicit2",
    "torch",
    "numpy",
    "scipy",
    "scikit-image",
    "imageio",
    "soundfile",
    "av",
    "trimesh",
    "pandas",
    "snakemake",
)
#: The lock files `make setup` installs from (requirements/ of the checkout).
LOCK_FILES = ("lock.txt", "torch-cpu.txt", "torch-cuda.txt")
#: Environment variables that change how or where a run executes.
_ENVIRONMENT = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUBLAS_WORKSPACE_CONFIG",
    "SLURM_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_RESTART_COUNT",
)


def git_state(root: Path | None = None) -> dict[str, Any]:
    """Commit hash and dirty flag of the checkout holding this package (None outside git)."""
    root = root or Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None where not installed)."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def lock_hashes(root: Path | None = None) -> dict[str, str | None]:
    """sha256 of each lock file of the checkout holding this package (None where absent, e.g. an
    installed wheel): which locked environment the result was made with."""
    folder = (root or implicit2.CHECKOUT) / "requirements"
    hashes: dict[str, str | None] = {}
    for name in LOCK_FILES:
        try:
            digest: str | None = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        except OSError:
            digest = None
        hashes[f"requirements/{name}"] = digest
    return hashes


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model (from /proc/cpuinfo on Linux) for CPU runs."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model() or platform.processor() or platform.machine()


def cpu_model() -> str | None:
    """The CPU's model name on Linux, None elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return None


def accelerator() -> dict[str, Any]:
    """CUDA/cuDNN versions and the visible GPUs (empty lists without CUDA)."""
    available = torch.cuda.is_available()
    return {
        "cuda_available": available,
        "cudnn": torch.backends.cudnn.version() if available else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if available
        else [],
    }


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def collect(device: torch.device, started: str, config: dict[str, Any]) -> dict[str, Any]:
    """The provenance record stored in every train.json / metrics.json."""
    return {
        "git": git_state(),
        "version": implicit2.__version__,
        "lock": lock_hashes(),
        "packages": package_versions(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device),
        **accelerator(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "argv": list(sys.argv),
        "environment": {name: os.environ[name] for name in _ENVIRONMENT if name in os.environ},
        "started": started,
        "finished": now(),
        "config": config,
    }
