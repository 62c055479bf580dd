"""The Snakemake workflow: dry runs of the paper's grid (job counts), subsets, lint, formatting,
bad configs, and (slow) a real end-to-end run of a tiny config through to paper.tex."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
FULL = REPO / "config" / "config.yaml"
DEMO = REPO / "config" / "demo.yaml"

# The paper's grid by hand: 13 datasets; per dataset 2 families x 3 filters x 3 sizes + 2
# baselines x 3 sizes = 24 models; 1 seed.
PAPER_DATASETS = {
    "image_representation": 2,
    "image_generalization": 2,
    "audio": 2,
    "video": 2,
    "occupancy": 5,
}
MODELS = 2 * 3 * 3 + 2 * 3
TASKS = list(PAPER_DATASETS)
#: `all` builds paper.pdf only where pdflatex is installed.
PDF_JOBS = int(shutil.which("pdflatex") is not None)


def environment() -> dict[str, str]:
    """Jobs call `python`: make it this interpreter's environment."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def snakemake(
    workdir: Path,
    *args: str,
    configfile: Path | None = FULL,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run this repository's workflow with ``workdir`` as its working directory."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    command += ["--directory", str(workdir)]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    command += list(args)
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=environment() if env is None else env,
        timeout=timeout,
        check=False,
        cwd=workdir,
    )


def job_counts(output: str) -> dict[str, int]:
    """The first "Job stats" table of Snakemake's output, as {rule: count}."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    counts: dict[str, int] = {}
    for line in lines[start + 3 :]:
        match = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if match is None:
            break
        counts[match[1]] = int(match[2])
    return counts


def dry_run(workdir: Path, *args: str, configfile: Path | None = FULL) -> dict[str, int]:
    result = snakemake(workdir, "-n", *args, configfile=configfile)
    assert result.returncode == 0, result.stdout + result.stderr
    return job_counts(result.stdout + result.stderr)


def test_full_grid_dry_run(tmp_path):
    counts = dry_run(tmp_path)
    datasets = sum(PAPER_DATASETS.values())
    runs = datasets * MODELS
    assert runs == 312
    assert counts == {
        "fetch": datasets,
        "download": datasets,
        "prepare": datasets,
        "train": runs,
        "evaluate": runs,
        "table": len(TASKS),
        "paper": 1,
        **({"paper_pdf": 1} if PDF_JOBS else {}),
        "figures": len(TASKS),
        "all": 1,
        "total": 3 * datasets + 2 * runs + 2 * len(TASKS) + 2 + PDF_JOBS,
    }


def test_subset_dry_run(tmp_path):
    counts = dry_run(tmp_path, "--config", "tasks=[audio]", "seeds=[0]")
    runs = PAPER_DATASETS["audio"] * MODELS
    assert counts["train"] == counts["evaluate"] == runs
    assert counts["download"] == counts["prepare"] == PAPER_DATASETS["audio"]
    assert counts["table"] == counts["figures"] == counts["paper"] == 1
    seeds = dry_run(tmp_path, "--config", "tasks=[audio]", "seeds=[0,1,2]")
    assert seeds["train"] == 3 * runs and seeds["download"] == PAPER_DATASETS["audio"]


def test_paper_tex_target_dry_run(tmp_path):
    counts = dry_run(tmp_path, "results/tables/paper.tex")
    runs = sum(PAPER_DATASETS.values()) * MODELS
    assert counts["paper"] == 1 and counts["train"] == counts["evaluate"] == runs
    assert "figures" not in counts and "table" not in counts and "all" not in counts


def test_paper_pdf_target_builds_every_figure_first(tmp_path):
    counts = dry_run(tmp_path, "results/tables/paper.pdf", configfile=DEMO)
    assert counts["paper_pdf"] == counts["paper"] == 1
    assert counts["figures"] == len(TASKS) and "table" not in counts and "all" not in counts


def path_without(program: str, folder: Path) -> str:
    """A PATH with every tool of this one but ``program``: links to them all in ``folder``."""
    folder.mkdir()
    for directory in reversed(environment()["PATH"].split(os.pathsep)):  # earlier ones win
        tools = Path(directory).iterdir() if Path(directory).is_dir() else []
        for tool in tools:
            if tool.name != program and tool.is_file() and os.access(tool, os.X_OK):
                (folder / tool.name).unlink(missing_ok=True)
                (folder / tool.name).symlink_to(tool)
    return str(folder)


def test_without_pdflatex_all_leaves_out_the_pdf_and_says_why(tmp_path):
    env = {**environment(), "PATH": path_without("pdflatex", tmp_path / "bin")}
    result = snakemake(tmp_path, "-n", configfile=DEMO, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "pdflatex not found: results/tables/paper.pdf is not built" in output
    counts = job_counts(output)
    assert "paper_pdf" not in counts and counts["paper"] == 1


def test_table_target_rule_builds_one_task(tmp_path):
    counts = dry_run(tmp_path, "table_occupancy")
    runs = PAPER_DATASETS["occupancy"] * MODELS
    assert counts["train"] == counts["evaluate"] == runs
    assert counts["table"] == counts["figures"] == counts["table_occupancy"] == 1
    assert "paper" not in counts


def test_single_run_target_dry_run(tmp_path):
    target = "results/runs/video/bikes/deq-gabor-1L1024D/seed0/metrics.json"
    assert dry_run(tmp_path, target) == {
        "fetch": 1,
        "download": 1,
        "prepare": 1,
        "train": 1,
        "evaluate": 1,
        "total": 5,
    }


def test_demo_dry_run(tmp_path):
    counts = dry_run(tmp_path, configfile=DEMO)
    assert counts["fetch"] == counts["download"] == counts["prepare"] == 6
    assert counts["train"] == counts["evaluate"] == 6 * 8
    assert counts["table"] == counts["figures"] == 5 and counts["paper"] == 1


def job_files(output: str, rule: str) -> dict[str, list[str]]:
    """{output: inputs} of every ``rule`` job that a dry run lists."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        if not re.match(rf"(?:local)?rule {rule}:", block):
            continue
        fields = dict(re.findall(r"^\s+(input|output): (.+)$", block, flags=re.MULTILINE))
        jobs[fields["output"]] = fields.get("input", "").split(", ")
    return jobs


def test_prepare_declares_the_raw_files_it_reads(tmp_path):
    """Every file prepare reads is a declared input (made by rule fetch), so that executors
    without a shared file system and storage plugins carry it; the user's own file too."""
    own = tmp_path / "own.wav"
    own.write_bytes(b"RIFF")  # only its path matters in a dry run
    config = yaml.safe_load(FULL.read_text(encoding="utf-8"))
    config["datasets"]["own"] = {"path": str(own), "task": "audio"}
    config["task_settings"]["audio"]["datasets"].append("own")
    configfile = tmp_path / "own.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = snakemake(
        tmp_path,
        "-n",
        "results/data/audio/bach.npz",
        "results/data/image_representation/camera.npz",
        "results/data/video/bikes.npz",
        "results/data/audio/own.npz",
        configfile=configfile,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert job_files(output, "prepare") == {
        "results/data/audio/bach.npz": [
            "resources/raw/bach/manifest.json",
            "resources/raw/bach/gt_bach.wav",
        ],
        "results/data/image_representation/camera.npz": [
            "resources/raw/camera/manifest.json",
            "resources/raw/camera/camera.png",
        ],
        "results/data/video/bikes.npz": [
            "resources/raw/bikes/manifest.json",
            "resources/raw/bikes/bikes.mp4",
        ],
        "results/data/audio/own.npz": ["resources/raw/own/manifest.json", str(own)],
    }
    # update(): Snakemake never deletes a raw file before fetch runs again.
    assert sorted(job_files(output, "fetch")) == [
        "resources/raw/bach/gt_bach.wav (update)",
        "resources/raw/bikes/bikes.mp4 (update)",
        "resources/raw/camera/camera.png (update)",
    ]
    assert job_files(output, "download")["resources/raw/own/manifest.json"] == [str(own)]


def test_a_raw_file_put_there_by_hand_is_kept_and_used(tmp_path):
    """The documented fallback: a download fails offline, the user puts the file at the path the
    error names, and the workflow uses it; a forced re-fetch keeps it; a wrong file is refused
    and left alone."""
    import hashlib

    import numpy as np
    import soundfile

    wave = (0.5 * np.sin(np.linspace(0, 300, 8000))).astype(np.float32)
    tone = tmp_path / "tone.wav"
    soundfile.write(tone, wave, 16000)
    with socket.socket() as probe:  # a port nobody listens on: the download fails at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config["tasks"] = ["audio"]
    config["datasets"] = {
        "mine": {
            "task": "audio",
            "url": f"http://127.0.0.1:{port}/tone.wav",
            "sha256": hashlib.sha256(tone.read_bytes()).hexdigest(),
            "prepare": {"max_seconds": 0.25},
        }
    }
    configfile = tmp_path / "mine.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    target = "results/data/audio/mine.npz"
    raw = tmp_path / "resources" / "raw" / "mine" / "tone.wav"

    offline = snakemake(tmp_path, "-c1", target, configfile=configfile)
    assert offline.returncode != 0
    assert f"put it at {raw.resolve()}" in offline.stdout + offline.stderr

    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tone, raw)
    inode = raw.stat().st_ino
    used = snakemake(tmp_path, "-c1", target, configfile=configfile)
    assert used.returncode == 0, used.stdout + used.stderr
    assert "rule fetch" not in used.stdout + used.stderr
    manifest = json.loads(raw.with_name("manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"][0]["source"] == "present before download (manual or earlier)"
    with np.load(tmp_path / target) as prepared:
        expected = wave[:4000] / np.abs(wave[:4000]).max()
        assert np.allclose(prepared["waveform"], expected, atol=1e-3)  # 16-bit PCM

    forced = snakemake(tmp_path, "-c1", target, "--forcerun", "fetch", configfile=configfile)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert raw.read_bytes() == tone.read_bytes() and raw.stat().st_ino == inode
    fetch_log = tmp_path / "logs" / "fetch" / "mine" / "tone.wav.log"
    assert "already present and valid: not downloading" in fetch_log.read_text(encoding="utf-8")
    # The failed attempt's log is kept beside the last one.
    attempts = fetch_log.with_name("tone.wav.attempts.log").read_text(encoding="utf-8")
    assert attempts.count("=== fetch attempt started") == 2 and "put it at" in attempts

    raw.write_bytes(b"not the tone")
    refused = snakemake(tmp_path, "-c1", target, "--forcerun", "download", configfile=configfile)
    assert refused.returncode != 0
    assert "exists but has sha256" in refused.stdout + refused.stderr
    assert raw.read_bytes() == b"not the tone"


def test_dry_run_shows_resolved_settings(tmp_path):
    result = snakemake(
        tmp_path,
        "-n",
        "-p",
        "results/runs/occupancy/bunny/deq-fourier-1L256D/seed0/model.pt",
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    hparams = json.loads(re.search(r"--hparams '(\{.*?\})'", output)[1])
    assert hparams["batch_size"] == 50000 and hparams["eval_tol"] == 1e-4
    assert hparams["spectral_norm"] is True and hparams["amortize"] is False
    assert "gpu=1" in output and "mem_mb=32000" in output


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump({"task_settings": {"audio": {"train": {"lr": "fast"}}}}), encoding="utf-8"
    )
    result = snakemake(tmp_path, "--cores", "1", configfile=bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "task_settings.audio.train.lr" in output and "expected number" in output
    assert "Job stats" not in output
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def test_unknown_model_fails_with_the_grammar(tmp_path):
    result = snakemake(tmp_path, "-n", "--config", "only_models=[deq-haar-1L8D]")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "only_models[0]" in output and "deq-fourier-1L256D" in output


def test_lint_is_clean(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(SNAKEFILE)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment(),
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_snakefmt_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- the real thing -------------------------------------------------------------------------


def tiny_config() -> dict[str, Any]:
    """The demo, shrunk: every task, one DEQ and its explicit twin, seconds per job."""
    config = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    config["models"] = {
        "families": ["deq", "mfn"],
        "filters": ["fourier"],
        "sizes": ["1L16D"],
        "baselines": [],
        "extra": [],
    }
    config["train"].update({"log_every": 5, "checkpoint_every": 10})
    for block in config["task_settings"].values():
        block["train"]["steps"] = 20
        if block["train"].get("batch_size"):
            block["train"]["batch_size"] = 1024
        block.pop("models", None)
    config["task_settings"]["video"]["models"] = {"sizes": ["1L16D"]}
    config["datasets"] = {
        "camera": {"task": "image_representation", "prepare": {"size": 32}},
        "demo_faces": {"task": "image_representation", "prepare": {"size": 16, "limit": 2}},
        "demo_nature": {"task": "image_generalization", "prepare": {"size": 32, "limit": 1}},
        "demo_chirp": {"task": "audio", "prepare": {"max_seconds": 0.25}},
        "bikes": {"task": "video", "prepare": {"frames": 3, "size": 16}},
        "demo_shape": {
            "task": "occupancy",
            "prepare": {"train_points": 4096, "test_points": 2048},
        },
    }
    return config


@pytest.mark.slow
def test_end_to_end_tiny_config(tmp_path):
    config = tiny_config()
    configfile = tmp_path / "tiny.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = snakemake(
        tmp_path,
        "--cores",
        "2",
        "--show-failed-logs",
        configfile=configfile,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]

    tables = tmp_path / "results" / "tables"
    paper = (tables / "paper.tex").read_text(encoding="utf-8")
    assert "\\begin{document}" in paper or "\\begin{table" in paper
    assert paper.index("\\section*{Claims}") < paper.index("\\begin{table}")
    claims = (tables / "claims.csv").read_text(encoding="utf-8")
    assert claims.startswith("claim,task,evidence,verdict") and "\nscale,all," in claims
    assert (tables / "paper.pdf").is_file() == bool(PDF_JOBS)
    for task in TASKS:
        assert (tables / f"{task}.csv").stat().st_size > 0
        for kind in ("curves", "cost", "reconstructions"):
            for ext in ("pdf", "png"):
                assert (tmp_path / "results" / "figures" / task / f"{kind}.{ext}").stat().st_size
    runs = sorted((tmp_path / "results" / "runs").glob("*/*/*/seed0"))
    assert len(runs) == 6 * 2
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["status"] in ("ok", "diverged")
        assert metrics["task"] == run.parts[-4] and metrics["model"] == run.parts[-2]
        assert (run / "recon" / "preview.png").is_file()
        assert (run / "curve.csv").read_text(encoding="utf-8").startswith("step,loss,psnr,seconds")
    for rule in ("download", "prepare", "train", "evaluate", "tables", "figures"):
        assert list((tmp_path / "logs" / rule).rglob("*.log")), rule
        assert list((tmp_path / "benchmarks" / rule).rglob("*.tsv")), rule

    again = snakemake(tmp_path, "-n", configfile=configfile)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr

    report = tmp_path / "report.html"
    built = snakemake(tmp_path, "--report", str(report), configfile=configfile)
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    html = report.read_text(encoding="utf-8")
    assert "Claims" in html and "Tables" in html and "Figures" in html
    for task in TASKS:
        assert task in html
