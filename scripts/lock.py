"""`make lock`: exact versions and hashes of the environment, for Linux x86_64 and Python 3.11.

Resolves pyproject.toml's dependencies, its `dev` extra and requirements/build.in with uv and writes

- requirements/lock.txt: every package except torch (runtime, tests, lint, the workflow, pip and
  setuptools), with the hashes of their files on PyPI;
- requirements/torch-cpu.txt: torch==X+cpu, PyTorch's CPU-only wheel (not on PyPI: it comes from
  ``--torch-cpu-links``, PyTorch's CPU index by default);
- requirements/torch-cuda.txt: PyPI's torch==X and the CUDA libraries it pulls in, resolved against
  lock.txt so that both variants share every other pin;
- envs/implicit2.yaml: the same pins of the runtime dependencies (with the CUDA torch) for
  ``snakemake --sdm conda``.

`make setup` installs lock.txt plus one torch file with ``--require-hashes --no-deps``. Needs uv (in
the `dev` extra) and network access to PyPI and to the CPU wheel's location.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
LOCK = REQUIREMENTS / "lock.txt"
TORCH_CPU = REQUIREMENTS / "torch-cpu.txt"
TORCH_CUDA = REQUIREMENTS / "torch-cuda.txt"
CONDA_ENV = ROOT / "envs" / "implicit2.yaml"
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
PYPI = "https://pypi.org/simple"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu/torch/"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")

CONDA_HEADER = """\
# Conda environment of every job rule (`snakemake --sdm conda`). Written by `make lock`
# (scripts/lock.py): pyproject.toml's runtime dependencies at the versions that
# requirements/lock.txt and requirements/torch-cuda.txt pin (`make setup TORCH=cuda`), with PyPI's
# torch (CUDA libraries included; it also runs on CPU). Test and lint tools are left out. Jobs
# import the implicit2 library from this checkout's src/ (the Snakefile puts it on PYTHONPATH), so
# the package itself is not installed here. Do not edit by hand: change pyproject.toml, then
# run `make lock`.
name: implicit2
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python={python}
  - pip
  - pip:
"""


def pins(path: Path) -> dict[str, str]:
    """The ``name==version`` pins of a requirements file (names lower-case, ``_`` as ``-``)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def torch_pin(pyproject: Path) -> str:
    """The version in pyproject.toml's ``torch==X`` requirement."""
    match = re.search(r'"torch==([^"\s;]+)"', pyproject.read_text(encoding="utf-8"))
    if match is None:
        raise SystemExit(f"{pyproject}: no exact `torch==X` dependency; the lock expects one")
    return match.group(1)


def uv(*args: str) -> None:
    """Run ``uv pip compile`` with the lock's platform, Python and index."""
    command = [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        "--quiet",
        "--generate-hashes",
        "--python-version",
        PYTHON_VERSION,
        "--python-platform",
        PLATFORM,
        "--no-config",
        "--index-url",
        PYPI,
        "--custom-compile-command",
        "make lock",
        *args,
    ]
    try:
        subprocess.run(command, cwd=ROOT, check=True)
    except FileNotFoundError as error:  # pragma: no cover - the interpreter itself is missing
        raise SystemExit(f"cannot run {sys.executable}: {error}") from None
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"uv pip compile failed (exit {error.returncode}): {command}") from None


def write_conda_env(runtime: dict[str, str]) -> None:
    """envs/implicit2.yaml listing the ``runtime`` pins (name -> version)."""
    lines = [CONDA_HEADER.format(python=PYTHON_VERSION)]
    lines += [f"      - {name}=={version}\n" for name, version in sorted(runtime.items())]
    CONDA_ENV.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--torch-cpu-links",
        nargs="+",
        default=os.environ.get("PIP_FIND_LINKS", TORCH_CPU_INDEX).split(),
        help="where the CPU torch wheel lies (find-links pages or folders; default: "
        f"$PIP_FIND_LINKS, else {TORCH_CPU_INDEX})",
    )
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="take the newest allowed versions (default: keep the pins that still fit)",
    )
    args = parser.parse_args(argv)
    try:
        import uv as _uv  # noqa: F401
    except ImportError:
        raise SystemExit(
            f"uv is not installed for {sys.executable}: run `make setup` (uv is in the dev extra) "
            "or `pip install uv`"
        ) from None
    version = torch_pin(ROOT / "pyproject.toml")
    upgrade = ["--upgrade"] if args.upgrade else []
    links = [arg for link in args.torch_cpu_links for arg in ("--find-links", link)]
    with tempfile.TemporaryDirectory() as scratch:
        cpu = Path(scratch) / "torch-cpu.in"
        cpu.write_text(f"torch=={version}+cpu\n", encoding="utf-8")
        # One resolution with the CPU torch; torch's own line goes to torch-cpu.txt.
        inputs = ["pyproject.toml", "requirements/build.in", "--extra", "dev"]
        uv(
            *inputs,
            *links,
            *upgrade,
            "--override",
            str(cpu),
            "--no-emit-package",
            "torch",
            "-o",
            "requirements/lock.txt",
        )
        # torch alone (uv writes no hashes with --no-deps, so its dependencies are resolved against
        # lock.txt and left out).
        skip = [arg for name in pins(LOCK) for arg in ("--no-emit-package", name)]
        uv(
            str(cpu),
            *links,
            "-c",
            "requirements/lock.txt",
            *skip,
            "--no-annotate",
            "-o",
            "requirements/torch-cpu.txt",
        )
        # PyPI's torch against the same pins: only what it adds goes to torch-cuda.txt.
        uv(
            *inputs,
            *upgrade,
            "-c",
            "requirements/lock.txt",
            *skip,
            "-o",
            "requirements/torch-cuda.txt",
        )
    for path, expected in ((TORCH_CPU, f"{version}+cpu"), (TORCH_CUDA, version)):
        if pins(path).get("torch") != expected:
            raise SystemExit(f"{path}: expected torch=={expected}, found {pins(path).get('torch')}")
        # The jobs need only the runtime dependencies (no test or lint tools): their closure.
        runtime = Path(scratch) / "runtime.txt"
        uv(
            "pyproject.toml",
            "-c",
            "requirements/lock.txt",
            "-c",
            "requirements/torch-cuda.txt",
            "--no-annotate",
            "--no-header",
            "-o",
            str(runtime),
        )
        write_conda_env(pins(runtime))
    print(f"wrote {LOCK}, {TORCH_CPU}, {TORCH_CUDA} and {CONDA_ENV}")


if __name__ == "__main__":
    main()
