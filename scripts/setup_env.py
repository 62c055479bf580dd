"""`make setup`: the project's virtual environment, installed from the lock with hashes required.

1. checks that the interpreter is one the lock is for (CPython 3.11 on Linux x86_64);
2. creates the venv; installs requirements/lock.txt, then requirements/torch-{cpu,cuda}.txt, both
   with ``--require-hashes --no-deps`` (the lock is complete, so nothing else is pulled in);
3. installs the package itself, editable, without dependencies or build isolation (its build
   backend, setuptools, is in the lock); runs ``pip check``; writes the stamps Make reads.

Run by the base interpreter, so it uses the standard library only.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
#: (major, minor), system and machine the lock was resolved for (scripts/lock.py).
LOCKED_PYTHON = (3, 11)
LOCKED_PLATFORM = ("Linux", "x86_64")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
UNLOCKED = "pip install torch==2.13.0 -e '.[dev]'"


class SetupError(SystemExit):
    """A set-up step failed; the message says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(f"make setup: {message}")


def describe(python: Path | str) -> tuple[tuple[int, int], str, str, str]:
    """(major, minor), full version, system and machine of an interpreter."""
    probe = "import platform as p, sys; print(*sys.version_info[:3], p.system(), p.machine())"
    fields = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    return (int(fields[0]), int(fields[1])), ".".join(fields[:3]), fields[3], fields[4]


def check_interpreter(python: Path | str, venv: Path) -> None:
    """Refuse an interpreter or platform the lock was not made for, naming the fix."""
    (major_minor, full, system, machine) = describe(python)
    if (system, machine) != LOCKED_PLATFORM:
        raise SetupError(
            f"requirements/lock.txt is for Linux x86_64; this is {system} {machine}. "
            f"Install without the lock instead: `python3 -m venv {venv} && {venv}/bin/{UNLOCKED}`"
        )
    if major_minor != LOCKED_PYTHON:
        where = (
            f"the existing {venv} was made with Python {full}: remove it (`rm -rf {venv}`) and "
            "run `make setup PYTHON=python3.11`"
            if Path(python) == venv / "bin" / "python"
            else f"{python} is Python {full}: run `make setup PYTHON=python3.11` (install Python "
            "3.11 first, e.g. `apt-get install python3.11-venv`, pyenv or conda)"
        )
        raise SetupError(f"requirements/lock.txt is for Python 3.11; {where}")


def pip(python: Path, *args: str) -> int:
    """Run pip of the venv; the exit status."""
    command = [str(python), "-m", "pip", *args]
    print("+", shlex.join(command), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


def installed_torch(python: Path) -> str | None:
    """The torch version in the venv, None when absent."""
    probe = "import importlib.metadata as m; print(m.version('torch'))"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def locked_torch(variant: str) -> str:
    """The torch version that requirements/torch-{variant}.txt pins."""
    for line in (REQUIREMENTS / f"torch-{variant}.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("torch=="):
            return line.split("==", 1)[1].split()[0]
    raise SetupError(f"requirements/torch-{variant}.txt pins no torch; run `make lock`")


def install_torch(python: Path, variant: str, extra: list[str]) -> None:
    """Install the torch variant with hashes required; for the CPU wheel, which is not on PyPI,
    retry with PyTorch's CPU index when no source was given."""
    wanted = locked_torch(variant)
    have = installed_torch(python)
    if have is not None and have != wanted:
        # pip counts 2.13.0+cpu as satisfying torch==2.13.0 (and keeps it): swap explicitly.
        pip(python, "uninstall", "--yes", "--quiet", "torch")
    lock = ["install", "--quiet", "--require-hashes", "--no-deps"]
    lock += ["-r", f"requirements/torch-{variant}.txt"]
    if pip(python, *lock, *extra) == 0:
        return
    if variant == "cpu" and not extra:
        print(f"torch=={wanted} not found where pip looks; retrying with {TORCH_CPU_INDEX}")
        if pip(python, *lock, "--extra-index-url", TORCH_CPU_INDEX) == 0:
            return
    raise SetupError(
        f"could not install torch=={wanted} from requirements/torch-{variant}.txt (see pip's error "
        "above). The CPU build comes from PyTorch's CPU index: point pip at a copy with "
        f"TORCH_PIP_ARGS='--find-links DIR' or '--extra-index-url URL'; or take PyPI's CUDA build "
        "with `make setup TORCH=cuda`. A hash mismatch means that file differs from the one "
        "locked: run `make lock` where the right one is reachable."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv")
    parser.add_argument("--torch", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--torch-pip-args", default="", help="extra pip arguments for torch")
    args = parser.parse_args(argv)
    venv = args.venv if args.venv.is_absolute() else ROOT / args.venv
    python = venv / "bin" / "python"

    check_interpreter(sys.executable if not python.exists() else python, venv)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for stamp in venv.glob(".installed*"):
        stamp.unlink()
    locked = ("install", "--quiet", "--require-hashes", "--no-deps", "-r", "requirements/lock.txt")
    if pip(python, *locked):
        raise SetupError(
            "installing requirements/lock.txt failed (see pip's error above); a hash mismatch "
            "means PyPI served another file than the one locked: run `make lock`"
        )
    install_torch(python, args.torch, shlex.split(args.torch_pip_args))
    if pip(python, "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", "."):
        raise SetupError("installing the implicit2 package failed (see pip's error above)")
    if pip(python, "check"):
        raise SetupError(
            "`pip check` found a requirement the lock does not satisfy: run `make lock`, then "
            "`make setup`"
        )
    (venv / ".torch").write_text(f"{args.torch}\n", encoding="utf-8")
    (venv / f".installed-{args.torch}").write_text(
        f"requirements/lock.txt + requirements/torch-{args.torch}.txt\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
