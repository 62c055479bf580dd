"""The job environment (envs/implicit2.yaml) lists the same runtime dependencies as pyproject."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement.split("#")[0]).lower().replace("_", "-")


def test_conda_environment_matches_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    environment = yaml.safe_load((ROOT / "envs" / "implicit2.yaml").read_text(encoding="utf-8"))
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert sorted(map(_normalise, pip)) == sorted(map(_normalise, project["dependencies"]))
