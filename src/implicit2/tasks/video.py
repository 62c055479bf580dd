"""Video: fit RGB as a function of (t, y, x).

Conventions (the authors' code): coordinates are the ``ij`` meshgrid of ``linspace(-1, 1, ·)``
over (t, y, x) (:func:`implicit2.tasks.grids.video_coords`); targets are RGB in [0, 1] mapped to
``2v − 1``. Training draws random minibatches of pixels each step (``full_batch = False``; the
default ``sample_index``). The whole video is one signal; PSNR is computed per frame on outputs
mapped back to [0, 1] and clamped: ``psnr`` / ``psnr_std`` are the mean / std over frames and
``psnr_per_signal`` holds the per-frame list (one entry per frame, not per signal).

Raw input: a video file PyAV decodes (mp4, avi, mov, mkv, webm), or a ``.npy``/``.npz`` array
(T, H, W[, C]) of intensities (npz key ``video`` or ``frames`` by default). The prepared npz stores
the frames (uint8 when not resized, else float32 in [0, 1]) and the frame rate; coordinates and
targets are rebuilt by ``load``.

``prepare`` options: ``stride`` (keep every k-th frame; default 1), ``frames`` (then keep the first
K; default all), ``size`` (int: shorter side, aspect kept; or [height, width]; block means when the
factor is an integer), ``key`` (npz array).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from implicit2.data.arrays import NUMPY_SUFFIXES, read_array
from implicit2.data.manifest import raw_file
from implicit2.io import atomic_path
from implicit2.names import VIDEO_SUFFIXES
from implicit2.tasks import imaging
from implicit2.tasks.base import Predict, PreparedData, Task
from implicit2.tasks.grids import video_coords
from implicit2.tasks.options import check_options, positive_int, value_scale
from implicit2.tasks.preview import save_png, tile
from implicit2.tasks.scores import psnr_summary, run_predict, unit_psnr
from implicit2.tasks.storage import check_array, open_prepared, save_prepared, signal_names

logger = logging.getLogger(__name__)

PREVIEW_FRAMES = 4
DEFAULT_FPS = 25.0

OPTIONS = {
    "stride": "keep every k-th frame (default 1)",
    "frames": "keep the first K frames after the stride (default: all)",
    "size": "int (shorter side, aspect kept) or [height, width]",
    "key": "array name inside an npz (default: video or frames)",
    "value_scale": "npy/npz: divide raw values by this (default: 255 for uint8, 65535 for uint16)",
}


class _Selection:
    """Which frames to keep and how to resize them, applied while decoding."""

    def __init__(self, options: dict[str, Any], what: str) -> None:
        self.stride = positive_int("video", options, "stride", 1) or 1
        self.limit = positive_int("video", options, "frames", None)
        self.size = options.get("size")
        self.what = what

    def indices(self, count: int) -> list[int]:
        return list(range(0, count, self.stride))[: self.limit]

    def shape(self, height: int, width: int) -> tuple[int, int] | None:
        if self.size is None:
            return None
        return imaging.target_shape(self.size, height, width, self.what)


def read_video(path: Path, options: dict[str, Any]) -> tuple[np.ndarray, float]:
    """Frames (T, H, W, C) — uint8 when not resized, else float32 in [0, 1] — and frames/s."""
    selection = _Selection(options, str(path))
    suffix = path.suffix.lower()
    if suffix in NUMPY_SUFFIXES:
        array = read_array(path, options.get("key"), preferred=("video", "frames"))
        if array.ndim == 3:
            array = array[..., None]
        if array.ndim != 4 or array.shape[0] == 0:
            raise ValueError(
                f"{path}: expected a video (T, H, W[, C]) with T ≥ 1, got {array.shape}"
            )
        stack = imaging.as_stack(array[selection.indices(array.shape[0])], str(path))
        stack = imaging.to_unit(stack, str(path), value_scale("video", options))
        shape = selection.shape(*stack.shape[1:3])
        frames = imaging.pack_unit(stack if shape is None else imaging.resize(stack, shape))
        return frames, DEFAULT_FPS / selection.stride
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported video file type {suffix!r}; use one of "
            f"{', '.join(VIDEO_SUFFIXES + NUMPY_SUFFIXES)}"
        )
    return _decode(path, selection)


def _decode(path: Path, selection: _Selection) -> tuple[np.ndarray, float]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"{path}: not a readable video ({error})") from error
    frames: list[np.ndarray] = []
    with container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream (zero frames)")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else DEFAULT_FPS
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % selection.stride:
                    continue
                image = frame.to_ndarray(format="rgb24")
                shape = selection.shape(*image.shape[:2])
                if shape is not None:
                    if not frames and shape != image.shape[:2]:
                        logger.info("resizing frames of %dx%d → %dx%d", *image.shape[:2], *shape)
                    image = imaging.resize(image[None].astype(np.float32) / 255.0, shape)[0]
                frames.append(image)
                if selection.limit is not None and len(frames) >= selection.limit:
                    break
        except av.error.FFmpegError as error:
            raise ValueError(
                f"{path}: decoding failed after {len(frames)} frames ({error})"
            ) from error
    if not frames:
        raise ValueError(f"{path}: zero frames decoded; the video is empty")
    return np.stack(frames), fps / selection.stride


class Video(Task):
    """Video fitting (cat, bikes) with random pixel minibatches."""

    name = "video"

    def prepare(self, raw: Path, out: Path, options: dict[str, Any]) -> None:
        """Decode the selected frames, resize them and write the prepared npz."""
        options = check_options(self.name, options, OPTIONS)
        path, dataset = raw_file(raw)
        frames, fps = read_video(path, options)
        meta = {"source": str(path), "options": options, "fps": fps}
        save_prepared(
            out, self.name, dataset, meta, frames=frames, signal_names=np.array([dataset])
        )
        logger.info("prepared %d frames of %dx%dx%d at %.3g fps → %s", *frames.shape, fps, out)

    def load(self, npz: Path) -> PreparedData:
        """Load the frames; coordinates are the (t, y, x) grid, all pixels train and test."""
        path = Path(npz)
        arrays, meta, dataset = open_prepared(path, self.name, ("frames", "signal_names"))
        frames = check_array(arrays["frames"], f"{path}: frames", ndim=4, kinds="uf")
        frames = imaging.unpack_unit(frames, f"{path}: frames")
        count, height, width, channels = frames.shape
        if channels not in (1, 3):
            raise ValueError(f"{path}: frames of shape {frames.shape} are not (T, H, W, 1|3)")
        fps = meta.get("fps")
        if not isinstance(fps, (int, float)) or fps <= 0:
            raise ValueError(f"{path}: meta fps {fps!r} is not a positive number")
        coords = video_coords(count, height, width)
        frames *= 2.0  # in place: a full video is hundreds of MB
        frames -= 1.0
        targets = frames.reshape(1, -1, channels)
        meta = {**meta, "video_shape": [count, height, width, channels]}
        return PreparedData(
            task=self.name,
            dataset=dataset,
            train_coords=coords,
            train_targets=targets,
            test_coords=coords,
            test_targets=targets,
            signal_names=signal_names(arrays, 1, path),
            meta=meta,
        )

    def evaluate(self, predict: Predict, data: PreparedData) -> tuple[dict[str, Any], np.ndarray]:
        """PSNR per frame (``psnr_per_signal`` lists frames); predictions are (1, T·H·W, C)."""
        output = run_predict(predict, data.test_coords, 1, data.out_dim)
        count = data.meta["video_shape"][0]
        frames, truth = output.reshape(count, -1), data.test_targets.reshape(count, -1)
        # frame by frame: float64 temporaries of a whole video would need gigabytes
        values = [unit_psnr(frames[i], truth[i], axis=(0,)) for i in range(count)]
        metrics = psnr_summary(np.array(values))
        metrics["frames"] = count
        return metrics, output

    def export(
        self, predictions: np.ndarray, data: PreparedData, out_dir: Path, predict: Predict | None
    ) -> list[Path]:
        """``preview.png`` (a few frames: truth row over reconstruction row) and
        ``reconstruction.mp4`` (skipped with a warning if no H.264 encoder is available)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        shape = tuple(data.meta["video_shape"])
        recon = np.clip((predictions.reshape(shape) + 1.0) / 2.0, 0.0, 1.0)
        truth = (data.test_targets.reshape(shape) + 1.0) / 2.0
        picks = np.unique(np.linspace(0, shape[0] - 1, PREVIEW_FRAMES).round().astype(int))
        files = [save_png(out_dir / "preview.png", tile([list(truth[picks]), list(recon[picks])]))]
        movie = out_dir / "reconstruction.mp4"
        try:
            write_mp4(movie, recon, float(data.meta["fps"]))
            files.append(movie)
        except Exception as error:  # a missing codec must not lose the other exports
            logger.warning("could not write %s (%s); the preview is still there", movie, error)
        return files


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """Atomically encode [0, 1] frames (T, H, W, C) as H.264 (padded to even sizes)."""
    import av

    data = np.rint(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    pad_h, pad_w = data.shape[1] % 2, data.shape[2] % 2
    data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with atomic_path(path) as temp, av.open(str(temp), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = data.shape[2], data.shape[1]
        stream.pix_fmt = "yuv420p"
        for image in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
