"""Decoding and resizing: centre-crop to a square, then an antialiased resize to size x size."""

import math
import multiprocessing
import os

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

# Workers decode this many files per task: fewer round trips than one file each.
CHUNK = 64


def square_resize(image, size):
    """Centre-crop a PIL image to a square and resize it to (size, size) RGB, antialiased."""
    image = image.convert("RGB")
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


def _decode_chunk(args):
    paths, size = args
    out = []
    for path in paths:
        try:
            out.append((decode_file(path, size), None))
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as err:
            name = os.path.basename(str(path))
            reason = (str(err).splitlines() or [type(err).__name__])[0].replace(f"'{path}'", "").strip()
            out.append((None, f"{name}: {reason}"))
    return out


def decode_files(paths, size, workers, progress=True):
    """Decode all `paths` to (N, size, size, 3) uint8 using `workers` processes.

    Returns (images, errors): unreadable files get an all-zero image and an entry in `errors`
    (a dict index -> message), so the caller decides whether to stop or skip them.
    """
    images = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
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
