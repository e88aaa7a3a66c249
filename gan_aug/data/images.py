"""Decoding and resizing: every image mode to the RGB it shows (or a refusal), centre-crop to a square, then an
antialiased resize to size x size."""

import math
import multiprocessing
import os

import numpy as np
from PIL import Image
from tqdm import tqdm

from gan_aug.errors import UserError, first_line

# Workers decode this many files per task: fewer round trips than one file each.
CHUNK = 64

# Transparent pixels are composited over black: dermoscopy images are black outside the scope's field of view
# (the corners' vignette), so a cut-out lesion on black looks like the images it is trained beside.
ALPHA_BACKGROUND = (0, 0, 0, 255)
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
PLAIN_MODES = ("RGB", "L", "1", "P", "CMYK", "YCbCr")  # Pillow's own conversion to RGB is right for these
# What a file that fails to decode raises (UnidentifiedImageError is an OSError; a decompression bomb is neither).
DECODE_ERRORS = (OSError, ValueError, Image.DecompressionBombError)


def to_rgb(image):
    """The RGB image a PIL image shows; ValueError for a mode whose colours cannot be known (float, 32-bit)."""
    mode = image.mode
    # 16 bits per sample (I;16*, or "I" where an older Pillow opens a 16-bit PNG): Pillow's convert would clip
    # everything above 255 to white. Keep the high byte, as Pillow itself does for 16-bit RGB PNGs.
    if mode.startswith("I;16") or (mode == "I" and image.format == "PNG"):
        high = np.asarray(image).astype(np.uint32) >> 8
        return Image.fromarray(high.astype(np.uint8)).convert("RGB")
    if mode in ALPHA_MODES or (mode in PLAIN_MODES and "transparency" in image.info):
        background = Image.new("RGBA", image.size, ALPHA_BACKGROUND)
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    if mode in PLAIN_MODES:  # CMYK by Pillow's formula, without an ICC profile's colour management
        return image.convert("RGB")
    raise ValueError(f"image mode {mode} is not supported (convert it to 8- or 16-bit RGB or grayscale)")


def square_resize(image, size):
    """Centre-crop a PIL image to a square and resize it to (size, size) RGB, antialiased."""
    image = to_rgb(image)
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    # reducing_gap: a fast integer pre-shrink first, then an exact bicubic pass; close to a full
    # bicubic resize in quality and several times faster for large downscales.
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=2.0)


def decode_file(path, size):
    """(H, W, 3) uint8 for the image file at `path`, or raise OSError/ValueError when it is unreadable."""
    with Image.open(path) as image:
        w, h = image.size
        scale = size / min(w, h)
        # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale in the DCT: much faster, never below `size`.
        image.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
        image.load()
        return np.asarray(square_resize(image, size))


def decode_error(path, err):
    """One line saying why the file at `path` did not decode (the path left out of the reason)."""
    reason = first_line(err).replace(f"'{path}'", "").strip()
    return f"{os.path.basename(str(path))}: {reason or type(err).__name__}"


def load_image(path, size):
    """decode_file for one image a user names: a one-line UserError when it is missing or unreadable."""
    try:
        return decode_file(path, size)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except DECODE_ERRORS as err:
        raise UserError(f"unreadable image {path}: {decode_error(path, err)}") from None


def _decode_chunk(args):
    paths, size = args
    out = []
    for path in paths:
        try:
            out.append((decode_file(path, size), None))
        except DECODE_ERRORS as err:
            out.append((None, decode_error(path, err)))
    return out


def decode_files(paths, size, workers, progress=True, out=None):
    """Decode all `paths` to (N, size, size, 3) uint8 using `workers` processes, into `out` when given (a
    zero-filled array, e.g. a file-backed one for a set larger than memory).

    Returns (images, errors): unreadable files get an all-zero image and an entry in `errors`
    (a dict index -> message), so the caller decides whether to stop or skip them.
    """
    images = np.zeros((len(paths), size, size, 3), dtype=np.uint8) if out is None else out
    errors = {}
    chunks = [(paths[i:i + CHUNK], size) for i in range(0, len(paths), CHUNK)]
    bar = tqdm(total=len(paths), desc="decode", unit="img", disable=not progress, leave=False)
    if workers > 1 and len(chunks) > 1:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ctx.Pool(workers) as pool:
            results = pool.imap(_decode_chunk, chunks)
            _collect(results, images, errors, bar)
    else:
        _collect(map(_decode_chunk, chunks), images, errors, bar)
    bar.close()
    return images, errors


def _collect(results, images, errors, bar):
    index = 0
    for chunk in results:
        for array, error in chunk:
            if error is None:
                images[index] = array
            else:
                errors[index] = error
            index += 1
        bar.update(len(chunk))


def resize_arrays(arrays, size, progress=True):
    """Centre-crop and resize decoded (N, H, W, 3) uint8 images; a no-op when already square at size."""
    if arrays.shape[1:3] == (size, size):
        return arrays
    out = np.empty((len(arrays), size, size, 3), dtype=np.uint8)
    for i in tqdm(range(len(arrays)), desc="resize", unit="img", disable=not progress, leave=False):
        out[i] = np.asarray(square_resize(Image.fromarray(arrays[i]), size))
    return out
