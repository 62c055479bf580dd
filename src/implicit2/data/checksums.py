"""File checksums and the lock file that remembers them.

When the registry knows no checksum for a file, the first successful download records its sha256 in
a JSON lock file (``resources/raw/checksums.lock.json`` by default); later downloads of the same
file from the same location must match it. Entries are keyed by ``dataset/file`` and then by the
location the bytes came from (a Drive copy and a Stanford archive of one mesh differ).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from implicit2.io import read_json, write_json

logger = logging.getLogger(__name__)

try:  # POSIX advisory locks keep parallel downloads from losing each other's entries.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ChecksumLock:
    """The lock file of recorded checksums.

    Args:
        path: the JSON file (created on first record); None disables recording.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None

    def recorded(self, key: str) -> dict[str, str]:
        """Recorded ``{location: sha256}`` for ``key`` (``dataset/file``)."""
        if self.path is None or not self.path.exists():
            return {}
        entry = self._read().get(key, {})
        return dict(entry) if isinstance(entry, dict) else {}

    def record(self, key: str, location: str, digest: str) -> None:
        """Record ``digest`` for ``key`` fetched from ``location`` (no-op when disabled)."""
        if self.path is None:
            return
        with self._exclusive():
            data = self._read() if self.path.exists() else {}
            entry = data.setdefault(key, {})
            if entry.get(location) != digest:
                entry[location] = digest
                write_json(self.path, data)
                logger.info("recorded sha256 of %s (%s) in %s", key, location, self.path)

    def _read(self) -> dict[str, dict[str, str]]:
        assert self.path is not None
        data = read_json(self.path)
        if not isinstance(data, dict):
            raise ValueError(
                f"{self.path}: expected a JSON object of checksums; delete it to reset"
            )
        return data

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        with (self.path.parent / f".{self.path.name}.flock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
