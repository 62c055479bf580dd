"""Audio: fit a waveform as a function of time.

Conventions: coordinates ``linspace(-1, 1, T)`` (T, 1); the mono waveform (channels averaged) is
divided by its peak ``max |x|`` so it lies in [-1, 1]; PSNR is ``−10 log10(MSE)`` on that
normalised waveform (``model_range = 1``, no clamping). One signal; train = test.

Raw input: any file libsndfile reads (wav, flac, ogg …). The prepared npz stores the normalised
waveform (float32), the sample rate and the peak.

``prepare`` options: ``offset_seconds`` (skip this much first; default 0), ``max_seconds`` (keep at
most this much; default all), ``resample`` (new sample rate in Hz, polyphase filter; default
none). The file must have a sample rate > 0, at least one sample, finite values and not be silent.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from implicit2.data.manifest import raw_file
from implicit2.io import atomic_path
from implicit2.tasks.base import Predict, PreparedData, Task
from implicit2.tasks.grids import audio_coords
from implicit2.tasks.options import check_options, non_negative_float, positive_int
from implicit2.tasks.scores import psnr, psnr_summary, run_predict
from implicit2.tasks.storage import check_array, open_prepared, save_prepared, signal_names

logger = logging.getLogger(__name__)

SILENCE = 1e-8

OPTIONS = {
    "offset_seconds": "skip this many seconds at the start (default 0)",
    "max_seconds": "keep at most this many seconds (default: all)",
    "resample": "resample to this rate in Hz (default: keep the file's rate)",
}


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """A mono float64 waveform and its sample rate; errors name the file."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except Exception as error:  # libsndfile raises LibsndfileError/RuntimeError/TypeError
        raise ValueError(f"{path}: not a readable audio file ({error})") from error
    if rate <= 0:
        raise ValueError(f"{path}: sample rate {rate} is not positive")
    if data.shape[0] == 0:
        raise ValueError(f"{path}: no samples")
    check_array(data, f"{path}: waveform", ndim=2, kinds="f")
    return data.mean(axis=1), int(rate)


class Audio(Task):
    """Audio waveform fitting (bach, counting)."""

    name = "audio"
    model_range = 1.0

    def prepare(self, raw: Path, out: Path, options: dict[str, Any]) -> None:
        """Read, trim, resample and peak-normalise the waveform; write the prepared npz."""
        options = check_options(self.name, options, OPTIONS)
        path, dataset = raw_file(raw)
        wave, rate = read_audio(path)
        offset = non_negative_float(self.name, options, "offset_seconds", 0.0) or 0.0
        length = non_negative_float(self.name, options, "max_seconds", None)
        start = round(offset * rate)
        stop = None if length is None else start + round(length * rate)
        wave = wave[start:stop]
        if wave.size < 2:
            raise ValueError(
                f"{path}: fewer than 2 samples left after offset_seconds={offset}, "
                f"max_seconds={length} (the file has {rate} Hz)"
            )
        new_rate = positive_int(self.name, options, "resample", None)
        if new_rate is not None and new_rate != rate:
            from scipy.signal import resample_poly

            common = math.gcd(new_rate, rate)
            wave = resample_poly(wave, new_rate // common, rate // common)
            rate = new_rate
            if wave.size < 2:
                raise ValueError(
                    f"{path}: fewer than 2 samples left after resample={new_rate}; keep more of "
                    "the file (offset_seconds, max_seconds) or resample less"
                )
        peak = float(np.abs(wave).max())
        if peak < SILENCE:
            raise ValueError(f"{path}: the audio is silent (peak |amplitude| {peak:g})")
        meta = {"source": str(path), "options": options, "sample_rate": rate, "peak": peak}
        save_prepared(
            out,
            self.name,
            dataset,
            meta,
            waveform=(wave / peak).astype(np.float32),
            signal_names=np.array([dataset]),
        )
        logger.info("prepared %d samples at %d Hz (peak %.4g) → %s", wave.size, rate, peak, out)

    def load(self, npz: Path) -> PreparedData:
        """Load the normalised waveform; coordinates are ``linspace(-1, 1, T)``."""
        path = Path(npz)
        arrays, meta, dataset = open_prepared(path, self.name, ("waveform", "signal_names"))
        wave = check_array(arrays["waveform"], f"{path}: waveform", ndim=1, kinds="f")
        wave = check_array(
            wave.astype(np.float32), f"{path}: waveform", low=-1.0 - 1e-6, high=1.0 + 1e-6
        )
        if wave.size < 2 or np.abs(wave).max() < SILENCE:
            raise ValueError(
                f"{path}: waveform has {wave.size} samples and peak {np.abs(wave).max()}"
            )
        rate = meta.get("sample_rate")
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"{path}: meta sample_rate {rate!r} is not a positive integer")
        coords = audio_coords(wave.size)
        targets = wave[None, :, None]
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
        """PSNR on the normalised waveform; predictions are (1, T, 1)."""
        output = run_predict(predict, data.test_coords, data.num_signals, data.out_dim)
        return psnr_summary(psnr(output, data.test_targets, axis=(1, 2))), output

    def export(
        self, predictions: np.ndarray, data: PreparedData, out_dir: Path, predict: Predict | None
    ) -> list[Path]:
        """``reconstruction.wav`` (normalised, at the original rate) and ``preview.png``."""
        import soundfile

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        recon = np.clip(predictions[0, :, 0], -1.0, 1.0).astype(np.float32)
        truth = data.test_targets[0, :, 0]
        wav = out_dir / "reconstruction.wav"
        with atomic_path(wav) as temp:
            soundfile.write(str(temp), recon, int(data.meta["sample_rate"]), subtype="FLOAT")
        preview = out_dir / "preview.png"
        _plot(truth, recon, int(data.meta["sample_rate"]), preview)
        return [wav, preview]


def _plot(truth: np.ndarray, recon: np.ndarray, rate: int, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    seconds = np.arange(truth.size) / rate
    figure = Figure(figsize=(10, 6))
    axes = figure.subplots(3, 1, sharex=True)
    for axis, values, title in zip(
        axes,
        (truth, recon, truth - recon),
        ("ground truth", "reconstruction", "error (truth − reconstruction)"),
        strict=True,
    ):
        axis.plot(seconds, values, linewidth=0.4)
        axis.set_ylim(-1.05, 1.05)
        axis.set_title(title, fontsize=9)
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, dpi=100)
