"""The dataset registry and config blocks resolved on top of it."""

from __future__ import annotations

import pytest

from implicit2.data.registry import DATASETS, resolve_dataset
from implicit2.tasks import TASKS

PAPER = {
    "camera": "image_representation",
    "celeba": "image_representation",
    "nature": "image_generalization",
    "text": "image_generalization",
    "bach": "audio",
    "counting": "audio",
    "cat": "video",
    "bikes": "video",
    "dragon": "occupancy",
    "buddha": "occupancy",
    "bunny": "occupancy",
    "armadillo": "occupancy",
    "lucy": "occupancy",
}
DEMO = {
    "demo_faces": "image_representation",
    "demo_nature": "image_generalization",
    "demo_chirp": "audio",
    "demo_shape": "occupancy",
}


def test_every_paper_and_demo_dataset_is_registered_with_its_task():
    assert {name: DATASETS[name].task for name in PAPER} == PAPER
    assert {name: DATASETS[name].task for name in DEMO} == DEMO
    assert all(source.task in TASKS for source in DATASETS.values())
    assert all(source.description for source in DATASETS.values())


def test_remote_sources_and_fallbacks():
    assert DATASETS["nature"].locations[0].ref == "1TtwlEDArhOMoH18aUyjIMSZ3WODFmUab"
    assert DATASETS["text"].locations[0].ref == "1V-RQJcMuk9GD4JCUn70o7nwQE0hEzHoT"
    bach = DATASETS["bach"].locations
    assert bach[0].kind == "gdrive_folder" and bach[0].ref == "1AVPQ_cqZTKedGWwJ0R39zSBQXw7LC6Pf"
    assert bach[1].ref == "https://github.com/vsitzmann/siren/raw/master/data/gt_bach.wav"
    stanford = {name: DATASETS[name].locations[1] for name in ("bunny", "dragon", "armadillo")}
    assert stanford["bunny"].member == "bun_zipper.ply" and stanford["bunny"].archive == "tar.gz"
    assert stanford["dragon"].member == "dragon_vrip.ply"
    assert stanford["armadillo"].archive == "gz"
    assert all(
        url.ref.startswith("http://graphics.stanford.edu/pub/3Dscanrep/")
        for url in stanford.values()
    )
    assert DATASETS["celeba"].prepare["limit"] == 100
    assert DATASETS["bikes"].kind == "package" and DATASETS["camera"].kind == "skimage"


def test_config_block_merges_prepare_options_and_can_change_task():
    source = resolve_dataset("camera", {"prepare": {"size": 256}, "task": "image_generalization"})
    assert source.task == "image_generalization"
    assert dict(source.prepare) == {"size": 256}
    celeba = resolve_dataset("celeba", {"prepare": {"limit": 10}})
    assert dict(celeba.prepare) == {"limit": 10, "reshape": [128, 128, 3]}
    assert DATASETS["celeba"].prepare["limit"] == 100  # the registry is not modified


def test_local_file_and_url_blocks(tmp_path):
    local = resolve_dataset("mine", {"path": str(tmp_path / "x.wav"), "task": "audio"})
    assert (local.kind, local.task, local.files) == ("local", "audio", ("x.wav",))
    wav = tmp_path / "clip.wav"
    wav.write_bytes(b"RIFF")
    assert resolve_dataset("clip", {"path": str(wav)}).task == "audio"  # inferred
    remote = resolve_dataset("web", {"url": "http://127.0.0.1:1/a/b.ply", "task": "occupancy"})
    assert remote.files == ("b.ply",) and remote.locations[0].kind == "url"
    sha = resolve_dataset("bach", {"sha256": "A" * 64})
    assert dict(sha.sha256) == {"gt_bach.wav": "a" * 64}


def test_unknown_names_and_bad_blocks_raise_value_error():
    with pytest.raises(ValueError) as caught:
        resolve_dataset("nope", {})
    message = str(caught.value)
    assert "camera" in message and "demo_shape" in message and "path:" in message
    with pytest.raises(ValueError, match="unknown task 'sound'"):
        resolve_dataset("bach", {"task": "sound"})
    with pytest.raises(ValueError, match="64 hex"):
        resolve_dataset("bach", {"sha256": "xyz"})
    with pytest.raises(ValueError, match="mapping"):
        resolve_dataset("bach", {"prepare": [1, 2]})
    with pytest.raises(ValueError, match="needs 'task'"):
        resolve_dataset("web", {"url": "http://127.0.0.1:1/b.bin"})
