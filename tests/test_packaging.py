"""The locked environment (requirements/), the conda environment, the version, the licence and
citation files, and what provenance records about them."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import implicit2
from implicit2.training import provenance

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
LOCK = REQUIREMENTS / "lock.txt"
TORCH_FILES = {"cpu": REQUIREMENTS / "torch-cpu.txt", "cuda": REQUIREMENTS / "torch-cuda.txt"}
#: The environment markers of the platform the lock is resolved for (scripts/lock.py): CPython 3.11
#: (from 3.11.0 on) on Linux x86_64.
LOCKED_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, sha256 hashes)} of a requirements file as uv writes it."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    entries: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
            entries[canonicalize_name(match[1])] = (match[2], hashes)
    return entries


def pins(*paths: Path) -> dict[str, str]:
    return {name: version for path in paths for name, (version, _) in read_lock(path).items()}


def project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def unsatisfied(requirements: list[str], pinned: dict[str, str], extra: str = "") -> list[str]:
    """The requirements that apply on the locked platform and that ``pinned`` does not meet."""
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        markers = {**LOCKED_MARKERS, "extra": extra}
        if requirement.marker and not requirement.marker.evaluate(markers):
            continue
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{text}: not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{text}: the lock pins {version}")
    return problems


# ---- the lock against pyproject.toml ----------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(TORCH_FILES))
def test_the_lock_satisfies_pyproject(variant):
    """Every runtime and `dev` requirement of pyproject.toml is pinned to a version it allows,
    with either torch file. After editing pyproject.toml's dependencies, run `make lock`."""
    spec = project()
    pinned = pins(LOCK, TORCH_FILES[variant])
    problems = unsatisfied(spec["dependencies"], pinned)
    problems += unsatisfied(spec["optional-dependencies"]["dev"], pinned, extra="dev")
    assert problems == [], f"run `make lock`: {problems}"


def test_unsatisfied_names_what_the_lock_does_not_meet():
    pinned = {"numpy": "2.4.6", "embreex": "4.4.0.post1"}
    requirements = [
        "numpy>=999",
        "no-such-package>=1",
        "numpy>=1.26",
        "embreex>=9; platform_machine == 'aarch64'",  # not for the locked platform
        "embreex>=9; extra == 'dev'",
    ]
    assert unsatisfied(requirements, pinned) == [
        "numpy>=999: the lock pins 2.4.6",
        "no-such-package>=1: not in the lock",
    ]
    assert unsatisfied(requirements[-1:], pinned, extra="dev") == [
        "embreex>=9; extra == 'dev': the lock pins 4.4.0.post1"
    ]


def test_every_pin_has_hashes_and_torch_lives_in_its_own_files():
    lock = read_lock(LOCK)
    assert len(lock) > 50 and "torch" not in lock
    version = next(r for r in project()["dependencies"] if r.startswith("torch=="))[7:]
    for path in (LOCK, *TORCH_FILES.values()):
        for name, (_, hashes) in read_lock(path).items():
            assert hashes, f"{path}: {name} has no hash (pip --require-hashes would refuse it)"
    cpu, cuda = read_lock(TORCH_FILES["cpu"]), read_lock(TORCH_FILES["cuda"])
    assert list(cpu) == ["torch"] and cpu["torch"][0] == f"{version}+cpu"
    assert cuda["torch"][0] == version and any(name.startswith("nvidia-") for name in cuda)
    assert not set(lock) & set(cuda), "torch-cuda.txt repeats pins of lock.txt"


def test_the_installed_environment_is_the_lock():
    """In the venv `make setup` made, every locked package is installed at its pinned version."""
    stamps = sorted(Path(sys.prefix).glob(".installed-*"))
    if not stamps:
        pytest.skip(f"{sys.prefix} was not set up by `make setup` from the lock")
    variant = stamps[0].name.removeprefix(".installed-")
    wrong = {}
    for name, version in pins(LOCK, TORCH_FILES[variant]).items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (installed, version)
    assert wrong == {}, f"installed vs locked (run `make setup`): {wrong}"


def test_the_conda_environment_pins_the_lock():
    """envs/implicit2.yaml (``--sdm conda``) lists the runtime dependencies at the lock's versions
    with PyPI's torch; `make lock` writes it."""
    environment = yaml.safe_load((ROOT / "envs" / "implicit2.yaml").read_text(encoding="utf-8"))
    assert "python=3.11" in environment["dependencies"]
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    listed = dict(line.split("==") for line in pip)
    locked = pins(LOCK, TORCH_FILES["cuda"])
    assert {name: locked.get(name) for name in listed} == listed
    assert unsatisfied(project()["dependencies"], listed) == []
    assert "pytest" not in listed and "snakemake" not in listed  # jobs need no test tools


# ---- the set-up refuses what the lock is not for ---------------------------------------------


def _setup_module():
    spec = importlib.util.spec_from_file_location("setup_env", ROOT / "scripts" / "setup_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("found", "message"),
    [
        (((3, 12), "3.12.1", "Linux", "x86_64"), r"is for Python 3\.11; .* PYTHON=python3\.11"),
        (((3, 11), "3.11.7", "Darwin", "arm64"), r"is for Linux x86_64; this is Darwin arm64"),
    ],
)
def test_setup_names_the_interpreter_the_lock_needs(monkeypatch, tmp_path, found, message):
    setup_env = _setup_module()
    monkeypatch.setattr(setup_env, "describe", lambda python: found)
    with pytest.raises(SystemExit, match=message):
        setup_env.check_interpreter("python3", tmp_path / ".venv")
    bookworm = ((3, 11), "3.11.2", "Linux", "x86_64")
    monkeypatch.setattr(setup_env, "describe", lambda python: bookworm)
    setup_env.check_interpreter("python3", tmp_path / ".venv")  # accepted


def test_make_refuses_an_unknown_torch_build():
    if subprocess.run(["make", "--version"], capture_output=True).returncode != 0:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", "setup", "TORCH=gpu"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "TORCH=gpu is not a torch build of the lock: use TORCH=cpu" in result.stderr


# ---- version, licence, citation, provenance ---------------------------------------------------


def test_the_version_is_defined_once_in_pyproject():
    version = project()["version"]
    assert implicit2.__version__ == version
    assert f"## [{version}] - " in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(citation["version"]) == version and citation["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_the_citation_names_the_reproduced_paper():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    paper = next(ref for ref in citation["references"] if ref["type"] == "conference-paper")
    assert [a["family-names"] for a in paper["authors"]] == ["Huang", "Bai", "Kolter"]
    assert paper["year"] == 2021 and "NeurIPS 2021" in paper["collection-title"]
    assert "Implicit Layers for Implicit Representations" in paper["title"]


def test_provenance_records_the_version_and_the_lock(tmp_path):
    record = provenance.collect(torch.device("cpu"), provenance.now(), {})
    assert record["version"] == project()["version"]
    for name in provenance.LOCK_FILES:
        digest = hashlib.sha256((REQUIREMENTS / name).read_bytes()).hexdigest()
        assert record["lock"][f"requirements/{name}"] == digest
    assert set(provenance.lock_hashes(tmp_path).values()) == {None}  # no lock beside a wheel
