"""Which Python runs the jobs: Snakemake's own when it has the project's dependencies (so the
venv's snakemake works without activating the venv), else one clear error before any job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config" / "demo.yaml"
TARGET = "resources/raw/demo_chirp/manifest.json"
#: A PATH without this environment's bin/ (the venv is not activated).
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Runs Snakemake in this interpreter with torch hidden, as from an environment without it.
WITHOUT_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoTorch())
from snakemake.cli import main
sys.argv[0] = "snakemake"
main()
"""


def run(command: list[str], workdir: Path, path: str) -> subprocess.CompletedProcess[str]:
    command += ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    command += ["--configfile", str(DEMO), "--cores", "1", TARGET]
    environment = {"PATH": path, "HOME": str(workdir), "LANG": "C.UTF-8"}
    return subprocess.run(
        command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=300
    )


def test_the_venv_snakemake_runs_jobs_without_an_activated_venv(tmp_path):
    snakemake = Path(sys.executable).parent / "snakemake"
    if not snakemake.is_file():
        pytest.skip(f"no snakemake script beside {sys.executable}")
    result = run([str(snakemake)], tmp_path, SYSTEM_PATH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / TARGET).is_file()


def test_no_python_with_torch_stops_before_any_job(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")  # a Python without torch
    (fake / "python").chmod(0o755)
    result = run([sys.executable, "-c", WITHOUT_TORCH], tmp_path, f"{fake}:{SYSTEM_PATH}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"nor the `python` on PATH ({fake / 'python'}) has torch" in output
    assert "run the project's `.venv/bin/snakemake` (after `make setup`)" in output
    assert not (tmp_path / "resources").exists() and not (tmp_path / "logs").exists()
