"""Write the signals of docs/fit_defaults.md: scikit-image photos and bach clips at other sizes.

Photos from ``skimage.data``, resized with anti-aliasing, as 8- or 16-bit PNG (16-bit RGB as
TIFF); the paper's bach clip resampled (polyphase) and cut; synthetic clips. The held-out set
goes to ``OUT/held_out``, the final confirmation set to ``OUT/confirm``, and pictures of other
sources (matplotlib's sample data, scikit-image's phantom and stereo photo), held out from the
short run's rate, to ``OUT/rate_check``.

    python scripts/fit_signals.py --bach gt_bach.wav --out results/fit_defaults/signals
"""

from __future__ import annotations

import argparse
import gzip
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import soundfile
from scipy.signal import resample_poly
from skimage import data
from skimage.filters import gaussian
from skimage.transform import resize

#: name → (skimage.data image, height, width, bits)
IMAGES = {
    "astronaut_64": ("astronaut", 64, 64, 8),
    "coffee_96x128": ("coffee", 96, 128, 8),
    "brick_128_16bit": ("brick", 128, 128, 16),
    "chelsea_144x224": ("chelsea", 144, 224, 8),
    "text_160x416": ("text", 160, 416, 8),
    "rocket_256x160": ("rocket", 256, 160, 8),
    "gravel_256": ("gravel", 256, 256, 8),
    "retina_384_16bit": ("retina", 384, 384, 16),
    "moon_512": ("moon", 512, 512, 8),
}
#: Held out from the first form of the rule (docs/fit_defaults.md).
HELD_OUT_IMAGES = {
    "clock_72x96": ("clock", 72, 96, 8),
    "camera_96": ("camera", 96, 96, 8),
    "page_96x192": ("page", 96, 192, 8),
    "grass_128_16bit": ("grass", 128, 128, 16),
    "coins_152x192": ("coins", 152, 192, 8),
    "colorwheel_192_16bit": ("colorwheel", 192, 192, 16),
    "ihc_256": ("immunohistochemistry", 256, 256, 8),
    "hubble_320x384": ("hubble_deep_field", 320, 384, 8),
}
#: name → (sample rate, start second, seconds) of the bach clip
CLIPS = {
    "bach_8k_3s": (8000, 1.0, 3.0),
    "bach_16k_2s": (16000, 3.0, 2.0),
    "bach_22k_1s": (22050, 0.5, 1.0),
    "bach_48k_1s": (48000, 5.0, 1.0),
}
#: Held out from the rule's final form: fitted only after it was committed.
CONFIRM_IMAGES = {
    "microaneurysms_102": ("microaneurysms", 102, 102, 8),
    "logo_160": ("logo", 160, 160, 8),
    "horse_164x200": ("horse", 164, 200, 8),
    "cell_240x200_16bit": ("cell", 240, 200, 16),
}
HELD_OUT_CLIPS = {"bach_44k_0.75s": (44100, 4.0, 0.75), "bach_32k_1.5s": (32000, 2.0, 1.5)}


def rate_check_pictures() -> dict[str, np.ndarray]:
    """name → picture in [0, 1] (height × width, or × 3 for RGB), at its size for the rate check."""
    from matplotlib import cbook

    hopper = iio.imread(cbook.get_sample_data("grace_hopper.jpg")) / 255.0
    with gzip.open(cbook.get_sample_data("s1045.ima.gz", asfileobj=False)) as scan:
        mri = np.frombuffer(scan.read(), ">u2").reshape(256, 256).astype(np.float64)
    elevation = cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"].astype(np.float64)
    motorcycle = data.stereo_motorcycle()[0] / 255.0
    pictures = {
        "hopper_80x68": resize(hopper, (80, 68), anti_aliasing=True),
        "phantom_100": resize(data.shepp_logan_phantom(), (100, 100), anti_aliasing=True),
        "motorcycle_128x190": resize(motorcycle, (128, 190), anti_aliasing=True),
        "dem_172x202_16bit": resize(elevation, (172, 202), anti_aliasing=True),
        "mri_256_16bit": mri,
    }
    return {name: (x - x.min()) / (x.max() - x.min()) for name, x in pictures.items()}


def write_image(out: Path, name: str, source: str, height: int, width: int, bits: int) -> None:
    """One photo of ``skimage.data``, resized (:func:`write_unit`)."""
    raw = getattr(data, source)()
    top_in = 1 if raw.dtype == bool else np.iinfo(raw.dtype).max
    unit = (raw[..., :3] if raw.ndim == 3 else raw).astype(np.float64) / top_in  # logo: RGBA
    write_unit(out, name, resize(unit, (height, width), anti_aliasing=True), bits)


def write_unit(out: Path, name: str, unit: np.ndarray, bits: int) -> None:
    """A picture in [0, 1] at ``bits`` per value; 16-bit RGB goes to TIFF (PNG writers take
    16-bit gray only)."""
    top = (2**bits) - 1
    image = np.clip(unit, 0.0, 1.0) * top
    image = image.round().astype(np.uint16 if bits == 16 else np.uint8)
    suffix = ".tif" if bits == 16 and image.ndim == 3 else ".png"
    iio.imwrite(out / f"{name}{suffix}", image)


def write_smooth(out: Path) -> None:
    """Two pictures sampled above their content: the camera at 64² saved at 256² (cubic), and
    the coins at 152×192 blurred by a Gaussian of 2.5 pixels; 8-bit gray."""
    small = resize(data.camera() / 255.0, (64, 64), anti_aliasing=True)
    large = np.clip(resize(small, (256, 256), order=3), 0.0, 1.0)
    iio.imwrite(out / "camera_64_as_256.png", (large * 255).round().astype(np.uint8))
    coins = gaussian(resize(data.coins() / 255.0, (152, 192), anti_aliasing=True), sigma=2.5)
    iio.imwrite(
        out / "coins_blur_152x192.png", (np.clip(coins, 0, 1) * 255).round().astype(np.uint8)
    )


def write_clip(out: Path, name: str, wave: np.ndarray, rate: int, clip: tuple) -> None:
    """A cut of ``wave`` (at ``rate``) resampled to the clip's rate, 16-bit PCM."""
    new_rate, start, seconds = clip
    cut = wave[round(start * rate) : round((start + seconds) * rate)]
    common = math.gcd(new_rate, rate)
    cut = resample_poly(cut, new_rate // common, rate // common)
    soundfile.write(out / f"{name}.wav", cut.astype(np.float32), new_rate, subtype="PCM_16")


def synthetic_clip(rate: int = 16000, seconds: float = 1.5) -> np.ndarray:
    """A 440 Hz tone with 5 Hz vibrato, a decaying 1320 Hz partial and a noise burst after 1 s."""
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * (440 * t + 3 * np.sin(2 * np.pi * 5 * t)))
    tone += 0.2 * np.sin(2 * np.pi * 1320 * t) * np.exp(-2 * t)
    return tone + 0.05 * np.random.default_rng(0).standard_normal(t.size) * (t > 1.0)


def chirp_clip(rate: int = 11025, seconds: float = 2.0) -> np.ndarray:
    """A 200 → 2000 Hz chirp with its third harmonic, under a 3 Hz tremolo."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (200 * t + (2000 - 200) * t**2 / (2 * seconds))
    tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return tremolo * (0.6 * np.sin(phase) + 0.2 * np.sin(3 * phase))


def notes_clip(rate: int = 24000, seconds: float = 1.0) -> np.ndarray:
    """Eight plucked notes (an A-minor arpeggio), each with 4 harmonics decaying at 6 s⁻¹."""
    t = np.arange(int(rate * seconds)) / rate
    wave = np.zeros_like(t)
    step = seconds / 8
    for index, pitch in enumerate((220.0, 261.63, 329.63, 440.0, 523.25, 440.0, 329.63, 261.63)):
        local = t - index * step
        on = local >= 0
        for harmonic in range(1, 5):
            tone = np.sin(2 * np.pi * pitch * harmonic * local) / harmonic
            wave += np.where(on, tone * np.exp(-6.0 * np.clip(local, 0, None)), 0.0)
    return 0.3 * wave


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bach", type=Path, required=True, help="the paper's gt_bach.wav")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    held_out, confirm = args.out / "held_out", args.out / "confirm"
    held_out.mkdir(exist_ok=True)
    confirm.mkdir(exist_ok=True)
    for folder, images in (
        (args.out, IMAGES),
        (held_out, HELD_OUT_IMAGES),
        (confirm, CONFIRM_IMAGES),
    ):
        for name, (source, height, width, bits) in images.items():
            write_image(folder, name, source, height, width, bits)
    write_smooth(confirm)
    rate_check = args.out / "rate_check"
    rate_check.mkdir(exist_ok=True)
    for name, unit in rate_check_pictures().items():
        write_unit(rate_check, name, unit, 16 if name.endswith("16bit") else 8)
    wave, rate = soundfile.read(str(args.bach), always_2d=True)
    for folder, clips in ((args.out, CLIPS), (held_out, HELD_OUT_CLIPS)):
        for name, clip in clips.items():
            write_clip(folder, name, wave.mean(axis=1), rate, clip)
    soundfile.write(args.out / "synth_16k_1.5s.wav", synthetic_clip().astype(np.float32), 16000)
    soundfile.write(held_out / "chirp_11k_2s.wav", chirp_clip().astype(np.float32), 11025)
    soundfile.write(confirm / "notes_24k_1s.wav", notes_clip().astype(np.float32), 24000)


if __name__ == "__main__":
    main()
