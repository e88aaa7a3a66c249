"""Reading a prepared set back: validated arrays plus the summary `gan-aug info` prints."""

import dataclasses
import hashlib
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np

from gan_aug.data.color import METHODS, NONE, describe, steps_of
from gan_aug.data.names import check_class_names
from gan_aug.data.rows import hash_rows, map_member, subset
from gan_aug.errors import UserError, first_line
from gan_aug.legacy import PREPARED_SET, with_defaults

REQUIRED_KEYS = ("images", "labels", "class_names", "split", "group", "image_id", "source", "fingerprint")
SPLITS = ("train", "val", "test")
METADATA = ("age", "sex", "site", "skin_type")  # per-image arrays a prepared set may carry


def fingerprint(images, labels, split):
    """sha256 of the pixels, labels and split: the identity of a prepared set for provenance checks."""
    digest = hashlib.sha256()
    hash_rows(digest, images)
    digest.update(np.asarray(labels, dtype="<i8").tobytes())
    digest.update("\n".join(np.asarray(split).tolist()).encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class PreparedSet:
    path: Path
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int64
    class_names: tuple
    split: np.ndarray  # (N,) str in SPLITS
    group: np.ndarray  # (N,) str
    image_id: np.ndarray  # (N,) str
    source: str
    fingerprint: str
    age: Optional[np.ndarray] = None
    sex: Optional[np.ndarray] = None
    site: Optional[np.ndarray] = None
    skin_type: Optional[np.ndarray] = None  # Fitzpatrick I-VI or a band; a subgroup axis, not a model input
    color_constancy: str = NONE  # gan_aug.data.color's method prepare applied to every image
    near_duplicates: Optional[dict] = None  # prepare --group-near-duplicates: what it merged (None: not asked)

    @property
    def image_size(self):
        return self.images.shape[1]

    def indices(self, split):
        """Row indices of one split ('train', 'val' or 'test')."""
        assert split in SPLITS, split
        return np.flatnonzero(self.split == split)

    def rows(self, index):
        """self.images[index]: in memory a copy, for a memory-mapped set a view whose rows are read when asked for
        (gan_aug.data.rows), so a split of a set larger than memory is never held whole."""
        return subset(self.images, index)

    def class_counts(self, split=None):
        labels = self.labels if split is None else self.labels[self.split == split]
        return np.bincount(labels, minlength=len(self.class_names))


def load_prepared(path):
    """Load and check a prepared set; a one-line UserError for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prepared set not found: {path}")
    return prepared_from_arrays(path, read_npz(path, "prepared set", mappable=("images",)))


# What a damaged or foreign .npz raises: a zero-byte file EOFError, a cut one BadZipFile, text a ValueError.
NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, struct.error)


def read_npz(path, what, mappable=()):
    """Every array of the .npz at `path` (never unpickling), or a one-line UserError naming `what` it should be.
    The `mappable` members are memory-mapped where they are large and stored uncompressed (gan_aug.data.rows)."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            mapped = {key: map_member(path, archive.zip, f"{key}.npy") for key in mappable if key in archive.files}
            return {key: archive[key] if mapped.get(key) is None else mapped[key] for key in archive.files}
    except NPZ_ERRORS as err:
        raise UserError(f"{path} is not a readable {what}: {first_line(err)}") from None


def prepared_from_arrays(path, data):
    """A PreparedSet of the arrays read from `path`, checked: every later stage indexes by these without looking."""
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UserError(f"{path} is not a gan-aug prepared set (missing {', '.join(missing)})")
    images, labels = data["images"], data["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise UserError(f"{path}: images must be uint8 (N, H, H, 3), got {images.dtype} {images.shape}")
    rows = {k: data[k] for k in ("labels", "split", "group", "image_id", *METADATA) if k in data}
    wrong = [k for k, v in rows.items() if v.ndim != 1 or len(v) != len(images)]
    if wrong or not set(np.unique(data["split"])) <= set(SPLITS):
        raise UserError(f"{path}: {', '.join(wrong) or 'split'} do not match the images (one entry per image, "
                        f"splits {', '.join(SPLITS)})")
    class_names = check_class_names(np.atleast_1d(data["class_names"]).tolist(), str(path))
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: labels must be integers, got {labels.dtype}")
    outside = labels[(labels < 0) | (labels >= len(class_names))]
    if len(outside):
        raise UserError(f"{path}: {len(outside)} label(s) outside the {len(class_names)} classes "
                        f"(e.g. {int(outside[0])}; valid 0..{len(class_names) - 1})")
    # The fingerprint is what provenance and receipts compare: one that no longer matches the arrays would let an
    # edited set pass as the one a GAN or classifier learned from.
    if fingerprint(images, labels, data["split"]) != str(data["fingerprint"]):
        raise UserError(f"{path}: its images, labels or split were changed after prepare (the stored fingerprint "
                        "does not match them): prepare it again")
    return PreparedSet(
        path=path, images=images, labels=labels.astype(np.int64), class_names=class_names, split=data["split"],
        group=data["group"], image_id=data["image_id"], source=str(data["source"]),
        fingerprint=str(data["fingerprint"]), **{key: data.get(key) for key in METADATA},
        color_constancy=stored_color_constancy(path, data),
        near_duplicates=stored_near_duplicates(path, data),
    )


def stored_color_constancy(path, data):
    """The per-image corrections prepare applied (gan_aug.data.color; "none" for sets prepared before the key); a
    method this version does not know is refused (external images could not be corrected to match)."""
    method = str(with_defaults(data, PREPARED_SET)["color_constancy"])
    try:
        steps_of(method)
    except UserError:
        raise UserError(f"{path}: prepared with '{method}', which this gan-aug does not know how to apply (it knows "
                        f"{', '.join(METHODS)})") from None
    return method


def stored_near_duplicates(path, data):
    """What prepare --group-near-duplicates merged, or None for a set prepared without it."""
    if "near_duplicates" not in data:
        return None
    try:
        facts = json.loads(str(data["near_duplicates"]))
        return {key: int(facts[key]) for key in ("pairs", "merged_groups", "groups_before", "groups_after",
                                                 "largest", "moved")}
    except (ValueError, TypeError, KeyError) as err:
        raise UserError(f"{path}: its near_duplicates record is damaged ({first_line(err)}): prepare it again")


def near_duplicate_line(facts):
    if facts is None:
        return "not grouped (gan-aug audit finds them; prepare --group-near-duplicates keeps them in one split)"
    return (f"grouped: {facts['pairs']} confirmed pair(s) joined {facts['merged_groups']} cluster(s) of groups "
            f"({facts['groups_before']} -> {facts['groups_after']} groups, largest {facts['largest']}); "
            f"{facts['moved']} image(s) moved to keep them in one split")


def summary_table(prepared):
    """The text `gan-aug info` prints: class counts per split, then size, source, fingerprint."""
    header = ["class"] + list(SPLITS) + ["total"]
    rows = []
    per_split = {s: prepared.class_counts(s) for s in SPLITS}
    for i, name in enumerate(prepared.class_names):
        counts = [int(per_split[s][i]) for s in SPLITS]
        rows.append([name] + counts + [sum(counts)])
    totals = [int(per_split[s].sum()) for s in SPLITS]
    rows.append(["total"] + totals + [sum(totals)])
    widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(len(header))]
    fmt = lambda row: "  ".join(str(v).ljust(w) if c == 0 else str(v).rjust(w)
                                for c, (v, w) in enumerate(zip(row, widths)))
    lines = [fmt(header)] + [fmt(r) for r in rows]
    metadata = [k.replace("_", " ") for k in METADATA if getattr(prepared, k) is not None]
    colour = describe(prepared.color_constancy)
    lines += [
        "",
        f"file         {prepared.path}",
        f"source       {prepared.source}",
        f"image size   {prepared.image_size}x{prepared.image_size}",
        f"groups       {len(np.unique(prepared.group))} (lesions; images of one group share a split)",
        f"metadata     {', '.join(metadata) or 'none'}",
        f"pixels       {colour}",
        f"near dups    {near_duplicate_line(prepared.near_duplicates)}",
        f"fingerprint  {prepared.fingerprint}",
    ]
    return "\n".join(lines)
