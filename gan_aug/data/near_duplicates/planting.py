"""Planted near duplicates: an image as another camera session would show it again. The audit's threshold is
calibrated on these (tools/bench_audit.py) and the tests plant them in toy sets.

What re-imaging changes: the field of view (a crop of 80-100% of the side, anywhere it fits), the scope's
angle (any rotation) and side (a flip), the magnification (a scale of 0.9-1.1), the white balance and exposure
(colour and brightness jitter) and the file (JPEG re-compression). The rotation fills the corners with the
skin around them (a reflection), not black, so a copy cannot be told by its corners.
"""

import io

import numpy as np
from PIL import Image

CROP = (0.8, 1.0)
SCALE = (0.9, 1.1)
GAIN = (0.85, 1.15)  # brightness: all channels
CHANNEL_GAIN = (0.93, 1.07)  # white balance: each channel
CONTRAST = (0.85, 1.15)
JPEG_QUALITY = (50, 95)


def reimage(pixels, rng, size):
    """A re-imaging copy of `pixels` ((H, W, 3) uint8, any shape) as a (size, size, 3) uint8 image; the crop is
    of the centred square a prepared set holds (the side is min(H, W)), so the copy and the prepared original
    show nearly the same field."""
    h, w = pixels.shape[:2]
    pad = min(h, w) // 2  # enough skin around the square for any rotation of a crop of it
    padded = Image.fromarray(np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
    rotated = padded.rotate(float(rng.uniform(0, 360)), resample=Image.Resampling.BICUBIC)
    side = min(h, w) * rng.uniform(*CROP) / rng.uniform(*SCALE)
    slack = max(0.0, min(h, w) - side) / 2
    cx, cy = padded.width / 2 + rng.uniform(-slack, slack), padded.height / 2 + rng.uniform(-slack, slack)
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    image = rotated.resize((size, size), Image.Resampling.BICUBIC, box=box)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    x = np.asarray(image).astype(np.float32)
    mean = x.mean()
    x = (x - mean) * rng.uniform(*CONTRAST) + mean
    x = x * rng.uniform(*GAIN) * rng.uniform(*CHANNEL_GAIN, size=3)
    image = Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def plant(images, count, rng, size=None):
    """(copies, sources): `count` re-imaging copies of distinct rows of `images`, and the rows they copy."""
    sources = rng.choice(len(images), size=count, replace=False)
    size = size or images.shape[1]
    return np.stack([reimage(images[i], rng, size) for i in sources]), sources
