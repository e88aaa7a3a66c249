"""Per-image tables beside a source: age, sex and site, and lesion or patient groups, looked up by image id.

Any source takes them (prepare --metadata-csv / --groups-csv, evaluate --metadata-csv): ISIC's metadata files
of every year, HAM10000-style columns, or a user's own CSV. The column names each year used are domain facts
(domain.py); the first one present wins.
"""

import dataclasses
from pathlib import PurePosixPath

import numpy as np

from gan_aug.data.domain import GROUP_COLUMNS, IMAGE_ID_COLUMNS, METADATA_COLUMNS
from gan_aug.data.records import clean_text, find_csv, parse_age, parse_skin_type, read_csv_rows
from gan_aug.errors import UserError


def first_column(header, names):
    return next((name for name in names if name in header), None)


def read_table(path, what):
    """(image id -> row, header) of a per-image CSV, refused in one line without an image-id column."""
    path = find_csv(None, path, "", what)
    header, rows = read_csv_rows(path)
    id_column = first_column(header, IMAGE_ID_COLUMNS)
    if id_column is None:
        raise UserError(f"{path} has no image-id column (one of {', '.join(IMAGE_ID_COLUMNS)}; has: "
                        f"{', '.join(header)})")
    table = {row[id_column]: row for row in rows}
    if len(table) < len(rows):  # a second row would win silently, e.g. a second lesion id that splits an image's group
        seen, repeated = set(), None
        for row in rows:
            repeated = repeated or (row[id_column] if row[id_column] in seen else None)
            seen.add(row[id_column])
        raise UserError(f"{path} lists {len(rows) - len(table)} image id(s) more than once, e.g. {repeated}: give "
                        "each image one row")
    return table, header, path


def lookup(table, image_id):
    """The table's row of one image: by its id, or by its file stem (an ImageFolder's ids are 'class/stem')."""
    row = table.get(image_id)
    return row if row is not None else table.get(PurePosixPath(image_id).name)


PARSERS = {"age": parse_age, "skin_type": parse_skin_type}  # the other columns: clean_text


def table_metadata(table, header, image_ids, old=None):
    """{'age': (N,) float, 'sex': (N,) str, 'site': (N,) str} for the columns the table has, '' / nan where an
    image has no row (or the values of `old`, a records-like object, there)."""
    out = {}
    for key, names in METADATA_COLUMNS.items():
        column = first_column(header, names)
        if column is None:
            continue
        previous = getattr(old, key, None) if old is not None else None
        values = []
        for i, image_id in enumerate(image_ids):
            row = lookup(table, image_id)
            if row is None:
                values.append(previous[i] if previous is not None else ("" if key != "age" else float("nan")))
            else:
                values.append(PARSERS.get(key, lambda text, _: clean_text(text))(row[column], image_id))
        out[key] = np.array(values, dtype=np.float64 if key == "age" else str)
    return out


def table_groups(table, header, image_ids, groups):
    """`groups` with each image's patient (else lesion) id from the table where it has one, or None when the
    table has no group column."""
    column = first_column(header, GROUP_COLUMNS)
    if column is None:
        return None
    found = [clean_text((lookup(table, i) or {}).get(column)) for i in image_ids]
    return np.array([g or old for g, old in zip(found, groups)])


def attach_table(records, path, metadata=True, what="metadata CSV"):
    """`records` with the groups (and with `metadata`, the age/sex/site) that the CSV at `path` gives its images;
    a notice counts the images it does not list. Refused when it gives none of what was asked."""
    table, header, path = read_table(path, what)
    changes = table_metadata(table, header, records.image_ids, records) if metadata else {}
    groups = table_groups(table, header, records.image_ids, records.groups)
    if groups is not None:
        changes["groups"] = groups
    if not changes:
        wanted = list(GROUP_COLUMNS) + ([n for names in METADATA_COLUMNS.values() for n in names] if metadata else [])
        raise UserError(f"{path} has none of the columns {', '.join(wanted)}")
    missing = sum(lookup(table, i) is None for i in records.image_ids)
    notices = [f"{missing} image(s) are not in {path}"] if missing else []
    return dataclasses.replace(records, **changes, notices=records.notices + notices)
