"""ISIC challenge ground truth of every year, told apart by its columns (registry of layouts below):

- 2016 (Part 3): no header; image id, then benign/malignant (training) or 0/1 (test).
- 2017 (Part 3): image_id, melanoma, seborrheic_keratosis: two yes/no labels; neither is a nevus.
- 2018 (Task 3) and 2019: image, then one one-hot column per class.
- 2020: image_name, patient_id (lesion_id in v2), sex, age_approx, anatom_site_general_challenge, diagnosis,
  benign_malignant, target; its metadata and patient groups come with it.

A metadata or groups CSV of any year is attached by readers.read_source (tables.py), for every source.

Licence: each archive states its own (ISIC 2018 to 2020: CC BY-NC 4.0); what is derived from it carries it.
"""

import dataclasses

import numpy as np

from gan_aug.data.domain import BINARY_CLASSES, DEFAULT_CSV, ISIC2017_LABELS, ISIC_TO_HAM, NO_LABEL_CLASS
from gan_aug.data.records import SourceRecords, find_csv, index_images, match_images, read_csv, require_columns
from gan_aug.data.tables import table_groups, table_metadata
from gan_aug.errors import UserError


@dataclasses.dataclass
class GroundTruth:
    class_names: tuple
    labels: list  # class index per image
    image_ids: list
    table: dict = dataclasses.field(default_factory=dict)  # image id -> row: metadata given with the labels
    header: list = dataclasses.field(default_factory=list)


def _rows(rows):
    """(line number, row) of the non-blank rows after a header."""
    return [(line_no, row) for line_no, row in enumerate(rows, start=2) if row]


def _is_one(value, path, line_no):
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{path} line {line_no}: class value {value!r} is not 0 or 1") from None
    if number not in (0.0, 1.0):
        raise UserError(f"{path} line {line_no}: class value {value!r} is not 0 or 1")
    return number == 1.0


def _verdict(value, path, line_no):
    """0 (benign) or 1 (malignant) from 'benign'/'malignant' or 0/1."""
    text = value.strip().lower()
    if text in BINARY_CLASSES:
        return BINARY_CLASSES.index(text)
    return int(_is_one(text, path, line_no))


def one_hot(header, rows, path):
    """2018 and 2019: exactly one class column set to 1 per image."""
    require_columns(header, ("image",), path)
    class_columns = [c for c in header if c != "image"]
    unknown = [c for c in class_columns if c not in ISIC_TO_HAM]
    if unknown or not class_columns:
        raise UserError(f"{path}: unknown class column(s) {', '.join(unknown) or '(none)'} "
                        f"(expected some of {', '.join(ISIC_TO_HAM)})")
    class_names = tuple(dict.fromkeys(ISIC_TO_HAM[c] for c in class_columns))
    truth = GroundTruth(class_names, [], [])
    for line_no, row in _rows(rows):
        hot = [c for c, v in zip(header, row) if c != "image" and _is_one(v, path, line_no)]
        if len(hot) != 1:
            raise UserError(f"{path} line {line_no}: expected exactly one class set to 1, got "
                            f"{len(hot)} ({', '.join(hot) or 'none'})")
        truth.image_ids.append(row[header.index("image")])
        truth.labels.append(class_names.index(ISIC_TO_HAM[hot[0]]))
    return truth


def two_labels(header, rows, path):
    """2017: melanoma and seborrheic_keratosis, at most one of them 1; neither: a nevus."""
    require_columns(header, ("image_id", *ISIC2017_LABELS), path)
    class_names = (*ISIC2017_LABELS.values(), NO_LABEL_CLASS)
    truth = GroundTruth(class_names, [], [])
    for line_no, row in _rows(rows):
        cells = dict(zip(header, row))
        hot = [label for label in ISIC2017_LABELS if _is_one(cells.get(label, ""), path, line_no)]
        if len(hot) > 1:
            raise UserError(f"{path} line {line_no}: melanoma and seborrheic_keratosis are both 1")
        truth.image_ids.append(cells["image_id"])
        truth.labels.append(class_names.index(ISIC2017_LABELS[hot[0]]) if hot else len(class_names) - 1)
    return truth


def verdicts(header, rows, path):
    """2020: target (0/1), else benign_malignant; its other columns are the images' metadata and patients."""
    require_columns(header, ("image_name",), path)
    column = "target" if "target" in header else "benign_malignant"
    truth = GroundTruth(BINARY_CLASSES, [], [], header=header)
    for line_no, row in _rows(rows):
        cells = dict(zip(header, row + [""] * (len(header) - len(row))))
        truth.image_ids.append(cells["image_name"])
        truth.labels.append(_verdict(cells[column], path, line_no))
        truth.table[cells["image_name"]] = cells
    return truth


def headerless(header, rows, path):
    """2016: no header, so the first line is an image too: id, then benign/malignant or 0/1."""
    truth = GroundTruth(BINARY_CLASSES, [], [])
    for line_no, row in [(1, header)] + _rows(rows):
        if len(row) != 2:
            raise UserError(f"{path} line {line_no}: expected 2 columns (image id, verdict), got {len(row)}")
        truth.image_ids.append(row[0])
        truth.labels.append(_verdict(row[1], path, line_no))
    return truth


# (which header, its reader), the first match wins; one-hot is the layout of the rest.
LAYOUTS = (
    (lambda header: set(ISIC2017_LABELS) <= set(header), two_labels),
    (lambda header: "target" in header or "benign_malignant" in header, verdicts),
    (lambda header: len(header) == 2 and header[0].startswith("ISIC_"), headerless),
    (lambda header: True, one_hot),
)


def read(config):
    csv_path = find_csv(config.root, config.csv, DEFAULT_CSV["isic-csv"], "ground-truth CSV")
    header, rows = read_csv(csv_path)
    layout = next(parse for matches, parse in LAYOUTS if matches(header))
    truth = layout(header, rows, csv_path)
    if not truth.image_ids:
        raise UserError(f"{csv_path} has no rows")
    ids = np.array(truth.image_ids)
    notices = []
    paths, keep = match_images(truth.image_ids, index_images(config.root), config.skip_missing, notices)
    groups = table_groups(truth.table, truth.header, ids, ids) if truth.table else None
    records = SourceRecords(class_names=truth.class_names, labels=np.array(truth.labels, dtype=np.int64),
                            image_ids=ids, groups=ids.copy() if groups is None else groups, paths=paths,
                            notices=notices, **table_metadata(truth.table, truth.header, ids))
    return records.subset(keep).drop_empty_classes()
