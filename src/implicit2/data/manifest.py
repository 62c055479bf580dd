"""The ``manifest.json`` a download leaves in ``resources/raw/{dataset}/`` (written last).

It lists the dataset's raw files (a path relative to the manifest for files in the folder, an
absolute path for the user's own file, which is read where it is), their sha256, size and where
they came from. ``prepare`` finds its input through it (:func:`raw_file`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from implicit2.data.checksums import sha256_file
from implicit2.data.registry import DatasetSource
from implicit2.io import read_json, write_json

MANIFEST = "manifest.json"
VERSION = 1


@dataclass(frozen=True)
class RawFile:
    """One raw file of a dataset and where it came from."""

    path: Path
    source: str


def write_manifest(
    dest: str | os.PathLike[str], source: DatasetSource, files: list[RawFile]
) -> Path:
    """Atomically write ``dest/manifest.json`` describing ``files``; returns its path."""
    dest = Path(dest)
    entries = []
    for item in files:
        path = Path(item.path)
        try:
            shown = str(path.resolve().relative_to(dest.resolve()))
        except ValueError:
            shown = str(path.resolve())
        entries.append(
            {
                "name": path.name,
                "path": shown,
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "source": item.source,
            }
        )
    payload = {
        "version": VERSION,
        "dataset": source.name,
        "task": source.task,
        "kind": source.kind,
        "description": source.description,
        "files": entries,
    }
    target = dest / MANIFEST
    write_json(target, payload)
    return target


def read_manifest(raw_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``raw_dir/manifest.json``; errors say how to produce it."""
    path = Path(raw_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run `python -m implicit2 download --dataset NAME "
            f"--dest {raw_dir}` first"
        )
    data = read_json(path)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not files or not all(_entry_ok(f) for f in files):
        raise ValueError(
            f"{path}: no 'files' list with paths; delete the folder and download again"
        )
    return data


def _entry_ok(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("path"), str)


def manifest_files(
    raw_dir: str | os.PathLike[str], manifest: dict[str, Any] | None = None
) -> list[Path]:
    """The raw files a manifest (read from ``raw_dir`` unless given) lists; each must exist and
    still have the size and sha256 recorded at download."""
    raw_dir = Path(raw_dir)
    paths = []
    for entry in (manifest or read_manifest(raw_dir))["files"]:
        path = Path(entry["path"])
        path = path if path.is_absolute() else raw_dir / path
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} (listed in {raw_dir / MANIFEST}) is missing: download the dataset again"
            )
        size, digest = entry.get("size"), entry.get("sha256")
        if (size is not None and path.stat().st_size != size) or (
            digest is not None and sha256_file(path) != digest
        ):
            raise ValueError(
                f"{path} changed since {raw_dir / MANIFEST} was written (size or sha256 differ): "
                "delete the manifest and download again"
            )
        paths.append(path)
    return paths


def raw_file(raw: str | os.PathLike[str]) -> tuple[Path, str]:
    """Resolve ``raw`` (a file, or a download folder with a manifest) to one file and a name.

    Returns:
        (the raw file, the dataset name: the manifest's, else the file's stem).
    """
    raw = Path(raw)
    if raw.is_file():
        return raw, raw.stem
    if not raw.exists():
        raise FileNotFoundError(f"{raw} does not exist")
    manifest = read_manifest(raw)
    paths = manifest_files(raw, manifest)
    if len(paths) != 1:
        names = ", ".join(p.name for p in paths)
        raise ValueError(f"{raw / MANIFEST} lists {len(paths)} files ({names}); expected one")
    return paths[0], str(manifest.get("dataset") or raw.name)
