"""Images: representation (fit every pixel) and generalization (fit even pixels, test on odd).

Conventions (the authors' code): coordinates are the (x, y) meshgrid of ``linspace(-1, 1, ·)``
(:func:`implicit2.tasks.grids.image_coords`); targets are intensities ``v ∈ [0, 1]`` mapped to
``2v − 1``, shape (S, H·W, C); PSNR is ``−10 log10(MSE)`` per image on outputs mapped back with
``(y + 1) / 2`` and clamped to [0, 1]. Generalization trains on ``[::2, ::2]`` of the full grid
and tests on ``[1::2, 1::2]`` (H and W must be even).

Raw input: one picture (png/jpg/…), or a ``.npy``/``.npz`` holding (H, W), (H, W, C), (N, H, W) or
(N, H, W, C) intensities. The prepared npz stores the images (uint8 when exact, else float32 in
[0, 1]) and the split; coordinates and targets are rebuilt by ``load``.

``prepare`` options, applied in this order: ``key`` (npz array; default ``test_data`` if present,
as the authors use for DIV2K/text), ``reshape`` ([H, W, C]: reshape the raw array to (-1, H, W,
C)), ``value_scale`` (divide raw values by it; default by dtype), ``limit`` (first K images),
``crop`` (int: centred square; or [top, left, height, width]), ``size`` (int: shorter side, aspect
kept; or [height, width]; block means when the factor is an integer, else anti-aliased resize).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from implicit2.data.arrays import NUMPY_SUFFIXES, read_array
from implicit2.data.manifest import raw_file
from implicit2.names import IMAGE_SUFFIXES
from implicit2.tasks import imaging
from implicit2.tasks.base import Predict, PreparedData, Task
from implicit2.tasks.grids import image_coords
from implicit2.tasks.options import check_options, positive_int, value_scale
from implicit2.tasks.preview import safe_name, save_png, tile
from implicit2.tasks.scores import psnr_summary, run_predict, unit_psnr
from implicit2.tasks.storage import check_array, open_prepared, save_prepared, signal_names

logger = logging.getLogger(__name__)

MAX_EXPORTED = 8
#: Pillow colour modes whose channels are not gray/RGB(+alpha): read converted to RGB.
COLOUR_MODES_AS_RGB = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})

OPTIONS = {
    "key": "array name inside an npz (default: test_data if present, else the only array)",
    "reshape": "[H, W, C]: reshape the raw array to (-1, H, W, C) first",
    "value_scale": "divide raw values by this (default: 255 for uint8, 65535 for uint16)",
    "limit": "keep the first K images",
    "crop": "int (centred square) or [top, left, height, width]",
    "size": "int (shorter side, aspect kept) or [height, width]",
}


def read_images(path: Path, options: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Read ``path`` into float32 (N, H, W, C) intensities in [0, 1] and N signal names."""
    suffix = path.suffix.lower()
    if suffix in NUMPY_SUFFIXES:
        array = read_array(path, options.get("key"), preferred=("test_data", "images", "image"))
    elif suffix in IMAGE_SUFFIXES:
        import imageio.v3 as iio

        try:
            array = iio.imread(path)
            if iio.immeta(path).get("mode") in COLOUR_MODES_AS_RGB:
                array = iio.imread(path, mode="RGB")  # CMYK's 4th channel is ink, not alpha
        except Exception as error:  # imageio raises many types for a bad file
            raise ValueError(f"{path}: not a readable image ({error})") from error
    else:
        raise ValueError(
            f"{path}: unsupported image file type {suffix!r}; use one of "
            f"{', '.join(IMAGE_SUFFIXES + NUMPY_SUFFIXES)}"
        )
    shape = options.get("reshape")
    if shape is not None:
        try:
            array = np.asarray(array).reshape(-1, *[int(v) for v in shape])
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{path}: cannot reshape {array.shape} to {shape} ({error})"
            ) from error
    stack = imaging.as_stack(array, str(path))
    scale = value_scale("image", options)
    limit = positive_int("image", options, "limit", None)
    if limit is not None:
        stack = stack[:limit]
    stack = imaging.to_unit(stack, str(path), scale)
    if len(stack) == 1:
        names = [path.stem]
    else:
        names = [f"{path.stem}_{index:03d}" for index in range(len(stack))]
    return stack, names


class _ImageTask(Task):
    """Shared by both image tasks; ``split`` picks the train/test pixels."""

    split: str = "full"

    def prepare(self, raw: Path, out: Path, options: dict[str, Any]) -> None:
        """Read the image(s), apply the options and write the prepared npz (see module doc)."""
        options = check_options(self.name, options, OPTIONS)
        path, dataset = raw_file(raw)
        stack, names = read_images(path, options)
        if options.get("crop") is not None:
            stack = imaging.crop(stack, options["crop"], str(path))
        if options.get("size") is not None:
            height, width = stack.shape[1:3]
            shape = imaging.target_shape(options["size"], height, width, str(path))
            if shape != (height, width):
                logger.info("resizing %dx%d → %dx%d", height, width, *shape)
            stack = imaging.resize(stack, shape)
        height, width = stack.shape[1:3]
        if self.split == "even_odd" and (height % 2 or width % 2):
            raise ValueError(
                f"{path}: {self.name} needs an even height and width (even/odd pixel split), got "
                f"{height}x{width}; set crop or size"
            )
        meta = {"source": str(path), "options": options, "split": self.split}
        save_prepared(
            out,
            self.name,
            dataset,
            meta,
            images=imaging.pack_unit(stack),
            signal_names=np.array(names),
        )
        logger.info("prepared %d image(s) of %dx%dx%d → %s", *stack.shape, out)

    def load(self, npz: Path) -> PreparedData:
        """Load the images and build coordinates, targets and the split."""
        path = Path(npz)
        arrays, meta, dataset = open_prepared(path, self.name, ("images", "signal_names"))
        images = check_array(arrays["images"], f"{path}: images", ndim=4, kinds="uf")
        images = imaging.unpack_unit(images, f"{path}: images")
        count, height, width, channels = images.shape
        if channels not in (1, 3) or min(height, width) < 2:
            raise ValueError(f"{path}: images of shape {images.shape} are not (N, H, W, 1|3)")
        names = signal_names(arrays, count, path)
        coords = image_coords(height, width).reshape(height, width, 2)
        targets = 2.0 * images - 1.0
        if self.split == "even_odd":
            if height % 2 or width % 2:
                raise ValueError(f"{path}: odd image size {height}x{width} for an even/odd split")
            train, test = (slice(0, None, 2),) * 2, (slice(1, None, 2),) * 2
        else:
            train = test = (slice(None), slice(None))
        train_coords = np.ascontiguousarray(coords[train].reshape(-1, 2))
        train_targets = np.ascontiguousarray(
            targets[(slice(None), *train)].reshape(count, -1, channels)
        )
        if self.split == "even_odd":
            test_coords = np.ascontiguousarray(coords[test].reshape(-1, 2))
            test_targets = np.ascontiguousarray(
                targets[(slice(None), *test)].reshape(count, -1, channels)
            )
            test_shape = [height // 2, width // 2]
        else:
            test_coords, test_targets, test_shape = train_coords, train_targets, [height, width]
        meta = {**meta, "image_shape": [height, width, channels], "test_shape": test_shape}
        return PreparedData(
            task=self.name,
            dataset=dataset,
            train_coords=train_coords,
            train_targets=train_targets.astype(np.float32),
            test_coords=test_coords,
            test_targets=test_targets.astype(np.float32),
            signal_names=names,
            meta=meta,
        )

    def evaluate(self, predict: Predict, data: PreparedData) -> tuple[dict[str, Any], np.ndarray]:
        """PSNR per image on the test pixels; predictions are (S, M, C) model-space outputs."""
        output = run_predict(predict, data.test_coords, data.num_signals, data.out_dim)
        values = unit_psnr(output, data.test_targets, axis=(1, 2))
        return psnr_summary(values), output

    def export(
        self, predictions: np.ndarray, data: PreparedData, out_dir: Path, predict: Predict | None
    ) -> list[Path]:
        """One PNG per image (first 8) of the test grid, and ``preview.png`` (truth over
        reconstruction)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        height, width = data.meta["test_shape"]
        shown = min(data.num_signals, MAX_EXPORTED)
        shape = (data.num_signals, height, width, data.out_dim)
        recon = np.clip((predictions.reshape(shape) + 1.0) / 2.0, 0.0, 1.0)
        truth = (data.test_targets.reshape(shape) + 1.0) / 2.0
        files = [
            save_png(
                out_dir / f"{index:02d}_{safe_name(data.signal_names[index])}.png", recon[index]
            )
            for index in range(shown)
        ]
        files.append(
            save_png(out_dir / "preview.png", tile([list(truth[:shown]), list(recon[:shown])]))
        )
        return files


class ImageRepresentation(_ImageTask):
    """Fit every pixel; test on the same pixels (camera, CelebA)."""

    name = "image_representation"
    split = "full"


class ImageGeneralization(_ImageTask):
    """Fit the even rows/columns; test on the odd ones (DIV2K, text)."""

    name = "image_generalization"
    split = "even_odd"
