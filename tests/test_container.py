"""The Dockerfile builds the locked environment into an image, and `implicit2 fit` runs in it.

Runs where Podman works (skips with the reason elsewhere). No registry is needed: the base image
is IMPLICIT2_BASE_IMAGE, else ``localhost/debian:bookworm-minbase`` when Podman has it, else one
made here with debootstrap from Debian's archive (root only). The build reaches PyPI; the CPU
torch wheel comes from pip's find-links folders when set ($PIP_FIND_LINKS or `pip config`,
mounted into the build), else from PyTorch's CPU index. The Podman flags that restricted hosts
need (fuse-overlayfs storage, runc, cgroupfs, chroot builds, modest ulimits: docs/container.md)
are used where they apply. The first build takes minutes; later ones reuse the cached layers.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_packaging import LOCK, TORCH_FILES, pins

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/implicit2:test"
DEBIAN_BASE = "localhost/debian:bookworm-minbase"
#: Where the test keeps Podman's images (fuse-overlayfs: vfs copies the whole image per container).
STORAGE = Path(os.environ.get("IMPLICIT2_PODMAN_ROOT", "/var/tmp/implicit2-podman"))
RUN_FLAGS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

# The build's minutes count against the first test that needs the image.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def podman_command() -> list[str]:
    """podman with the storage and runtime flags that work on a restricted host."""
    command = ["podman", "--root", str(STORAGE), "--runroot", f"{STORAGE}-run"]
    if shutil.which("fuse-overlayfs") and Path("/dev/fuse").exists():
        command += ["--storage-driver", "overlay"]
        command += ["--storage-opt", f"overlay.mount_program={shutil.which('fuse-overlayfs')}"]
    else:
        command += ["--storage-driver", "vfs"]
    if shutil.which("runc"):
        command += ["--runtime", "runc"]
    return [*command, "--cgroup-manager", "cgroupfs"]


def podman(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*podman_command(), *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def pip_setting(name: str) -> str:
    """A pip setting as the host's pip sees it: $PIP_<NAME>, else `pip config` (any scope)."""
    value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
    if value:
        return value
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    for line in listed.splitlines():
        key, _, found = line.partition("=")
        if key.endswith("." + name):
            return found.strip().strip("'\"")
    return ""


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian: apt-get install podman fuse-overlayfs runc)")
    if os.environ.get("IMPLICIT2_BASE_IMAGE"):
        return os.environ["IMPLICIT2_BASE_IMAGE"]
    if podman("image", "exists", DEBIAN_BASE).returncode == 0:
        return DEBIAN_BASE
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.skip("no base image: set IMPLICIT2_BASE_IMAGE, or run as root with debootstrap")
    rootfs = tmp_path_factory.mktemp("debootstrap") / "rootfs"
    made = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if made.returncode != 0:
        pytest.skip(f"debootstrap failed (no Debian mirror?): {made.stderr.strip()[-300:]}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = podman("import", "-", DEBIAN_BASE, stdin=tar.stdout, timeout=600)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    assert imported.returncode == 0, imported.stderr
    return DEBIAN_BASE


@pytest.fixture(scope="module")
def image(base_image) -> str:
    probe = podman("run", "--rm", *RUN_FLAGS, base_image, "true", timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    command = ["build", "--isolation", "chroot", "--network", "host"]
    command += ["--build-arg", f"BASE={base_image}", "-t", IMAGE, "-f", str(ROOT / "Dockerfile")]
    links = [link for link in pip_setting("find-links").split() if Path(link).is_dir()]
    for number, link in enumerate(links):
        command += ["-v", f"{link}:/links/{number}:ro"]
    if links:
        flags = " ".join(f"--find-links /links/{number}" for number in range(len(links)))
        command += ["--build-arg", f"TORCH_PIP_ARGS={flags}"]
    certificate = pip_setting("cert")
    if certificate and Path(certificate).is_file():  # a TLS-inspecting proxy's CA
        command += ["-v", f"{certificate}:/ca.crt:ro", "--build-arg", "PIP_CA_BUNDLE=/ca.crt"]
    built = podman(*command, str(ROOT), timeout=3000)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


def test_the_image_holds_the_locked_environment(image):
    result = podman(
        "run", "--rm", *RUN_FLAGS, "--network", "none", image,
        "pip", "freeze", "--all", "--exclude-editable",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frozen = dict(line.split("==") for line in result.stdout.split())
    frozen = {name.lower().replace("_", "-"): version for name, version in frozen.items()}
    assert frozen == pins(LOCK, TORCH_FILES["cpu"])


def test_fit_runs_in_the_image_as_on_the_host(image, tmp_path):
    """The same fit, one thread, on the CPU: the image's locked packages give the host's numbers."""
    from skimage import data
    from skimage.io import imsave

    imsave(tmp_path / "crop.png", data.camera()[200:232, 240:272], check_contrast=False)
    fit = ["-m", "implicit2", "fit", "crop.png", "--model", "deq-fourier-1L64D", "--steps", "30"]
    fit += ["--device", "cpu", "--out"]
    result = podman(
        "run", "--rm", *RUN_FLAGS, "--network", "none", "-e", "OMP_NUM_THREADS=1",
        "-v", f"{tmp_path}:/work", image, "python", *fit, "in-image",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    host = subprocess.run(
        [sys.executable, *fit, "on-host"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert host.returncode == 0, host.stderr[-2000:]
    inside, outside = (
        json.loads((tmp_path / run / "metrics.json").read_text(encoding="utf-8"))
        for run in ("in-image", "on-host")
    )
    assert inside["status"] == "ok" and inside["task"] == "image_representation"
    assert inside["psnr"] == outside["psnr"] and inside["psnr"] > 10
    provenance = inside["provenance"]
    assert (
        provenance["torch"] == "2.13.0+cpu"
        and provenance["version"] == outside["provenance"]["version"]
    )
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    assert provenance["lock"]["requirements/lock.txt"] == digest
