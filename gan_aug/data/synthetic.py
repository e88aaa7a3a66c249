"""The synthetic-set format: what `synthesize` writes and every later stage reads.

A folder (ImageFolder layout): SYN/<class>/<index>.png, SYN/manifest.csv (one row per image) and
SYN/synthetic.json (provenance: what each GAN was trained on, the sampling settings, the counts). The folder
is filled beside SYN and renamed into place when complete, so SYN holds a whole set or none; with --force the
old set stays whole until the new one replaces it. With npz, the same content goes into one prepared-set-style
.npz instead (written atomically too). The provenance check (protocol rule 2) lives here, and so do the checks
that keep a set's files inside its folder, so every reader applies the same rules.
"""

import csv
import hashlib
import json
import typing
from pathlib import Path

import numpy as np
from PIL import Image

from gan_aug.data.images import DECODE_ERRORS, decode_error, to_rgb
from gan_aug.data.names import check_class_names
from gan_aug.data.prepared import fingerprint, prepared_from_arrays, read_npz
from gan_aug.data.records import read_csv_rows
from gan_aug.errors import UserError
from gan_aug.fileio import (SCRATCH_MARKER, atomic_folder, atomic_write, check_new_outputs, file_inside,
                            replaceable_link, require_name)

MANIFEST = "manifest.csv"
PROVENANCE = "synthetic.json"
MANIFEST_COLUMNS = ("file", "class", "class_index", "seed", "truncation", "checkpoint_sha256", "step")


class GanData(typing.TypedDict):
    fingerprint: str  # of the prepared set (or fold view) the generator learnt from: the provenance check's key
    split: str


class Provenance(typing.TypedDict):
    """synthetic.json, written by synthesize and import-synthetic, read by every stage that uses a set."""
    format: str  # gan-aug/synthetic/1
    class_names: typing.List[str]
    image_size: int
    counts: typing.Dict[str, int]
    gan_data: GanData
    gans: typing.List[dict]  # per checkpoint: path, sha256, step, classes, data, model_args, config ([] if imported)


class SampledProvenance(Provenance, total=False):
    seed: int
    truncation: float
    distribution: str
    filter: dict  # the classifier filter's checkpoints, sha256s, min_confidence and acceptance
    generator: dict  # an imported set's generator, its receipt and what import did


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def no_images(size):
    return np.zeros((0, size, size, 3), np.uint8)


def check_out(out, force, is_npz):
    """Refuse, before any work, an --out that holds something we may not replace. A link is replaced as a link
    with --force (never followed: what it points to is not ours to judge or replace)."""
    out = Path(out)
    require_name(out)
    if replaceable_link(out, force):
        return
    if is_npz:
        check_new_outputs([out], force)
        return
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not any((out / name).exists() for name in (MANIFEST, PROVENANCE, SCRATCH_MARKER)):
            raise UserError(f"{out} is not empty and is not a synthetic set: choose another --out "
                            "(--force replaces only a synthetic set)")
        if not force:
            raise UserError(f"{out} is not empty: it holds a synthetic set; add --force to replace it (the old "
                            "set stays until the new one is complete) or choose another --out")


def check_provenance(provenance, prepared):
    """protocol rule 2: refuse synthetic images whose GAN saw anything but this set's train split."""
    gan_data = provenance.get("gan_data", {})
    if gan_data.get("split") != "train":
        raise UserError(f"synthetic set refused: its GAN was trained on the '{gan_data.get('split')}' split, "
                        "which may hold validation/test images")
    if gan_data.get("fingerprint") != prepared.fingerprint:
        raise UserError("synthetic set refused: its GAN was trained on a different prepared set "
                        f"(fingerprint {str(gan_data.get('fingerprint'))[:12]}, this set {prepared.fingerprint[:12]}), "
                        "so it may have seen this set's validation or test images")


def write_synthetic_folder(out, images_by_class, rows, provenance: SampledProvenance, force,
                           class_written=lambda: None):
    """Write every image of `images_by_class` (class -> (n, H, W, 3) uint8) under the file names of `rows`,
    then the provenance, then the manifest, into a scratch folder that then replaces `out` whole."""
    out = Path(out)
    with atomic_folder(out) as staging:
        files = iter(rows)
        for name, images in images_by_class.items():
            for image in images:
                row = next(files)
                assert row["class"] == name, (row, name)
                (staging / row["file"]).parent.mkdir(exist_ok=True)
                Image.fromarray(image).save(staging / row["file"], format="PNG")
            class_written()
        with atomic_write(staging / PROVENANCE, "w") as handle:
            json.dump(provenance, handle, indent=2, sort_keys=True)
        with atomic_write(staging / MANIFEST, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        check_out(out, force, is_npz=False)  # again: something may have landed in --out while we sampled


def write_synthetic_npz(out, images, labels, rows, provenance: SampledProvenance):
    split = np.full(len(labels), "train")
    ids = np.array([r["file"] for r in rows], dtype=str)
    with atomic_write(out) as handle:
        np.savez(handle, images=images, labels=labels, class_names=np.array(provenance["class_names"], dtype=str),
                 split=split, group=ids, image_id=ids, source=np.array("synthetic"),
                 fingerprint=np.array(fingerprint(images, labels, split)),
                 provenance=np.array(json.dumps(provenance, sort_keys=True)))


def load_synthetic(path):
    """(images (N,H,W,3) uint8, labels (N,), class_names, provenance) of a synthetic folder or .npz."""
    path = Path(path)
    if path.suffix == ".npz" and path.is_file():
        data = read_npz(path, "synthetic set")
        if "provenance" not in data:
            raise UserError(f"{path} is not a gan-aug synthetic set (no provenance)")
        arrays = prepared_from_arrays(path, data)
        return arrays.images, arrays.labels, arrays.class_names, read_json(path, str(data["provenance"]))
    manifest, provenance_path = path / MANIFEST, path / PROVENANCE
    if not manifest.is_file() or not provenance_path.is_file():
        raise UserError(f"{path} is not a complete synthetic set (needs {MANIFEST} and {PROVENANCE})")
    provenance = read_json(provenance_path, provenance_path.read_bytes())
    class_names = check_class_names(provenance.get("class_names", ()), str(provenance_path))
    size = provenance.get("image_size")
    if not isinstance(size, int) or size < 1:
        raise UserError(f"{provenance_path}: image_size must be a positive integer, got {size!r}")
    _, rows = read_csv_rows(manifest)
    # Every row is checked before any image is opened: a hostile manifest gets nothing read.
    files = [manifest_file(path, row, class_names, line) for line, row in enumerate(rows, start=2)]
    images = [read_rgb(file, size) for file in files]
    images = np.stack(images) if images else no_images(size)
    labels = np.array([class_names.index(r["class"]) for r in rows], dtype=np.int64)
    return images, labels, class_names, provenance


def manifest_file(folder, row, class_names, line):
    """The image of one manifest row; refused unless it lies inside `folder` and its class is the set's."""
    where = f"{folder / MANIFEST} line {line}"
    if row.get("class") not in class_names:
        raise UserError(f"{where}: class {row.get('class')!r} is not one of the set's classes "
                        f"({', '.join(class_names)})")
    name = row.get("file") or ""
    file = file_inside(folder, name, where, "the synthetic set's folder")  # a link that points outside too
    if not file.is_file():
        raise UserError(f"{where}: image {str(name)!r} not found")
    return file


def read_json(path, text):
    """The provenance dict in `text` (read from `path`), or a one-line UserError."""
    try:
        provenance = json.loads(text)
    except ValueError as err:  # UnicodeDecodeError too
        raise UserError(f"{path}: the provenance is not valid JSON ({err})") from None
    if not isinstance(provenance, dict):
        raise UserError(f"{path}: the provenance is not a JSON object")
    return provenance


def read_rgb(file, size):
    """(size, size, 3) uint8 pixels of a synthetic image, or a one-line UserError."""
    try:
        with Image.open(file) as image:
            pixels = np.asarray(to_rgb(image))
    except DECODE_ERRORS as err:
        raise UserError(f"unreadable image {file}: {decode_error(file, err)}") from None
    if pixels.shape != (size, size, 3):
        raise UserError(f"{file} is {pixels.shape[1]}x{pixels.shape[0]} px, the set's images are {size}x{size}")
    return pixels
