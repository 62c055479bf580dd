"""The SLURM profile on a real single-node SLURM cluster started on localhost by the tests.

Needs root and Debian's `munge slurmctld slurmd slurm-client` (installed with apt-get when
absent; the tests are skipped with the reason where that is impossible). The cluster's state,
spool, sockets and logs live in a temporary folder, and everything the fixture started is stopped
at the end, also when a test fails. The node declares two fake GPUs (gres.conf points them at
/dev/null and /dev/zero), so `sbatch --gpus=1` is accepted on a machine without GPUs, and
belongs to two partitions: `debug` (the GPU partition) and `cpu` (the CPU partition of the jobs
that need no GPU). The profile is used as shipped except for its partition and account
placeholders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
DEMO = REPO / "config" / "demo.yaml"
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]
PROGRAMS = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo"]
SBIN = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", "/sbin"])

# The failing-once run and the run cancelled with scancel.
FLAKY_RUN = "results/runs/audio/demo_chirp/deq-fourier-1L16D/seed0"
LONG_RUN = "results/runs/audio/demo_chirp/mfn-fourier-1L16D/seed1"


def which(program: str) -> str | None:
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", ""), SBIN]))


def ensure_slurm_installed() -> None:
    """Install SLURM and MUNGE from Debian when a program is missing (root and apt only)."""
    missing = [program for program in PROGRAMS if which(program) is None]
    if not missing:
        return
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        pytest.skip(
            f"SLURM programs {missing} are missing and cannot be installed here (needs root and "
            f"apt-get): apt-get install {' '.join(PACKAGES)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in ([apt, "update", "-q"], [apt, "install", "-y", "-q", *PACKAGES]):
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=900, check=False
        )
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-3000:]}"
    still = [program for program in PROGRAMS if which(program) is None]
    assert not still, f"installed {PACKAGES} but {still} are still missing"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A running single-node cluster: its config file and the environment to reach it."""

    root: Path
    conf: Path
    env: dict[str, str]

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command), capture_output=True, text=True, env=self.env, timeout=60, check=check
        )

    def jobs(self) -> list[dict[str, str]]:
        """Every job SLURM still knows (finished ones stay for MinJobAge = 600 s)."""
        fields = {
            "id": "JobID",
            "partition": "Partition",
            "memory": "MinMemory",
            "limit": "TimeLimit",
            "state": "State",
            "comment": "Comment",
            "gres": "tres-per-job",
            "alloc": "tres-alloc",
        }
        spec = ",".join(f"{field}:300|" for field in fields.values())
        output = self.run("squeue", "--states=all", "--noheader", f"--Format={spec}").stdout
        return [
            dict(zip(fields, (part.strip() for part in line.split("|")[:-1]), strict=True))
            for line in output.splitlines()
        ]

    def log_tail(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-30:]))
        return "\n".join(parts)


def slurm_conf(root: Path, host: str, munge_socket: Path) -> str:
    return f"""\
ClusterName=implicit2test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# The node may claim more CPUs than the machine has (the profile asks 4 CPUs per GPU).
SlurmdParameters=config_overrides
GresTypes=gpu
MinJobAge=600
KillWait=10
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=ALL MaxTime=INFINITE State=UP
"""


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    ensure_slurm_installed()
    if os.geteuid() != 0:
        pytest.skip("starting slurmd needs root")
    # snakemake-executor-plugin-slurm-jobstep drops SLURM_CONF from the environment of the srun
    # it runs inside each job, so srun reads the default path: link it to this cluster's config
    # for the tests' duration (only where the machine has no SLURM config of its own).
    system_conf = Path("/etc/slurm/slurm.conf")
    if system_conf.is_symlink() and not system_conf.exists():
        system_conf.unlink()  # left dangling by an earlier test session that was killed
    if system_conf.exists():
        pytest.skip(f"{system_conf} exists: this machine has its own SLURM set-up")
    root = tmp_path_factory.mktemp("slurm")
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    host = socket.gethostname().split(".")[0]
    # munged wants every folder above its socket open to all (pytest's tmp folders are not).
    socket_dir = Path(tempfile.mkdtemp(prefix="implicit2-munge-"))
    socket_dir.chmod(0o755)
    munge_socket = socket_dir / "munge.socket"
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, host, munge_socket), encoding="utf-8")
    (root / "gres.conf").write_text("Name=gpu File=/dev/null\nName=gpu File=/dev/zero\n")
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    env = dict(os.environ, SLURM_CONF=str(conf))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"], SBIN])

    started: list[subprocess.Popen] = []

    def start(*command: str, log: str) -> None:
        with open(root / log, "ab") as out:
            started.append(
                subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=env)
            )

    handle = Cluster(root, conf, env)
    try:
        system_conf.parent.mkdir(parents=True, exist_ok=True)
        system_conf.symlink_to(conf)
        munge = [f"--socket={munge_socket}", f"--key-file={key}"]
        munge += [f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed"]
        start(which("munged"), "--foreground", *munge, f"--log-file={root}/munged.log", log="m")
        deadline = time.monotonic() + 20
        while not munge_socket.exists():
            assert started[0].poll() is None, (root / "m").read_text()
            assert time.monotonic() < deadline, "munged did not create its socket"
            time.sleep(0.2)
        # The config comes from $SLURM_CONF (not -f): slurmd passes it on to the jobs' srun.
        start(which("slurmctld"), "-D", "-i", log="slurmctld.out")
        start(which("slurmd"), "-D", log="slurmd.out")
        deadline = time.monotonic() + 60
        while True:
            state = handle.run("sinfo", "--noheader", "--format=%t", check=False).stdout.strip()
            if state == "idle":
                break
            for process in started:
                assert process.poll() is None, f"{process.args[0]} exited\n{handle.log_tail()}"
            assert time.monotonic() < deadline, f"node state {state!r}\n{handle.log_tail()}"
            time.sleep(0.5)
        yield handle
    finally:
        if len(started) == 3 and started[1].poll() is None:
            handle.run("scancel", "--user", str(os.getuid()), check=False)
            time.sleep(1)
        for process in reversed(started):
            stop_process(process)
        shutil.rmtree(socket_dir, ignore_errors=True)
        if system_conf.is_symlink() and system_conf.readlink() == conf:
            system_conf.unlink()


# ---- the profile without a cluster ----------------------------------------------------------


def test_profile_entries_are_commented_and_placeholders_are_marked():
    lines = PROFILE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        key = re.match(r"(\s*)([\w-]+):", line)
        if key is None:
            continue
        commented = "#" in line or lines[number - 1].strip().startswith("#")
        nested_list = key[1] and not line.split(":", 1)[1].strip()  # a block like `train:`
        assert commented or nested_list, f"profiles/slurm/config.yaml:{number + 1} {line!r}"
    profile = yaml.safe_load("\n".join(lines))
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    assert profile["slurm-status-command"] == "squeue"
    assert profile["set-resources"]["train"]["gpu"] == 1
    assert profile["set-resources"]["prepare"]["slurm_partition"].startswith("CHANGE_ME")


@pytest.mark.parametrize("option", ["--profile", "--workflow-profile"])
def test_dry_run_through_the_profile_keeps_partition_account_gpu_cpus_and_walltime(
    tmp_path, option
):
    """Both ways of naming the profile give every job the profile's partitions and account (with
    `--profile`, Snakemake also loads profiles/default as the workflow profile: it must not
    replace them): preparation the CPU partition and no GPU, training and evaluation the GPU
    partition; a training job asks one GPU, 4 CPUs and the config's runtime."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "-n", "-p"]
    command += ["--directory", str(tmp_path), "--configfile", str(DEMO)]
    command += [option, str(PROFILE.parent), "--config", "tasks=[audio]"]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    if option == "--profile":
        assert "workflow specific profile" in output and "profiles/default" in output
    jobs = [line for line in output.splitlines() if "resources:" in line]
    assert len(jobs) > 16, output[-5000:]
    for line in jobs:
        assert "slurm_account=CHANGE_ME_account" in line, line
    prepare = [line for line in jobs if "slurm_partition=CHANGE_ME_cpu_partition" in line]
    assert len(prepare) == 1, output[-5000:]  # demo_chirp
    assert all("gpu=0" in line for line in prepare), prepare
    on_gpus = [line for line in jobs if line not in prepare]
    assert all("slurm_partition=CHANGE_ME_partition" in line for line in on_gpus), on_gpus
    train = [line for line in jobs if "gpu=1" in line]
    assert len(train) == 8, output[-5000:]  # demo_chirp x 8 models, all training jobs
    for line in train:
        assert "runtime=10" in line and "cpus_per_gpu=4" in line


# ---- the workflow ---------------------------------------------------------------------------


def tiny_config(audio_steps: int = 20) -> dict[str, Any]:
    """The demo, shrunk: two tasks, one DEQ and its explicit twin each, seconds per job."""
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config["tasks"] = ["image_representation", "audio"]
    config["only_datasets"] = ["camera", "demo_chirp"]
    config["models"] = {
        "families": ["deq", "mfn"],
        "filters": ["fourier"],
        "sizes": ["1L16D"],
        "baselines": [],
        "extra": [],
    }
    config["train"].update({"log_every": 5, "checkpoint_every": 10})
    config["task_settings"]["image_representation"]["train"]["steps"] = 20
    config["task_settings"]["audio"]["train"]["steps"] = audio_steps
    config["datasets"]["camera"]["prepare"] = {"size": 32}
    config["datasets"]["demo_chirp"]["prepare"] = {"max_seconds": 0.25}
    return config


def site_profile(folder: Path) -> Path:
    """The shipped profile with only the site placeholders replaced (the GPU and CPU partitions,
    no account)."""
    profile = yaml.safe_load(PROFILE.read_text(encoding="utf-8"))
    assert profile["default-resources"]["slurm_partition"].startswith("CHANGE_ME")
    assert profile["default-resources"]["slurm_account"].startswith("CHANGE_ME")
    assert profile["set-resources"]["prepare"]["slurm_partition"].startswith("CHANGE_ME")
    profile["default-resources"]["slurm_partition"] = "debug"
    profile["set-resources"]["prepare"]["slurm_partition"] = "cpu"
    del profile["default-resources"]["slurm_account"]
    profile["slurm-no-account"] = True
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    return folder


def plan_calibration(path: Path) -> Path:
    """A calibration file in which every job takes 10 minutes to start and 300 MB of memory,
    so that the plan's requests (2 x 10 min + compute, 2000 MB) differ from the config's."""
    from implicit2 import io as atomic
    from implicit2.pipeline.cost import KINDS, Calibration, KindCosts, MemoryCosts, UnitCosts

    step = UnitCosts(1e-3, 1e-9, 0.0)
    kinds = {
        kind: KindCosts(step, MemoryCosts(0.0, 0.0, 8.0, 0.0), step if "deq" in kind else None)
        for kind in KINDS
    }
    calibration = Calibration(
        "cpu", "test", 1, 0, 600.0, 0.5, UnitCosts(0.1, 0, 0), 3 * 10**8, kinds
    )
    atomic.write_json(path, calibration.to_dict())
    return path


def planned_requests(
    config: dict[str, Any], run: str, attempt: int, workdir: Path
) -> tuple[int, int]:
    """(minutes, MB) of the grouped train + evaluate submission of ``run`` at ``attempt``:
    Snakemake adds the walltimes of a group's jobs that run one after the other and takes the
    largest memory."""
    from implicit2.pipeline import plan as i2plan
    from implicit2.pipeline.config import validate
    from implicit2.pipeline.cost import load_calibration

    task, dataset, model, _seed = run.split("/")[2:]
    checked = validate(config)
    calibration = load_calibration(checked["plan"]["calibration"])
    minutes, memory = 0, 0
    for rule in ("train", "evaluate"):
        prediction = i2plan.predict_job(checked, calibration, rule, task, dataset, model, workdir)
        first = i2plan.first_request(checked["plan"], prediction)
        request = i2plan.attempt_request(checked["plan"], first, attempt)
        minutes, memory = minutes + request["runtime"], max(memory, request["mem_mb"])
    return minutes, memory


def snakemake_command(workdir: Path, config: dict[str, Any], *args: str) -> list[str]:
    """The workflow through the SLURM profile given as `--profile` (so that Snakemake also loads
    profiles/default as the workflow profile), status checks from 2 s instead of 40 s."""
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    profile = workdir / "profile"
    if not profile.exists():
        site_profile(profile)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    command += ["--directory", str(workdir), "--configfile", str(configfile)]
    command += ["--profile", str(profile)]
    return [*command, "--slurm-init-seconds-before-status-checks", "2", *args]


def snakemake(
    cluster: Cluster,
    workdir: Path,
    config: dict[str, Any],
    *args: str,
    pythonpath: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = dict(cluster.env)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        snakemake_command(workdir, config, *args),
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=900,
        check=False,
    )


def training_failing_once(folder: Path, run: str) -> Path:
    """A ``sitecustomize`` in ``folder`` that makes the first training of ``run`` fail at start-up
    (as a crashed job would), whichever interpreter runs it: sbatch exports PYTHONPATH to the job
    and the workflow's shell prefix keeps it."""
    folder.mkdir()
    marker = folder / "failed-once"
    (folder / "sitecustomize.py").write_text(
        "import os, sys\n"
        "command = ' '.join(sys.orig_argv)\n"
        f"if 'implicit2 train ' in command and '--out {run}' in command:\n"
        "    try:\n"
        f"        os.mkdir({str(marker)!r})\n"
        "    except FileExistsError:\n"
        "        pass\n"
        "    else:\n"
        "        print('injected failure', file=sys.stderr, flush=True)\n"
        "        os._exit(7)\n",
        encoding="utf-8",
    )
    return marker


@dataclass
class TinyRun:
    """The tiny workflow run once through SLURM, with one training failing on its first try."""

    workdir: Path
    config: dict[str, Any]
    returncode: int
    output: str
    marker: Path
    jobs: list[dict[str, str]]  # the SLURM jobs it submitted


@pytest.fixture(scope="module")
def tiny_run(cluster, tmp_path_factory) -> TinyRun:
    root = tmp_path_factory.mktemp("tiny")
    workdir = root / "work"
    workdir.mkdir()
    marker = training_failing_once(root / "inject", FLAKY_RUN)
    already = {job["id"] for job in cluster.jobs()}
    config = tiny_config()
    config["plan"] = {"calibration": str(plan_calibration(root / "calibration.json"))}
    result = snakemake(
        cluster, workdir, config, "results/tables/paper.tex", pythonpath=str(root / "inject")
    )
    jobs = [job for job in cluster.jobs() if job["id"] not in already]
    return TinyRun(workdir, config, result.returncode, result.stdout + result.stderr, marker, jobs)


@pytest.mark.slow
def test_tiny_workflow_runs_on_slurm_grouped_and_sized_by_the_plan(cluster, tiny_run):
    """Through `--profile`: preparation in the CPU partition without a GPU, the runs in the GPU
    partition; each run's train and evaluate jobs as one submission sized by the plan; a failed
    group retried with twice the walltime and memory, its training log keeping the failed
    attempt."""
    workdir, output, marker = tiny_run.workdir, tiny_run.output, tiny_run.marker
    assert tiny_run.returncode == 0, output[-8000:] + cluster.log_tail()

    paper = (workdir / "results" / "tables" / "paper.tex").read_text(encoding="utf-8")
    assert "\\begin{table" in paper or "\\begin{document}" in paper
    runs = sorted((workdir / "results" / "runs").glob("*/*/*/seed0/metrics.json"))
    assert len(runs) == 4
    for path in runs:
        assert json.loads(path.read_text(encoding="utf-8"))["status"] in ("ok", "diverged")

    # The injected failure happened on the cluster, Snakemake saw it and retried the group.
    assert marker.is_dir()
    assert "Error in group run" in output, output[-8000:]

    jobs = tiny_run.jobs
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        rule = re.match(r"rule_(prepare|run_evaluate_train)(_wildcards|$)", job["comment"])
        assert rule, job
        by_rule.setdefault(rule[1], []).append(job)
    # fetch, download, table(s) and paper are local rules: prepare and the run groups went to
    # SLURM.
    assert sorted(by_rule) == ["prepare", "run_evaluate_train"], jobs
    assert len(by_rule["prepare"]) == 2
    assert all(job["state"] == "COMPLETED" for job in by_rule["prepare"])
    assert all(job["gres"] == "N/A" for job in by_rule["prepare"])
    assert all(job["partition"] == "cpu" for job in by_rule["prepare"]), jobs
    groups = by_rule["run_evaluate_train"]
    assert all(job["partition"] == "debug" for job in groups), jobs
    assert len(groups) == 5, groups  # 4 runs, one of them twice
    assert sum(job["state"] == "FAILED" for job in groups) == 1
    assert sum(job["state"] == "COMPLETED" for job in groups) == 4
    # One GPU with 4 CPUs (the profile); walltime and memory from the plan, x2 on the retry.
    for job in groups:
        assert job["gres"] == "gres:gpu:1" and "cpu=4," in job["alloc"], job
    runs_of = [path.parent.relative_to(workdir).as_posix() for path in runs]
    expected = [planned_requests(tiny_run.config, run, 1, workdir) for run in runs_of]
    expected.append(planned_requests(tiny_run.config, FLAKY_RUN, 2, workdir))
    measured = [(_minutes(job["limit"]), _megabytes(job["memory"])) for job in groups]
    assert sorted(measured) == sorted(expected), (measured, expected)
    assert all(minutes > 20 for minutes, _ in expected)  # not the config's 10 min per job
    failed = next(job for job in groups if job["state"] == "FAILED")
    first = planned_requests(tiny_run.config, FLAKY_RUN, 1, workdir)
    assert (_minutes(failed["limit"]), _megabytes(failed["memory"])) == first

    # Snakemake deletes a job's log before each attempt; the attempts log beside it keeps every
    # attempt: the injected failure, then the finished run (which the job's log holds alone).
    log = (workdir / "logs" / "train" / FLAKY_RUN.split("/", 2)[2]).with_suffix(".log")
    history = log.with_suffix(".attempts.log").read_text(encoding="utf-8")
    assert history.count("=== train attempt started") == 2, history
    assert history.index("injected failure") < history.rindex("=== train attempt started")
    assert history.rstrip().endswith(log.read_text(encoding="utf-8").rstrip())
    assert "injected failure" not in log.read_text(encoding="utf-8")


def _minutes(limit: str) -> int:
    """SLURM's TimeLimit ([D-]HH:MM:SS or MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + (seconds > 0)


def _megabytes(memory: str) -> int:
    """SLURM's MinMemory (e.g. 2000M, 4G) in MB."""
    value, unit = float(memory[:-1]), memory[-1].upper()
    return round(value * {"M": 1, "G": 1024, "T": 1024**2}[unit])


@pytest.mark.slow
def test_cancelled_training_is_reported_and_a_rerun_resumes_from_its_checkpoint(
    cluster, tiny_run, tmp_path
):
    # In the tiny run's folder (its data is prepared): a new seed with a longer training.
    workdir = tiny_run.workdir
    config = tiny_config(audio_steps=400)
    config["seeds"] = [1]
    config["train"]["checkpoint_every"] = 5
    already = {job["id"] for job in cluster.jobs()}
    target = f"{LONG_RUN}/model.pt"
    ckpt = workdir / LONG_RUN / "ckpt"

    # Start the run without retries, and cancel the training job once it has a checkpoint.
    command = snakemake_command(workdir, config, "--retries", "0", target)
    with open(tmp_path / "first.out", "w+") as out:
        first = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=cluster.env, cwd=workdir
        )
        try:
            deadline = time.monotonic() + 400
            while not list(ckpt.glob("*.pt")):
                assert first.poll() is None, "snakemake ended before a checkpoint was written"
                assert time.monotonic() < deadline, "no checkpoint within 400 s"
                time.sleep(0.1)
            running = [
                job
                for job in cluster.jobs()
                if job["state"] == "RUNNING" and job["comment"].startswith("rule_run_train")
            ]
            assert len(running) == 1, cluster.jobs()
            cluster.run("scancel", running[0]["id"])
            assert first.wait(timeout=300) != 0
        finally:
            if first.poll() is None:
                first.send_signal(signal.SIGINT)
                first.wait(timeout=60)
        out.seek(0)
        output = out.read()

    # Snakemake reports the cancelled job; its outputs are gone, its checkpoint is kept.
    job_id = running[0]["id"]
    assert "Error in group run" in output, output[-6000:]
    assert "Error in rule train" in output
    assert not (workdir / target).exists()
    saved = sorted(ckpt.glob("*.pt"))
    assert saved, "the checkpoint did not survive the cancelled job"
    log = workdir / "logs" / "train" / "audio" / "demo_chirp" / "mfn-fourier-1L16D" / "seed1.log"
    # scancel sends SIGTERM first: the job checkpointed and stopped on its own (exit 143).
    assert "received signal 15" in log.read_text(), log.read_text()
    step = max(int(path.stem.rsplit("step", 1)[1]) for path in saved)
    assert 0 < step < 400

    # The same command again: the training resumes from the checkpoint and the run completes.
    again = snakemake(cluster, workdir, config, target)
    assert again.returncode == 0, (again.stdout + again.stderr)[-8000:]
    record = json.loads((workdir / LONG_RUN / "train.json").read_text(encoding="utf-8"))
    resumed = record["provenance"]["resumed"]
    assert resumed == [{"first_signal": 0, "step": step}], resumed
    assert f"(step {resumed[0]['step']})" in log.read_text()
    assert record["steps"] == 400
    curve = (workdir / LONG_RUN / "curve.csv").read_text(encoding="utf-8").splitlines()
    steps = [int(line.split(",")[0]) for line in curve[1:]]
    assert steps == sorted(set(steps)) and steps[-1] >= 395  # one curve, no repeated steps
    # Only the two training jobs went to SLURM (the prepared data was reused).
    new = [job for job in cluster.jobs() if job["id"] not in already]
    assert sorted(job["state"] for job in new) == ["CANCELLED", "COMPLETED"], new
    assert next(job for job in new if job["id"] == job_id)["state"] == "CANCELLED"
    # The target needs no evaluation: each submission is the run's group with its training only.
    assert all(job["comment"].startswith("rule_run_train") for job in new), new
