"""The sets that carry skin type (issue #44), in the layouts their publishers ship; each CSV anywhere under the
root (or --csv), images anywhere under it by file stem.

- Fitzpatrick17k (Groh et al. 2021; CC BY-NC-SA 3.0): fitzpatrick17k.csv, one row per image: md5hash (the file
  stem), fitzpatrick_scale (1-6, -1 unknown; `fitzpatrick` in the first release), three_partition_label
  (benign, malignant, non-neoplastic). Read as benign/malignant; the non-neoplastic conditions are left out with a
  notice, as no lesion classifier has a class for them.
- DDI, Diverse Dermatology Images (Daneshjou et al. 2022; Stanford's research use agreement): ddi_metadata.csv,
  DDI_file, skin_tone (12, 34, 56: Fitzpatrick I-II, III-IV, V-VI), malignant (True/False). Benign/malignant.
- PAD-UFES-20 (Pacheco et al. 2020; CC BY 4.0): metadata.csv, img_id, patient_id, lesion_id, diagnostic (ACK, BCC,
  MEL, NEV, SCC, SEK), fitspatrick (sic, 1-6), age, gender, region; smartphone images. A patient's images share a
  split (GROUP_COLUMNS' rule: several lesions of one person look alike).
"""

import numpy as np

from gan_aug.data.domain import BINARY_CLASSES, DEFAULT_CSV, PAD_UFES_CLASSES
from gan_aug.data.records import (SourceRecords, clean_text, find_csv, index_images, match_images, parse_age,
                                  parse_skin_type, read_csv_rows, require_columns)
from gan_aug.errors import UserError


def _rows(config, source, required):
    csv_path = find_csv(config.root, config.csv, DEFAULT_CSV[source], f"{source} CSV")
    header, rows = read_csv_rows(csv_path)
    require_columns(header, required, csv_path)
    if not rows:
        raise UserError(f"{csv_path} has no rows")
    return csv_path, header, rows


def _column(header, names):
    return next((n for n in names if n in header), None)


def _records(config, class_names, labels, image_ids, groups, skin, notices, **metadata):
    paths, keep = match_images(image_ids, index_images(config.root), config.skip_missing, notices)
    records = SourceRecords(class_names=class_names, labels=np.array(labels, dtype=np.int64),
                            image_ids=np.array(image_ids), groups=np.array(groups), paths=paths,
                            skin_type=np.array(skin), notices=notices, **metadata)
    return records.subset(keep).drop_empty_classes()


def read_fitzpatrick17k(config):
    path, header, rows = _rows(config, "fitzpatrick17k", ("md5hash", "three_partition_label"))
    scale = _column(header, ("fitzpatrick_scale", "fitzpatrick"))
    verdicts = [r["three_partition_label"].strip().lower() for r in rows]
    unknown = sorted(set(verdicts) - {*BINARY_CLASSES, "non-neoplastic"})
    if unknown:
        raise UserError(f"{path}: unknown three_partition_label {', '.join(unknown)} (benign, malignant or "
                        "non-neoplastic)")
    kept = [(r, v) for r, v in zip(rows, verdicts) if v in BINARY_CLASSES]
    notices = [f"left out {len(rows) - len(kept)} non-neoplastic image(s): not a lesion class"] if len(kept) < len(
        rows) else []
    ids = [r["md5hash"].strip() for r, _ in kept]
    return _records(config, BINARY_CLASSES, [BINARY_CLASSES.index(v) for _, v in kept], ids, ids,
                    [parse_skin_type(r[scale], r["md5hash"]) if scale else "" for r, _ in kept], notices)


def read_ddi(config):
    path, header, rows = _rows(config, "ddi", ("DDI_file", "skin_tone", "malignant"))
    verdicts = [r["malignant"].strip().lower() for r in rows]
    if not set(verdicts) <= {"true", "false"}:
        raise UserError(f"{path}: malignant must be True or False, got {sorted(set(verdicts) - {'true', 'false'})[0]}")
    ids = [r["DDI_file"].strip().rsplit(".", 1)[0] for r in rows]
    return _records(config, BINARY_CLASSES, [int(v == "true") for v in verdicts], ids, ids,
                    [parse_skin_type(r["skin_tone"], i) for r, i in zip(rows, ids)], [])


def read_pad_ufes(config):
    path, header, rows = _rows(config, "pad-ufes-20", ("img_id", "diagnostic"))
    unknown = sorted({r["diagnostic"].strip().upper() for r in rows} - set(PAD_UFES_CLASSES))
    if unknown:
        raise UserError(f"{path}: unknown diagnostic {', '.join(unknown)} (expected {', '.join(PAD_UFES_CLASSES)})")
    classes = tuple(dict.fromkeys(PAD_UFES_CLASSES.values()))
    ids = [r["img_id"].strip().rsplit(".", 1)[0] for r in rows]
    group = _column(header, ("patient_id", "lesion_id"))
    scale = _column(header, ("fitspatrick", "fitzpatrick"))
    return _records(
        config, classes, [classes.index(PAD_UFES_CLASSES[r["diagnostic"].strip().upper()]) for r in rows], ids,
        [clean_text(r[group]) or i if group else i for r, i in zip(rows, ids)],
        [parse_skin_type(r[scale], i) if scale else "" for r, i in zip(rows, ids)], [],
        age=np.array([parse_age(r.get("age"), i) for r, i in zip(rows, ids)], dtype=np.float64),
        sex=np.array([clean_text(r.get("gender")).lower() for r in rows]),
        site=np.array([clean_text(r.get("region")).lower() for r in rows]))
