"""GPU leases on a box with several GPUs, tested on CPU with a pretended device list: concurrent
processes get distinct devices, a killed holder frees its device, and the train command leases
a device only when it would otherwise share cuda:0."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from implicit2.cli import main
from implicit2.training import lease as gpu_lease

SRC = Path(__file__).resolve().parents[1] / "src"

# A job that leases one of DEVICES, reports which, and holds it until killed or told to stop.
HOLDER = textwrap.dedent(
    """
    import json, sys
    from implicit2.training import lease
    devices, directory, timeout = json.loads(sys.argv[1])
    try:
        held = lease.acquire(devices, directory, timeout=timeout, poll=0.05)
    except lease.LeaseTimeout:
        print("timeout", flush=True)
        sys.exit(3)
    print(held.index, held.device_id, flush=True)
    sys.stdin.readline()  # hold the lease until stdin closes (or the process is killed)
    """
)


def start_holder(devices: list[str], directory: Path, timeout: float = 30.0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, json.dumps([devices, str(directory), timeout])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_lease(process: subprocess.Popen) -> tuple[int, str]:
    line = process.stdout.readline().split()
    assert len(line) == 2, f"holder printed {line!r} (exit {process.poll()})"
    return int(line[0]), line[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def holders():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        stop(process)


def test_concurrent_jobs_get_distinct_devices_and_a_killed_job_frees_its_own(tmp_path, holders):
    devices = ["0", "1", "2", "3"]
    locks = tmp_path / "locks"
    holders.extend(start_holder(devices, locks) for _ in devices)  # all start at once
    leases = [read_lease(process) for process in holders]
    assert sorted(index for index, _ in leases) == [0, 1, 2, 3]
    assert {device for _, device in leases} == set(devices)
    for index, device in leases:
        assert devices[index] == device

    # Every device is held: one more job waits, then gives up.
    extra = start_holder(devices, locks, timeout=0.5)
    assert extra.stdout.readline().strip() == "timeout"
    assert extra.wait(timeout=30) == 3

    # SIGKILL (no clean-up code runs) frees exactly that job's device for the next job.
    victim = holders[1]
    freed = leases[1]
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    successor = start_holder(devices, locks)
    holders.append(successor)
    assert read_lease(successor) == freed


def test_waiting_job_gets_the_device_when_it_is_freed(tmp_path, holders):
    locks = tmp_path / "locks"
    first = start_holder(["0", "1"], locks)
    second = start_holder(["0", "1"], locks)
    holders.extend([first, second])
    first_lease, second_lease = read_lease(first), read_lease(second)
    assert {first_lease[0], second_lease[0]} == {0, 1}
    waiting = start_holder(["0", "1"], locks, timeout=60)
    holders.append(waiting)
    time.sleep(0.5)
    assert waiting.poll() is None  # still waiting
    stop(first)  # a normal exit frees the lease too
    assert first.returncode == 0
    assert read_lease(waiting) == first_lease


def test_try_acquire_release_and_lock_names(tmp_path):
    devices = ["GPU-2a1b/x", "GPU-77"]  # UUID-style entries; "/" must not escape the folder
    first = gpu_lease.try_acquire(devices, tmp_path)
    second = gpu_lease.try_acquire(devices, tmp_path)
    assert first is not None and second is not None
    assert (first.index, second.index) == (0, 1)
    assert first.path.parent == tmp_path and "/" not in first.path.name
    assert f"pid {os.getpid()}" in first.path.read_text()
    assert gpu_lease.try_acquire(devices, tmp_path) is None
    first.release()
    first.release()  # idempotent
    assert not first.held
    with gpu_lease.try_acquire(devices, tmp_path) as again:
        assert again.index == 0 and again.held
    assert not again.held
    second.release()
    with pytest.raises(ValueError, match="no devices"):
        gpu_lease.acquire([], tmp_path)


def test_lock_dir_override_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv(gpu_lease.LOCK_DIR_ENV, str(tmp_path / "mine"))
    assert gpu_lease.lock_dir() == tmp_path / "mine"
    monkeypatch.delenv(gpu_lease.LOCK_DIR_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert gpu_lease.lock_dir() == tmp_path / "implicit2-gpu-locks"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert gpu_lease.lock_dir().name == f"implicit2-gpu-locks-{os.getuid()}"


def test_lease_for_job_only_when_several_devices_and_cuda_or_auto(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert gpu_lease.lease_for_job("cpu", ["4", "6"], tmp_path) is None
    assert gpu_lease.lease_for_job("cuda:1", ["4", "6"], tmp_path) is None
    assert gpu_lease.lease_for_job("cuda", ["4"], tmp_path) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,6"
    held = gpu_lease.try_acquire(["4"], tmp_path)  # another job holds the first device
    lease = gpu_lease.lease_for_job("auto", ["4", "6"], tmp_path, timeout=5)
    assert lease is not None and (lease.index, lease.device_id, lease.count) == (1, "6", 2)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"  # the job now sees only its own GPU
    lease.release()
    held.release()


def test_visible_devices_on_a_cpu_build_is_empty(monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert gpu_lease.visible_devices() == []


@pytest.fixture
def audio_npz(tmp_path) -> Path:
    raw = tmp_path / "raw"
    assert main(["download", "--dataset", "demo_chirp", "--dest", str(raw)]) == 0
    out = tmp_path / "chirp.npz"
    spec = json.dumps({"task": "audio", "prepare": {"max_seconds": 0.05}})
    argv = ["prepare", "--task", "audio", "--dataset", "demo_chirp", "--raw", str(raw)]
    assert main([*argv, "--spec", spec, "--out", str(out)]) == 0
    return out


def train_argv(data: Path, out: Path, device: str) -> list[str]:
    hparams = {"steps": 3, "lr": 1e-3, "input_scale": 100.0, "device": device, "log_every": 1}
    return [
        "train",
        "--task",
        "audio",
        "--dataset",
        "demo_chirp",
        "--model",
        "mfn-fourier-1L8D",
        "--data",
        str(data),
        "--hparams",
        json.dumps(hparams),
        "--out",
        str(out),
        "--no-progress",
    ]


def test_train_command_leases_a_free_device_and_logs_it(
    monkeypatch, tmp_path, audio_npz, caplog, holders
):
    locks = tmp_path / "locks"
    monkeypatch.setenv(gpu_lease.LOCK_DIR_ENV, str(locks))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    # Pretend three GPUs (this machine may have none; with no CUDA, `auto` still trains on CPU).
    monkeypatch.setattr(gpu_lease, "visible_devices", lambda: ["0", "1", "2"])
    other = start_holder(["0", "1", "2"], locks)  # another job already holds device 0
    holders.append(other)
    assert read_lease(other) == (0, "0")

    caplog.set_level(logging.INFO)
    assert main(train_argv(audio_npz, tmp_path / "run", "auto")) == 0
    assert (tmp_path / "run" / "model.pt").is_file()
    assert "leased GPU index 1 of 3 visible (CUDA_VISIBLE_DEVICES entry 1" in caplog.text
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    # Released when the command returned: devices 1 and 2 are free, 0 is still held.
    free = gpu_lease.try_acquire(["0", "1", "2"], locks)
    assert free is not None and free.index == 1
    free.release()


def test_train_command_on_cpu_takes_no_lease(monkeypatch, tmp_path, audio_npz, caplog):
    locks = tmp_path / "locks"
    monkeypatch.setenv(gpu_lease.LOCK_DIR_ENV, str(locks))
    monkeypatch.setattr(gpu_lease, "visible_devices", lambda: ["0", "1"])
    caplog.set_level(logging.INFO)
    assert main(train_argv(audio_npz, tmp_path / "run", "cpu")) == 0
    assert "leased GPU" not in caplog.text
    assert not locks.exists()
