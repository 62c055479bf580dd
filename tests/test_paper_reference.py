"""config/paper_reference.yaml: loading, the schema, and clear errors for malformed files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import jsonschema
import pytest
import yaml

from implicit2.cli import main
from implicit2.paper import reference as reference_module
from implicit2.paper.reference import find_schema, load_reference

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "paper_reference.schema.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "paper_reference.yaml"
    path.write_text(text)
    return path


def test_schema_is_a_valid_json_schema() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert find_schema() == SCHEMA


def test_repository_reference_validates() -> None:
    reference = load_reference(ROOT / "config" / "paper_reference.yaml")
    assert reference.source == ROOT / "config" / "paper_reference.yaml"


def test_values_and_empty_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
image_representation:
  camera:
    deq-fourier-1L256D: {psnr: 31.5}
    mfn-fourier-1L256D: {psnr: null}
    siren-3L256D:
  celeba: {}
occupancy:
  dragon:
    deq-gabor-1L512D: {iou_easy: 0.97, iou_hard: 0.85}
audio:
""",
    )
    reference = load_reference(path)
    assert len(reference) == 3
    assert reference.get("image_representation", "camera", "deq-fourier-1L256D", "psnr") == 31.5
    assert reference.get("image_representation", "camera", "mfn-fourier-1L256D", "psnr") is None
    assert reference.get("occupancy", "dragon", "deq-gabor-1L512D", "iou_hard") == 0.85


def test_empty_file_and_no_file(tmp_path: Path) -> None:
    assert len(load_reference(write(tmp_path, ""))) == 0
    assert len(load_reference(None)) == 0
    with pytest.raises(FileNotFoundError, match=r"absent\.yaml"):
        load_reference(tmp_path / "absent.yaml")


BAD = {
    "string value": (
        "image_representation:\n  camera:\n    deq-fourier-1L256D: {psnr: high}\n",
        "image_representation → camera → deq-fourier-1L256D → psnr",
    ),
    "unknown metric": (
        "audio:\n  bach:\n    deq-fourier-1L256D: {ssim: 0.9}\n",
        "audio → bach → deq-fourier-1L256D",
    ),
    "unknown task": ("images:\n  camera: {}\n", "images"),
    "bad model name": (
        "video:\n  cat:\n    deq_fourier_1L256D: {psnr: 30.0}\n",
        "video → cat → deq_fourier_1L256D",
    ),
    "iou out of range": (
        "occupancy:\n  dragon:\n    mfn-gabor-1L256D: {iou_easy: 97}\n",
        "occupancy → dragon → mfn-gabor-1L256D → iou_easy",
    ),
    "list instead of mapping": ("- image_representation\n", "(top level)"),
    "dataset is a list": ("audio:\n  bach: [1, 2]\n", "audio → bach"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_reference_names_file_and_key(tmp_path: Path, case: str) -> None:
    text, key = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as error:
        load_reference(path)
    message = str(error.value)
    assert str(path) in message
    assert f"key '{key}'" in message


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "audio: [unclosed\n")
    with pytest.raises(ValueError, match=r"paper_reference\.yaml: not valid YAML"):
        load_reference(path)


def test_structural_check_without_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference_module, "_SCHEMA_CANDIDATES", ())
    path = write(tmp_path, "audio:\n  bach:\n    deq-fourier-1L256D: {psnr: true}\n")
    with pytest.raises(ValueError, match="audio → bach → deq-fourier-1L256D → psnr"):
        load_reference(path)


def test_cli_reports_bad_reference(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = tmp_path / "runs" / "audio" / "bach" / "deq-fourier-1L256D" / "seed0" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(
        json.dumps(
            {
                "task": "audio",
                "dataset": "bach",
                "model": "deq-fourier-1L256D",
                "seed": 0,
                "status": "ok",
                "psnr": 40.0,
                "psnr_per_signal": [40.0],
            }
        )
    )
    path = write(tmp_path, "audio:\n  bach:\n    deq-fourier-1L256D: {psnr: loud}\n")
    args = ["tables", "--metrics", str(metrics), "--reference", str(path)]
    with caplog.at_level(logging.ERROR):
        code = main([*args, "--out-dir", str(tmp_path / "out")])
    assert code == 2
    assert str(path) in caplog.text and "psnr" in caplog.text
    assert not (tmp_path / "out" / "paper.tex").exists()
