"""ISIC challenge ground truth in one-hot form (2018 Task 3, 2019), with the optional 2019 metadata CSV."""

import numpy as np

from gan_aug.data.domain import DEFAULT_CSV, ISIC_TO_HAM
from gan_aug.data.records import (SourceRecords, find_csv, index_images, match_images, parse_age, read_csv,
                                  read_csv_rows, require_columns)
from gan_aug.errors import UserError



def read(config):
    csv_path = find_csv(config.root, config.csv, DEFAULT_CSV["isic-csv"], "ground-truth CSV")
    header, rows = read_csv(csv_path)
    require_columns(header, ("image",), csv_path)
    class_columns = [c for c in header if c != "image"]
    unknown = [c for c in class_columns if c not in ISIC_TO_HAM]
    if unknown or not class_columns:
        raise UserError(f"{csv_path}: unknown class column(s) {', '.join(unknown) or '(none)'} "
                        f"(expected some of {', '.join(ISIC_TO_HAM)})")
    class_names = tuple(dict.fromkeys(ISIC_TO_HAM[c] for c in class_columns))
    image_col = header.index("image")
    image_ids, labels = [], []
    for line_no, row in enumerate(rows, start=2):
        if not row:
            continue
        hot = [c for c, v in zip(header, row) if c != "image" and _is_one(v, csv_path, line_no)]
        if len(hot) != 1:
            raise UserError(f"{csv_path} line {line_no}: expected exactly one class set to 1, got "
                            f"{len(hot)} ({', '.join(hot) or 'none'})")
        image_ids.append(row[image_col])
        labels.append(class_names.index(ISIC_TO_HAM[hot[0]]))
    if not image_ids:
        raise UserError(f"{csv_path} has no rows")
    meta = _read_metadata(config.metadata_csv, image_ids)
    notices = []
    paths, keep = match_images(image_ids, index_images(config.root), config.skip_missing, notices)
    records = SourceRecords(
        class_names=class_names,
        labels=np.array(labels, dtype=np.int64),
        image_ids=np.array(image_ids),
        groups=np.array([meta.get(i, {}).get("lesion_id") or i for i in image_ids]),
        paths=paths,
        age=np.array([parse_age(meta.get(i, {}).get("age_approx")) for i in image_ids]) if meta else None,
        sex=np.array([meta.get(i, {}).get("sex") or "" for i in image_ids]) if meta else None,
        site=np.array([meta.get(i, {}).get("anatom_site_general") or "" for i in image_ids]) if meta else None,
        notices=notices,
    )
    return records.subset(keep).drop_empty_classes()


def _is_one(value, path, line_no):
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{path} line {line_no}: class value {value!r} is not 0 or 1") from None
    if number not in (0.0, 1.0):
        raise UserError(f"{path} line {line_no}: class value {value!r} is not 0 or 1")
    return number == 1.0


def _read_metadata(path, image_ids):
    """image id -> its row of the ISIC 2019 metadata CSV, or {} when no metadata CSV is given."""
    if not path:
        return {}
    path = find_csv(None, path, "", "metadata CSV")
    header, rows = read_csv_rows(path)
    require_columns(header, ("image",), path)
    rows = {r["image"]: r for r in rows}
    return {i: rows[i] for i in image_ids if i in rows}
