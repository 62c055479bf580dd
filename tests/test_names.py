"""The task table of implicit2.names is the one truth: the torch-side tasks, the schema and the
suffix inference agree with it, and the torch-free side (config, download) runs without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from implicit2 import names
from implicit2.data.infer import infer_task
from implicit2.pipeline.schema import load_schema
from implicit2.tasks import TASKS, get_task

SRC = Path(__file__).resolve().parents[1] / "src"


def test_torch_side_tasks_follow_the_table() -> None:
    assert tuple(TASKS) == names.TASK_NAMES
    for info in names.TASKS:
        task = get_task(info.name)
        assert task.full_batch == info.full_batch
        assert (task.loss_kind == "bce") == (info.metrics == ("iou_easy", "iou_hard"))
    assert {"image_representation", "image_generalization", "audio"} == names.FULL_BATCH_TASKS


def test_schema_lists_the_table_tasks() -> None:
    schema = load_schema()
    assert schema["$defs"]["task_name"]["enum"] == list(names.TASK_NAMES)
    assert schema["properties"]["tasks"]["default"] == list(names.TASK_NAMES)
    assert list(schema["properties"]["task_settings"]["properties"]) == list(names.TASK_NAMES)


@pytest.mark.parametrize("info", names.TASKS, ids=lambda info: info.name)
def test_a_suffix_names_its_task(tmp_path: Path, info: names.TaskInfo) -> None:
    for suffix in info.suffixes:
        path = tmp_path / f"signal{suffix}"
        path.write_bytes(b"")
        assert infer_task(path) == info.name == names.task_of_suffix(path)
    if not info.suffixes:
        assert info.name not in names.TASK_OF_SUFFIX.values()


def test_download_runs_without_torch(tmp_path: Path) -> None:
    """A download job needs no torch: the data package never imports the tasks."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from implicit2.cli import main\n"
        f"code = main(['download', '--dataset', 'demo_chirp', '--dest', {str(tmp_path)!r}])\n"
        "assert 'torch' not in {m.split('.')[0] for m in sys.modules if sys.modules[m]}\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "manifest.json").is_file()
