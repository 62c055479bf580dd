"""The benchmark and device scripts in scripts/ stay in step with the library they call."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from implicit2.pipeline import config as i2config
from implicit2.pipeline import grid as config_grid
from implicit2.pipeline import run_settings as config_settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a script runs its imports (not its main): a name moved out of the library fails
    here instead of on a GPU machine. ``python scripts/X.py`` puts scripts/ on the path, so a
    script may import a sibling."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(f"script_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_device_tasks_plan_resolves_every_demo_run(tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    command = [sys.executable, "scripts/device_tasks_check.py", "plan", "config/demo.yaml"]
    subprocess.run([*command, str(plan_path), "deq-fourier-1L64D"], cwd=ROOT, check=True)
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    config = i2config.load_config(ROOT / "config/demo.yaml", base=ROOT / "config/config.yaml")
    datasets = config_grid.grid_datasets(config)
    assert [(run["task"], run["dataset"]) for run in plan] == datasets
    for run in plan:
        expected = config_settings.resolve_hparams(
            config, run["task"], run["dataset"], "deq-fourier-1L64D"
        )
        assert run["model"] == "deq-fourier-1L64D" and run["hparams"] == expected
