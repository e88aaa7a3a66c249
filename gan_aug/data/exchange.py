"""Any generator can be judged: export a prepared set's train split in another generator's dataset format, and
import the images that generator made as a gan-aug synthetic set, which score and compare then take with the same
leak check (PROTOCOL rule 2) as gan-aug's own GANs.

export writes StyleGAN2-ADA's dataset zip (PNGs under 00000/, 00001/, ... and dataset.json's
{"labels": [[file, class_index], ...]}, what its dataset_tool.py writes and its train.py --cond=1 reads; StyleGAN3
reads it too) or an ImageFolder tree with labels.csv; and beside it a receipt (JSON): the prepared set's
fingerprint, the split, the class names (class_index i is class_names[i]), the counts, the format. import-synthetic
takes the receipt as its proof of what the generator learned from: refused unless it is this prepared set's train
split, and written into the synthetic set's provenance with the generator's name.
"""

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from gan_aug.data.images import DECODE_ERRORS, decode_error, square_resize, to_rgb
from gan_aug.data.prepared import load_prepared
from gan_aug.data.records import IMAGE_EXTENSIONS, read_csv_rows, require_columns
from gan_aug.data.synthetic import check_out, check_provenance, sha256_file, write_synthetic_folder
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_folder, atomic_write, check_new_outputs

RECEIPT_FORMAT = "gan-aug/export-receipt/1"
LABELS_CSV = "labels.csv"


def receipt_path(out):
    """The receipt beside an export: ham32_train.zip -> ham32_train.receipt.json (a folder: the same rule)."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".zip") + ".receipt.json")


def png_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_stylegan_zip(out, images, labels):
    """dataset_tool.py's layout: at most 1000 images per folder, labels as [file, class index] pairs."""
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(images))]
    with atomic_write(out) as handle, zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, image in zip(names, images):
            archive.writestr(name, png_bytes(image))
        archive.writestr("dataset.json", json.dumps({"labels": [[n, int(c)] for n, c in zip(names, labels)]}))


def write_imagefolder(out, images, labels, class_names, image_ids):
    with atomic_folder(out) as staging:
        rows = []
        for i, (image, label) in enumerate(zip(images, labels)):
            name = f"{class_names[label]}/{i:06d}.png"
            (staging / name).parent.mkdir(exist_ok=True)
            (staging / name).write_bytes(png_bytes(image))
            rows.append({"file": name, "class": class_names[label], "class_index": int(label), "image_id": image_ids[i]})
        with open(staging / LABELS_CSV, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


def export(config):
    """Run `gan-aug export`: (receipt, notices)."""
    out, receipt_file = Path(config.out), receipt_path(config.out)
    check_new_outputs([out, receipt_file], config.force)
    prepared = load_prepared(config.data)
    idx = prepared.indices(config.split)
    if not len(idx):
        raise UserError(f"{config.data} has no '{config.split}' images")
    images, labels = prepared.images[idx], prepared.labels[idx]
    notices = []
    if config.split != "train":
        notices.append(f"a generator trained on the {config.split} split cannot be imported: its images could "
                       "carry val/test patients into training")
    size = prepared.image_size
    if config.format == "stylegan2-ada":
        if size & (size - 1):
            notices.append(f"StyleGAN2-ADA trains at powers of two; these images are {size} px")
        write_stylegan_zip(out, images, labels)
    else:
        write_imagefolder(out, images, labels, prepared.class_names, prepared.image_id[idx].tolist())
    counts = np.bincount(labels, minlength=len(prepared.class_names))
    receipt = {"format": RECEIPT_FORMAT, "export_format": config.format, "data": str(config.data),
               "fingerprint": prepared.fingerprint, "split": config.split, "class_names": list(prepared.class_names),
               "count": int(len(idx)), "counts": dict(zip(prepared.class_names, counts.tolist())),
               "image_size": size, "out": str(out),
               "sha256": sha256_file(out) if out.is_file() else sha256_file(out / LABELS_CSV)}
    with atomic_write(receipt_file, "w") as handle:
        json.dump(receipt, handle, indent=2)
    return receipt, notices


def read_receipt(path, prepared):
    """The receipt at `path`, refused unless it is a gan-aug export receipt of `prepared`'s train split."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"receipt not found: {path} (gan-aug export writes it beside the data it exports)")
    try:
        receipt = json.loads(path.read_bytes())
    except ValueError:
        receipt = None
    if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT:
        raise UserError(f"{path} is not a gan-aug export receipt")
    # PROTOCOL rule 2, as for gan-aug's own GANs: the generator saw this set's train split and nothing else.
    try:
        check_provenance({"gan_data": {"fingerprint": receipt.get("fingerprint"), "split": receipt.get("split")}},
                         prepared)
    except UserError as err:
        raise UserError(f"receipt {path}: {err}") from None
    return receipt


def labelled_files(folder, labels_csv, class_names):
    """[(file, class name)] of the generator's images: from class subfolders, or from a labels CSV whose rows
    name a class or give the generator's class_index (the receipt's order). Unknown classes are refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    if labels_csv:
        header, rows = read_csv_rows(labels_csv)
        require_columns(header, ("file",), labels_csv)
        if "class" not in header and "class_index" not in header:
            raise UserError(f"{labels_csv} needs a class or class_index column")
        pairs = []
        for row in rows:
            name = row.get("class") or _class_of_index(row.get("class_index"), class_names, labels_csv)
            pairs.append((folder / row["file"], name))
    else:
        pairs = [(file, sub.name) for sub in sorted(p for p in folder.iterdir() if p.is_dir())
                 for file in sorted(sub.rglob("*")) if file.suffix.lower() in IMAGE_EXTENSIONS]
    unknown = sorted({name for _, name in pairs} - set(class_names))
    if unknown:
        raise UserError(f"class(es) {', '.join(unknown)} are not in the prepared set ({', '.join(class_names)})")
    if not pairs:
        raise UserError(f"no images under {folder} (one subfolder per class, or --labels CSV)")
    return pairs


def _class_of_index(value, class_names, path):
    try:
        return class_names[int(value)]
    except (TypeError, ValueError, IndexError):
        raise UserError(f"{path}: class_index {value!r} is not one of 0-{len(class_names) - 1}") from None


def read_generated(file, size, resize):
    """((size, size, 3) uint8, whether it was resized) of one generated image."""
    try:
        with Image.open(file) as image:
            if image.size == (size, size):
                return np.asarray(to_rgb(image)), False
            if resize:
                return np.asarray(square_resize(image, size)), True
            shape = image.size
    except FileNotFoundError:
        raise UserError(f"image not found: {file}") from None
    except DECODE_ERRORS as err:
        raise UserError(f"unreadable image {file}: {decode_error(file, err)}") from None
    raise UserError(f"{file} is {shape[0]}x{shape[1]} px, the prepared set's images are {size}x{size} "
                    "(add --resize to centre-crop and resize them)")


def import_synthetic(config):
    """Run `gan-aug import-synthetic`: the provenance of the synthetic set written to config.out."""
    check_out(config.out, config.force, is_npz=False)
    prepared = load_prepared(config.data)
    receipt = read_receipt(config.receipt, prepared)
    pairs = labelled_files(config.images, config.labels, prepared.class_names)
    wanted = [c for c in prepared.class_names if any(name == c for _, name in pairs)]
    by_class, resized = {c: [] for c in wanted}, 0
    for file, name in pairs:
        image, was_resized = read_generated(file, prepared.image_size, config.resize)
        by_class[name].append(image)
        resized += was_resized
    rows = [{"file": f"{c}/{i:06d}.png", "class": c, "class_index": k}
            for k, c in enumerate(wanted) for i in range(len(by_class[c]))]
    provenance = {
        "format": "gan-aug/synthetic/1", "class_names": wanted, "image_size": prepared.image_size,
        "counts": {c: len(by_class[c]) for c in wanted},
        "gan_data": {"fingerprint": receipt["fingerprint"], "split": receipt["split"]},
        "generator": {"name": config.generator, "imported_from": str(Path(config.images).resolve()),
                      "labels": config.labels, "resized": resized, "receipt": receipt,
                      "receipt_sha256": sha256_file(config.receipt)},
        "gans": [],
    }
    write_synthetic_folder(config.out, {c: np.stack(by_class[c]) for c in wanted}, rows, provenance, config.force)
    return provenance
