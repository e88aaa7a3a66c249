"""The synthetic-set format: what `synthesize` writes and every later stage reads.

A folder (ImageFolder layout): SYN/<class>/<index>.png, SYN/manifest.csv (one row per image) and
SYN/synthetic.json (provenance: what each GAN was trained on, the sampling settings, the counts). Images
are written atomically and the manifest last, so a crash never lists a half-written image. With npz, the
same content goes into one prepared-set-style .npz instead. The provenance check (PROTOCOL rule 2) lives
here too, so every reader applies the same rule.
"""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from gan_aug.data.prepared import fingerprint
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write

MANIFEST = "manifest.csv"
PROVENANCE = "synthetic.json"
MANIFEST_COLUMNS = ("file", "class", "class_index", "seed", "truncation", "checkpoint_sha256", "step")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def no_images(size):
    return np.zeros((0, size, size, 3), np.uint8)


def check_out(out, force, is_npz):
    """Refuse an --out that holds something we may not replace."""
    out = Path(out)
    if is_npz:
        if out.exists() and not force:
            raise UserError(f"{out} already exists (use --force to overwrite)")
    elif out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out} is not empty (use --force to replace a synthetic set there)")
        if not (out / PROVENANCE).exists() and not (out / MANIFEST).exists():
            raise UserError(f"{out} is not a synthetic set; refusing to delete it even with --force")


def clear_out(out, is_npz):
    """Make --out an empty folder (png); an npz is replaced atomically when written. Call check_out first."""
    out = Path(out)
    if not is_npz:
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)


def check_provenance(provenance, prepared):
    """PROTOCOL rule 2: refuse synthetic images whose GAN saw anything but this set's train split."""
    gan_data = provenance.get("gan_data", {})
    if gan_data.get("split") != "train":
        raise UserError(f"synthetic set refused: its GAN was trained on the '{gan_data.get('split')}' split, "
                        "which may hold validation/test images")
    if gan_data.get("fingerprint") != prepared.fingerprint:
        raise UserError("synthetic set refused: its GAN was trained on a different prepared set "
                        f"(fingerprint {str(gan_data.get('fingerprint'))[:12]}, this set {prepared.fingerprint[:12]}), "
                        "so it may have seen this set's validation or test images")


def write_synthetic_folder(out, images_by_class, rows, provenance, progress_bar=lambda items: items):
    """Write every image of `images_by_class` (class -> (n, H, W, 3) uint8) under the file names of `rows`,
    then the provenance, then the manifest last: its presence means the set is complete."""
    out = Path(out)
    files = iter(rows)
    for name in progress_bar(list(images_by_class)):
        for image in images_by_class[name]:
            row = next(files)
            assert row["class"] == name, (row, name)
            with atomic_write(out / row["file"], durable=False) as handle:  # the manifest, last, is fsynced
                Image.fromarray(image).save(handle, format="PNG")
    with atomic_write(out / PROVENANCE, "w") as handle:
        json.dump(provenance, handle, indent=2, sort_keys=True)
    with atomic_write(out / MANIFEST, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_synthetic_npz(out, images, labels, rows, provenance):
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
        with np.load(path, allow_pickle=False) as data:
            if "provenance" not in data.files:
                raise UserError(f"{path} is not a gan-aug synthetic set (no provenance)")
            return (data["images"], data["labels"].astype(np.int64), tuple(data["class_names"].tolist()),
                    json.loads(str(data["provenance"])))
    manifest, provenance_path = path / MANIFEST, path / PROVENANCE
    if not manifest.is_file() or not provenance_path.is_file():
        raise UserError(f"{path} is not a complete synthetic set (needs {MANIFEST} and {PROVENANCE})")
    provenance = json.loads(provenance_path.read_text())
    class_names = tuple(provenance["class_names"])
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    images = [np.asarray(Image.open(path / r["file"]).convert("RGB")) for r in rows]
    size = provenance["image_size"]
    images = np.stack(images) if images else no_images(size)
    labels = np.array([class_names.index(r["class"]) for r in rows], dtype=np.int64)
    return images, labels, class_names, provenance
