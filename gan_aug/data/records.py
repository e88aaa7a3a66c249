"""What a reader hands to `prepare`: one row per image, before decoding and splitting."""

import csv
import dataclasses
import os
from pathlib import Path
from typing import Optional

import numpy as np

from gan_aug.data.domain import FITZPATRICK, SKIN_TYPE_BANDS
from gan_aug.data.names import check_class_names
from gan_aug.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclasses.dataclass
class SourceRecords:
    """Rows of one source. Exactly one of `paths` (files to decode) or `arrays` (decoded) is set."""

    class_names: tuple
    labels: np.ndarray  # (N,) int64 index into class_names
    image_ids: np.ndarray  # (N,) str
    groups: np.ndarray  # (N,) str, lesion (or patient) id; image id where unknown
    paths: Optional[list] = None  # N file paths
    arrays: Optional[np.ndarray] = None  # (N, H, W, 3) uint8
    split: Optional[np.ndarray] = None  # (N,) str, an official split the source prescribes
    age: Optional[np.ndarray] = None  # (N,) float, nan where missing
    sex: Optional[np.ndarray] = None  # (N,) str, "" where missing
    site: Optional[np.ndarray] = None  # (N,) str, "" where missing
    skin_type: Optional[np.ndarray] = None  # (N,) str, Fitzpatrick I-VI or a band (I-II), "" where missing
    notices: list = dataclasses.field(default_factory=list)  # things the user should hear about

    def __post_init__(self):
        # Folder names and CSV labels become class names, and class names become paths downstream.
        self.class_names = check_class_names(self.class_names, "the source's classes")
        n = len(self.labels)
        assert (self.paths is None) != (self.arrays is None), "exactly one of paths/arrays"
        for name in ("image_ids", "groups", "paths", "arrays", "split", "age", "sex", "site", "skin_type"):
            value = getattr(self, name)
            assert value is None or len(value) == n, f"{name} has {len(value)} rows, labels {n}"
        self._refuse_repeated_ids()

    def _refuse_repeated_ids(self):
        """An image listed twice would count twice, and under two lesion ids it could land in train and test."""
        ids, counts = np.unique(np.asarray(self.image_ids, dtype=str), return_counts=True)
        repeated = ids[counts > 1]
        if len(repeated):
            lesions = sorted(set(np.asarray(self.groups)[np.asarray(self.image_ids, dtype=str) == repeated[0]]))
            raise UserError(f"{len(repeated)} image id(s) listed more than once, e.g. {repeated[0]} under lesion "
                            f"id(s) {', '.join(lesions)}: give each image one row")

    def __len__(self):
        return len(self.labels)

    def subset(self, keep):
        """The rows where boolean mask `keep` is true."""
        keep = np.asarray(keep, dtype=bool)
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("class_names", "notices") or value is None:
                continue
            if isinstance(value, list):
                changes[field.name] = [v for v, k in zip(value, keep) if k]
            else:
                changes[field.name] = value[keep]
        return dataclasses.replace(self, **changes)

    def drop_empty_classes(self):
        """Remove classes with no rows (renumbering labels), with a notice for each."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        if counts.all():
            return self
        kept = [i for i, c in enumerate(counts) if c]
        dropped = [self.class_names[i] for i, c in enumerate(counts) if not c]
        remap = np.full(len(self.class_names), -1, dtype=np.int64)
        remap[kept] = np.arange(len(kept))
        return dataclasses.replace(
            self,
            class_names=tuple(self.class_names[i] for i in kept),
            labels=remap[self.labels],
            notices=self.notices + [f"class {name} has no images and was dropped" for name in dropped],
        )


def index_images(root):
    """Map image stem -> path for every image file anywhere under `root` (first one found wins)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"root folder not found: {root}")
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTENSIONS and stem not in found:
                found[stem] = Path(dirpath) / name
    if not found:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return found


def match_images(image_ids, index, skip_missing, notices):
    """Paths for `image_ids` from `index`, plus a keep-mask; raises if any is missing and not skipped."""
    paths = [index.get(i) for i in image_ids]
    keep = np.array([p is not None for p in paths], dtype=bool)
    missing = [i for i, p in zip(image_ids, paths) if p is None]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        if not skip_missing:
            raise UserError(f"{len(missing)} image id(s) have no file under the root: {shown} "
                            "(use --skip-missing to go on without them)")
        notices.append(f"skipped {len(missing)} image id(s) with no file: {shown}")
    return paths, keep


def find_csv(root, explicit, default_name, what):
    """The CSV given explicitly, else `default_name` found anywhere under `root`."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"{what} not found: {path}")
        return path
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"root folder not found: {root}")
    hits = sorted(root.rglob(default_name))
    if not hits:
        raise UserError(f"no {default_name} under {root} (pass --csv PATH)")
    return hits[0]


def read_csv(path):
    """(header, rows as lists) of a UTF-8 CSV file (a spreadsheet's byte-order mark allowed), or a one-line
    UserError for a file that is missing or is not CSV text (every CSV a user names is read here)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise UserError(f"CSV file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, where a CSV file is expected") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path} is not a readable UTF-8 CSV file ({err})") from None
    return (rows[0] if rows else []), rows[1:]


def read_csv_rows(path):
    """(header, rows as dicts, '' for the cells a short row lacks, blank lines skipped) of a CSV file."""
    header, rows = read_csv(path)
    return header, [dict(zip(header, row + [""] * (len(header) - len(row)))) for row in rows if row]


def require_columns(header, required, path):
    missing = [c for c in required if c not in header]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)} (has: {', '.join(header)})")


MAX_AGE = 120


def parse_age(text, image_id=""):
    """An age in years from a CSV cell: nan where the table says nothing (empty, 'unknown', 'NA'); a value that
    is no age (text, negative, past MAX_AGE) is refused, since a metadata model would learn from it as if true."""
    text = clean_text(text)
    if not text:
        return float("nan")
    try:
        age = float(text)
    except ValueError:
        age = float("nan")
    if not 0 <= age <= MAX_AGE:  # nan fails too
        where = f" of image {image_id}" if image_id else ""
        raise UserError(f"age {text[:40]!r}{where} is not an age in years (0-{MAX_AGE}, or empty for unknown)")
    return age


def parse_skin_type(text, image_id=""):
    """A Fitzpatrick skin type from a CSV cell as I-VI, or a DDI band (12, 34, 56) as I-II, III-IV, V-VI; '' where
    the table says nothing (empty, 'unknown', -1 or 0 as Fitzpatrick17k writes it). Anything else is refused:
    a subgroup table would report it as a skin type."""
    text = clean_text(text)
    if text in ("", "-1", "0", "-1.0", "0.0"):
        return ""
    number = text[:-2] if text.endswith(".0") else text
    if number in SKIN_TYPE_BANDS:
        return SKIN_TYPE_BANDS[number]
    if number.isdigit() and 1 <= int(number) <= len(FITZPATRICK):
        return FITZPATRICK[int(number) - 1]
    if text.upper() in FITZPATRICK or text.upper() in SKIN_TYPE_BANDS.values():
        return text.upper()
    where = f" of image {image_id}" if image_id else ""
    raise UserError(f"skin type {text[:40]!r}{where} is not a Fitzpatrick type (1-6 or I-VI, DDI's 12, 34 or 56, "
                    "or empty for unknown)")


def clean_text(value):
    """A metadata cell with 'unknown', 'nan' and 'NA' (as HAM10000 and ISIC write a missing value) as ''."""
    value = (value or "").strip()
    return "" if value.lower() in ("unknown", "nan", "na") else value
