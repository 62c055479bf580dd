"""``implicit2 download``: fetch one dataset's raw files (or generate a demo signal).

Writes the files into ``--dest`` (a user's local file is not copied) and then, last and atomically,
``--dest/manifest.json`` listing each file, its sha256 and its source. A file already in ``--dest``
and valid is not downloaded again, so a file put there by hand is used. ``--file NAME`` makes that
one raw file only and writes no manifest (the workflow's ``fetch`` rule).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from implicit2.data.download import DownloadError, fetch_files
from implicit2.data.manifest import write_manifest
from implicit2.data.registry import resolve_dataset

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--dataset``, ``--spec``, ``--dest``, ``--file``, ``--lock``, ``--retries``,
    ``--timeout``."""
    parser.add_argument("--dataset", required=True, help="dataset name (registry or config)")
    parser.add_argument(
        "--spec", default="{}", help="the dataset's config block as JSON ({} for the registry's)"
    )
    parser.add_argument("--dest", required=True, type=Path, help="folder: resources/raw/NAME")
    parser.add_argument(
        "--file",
        default=None,
        help="make only this raw file of the dataset and write no manifest",
    )
    parser.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="checksum lock file (default: checksums.lock.json beside --dest)",
    )
    parser.add_argument("--retries", type=int, default=3, help="retries on transient errors")
    parser.add_argument("--timeout", type=float, default=15.0, help="socket read timeout, s")


def parse_spec(text: str) -> dict[str, Any]:
    """A ``--spec`` value: a JSON object (or the path of a file holding one)."""
    source = text
    if not text.lstrip().startswith("{") and Path(text).is_file():
        source = Path(text).read_text(encoding="utf-8")
    try:
        spec = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValueError(f"--spec is not valid JSON ({error}): {text[:200]!r}") from error
    if not isinstance(spec, dict):
        raise ValueError(f"--spec must be a JSON object, got {type(spec).__name__}")
    return spec


def run(args: argparse.Namespace) -> int:
    """Fetch the files, then (without ``--file``) write the manifest; returns 0."""
    source = resolve_dataset(args.dataset, parse_spec(args.spec))
    lock = args.lock if args.lock is not None else args.dest.parent / "checksums.lock.json"
    try:
        files = fetch_files(
            source,
            args.dest,
            only=args.file,
            retries=args.retries,
            timeout=args.timeout,
            lock_file=lock,
        )
    except DownloadError as error:
        raise ValueError(str(error)) from error
    if args.file is not None:
        logger.info("dataset %s: %s is in place (no manifest written)", source.name, files[0].path)
        return 0
    manifest = write_manifest(args.dest, source, files)
    logger.info(
        "dataset %s (%s): %d file(s); wrote %s", source.name, source.task, len(files), manifest
    )
    return 0
