"""Atomic writes: all or nothing, with the permissions a plain open() would give."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from implicit2 import io as atomic


def test_atomic_write_is_readable_by_others_under_the_usual_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic.write_json(tmp_path / "metrics.json", {"psnr": 30.0})
    finally:
        os.umask(previous)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
    assert atomic.read_json(tmp_path / "metrics.json") == {"psnr": 30.0}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    atomic.write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
