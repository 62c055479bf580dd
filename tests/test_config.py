"""implicit2.pipeline.config (validation), config_grid (grid expansion), config_settings (training
settings, resources, specs) and workflow_paths (paths)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from implicit2.names import TASK_NAMES
from implicit2.pipeline import config as cfg
from implicit2.pipeline import grid, paths, run_settings
from implicit2.pipeline.schema import load_schema

REPO = Path(__file__).resolve().parents[1]
FULL = REPO / "config" / "config.yaml"
DEMO = REPO / "config" / "demo.yaml"

# The paper's grid, by hand: task -> datasets; 2 families x 3 filters x 3 sizes + 2 baselines x 3.
PAPER_DATASETS = {
    "image_representation": ["camera", "celeba"],
    "image_generalization": ["nature", "text"],
    "audio": ["bach", "counting"],
    "video": ["cat", "bikes"],
    "occupancy": ["dragon", "buddha", "bunny", "armadillo", "lucy"],
}
MODELS_PER_DATASET = 2 * 3 * 3 + 2 * 3


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    return cfg.load_config(FULL)


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return cfg.load_config(DEMO)


def raw(path: Path = FULL) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def problems_of(config: dict[str, Any]) -> str:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.validate(config)
    return str(info.value)


# ---- the full grid --------------------------------------------------------------------------


def test_full_grid_size(full):
    runs = grid.expand_grid(full)
    datasets = sum(len(names) for names in PAPER_DATASETS.values())
    assert datasets == 13
    assert len(runs) == datasets * MODELS_PER_DATASET * 1 == 312
    assert len(set(runs)) == len(runs)
    for task, names in PAPER_DATASETS.items():
        task_runs = grid.expand_grid(full, task)
        assert len(task_runs) == len(names) * MODELS_PER_DATASET
        assert list(dict.fromkeys(run.dataset for run in task_runs)) == names
    assert grid.grid_datasets(full) == [
        (task, name) for task, names in PAPER_DATASETS.items() for name in names
    ]


def test_full_grid_sizes_per_dataset(full):
    def sizes(task, dataset):
        return {m.split("-")[-1] for m in grid.task_models(full, task, dataset)}

    assert sizes("image_representation", "camera") == {"1L256D", "1L512D", "4L256D"}
    assert sizes("image_representation", "celeba") == {"1L128D", "1L256D", "4L128D"}
    assert sizes("video", "cat") == {"1L1024D", "1L2048D", "4L1024D"}
    assert sizes("occupancy", "lucy") == {"1L256D", "1L512D", "4L256D"}
    models = grid.task_models(full, "audio", "bach")
    assert len(models) == MODELS_PER_DATASET
    assert "deq-fourier-1L256D" in models and "mfn-siren-4L256D" in models
    assert "siren-1L512D" in models and "ffn-4L256D" in models
    for name in models:
        cfg.parse_model_name(name)


def test_seeds_multiply_the_grid(full):
    config = cfg.validate({**raw(), "seeds": [0, 1, 2]})
    assert len(grid.expand_grid(config)) == 3 * len(grid.expand_grid(full))


# ---- training settings ----------------------------------------------------------------------


def test_hparams_have_every_contract_key(full):
    hparams = run_settings.resolve_hparams(full, "audio", "bach", "deq-fourier-1L256D")
    assert tuple(hparams) == run_settings.HPARAM_KEYS
    schema = load_schema()
    assert set(schema["$defs"]["train_settings"]["properties"]) | {"device"} == set(
        run_settings.HPARAM_KEYS
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("grad_clip", 0.0, "grad_clip must be positive or null"),
        ("grad_clip", -1.0, "grad_clip must be positive or null"),
        ("lr_decay", -0.5, "lr_decay must be ≥ 0"),
        ("batch_size", 0, "batch_size must be positive or null"),
    ],
)
def test_train_settings_reject_out_of_range_values(key, value, message):
    settings = pytest.importorskip("implicit2.training.settings")
    with pytest.raises(ValueError, match=message):
        settings.TrainSettings.from_dict({key: value})


def test_hparams_camera(full):
    h = run_settings.resolve_hparams(full, "image_representation", "camera", "deq-fourier-1L256D")
    assert (h["steps"], h["lr"], h["input_scale"]) == (5000, 1e-3, 256.0)
    assert h["spectral_norm"] is True and h["amortize"] is True and h["batch_size"] is None
    assert (h["solver"], h["tol"], h["max_iter"], h["gradient"]) == (
        "fixed_point",
        1e-3,
        100,
        "onestep",
    )
    assert h["gabor_alpha"] == 3.0 and h["device"] == "auto" and h["grad_clip"] is None
    explicit = run_settings.resolve_hparams(
        full, "image_representation", "camera", "mfn-gabor-4L256D"
    )
    assert explicit["spectral_norm"] is True and explicit["amortize"] is False
    # solver settings stay present for explicit models
    assert explicit["solver"] == "fixed_point" and explicit["gradient"] == "onestep"
    baseline = run_settings.resolve_hparams(full, "image_representation", "camera", "siren-1L256D")
    assert baseline["spectral_norm"] is False and baseline["amortize"] is False
    # the authors' released code uses one input scale for every filter
    siren = run_settings.resolve_hparams(full, "image_representation", "camera", "deq-siren-1L256D")
    assert siren["input_scale"] == 256.0 == baseline["input_scale"]
    halved = cfg.validate(
        cfg.merge_config(
            raw(),
            {"task_settings": {"image_representation": {"input_scale_factor": {"siren": 0.5}}}},
        )
    )
    assert (
        run_settings.resolve_hparams(halved, "image_representation", "camera", "deq-siren-1L256D")[
            "input_scale"
        ]
        == 128.0
    )


def test_hparams_celeba_dataset_override(full):
    h = run_settings.resolve_hparams(full, "image_representation", "celeba", "deq-gabor-1L128D")
    assert (h["steps"], h["lr"], h["input_scale"]) == (3000, 3e-3, 64.0)
    assert h["spectral_norm"] is True and h["amortize"] is True


def test_hparams_generalization(full):
    h = run_settings.resolve_hparams(full, "image_generalization", "text", "deq-fourier-1L512D")
    assert (h["steps"], h["lr"], h["input_scale"]) == (2000, 1e-3, 128.0)


def test_hparams_audio(full):
    h = run_settings.resolve_hparams(full, "audio", "counting", "deq-gabor-1L512D")
    assert (h["steps"], h["lr"], h["input_scale"]) == (3000, 1e-3, 25000.0)
    assert h["spectral_norm"] is False and h["amortize"] is True and h["batch_size"] is None
    siren = run_settings.resolve_hparams(full, "audio", "bach", "deq-siren-1L256D")
    assert siren["input_scale"] == 25000.0


def test_hparams_video(full):
    h = run_settings.resolve_hparams(full, "video", "cat", "deq-fourier-1L1024D")
    assert (h["steps"], h["lr"], h["batch_size"], h["grad_clip"]) == (10000, 1e-3, 65536, 0.1)
    assert h["spectral_norm"] is False
    assert h["amortize"] is False  # minibatches: the solver runs every step
    assert h["input_scale"] == 128.0


@pytest.mark.parametrize("config_file", [FULL, None])
def test_video_input_scale_follows_the_model_as_in_the_authors_configs(config_file):
    """configs/video/ of the authors: 256 for 4L1024D and the Fourier/Gabor 1L2048D, else 128.
    The same from config.yaml and from the built-in defaults of a minimal config."""
    config = (
        cfg.load_config(config_file)
        if config_file
        else cfg.validate({"tasks": ["video"], "datasets": {"cat": {}}})
    )
    expected = {
        "deq-fourier-1L1024D": 128.0,
        "mfn-siren-1L1024D": 128.0,
        "deq-gabor-4L1024D": 256.0,
        "mfn-siren-4L1024D": 256.0,
        "deq-fourier-1L2048D": 256.0,
        "mfn-gabor-1L2048D": 256.0,
        "deq-siren-1L2048D": 128.0,
    }
    scales = {
        m: run_settings.resolve_hparams(config, "video", "cat", m)["input_scale"] for m in expected
    }
    assert scales == expected
    # A dataset's own train block still wins over the per-model rules.
    config["datasets"]["cat"] = {"train": {"input_scale": 64.0}}
    assert (
        run_settings.resolve_hparams(config, "video", "cat", "deq-gabor-4L1024D")["input_scale"]
        == 64.0
    )


def test_hparams_occupancy(full):
    deq = run_settings.resolve_hparams(full, "occupancy", "bunny", "deq-fourier-1L256D")
    assert (deq["steps"], deq["lr"], deq["batch_size"], deq["input_scale"]) == (
        10000,
        5e-4,
        50000,
        256.0,
    )
    assert (deq["tol"], deq["eval_tol"]) == (1e-3, 1e-4)
    assert deq["spectral_norm"] is True and deq["amortize"] is False
    explicit = run_settings.resolve_hparams(full, "occupancy", "bunny", "mfn-fourier-1L256D")
    assert explicit["spectral_norm"] is False  # DEQ-only in 3D


def test_hparams_types(full):
    for run in grid.expand_grid(full):
        h = run_settings.resolve_hparams(full, run.task, run.dataset, run.model)
        assert isinstance(h["steps"], int) and isinstance(h["lr"], float)
        assert isinstance(h["spectral_norm"], bool) and isinstance(h["amortize"], bool)
        assert h["batch_size"] is None or isinstance(h["batch_size"], int)
        text = run_settings.to_json(h)
        assert json.loads(text) == h  # serialisable without loss
        # stable: the same text whatever the key order (Snakemake's params trigger compares it)
        assert run_settings.to_json(dict(reversed(list(h.items())))) == text


def test_hparams_accepted_by_the_trainer(full):
    settings = pytest.importorskip("implicit2.training.settings")
    for run in grid.expand_grid(full)[::7]:
        settings.TrainSettings.from_dict(run_settings.resolve_hparams(full, *run[:3]))


def test_builtin_task_defaults_fill_a_minimal_config():
    config = cfg.validate({"tasks": ["occupancy", "audio"], "datasets": {"bach": {}, "bunny": {}}})
    assert grid.selected_tasks(config) == ["audio", "occupancy"]
    h = run_settings.resolve_hparams(config, "occupancy", "bunny", "deq-gabor-1L256D")
    assert (h["steps"], h["lr"], h["batch_size"], h["eval_tol"]) == (10000, 5e-4, 50000, 1e-4)
    assert (
        run_settings.resolve_hparams(config, "audio", "bach", "ffn-1L256D")["input_scale"]
        == 25000.0
    )
    assert len(grid.expand_grid(config)) == 2 * MODELS_PER_DATASET


def test_user_global_train_beats_builtin_task_defaults():
    config = cfg.validate({"tasks": ["audio"], "datasets": {"bach": {}}, "train": {"steps": 7}})
    assert run_settings.resolve_hparams(config, "audio", "bach", "deq-fourier-1L256D")["steps"] == 7
    # ... but a task block still beats the global block
    config = cfg.validate(
        {
            "tasks": ["audio"],
            "datasets": {"bach": {}},
            "train": {"steps": 7},
            "task_settings": {"audio": {"train": {"steps": 9}}},
        }
    )
    assert run_settings.resolve_hparams(config, "audio", "bach", "deq-fourier-1L256D")["steps"] == 9


def test_a_global_train_key_every_task_overrides_is_reported(full, demo):
    assert run_settings.shadowed_train_keys(full, raw()) == []
    assert run_settings.shadowed_train_keys(demo, raw(DEMO)) == []
    written = cfg.merge_config(raw(), {"train": {"steps": 100, "tol": 1e-4}})
    (warning,) = run_settings.shadowed_train_keys(cfg.validate(written), written)
    assert warning.startswith("train.steps has no effect: task_settings.<task>.train.steps")
    assert "'task_settings={image_representation: {train: {steps: ...}}}'" in warning
    minimal = {"tasks": ["audio"], "datasets": {"bach": {}}, "train": {"steps": 7}}
    assert (
        run_settings.shadowed_train_keys(cfg.validate(minimal), minimal) == []
    )  # defaults yield to it


def test_minibatch_task_needs_a_batch_size(full):
    config = cfg.validate(
        cfg.merge_config(raw(), {"task_settings": {"video": {"train": {"batch_size": None}}}})
    )
    with pytest.raises(cfg.ConfigError, match=r"task_settings\.video\.train\.batch_size"):
        run_settings.resolve_hparams(config, "video", "cat", "deq-fourier-1L1024D")


def test_resolve_rejects_mismatched_or_unknown_names(full):
    with pytest.raises(cfg.ConfigError, match="audio data, not video"):
        run_settings.resolve_hparams(full, "video", "bach", "deq-fourier-1L256D")
    with pytest.raises(cfg.ConfigError, match="not a model name"):
        run_settings.resolve_hparams(full, "audio", "bach", "deq-wavelet-1L256D")
    with pytest.raises(cfg.ConfigError, match="unknown; valid: image_representation"):
        run_settings.resolve_hparams(full, "speech", "bach", "deq-fourier-1L256D")


# ---- resources, specs, paths ----------------------------------------------------------------


def test_resources(full, demo):
    assert run_settings.resolve_resources(full, "video", "cat", "train") == {
        "threads": 4,
        "mem_mb": 32000,
        "runtime": 480,
        "gpu": 1,
    }
    assert run_settings.resolve_resources(full, "audio", "bach", "prepare")["gpu"] == 0
    assert run_settings.resolve_resources(full, "occupancy", "lucy", "prepare")["mem_mb"] == 16000
    for run in grid.expand_grid(demo):
        for stage in run_settings.STAGES:
            values = run_settings.resolve_resources(demo, run.task, run.dataset, stage)
            assert values["gpu"] == 0 and values["threads"] == 1


def test_dataset_spec(full):
    assert run_settings.dataset_spec(full, "camera") == {"task": "image_representation"}
    spec = run_settings.dataset_spec(full, "celeba")
    assert spec == {"task": "image_representation", "prepare": {"limit": 100}}
    assert "prepare" not in run_settings.dataset_spec(full, "celeba", "download")
    assert run_settings.dataset_spec(full, "not_in_config") == {}


def test_paths(full):
    run = grid.Run("audio", "bach", "deq-fourier-1L256D", 0)
    assert paths.run_dir(run) == "results/runs/audio/bach/deq-fourier-1L256D/seed0"
    assert len(paths.metrics_paths(full)) == 312
    assert paths.metrics_paths(full, "audio")[0] == (
        "results/runs/audio/bach/deq-fourier-1L256D/seed0/metrics.json"
    )
    assert paths.table_paths(full)[2] == "results/tables/audio.csv"
    assert len(paths.figure_paths(full)) == 5 * 3 * 2
    targets = paths.final_targets(full)
    assert "results/tables/paper.tex" in targets
    assert "results/figures/occupancy/reconstructions.png" in targets


def test_filters_drop_the_tasks_they_empty():
    config = cfg.validate(
        {**raw(), "only_datasets": ["camera"], "only_models": ["deq-fourier-1L256D"]}
    )
    assert paths.planned_tasks(config) == ["image_representation"]
    assert paths.table_paths(config) == ["results/tables/image_representation.csv"]
    assert all("/image_representation/" in path for path in paths.figure_paths(config))
    with pytest.raises(cfg.ConfigError, match="task 'audio' has no run left under only_datasets"):
        paths.metrics_paths(config, "audio")
    assert "the filters leave no run to do" in problems_of(
        {**raw(), "only_datasets": ["camera"], "only_models": ["deq-fourier-1L1024D"]}
    )


def test_a_dataset_file_no_task_lists_is_refused():
    config = cfg.merge_config(raw(), {"datasets": {"my_photo": {"path": "data/my_photo.png"}}})
    assert (
        "datasets.my_photo: has a path but task_settings.image_representation.datasets "
        "does not list it" in problems_of(config)
    )
    listed = raw()["task_settings"]["image_representation"]["datasets"] + ["my_photo"]
    config["task_settings"]["image_representation"]["datasets"] = listed
    assert "my_photo" in {run.dataset for run in grid.expand_grid(cfg.validate(config))}


def test_reference_path(full, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cfg.ConfigError, match=r"reference: 'config/paper_reference\.yaml' is not"):
        paths.reference_path(full)
    with pytest.raises(cfg.ConfigError, match=r"set\s+reference: null"):
        paths.reference_path({**full, "reference": "config/nope.yaml"}, REPO)
    assert paths.reference_path(full, REPO) == str(REPO / "config" / "paper_reference.yaml")
    assert paths.reference_path({**full, "reference": None}, REPO) is None


def test_wildcard_patterns(full):
    import re

    patterns = paths.wildcard_patterns(full)
    for name in ("deq-fourier-1L256D", "mfn-siren-4L1024D", "siren-1L128D", "ffn-12L8D"):
        assert re.fullmatch(patterns["model"], name)
    for name in ("deq-siren", "siren-0L8D", "deq-ffn-1L8D", "mfn-1L8D", "siren-1L256D/x"):
        assert not re.fullmatch(patterns["model"], name)
    for task in TASK_NAMES:
        assert re.fullmatch(patterns["task"], task)
    for name in ("camera", "celeba", "lucy", "bikes"):
        assert re.fullmatch(patterns["dataset"], name)
    assert not re.fullmatch(patterns["dataset"], "camera/x")
    assert re.fullmatch(patterns["seed"], "12")


def test_parse_model_name():
    assert cfg.parse_model_name("deq-gabor-4L256D") == cfg.ModelSpec("deq", "gabor", 4, 256)
    assert cfg.parse_model_name("ffn-1L512D") == cfg.ModelSpec("ffn", None, 1, 512)
    assert cfg.parse_model_name("siren-2L64D").is_deq is False
    for bad in ("deq-fourier-0L256D", "deq-fourier-1L0D", "deq-1L256D", "siren-fourier-1L8D", ""):
        with pytest.raises(cfg.ConfigError, match=r"not a model name"):
            cfg.parse_model_name(bad)


# ---- command-line overrides -----------------------------------------------------------------


def test_overrides_like_snakemake_config():
    config = cfg.load_config(FULL, ["tasks=[audio]", "seeds=[0]"])
    assert config["tasks"] == ["audio"] and config["seeds"] == [0]
    runs = grid.expand_grid(config)
    assert len(runs) == 2 * MODELS_PER_DATASET
    assert {run.task for run in runs} == {"audio"}


def test_overrides_nested_and_scalar():
    config = cfg.load_config(
        FULL,
        [
            "tasks=audio",
            "seeds=[0,1]",
            "device=cpu",
            "task_settings={audio: {train: {lr: 3.0e-3, steps: 10, spectral_norm: deq}}}",
            "only_models=[deq-fourier-1L256D]",
        ],
    )
    assert config["tasks"] == ["audio"] and config["seeds"] == [0, 1]
    h = run_settings.resolve_hparams(config, "audio", "bach", "deq-fourier-1L256D")
    assert (h["lr"], h["steps"], h["spectral_norm"], h["device"]) == (3e-3, 10, True, "cpu")
    assert len(grid.expand_grid(config)) == 2 * 2  # 2 datasets x 1 model x 2 seeds


def test_overrides_dict_form():
    config = cfg.load_config(FULL, {"tasks": ["video"], "only_datasets": ["bikes"]})
    assert {run.dataset for run in grid.expand_grid(config)} == {"bikes"}


def test_parse_overrides_mimics_snakemake():
    assert cfg.parse_overrides(["seeds=[0, 1]", "device=cpu", "x=3", "y=0.5", "z=true"]) == {
        "seeds": ["0", "1"],
        "device": "cpu",
        "x": 3,
        "y": 0.5,
        "z": True,
    }
    with pytest.raises(cfg.ConfigError, match="KEY=VALUE"):
        cfg.parse_overrides(["tasks"])


# ---- validation errors ----------------------------------------------------------------------


def test_wrong_type_names_the_key():
    config = cfg.merge_config(raw(), {"task_settings": {"audio": {"train": {"lr": "fast"}}}})
    message = problems_of(config)
    assert "task_settings.audio.train.lr" in message and "expected number" in message


def test_wrong_types_elsewhere():
    assert "seeds[0]" in problems_of({**raw(), "seeds": ["zero"]})
    assert "resources.train.gpu" in problems_of(
        cfg.merge_config(raw(), {"resources": {"train": {"gpu": "one"}}})
    )
    assert "datasets.celeba.train.steps" in problems_of(
        cfg.merge_config(raw(), {"datasets": {"celeba": {"train": {"steps": 1.5}}}})
    )
    assert "models.sizes[0]" in problems_of(cfg.merge_config(raw(), {"models": {"sizes": ["256"]}}))


def test_unknown_key_lists_valid_keys():
    message = problems_of(cfg.merge_config(raw(), {"train": {"stpes": 3}}))
    assert "train.stpes: unknown key" in message and "steps" in message
    message = problems_of(cfg.merge_config(raw(), {"task_settings": {"audoi": {}}}))
    assert "task_settings.audoi" in message and "audio" in message
    assert "colour: unknown key" in problems_of({**raw(), "colour": "blue"})


def test_unknown_task_lists_valid_values():
    message = problems_of({**raw(), "tasks": ["audio", "speech"]})
    assert "tasks[1]" in message and "'speech'" in message
    for task in TASK_NAMES:
        assert task in message


def test_unknown_model_lists_grammar():
    message = problems_of(cfg.merge_config(raw(), {"models": {"extra": ["deq-wavelet-1L8D"]}}))
    assert "models.extra[0]" in message and "deq-{fourier|gabor|siren}-{L}L{D}D" in message
    message = problems_of(cfg.merge_config(raw(), {"models": {"families": ["deq", "imp"]}}))
    assert "models.families[1]" in message and "deq, mfn" in message
    message = problems_of(
        cfg.merge_config(raw(), {"datasets": {"bach": {"models": {"extra": ["foo"]}}}})
    )
    assert "datasets.bach.models.extra[0]" in message


def test_unknown_dataset_lists_valid_values():
    config = cfg.merge_config(
        raw(), {"task_settings": {"audio": {"datasets": ["bach", "beethoven"]}}}
    )
    message = problems_of(config)
    assert "task_settings.audio.datasets[1]" in message and "'beethoven'" in message
    assert "bach" in message and "counting" in message and "demo_chirp" in message


def test_dataset_of_another_task():
    config = cfg.merge_config(raw(), {"task_settings": {"audio": {"datasets": ["camera"]}}})
    message = problems_of(config)
    assert "task_settings.audio.datasets[0]" in message and "image_representation" in message


def test_own_dataset_needs_a_task_unless_the_suffix_says_it():
    config = cfg.merge_config(raw(), {"datasets": {"mine": {"path": "data/mine.npz"}}})
    message = problems_of(config)
    assert "datasets.mine.task" in message and "audio" in message
    config = cfg.merge_config(
        raw(),
        {
            "tasks": ["audio"],
            "datasets": {"mine": {"path": "data/mine.wav"}},
            "task_settings": {"audio": {"datasets": ["bach", "mine"]}},
        },
    )
    validated = cfg.validate(config)
    assert validated["datasets"]["mine"]["task"] == "audio"
    assert run_settings.dataset_spec(validated, "mine") == {
        "path": "data/mine.wav",
        "task": "audio",
    }
    assert paths.wildcard_patterns(validated)["dataset"].count("mine") == 1


def test_selected_task_without_datasets():
    message = problems_of({"tasks": ["audio"]})
    assert "task_settings.audio.datasets" in message and "no datasets" in message


def test_filters_must_name_grid_members():
    message = problems_of({**raw(), "only_models": ["deq-fourier-1L999D"]})
    assert "only_models[0]" in message and "deq-fourier-1L256D" in message
    message = problems_of({**raw(), "tasks": ["audio"], "only_datasets": ["camera"]})
    assert "only_datasets[0]" in message and "bach" in message


def test_bad_dataset_name_and_device():
    assert "datasets" in problems_of(cfg.merge_config(raw(), {"datasets": {"a/b": {}}}))
    message = problems_of({**raw(), "device": "tpu"})
    assert "device" in message and "auto, cpu, cuda" in message


def test_several_problems_are_reported_together():
    config = cfg.merge_config(
        raw(), {"train": {"lr": "x", "steps": 0}, "seeds": [-1], "device": "gpu"}
    )
    with pytest.raises(cfg.ConfigError) as info:
        cfg.validate(config)
    assert len(info.value.problems) >= 4


def test_validate_does_not_modify_its_input():
    config = raw()
    before = copy.deepcopy(config)
    cfg.validate(config)
    assert config == before


# ---- the demo -------------------------------------------------------------------------------


def test_demo_grid(demo):
    runs = grid.expand_grid(demo)
    assert {run.task for run in runs} == set(TASK_NAMES)
    datasets = {run.dataset for run in runs}
    assert datasets == {"camera", "demo_faces", "demo_nature", "demo_chirp", "bikes", "demo_shape"}
    assert len(runs) == 6 * 8
    for run in runs:
        h = run_settings.resolve_hparams(demo, run.task, run.dataset, run.model)
        assert h["device"] == "cpu" and h["steps"] <= 300
    assert run_settings.dataset_spec(demo, "camera")["prepare"] == {"size": 64}


def test_demo_is_the_same_merged_over_the_full_config(demo):
    """Snakemake merges --configfile config/demo.yaml over config/config.yaml: no leaks."""
    merged = cfg.load_config(DEMO, base=FULL)
    runs = grid.expand_grid(demo)
    assert grid.expand_grid(merged) == runs
    for run in runs:
        assert run_settings.resolve_hparams(merged, *run[:3]) == run_settings.resolve_hparams(
            demo, *run[:3]
        )
        assert run_settings.dataset_spec(merged, run.dataset) == run_settings.dataset_spec(
            demo, run.dataset
        )
        for stage in run_settings.STAGES:
            assert run_settings.resolve_resources(merged, run.task, run.dataset, stage) == (
                run_settings.resolve_resources(demo, run.task, run.dataset, stage)
            )


def test_configs_comment_every_key():
    """Every line that opens a key in the shipped configs carries a comment (or its block does)."""
    for path in (FULL, DEMO):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if not line.strip() or line.lstrip().startswith("#") or line.startswith(" "):
                continue
            above = lines[index - 1] if index else ""
            assert "#" in line or above.lstrip().startswith("#"), f"{path.name}: {line!r}"


# ---- importable without torch ---------------------------------------------------------------


def test_importable_without_torch():
    """The four config modules (what the Snakefile imports) work without torch; config itself
    loads neither config_settings nor workflow_paths (they build on it, not the reverse)."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import implicit2.pipeline.config as c\n"
        "later = {'implicit2.pipeline.run_settings', 'implicit2.pipeline.paths'}\n"
        "assert not later & set(sys.modules)\n"
        "import implicit2.pipeline.grid as g\n"
        "import implicit2.pipeline.run_settings as s\n"
        "import implicit2.pipeline.paths as p\n"
        "config = c.load_config(sys.argv[1])\n"
        "runs = g.expand_grid(config)\n"
        "print(len(runs))\n"
        "mine = c.validate({'tasks': ['audio'], 'datasets': {'mine': {'path': 'my.wav'}}})\n"
        "assert c.dataset_task_of(mine, 'mine') == 'audio'\n"
        "assert s.resolve_hparams(config, *runs[0][:3])['device'] == config['device']\n"
        "assert s.resolve_resources(config, runs[0].task, runs[0].dataset, 'train')\n"
        "assert p.PAPER_TEX in p.final_targets(config)\n"
        "assert p.wildcard_patterns(config)['seed']\n"
        "assert 'torch' not in {m for m in sys.modules if sys.modules[m] is not None}\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(FULL)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "312"
