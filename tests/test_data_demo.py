"""Demo datasets: generated locally, the same bytes every run, the documented shapes."""

from __future__ import annotations

import hashlib

import numpy as np
import soundfile
import trimesh

from implicit2.data import demo


def test_generate_is_deterministic_and_rewrites_nothing(tmp_path):
    first = demo.generate("demo_chirp", tmp_path / "a")
    second = demo.generate("demo_chirp", tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    mtime = first.stat().st_mtime_ns
    assert demo.generate("demo_chirp", tmp_path / "a") == first
    assert first.stat().st_mtime_ns == mtime


def test_demo_images():
    faces, nature = demo.demo_faces(), demo.demo_nature()
    assert faces.shape == (4, 128, 128, 3) and faces.dtype == np.uint8
    assert nature.shape == (4, 256, 256, 3) and nature.dtype == np.uint8
    assert (
        hashlib.sha256(faces.tobytes()).digest()
        == hashlib.sha256(demo.demo_faces().tobytes()).digest()
    )
    # block means of the centred crop: the astronaut's first pixel block by hand
    import skimage.data

    astronaut = skimage.data.astronaut().astype(np.float64)
    assert np.array_equal(faces[0, 0, 0], np.rint(astronaut[:4, :4].mean(axis=(0, 1))))
    assert len({image.tobytes() for image in nature}) == 4


def test_demo_chirp_and_shape(tmp_path):
    wave, rate = demo.demo_chirp()
    assert rate == 16_000 and wave.shape == (16_000,) and wave.dtype == np.float32
    assert np.isclose(np.abs(wave).max(), 0.9)
    path = demo.generate("demo_chirp", tmp_path)
    data, file_rate = soundfile.read(path, dtype="float32")
    assert file_rate == rate and np.array_equal(data, wave)
    mesh = trimesh.load(demo.generate("demo_shape", tmp_path))
    assert mesh.is_watertight and mesh.body_count == 2
    assert np.allclose(mesh.bounds, [[-0.85, -0.85, -0.25], [0.85, 0.85, 0.45]])
