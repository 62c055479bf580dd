"""infer_task on each kind of file, and the task registry's errors."""

from __future__ import annotations

import numpy as np
import pytest

from implicit2.data.infer import infer_task
from implicit2.tasks import TASKS, get_task


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("a.png", "image_representation"),
        ("b.JPG", "image_representation"),
        ("c.wav", "audio"),
        ("d.flac", "audio"),
        ("e.mp4", "video"),
        ("f.ply", "occupancy"),
        ("g.obj", "occupancy"),
        ("h.stl", "occupancy"),
    ],
)
def test_infer_by_suffix(tmp_path, name, task):
    path = tmp_path / name
    path.write_bytes(b"x")
    assert infer_task(path) == task


def test_infer_numpy_files_by_shape(tmp_path, bikes_mp4, shared_data):
    cases = {
        "gray.npy": (np.zeros((8, 8)), "image_representation"),
        "rgb.npy": (np.zeros((8, 8, 3)), "image_representation"),
        "stack.npy": (np.zeros((5, 8, 8, 3)), "image_representation"),
        "my_video.npy": (np.zeros((5, 8, 8, 3)), "video"),
    }
    for name, (array, task) in cases.items():
        np.save(tmp_path / name, array)
        assert infer_task(tmp_path / name) == task, name
    np.savez(
        tmp_path / "div2k.npz", train_data=np.zeros((2, 8, 8, 3)), test_data=np.zeros((2, 8, 8, 3))
    )
    assert infer_task(tmp_path / "div2k.npz") == "image_representation"
    np.savez(tmp_path / "clip.npz", frames=np.zeros((3, 8, 8, 3)), fps=np.array(25.0))
    assert infer_task(tmp_path / "clip.npz") == "video"
    np.save(tmp_path / "wave.npy", np.zeros(100))
    with pytest.raises(ValueError, match="ambiguous"):
        infer_task(tmp_path / "wave.npy")
    assert infer_task(bikes_mp4) == "video"
    assert infer_task(shared_data / "audio" / "gt_bach.wav") == "audio"
    assert infer_task(shared_data / "mesh" / "bunny.ply") == "occupancy"


def test_infer_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        infer_task(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*\.wav"):
        infer_task(tmp_path / "notes.txt")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz"):
        infer_task(tmp_path / "bad.npz")


def test_get_task_lists_valid_names():
    assert set(TASKS) == {
        "image_representation",
        "image_generalization",
        "audio",
        "video",
        "occupancy",
    }
    assert get_task("audio").name == "audio"
    with pytest.raises(ValueError) as caught:
        get_task("images")
    assert all(name in str(caught.value) for name in TASKS)
