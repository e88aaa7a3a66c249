"""Any generator can be judged: export a prepared set's train split in another generator's dataset format, and
import the images that generator made as a gan-aug synthetic set, which score and compare then take with the same
leak check (protocol rule 2) as gan-aug's own GANs.

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
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from gan_aug.data.images import DECODE_ERRORS, decode_error, square_resize, to_rgb
from gan_aug.data.prepared import load_prepared
from gan_aug.data.records import IMAGE_EXTENSIONS, read_csv_rows, require_columns
from gan_aug.data.synthetic import SampledProvenance, check_out, check_provenance, sha256_file, write_synthetic_folder
from gan_aug.errors import UserError
from gan_aug.fileio import (atomic_folder, atomic_write, check_apart, file_inside, remove_temp_files,
                            replaceable_link, require_name)

RECEIPT_FORMAT = "gan-aug/export-receipt/1"
LABELS_CSV = "labels.csv"
LABELS_COLUMNS = ["file", "class", "class_index", "image_id"]
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every entry's: the same set exports to the same bytes, whenever it runs


def receipt_path(out):
    """The receipt beside an export: ham32_train.zip -> ham32_train.receipt.json (a folder: the same rule)."""
    out = Path(out)
    require_name(out)
    return out.with_name(out.name.removesuffix(".zip") + ".receipt.json")


def png_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_stylegan_zip(out, images, labels, marker, before_replace):
    """dataset_tool.py's layout: at most 1000 images per folder, labels as [file, class index] pairs; dataset.json
    also carries `marker` (StyleGAN reads only its labels), by which a later export knows its own zip."""
    names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(images))]
    labels_json = {"labels": [[n, int(c)] for n, c in zip(names, labels)], "gan_aug": marker}
    with atomic_write(out, before_replace=before_replace) as handle, \
            zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, image in zip(names, images):
            archive.writestr(zipfile.ZipInfo(name, ZIP_TIME), png_bytes(image))
        archive.writestr(zipfile.ZipInfo("dataset.json", ZIP_TIME), json.dumps(labels_json))


def write_imagefolder(out, images, labels, class_names, image_ids, before_replace):
    with atomic_folder(out, before_replace=before_replace) as staging:
        rows = []
        for i, (image, label) in enumerate(zip(images, labels)):
            name = f"{class_names[label]}/{i:06d}.png"
            (staging / name).parent.mkdir(exist_ok=True)
            (staging / name).write_bytes(png_bytes(image))
            rows.append(dict(zip(LABELS_COLUMNS, (name, class_names[label], int(label), image_ids[i]))))
        with open(staging / LABELS_CSV, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LABELS_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


def is_export(out, folder):
    """Whether `out` is data a gan-aug export wrote: a zip whose dataset.json carries our marker, or a folder whose
    labels.csv has our columns."""
    try:
        if folder:
            with open(out / LABELS_CSV, newline="") as handle:
                return next(csv.reader(handle), None) == LABELS_COLUMNS
        with zipfile.ZipFile(out) as archive:
            marker = json.loads(archive.read("dataset.json")).get("gan_aug", {})
        return marker.get("format") == RECEIPT_FORMAT
    except Exception:  # noqa: BLE001 - unreadable in any way: not ours
        return False


def check_export_out(out, receipt_file, folder, force):
    """Refuse, before any work, to replace an export or its receipt without --force, a path of another kind than
    the export's, or (even with --force) a folder that is not an export. Data without its receipt is an export
    killed before its end: the next export replaces it without --force. Links are replaced, never followed."""
    out_link, receipt_link = (replaceable_link(p, force) for p in (out, receipt_file))
    if receipt_file.is_dir() and not receipt_link:
        raise UserError(f"{receipt_file} is a folder, where the export's receipt is to be written: choose another "
                        "--out")
    # An empty folder holds nothing to lose.
    present = not out_link and out.exists() and not (folder and out.is_dir() and not any(out.iterdir()))
    if present and folder != out.is_dir():
        raise UserError(f"{out} exists and is not a {'folder' if folder else 'file'}: choose another --out")
    if present and folder and not is_export(out, folder):
        raise UserError(f"{out} is not empty and is not a gan-aug export: choose another --out (--force replaces "
                        "only an export)")
    has_receipt = not receipt_link and receipt_file.exists()
    unfinished = present and not has_receipt and not receipt_link and is_export(out, folder)
    existing = [str(p) for p, here in ((out, present), (receipt_file, has_receipt)) if here and not unfinished]
    if existing and not force:
        raise UserError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} "
                        "(use --force to overwrite)")


def describe(prepared, split):
    """What a receipt says of the prepared set it was exported from, and what import checks again."""
    labels = prepared.labels[prepared.indices(split)]
    counts = np.bincount(labels, minlength=len(prepared.class_names)).tolist()
    return {"fingerprint": prepared.fingerprint, "split": split, "class_names": list(prepared.class_names),
            "count": int(len(labels)), "counts": dict(zip(prepared.class_names, counts)),
            "image_size": prepared.image_size}


def export(config):
    """Run `gan-aug export`: (receipt, notices)."""
    out, receipt_file, folder = Path(config.out), receipt_path(config.out), config.format == "imagefolder"
    check_export_out(out, receipt_file, folder, config.force)
    prepared = load_prepared(config.data)
    idx = prepared.indices(config.split)
    if not len(idx):
        raise UserError(f"{config.data} has no '{config.split}' images")
    images, labels = prepared.rows(idx), prepared.labels[idx]
    notices = []
    if config.split != "train":
        notices.append(f"a generator trained on the {config.split} split cannot be imported: its images could "
                       "carry val/test patients into training")
    size = prepared.image_size
    if not folder and size & (size - 1):
        notices.append(f"StyleGAN2-ADA trains at powers of two; these images are {size} px")
    receipt = {"format": RECEIPT_FORMAT, "export_format": config.format, "data": str(config.data),
               **describe(prepared, config.split), "out": str(out)}
    remove_temp_files(out.parent, [out.name, receipt_file.name])  # of an export killed here before
    # The receipt is the export's commit record: it is written in full once the data is, the old one goes just
    # before the new data takes its place, and the new one follows it. A receipt never describes data that is
    # not beside it; a kill between the two renames leaves data without one, which the next export replaces.
    with atomic_write(receipt_file, "w") as handle:
        def commit(staged):
            receipt["sha256"] = sha256_file(staged / LABELS_CSV if folder else staged)
            json.dump(receipt, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
            if receipt_file.is_symlink() or receipt_file.exists():
                receipt_file.unlink()

        if folder:
            write_imagefolder(out, images, labels, prepared.class_names, prepared.image_id[idx].tolist(), commit)
        else:
            marker = {"format": RECEIPT_FORMAT, "fingerprint": prepared.fingerprint, "split": config.split}
            write_stylegan_zip(out, images, labels, marker, commit)
    return receipt, notices


def read_receipt(path, prepared):
    """The receipt at `path`, refused unless it is a gan-aug export receipt of `prepared`'s train split that says
    of the set what the set says of itself (a receipt edited by hand, its class order above all, is refused)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"receipt not found: {path} (gan-aug export writes it beside the data it exports)")
    try:
        receipt = json.loads(path.read_bytes())
    except ValueError:
        receipt = None
    if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT:
        raise UserError(f"{path} is not a gan-aug export receipt")
    # protocol rule 2, as for gan-aug's own GANs: the generator saw this set's train split and nothing else.
    try:
        check_provenance({"gan_data": {"fingerprint": receipt.get("fingerprint"), "split": receipt.get("split")}},
                         prepared)
    except UserError as err:
        raise UserError(f"receipt {path}: {err}") from None
    # The fingerprint covers pixels, labels and splits, not the class names: a class_index means the class at
    # that place in the receipt, so the receipt's order must be the set's.
    for key, value in describe(prepared, "train").items():
        if receipt.get(key) != value:
            raise UserError(f"receipt {path}: its {key} {json.dumps(receipt.get(key))[:120]} is not the prepared "
                            f"set's {json.dumps(value)[:120]}: it was edited after export")
    return receipt


def labelled_files(folder, labels_csv, class_names):
    """[(file, class name)] of the generator's images: from class subfolders, or from a labels CSV whose rows
    name a class or give the generator's class_index (the receipt's order). Unknown classes, files outside the
    folder (by name or by link) and a file listed twice (under one class or two) are refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    if labels_csv:
        header, rows = read_csv_rows(labels_csv)
        require_columns(header, ("file",), labels_csv)
        if "class" not in header and "class_index" not in header:
            raise UserError(f"{labels_csv} needs a class or class_index column")
        listed = [(row["file"], _class_of(row, class_names, f"{labels_csv} line {line}"), f"{labels_csv} line {line}")
                  for line, row in enumerate(rows, start=2)]
    else:
        listed = [(file.relative_to(folder), sub.name, str(folder))
                  for sub in sorted(p for p in folder.iterdir() if p.is_dir())
                  for file in sorted(sub.rglob("*")) if file.suffix.lower() in IMAGE_EXTENSIONS]
    pairs, seen = [], {}
    for name, class_name, where in listed:
        file = file_inside(folder, name, where, f"the image folder {folder}")
        if file in seen:
            raise UserError(f"{where}: {str(name)!r} is the file {seen[file]!r} again (listed twice, or a link to "
                            "it): each generated image is imported once, under one class")
        if not file.is_file():
            raise UserError(f"{where}: image {str(name)!r} not found")
        seen[file] = str(name)
        pairs.append((file, class_name))
    unknown = sorted({name for _, name in pairs} - set(class_names))
    if unknown:
        raise UserError(f"class(es) {', '.join(unknown)} are not in the prepared set ({', '.join(class_names)})")
    if not pairs:
        raise UserError(f"no images under {folder} (one subfolder per class, or --labels CSV)")
    return pairs


def _class_of(row, class_names, where):
    """A row's class: by name, or by index into the receipt's class names; both given must agree."""
    by_index = None
    if row.get("class_index", "").strip():
        value = row["class_index"].strip()
        index = int(value) if value.isdigit() else -1  # '-1' is no class: Python would count it from the end
        if not 0 <= index < len(class_names):
            raise UserError(f"{where}: class_index {value!r} is not one of 0-{len(class_names) - 1}")
        by_index = class_names[index]
    name = row.get("class", "").strip() or by_index
    if by_index is not None and name != by_index:
        raise UserError(f"{where}: class {name!r} and class_index {row['class_index']} ({by_index}) disagree")
    if name is None:
        raise UserError(f"{where}: no class or class_index")
    return name


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
    check_apart(config.out, {"IMAGES": config.images, "--labels": config.labels, "--receipt": config.receipt,
                             "--data": config.data})
    prepared = load_prepared(config.data)
    receipt = read_receipt(config.receipt, prepared)
    pairs = labelled_files(config.images, config.labels, receipt["class_names"])
    wanted = [c for c in prepared.class_names if any(name == c for _, name in pairs)]
    by_class, resized = {c: [] for c in wanted}, 0
    for file, name in pairs:
        image, was_resized = read_generated(file, prepared.image_size, config.resize)
        by_class[name].append(image)
        resized += was_resized
    rows = [{"file": f"{c}/{i:06d}.png", "class": c, "class_index": k}
            for k, c in enumerate(wanted) for i in range(len(by_class[c]))]
    provenance: SampledProvenance = {
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
