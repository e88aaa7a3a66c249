"""HAM10000: `HAM10000_metadata.csv` plus images anywhere under the root (official: two part folders).

Licence: CC BY-NC-SA 4.0 (Tschandl et al. 2018): what is derived from it (prepared sets, GANs, synthetic sets,
classifiers) carries that licence; gan-aug never ships any of it.
"""

import numpy as np

from gan_aug.data.domain import DEFAULT_CSV, HAM_CLASSES
from gan_aug.data.records import (SourceRecords, clean_text, find_csv, index_images, match_images, parse_age,
                                  read_csv_rows, require_columns)
from gan_aug.errors import UserError

REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")


def read(config):
    csv_path = find_csv(config.root, config.csv, DEFAULT_CSV["ham10000"], "metadata CSV")
    header, rows = read_csv_rows(csv_path)
    require_columns(header, REQUIRED_COLUMNS, csv_path)
    if not rows:
        raise UserError(f"{csv_path} has no rows")
    unknown = sorted({r["dx"] for r in rows} - set(HAM_CLASSES))
    if unknown:
        raise UserError(f"{csv_path}: unknown dx label(s) {', '.join(unknown)} "
                        f"(expected {', '.join(HAM_CLASSES)})")
    image_ids = [r["image_id"] for r in rows]
    notices = []
    paths, keep = match_images(image_ids, index_images(config.root), config.skip_missing, notices)
    records = SourceRecords(
        class_names=HAM_CLASSES,
        labels=np.array([HAM_CLASSES.index(r["dx"]) for r in rows], dtype=np.int64),
        image_ids=np.array(image_ids),
        groups=np.array([r["lesion_id"] or r["image_id"] for r in rows]),
        paths=paths,
        age=np.array([parse_age(r.get("age"), r.get("image_id", "")) for r in rows], dtype=np.float64),
        sex=np.array([clean_text(r.get("sex")) for r in rows]),
        site=np.array([clean_text(r.get("localization")) for r in rows]),
        notices=notices,
    )
    return records.subset(keep).drop_empty_classes()

