"""`gan-aug prepare`: source -> one leak-free prepared set (.npz) that every later stage reads."""

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from gan_aug.data import images as image_ops
from gan_aug.data.color import chain, correct_colors
from gan_aug.data.prepared import fingerprint
from gan_aug.data.readers import read_source
from gan_aug.data.rows import RowFile, memory_map_above, save_npz
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write, check_new_outputs


def _one_fold(labels, groups, fraction, seed):
    """Boolean mask of one stratified, group-disjoint fold holding about `fraction` of the rows."""
    n_splits = max(2, round(1 / fraction))
    if len(np.unique(groups)) < n_splits:
        raise UserError(f"too few groups ({len(np.unique(groups))}) to split off a {fraction:.0%} fold")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # rare classes smaller than n_splits are expected, not news
        warnings.simplefilter("ignore", UserWarning)
        try:
            _, fold = next(splitter.split(np.zeros(len(labels)), labels, groups))
        except ValueError as err:  # every class smaller than the number of folds
            raise UserError(f"too few images per class to split off a {fraction:.0%} fold ({err}); "
                            "lower --val-frac/--test-frac or add images") from None
    mask = np.zeros(len(labels), dtype=bool)
    mask[fold] = True
    return mask


def group_split(labels, groups, val_frac, test_frac, seed):
    """(N,) array of 'train'/'val'/'test': stratified by label, every group inside one split.

    The fold sizes are 1/round(1/fraction) of the rows (0.2 -> 1/5, 0.1 of the rest -> 1/8 of it).
    """
    split = np.full(len(labels), "train", dtype="<U5")
    if test_frac > 0:
        split[_one_fold(labels, groups, test_frac, seed)] = "test"
    rest = np.flatnonzero(split == "train")
    if val_frac > 0:
        val = _one_fold(labels[rest], groups[rest], val_frac / (1 - test_frac), seed + 1)
        split[rest[val]] = "val"
    return split


@contextlib.contextmanager
def decode_buffer(config, records):
    """Where the files of `records` are decoded to: None (an array in memory) below memory_map_above(), else a
    zero-filled .npy beside the output (a temp file, removed afterwards), so a set larger than memory is never
    held whole. Sources that arrive decoded (DermaMNIST's arrays) are in memory already."""
    n = 0 if records.paths is None else len(records.paths)
    shape = (n, config.size, config.size, 3)
    if n * config.size * config.size * 3 <= memory_map_above():
        yield None
        return
    out = Path(config.out)
    fd, path = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        yield RowFile(path, shape)
    finally:
        os.unlink(path)


def _drop_rows(images, keep):
    """images[keep]; a decode buffer on disk is compacted where it lies instead of copied into memory."""
    if not isinstance(images, RowFile):
        return images[keep]
    for new, old in enumerate(np.flatnonzero(keep)):
        images[new] = images[old]
    return images.head(int(keep.sum()))


def _decode(records, config, workers, progress, buffer):
    """Decoded images for `records`, and the records without unreadable files when skipping them."""
    if records.arrays is not None:
        return image_ops.resize_arrays(records.arrays, config.size, progress), records, []
    images, errors = image_ops.decode_files(records.paths, config.size, workers, progress, out=buffer)
    notices = []
    if errors:
        shown = "; ".join(list(errors.values())[:3]) + (" ..." if len(errors) > 3 else "")
        if not config.skip_bad:
            raise UserError(f"{len(errors)} unreadable image(s): {shown} (use --skip-bad to go on without them)")
        keep = np.ones(len(records), dtype=bool)
        keep[list(errors)] = False
        images, records = _drop_rows(images, keep), records.subset(keep).drop_empty_classes()
        notices.append(f"skipped {len(errors)} unreadable image(s): {shown}")
    return images, records, notices


def _group_near_duplicates(images, groups, split, seed, progress):
    """(groups, split, facts): groups joined wherever a confirmed near-duplicate pair links them (the same
    lesion under two ids), each joined group moved whole into one split, and what the prepared set records.
    The split is the one the lesion ids alone give, changed only where a cluster crossed it: joining groups
    before splitting would reshuffle every split (4,600 of HAM10000's 10,015 images) for some 100 moves."""
    from gan_aug.data.near_duplicates.clusters import keep_groups_together, merge_groups
    from gan_aug.data.near_duplicates.search import confirmed_within

    groups, facts = merge_groups(groups, confirmed_within(images, seed, progress))
    split, facts["moved"] = keep_groups_together(split, groups)
    return groups, split, facts


def build_prepared(config, progress=True, records=None, buffer=None):
    """Read (unless `records` were), decode and split the source named in `config`; return (arrays dict,
    notices). `buffer`: where to decode the images (decode_buffer), None for an array in memory."""
    records = records if records is not None else read_source(config)
    workers = config.workers or os.cpu_count() or 1
    images, records, notices = _decode(records, config, workers, progress, buffer)
    if len(records) == 0:
        raise UserError("no images left to prepare")
    # Before the fingerprint: the corrected pixels are the set's, the ones every later stage learns from.
    preprocessing = chain(config.color_constancy, config.hair_removal)
    images = correct_colors(images, preprocessing, progress, in_place=buffer is not None)
    labels, groups = records.labels, records.groups
    if config.group_near_duplicates and records.split is not None:
        raise UserError(f"source '{config.source}' fixes its own splits: --group-near-duplicates cannot move "
                        "images between them (run gan-aug audit on the prepared set instead)")
    split = records.split if records.split is not None else group_split(
        labels, groups, config.val_frac, config.test_frac, config.seed)
    grouping = None
    if config.group_near_duplicates:
        groups, split, grouping = _group_near_duplicates(images, groups, split, config.seed, progress)
    arrays = {
        "images": images,
        "labels": labels.astype(np.int64),
        "class_names": np.array(records.class_names, dtype=str),
        "split": np.asarray(split, dtype=str),
        "group": np.asarray(groups, dtype=str),
        "image_id": np.asarray(records.image_ids, dtype=str),
        "source": np.array(config.source),
        "fingerprint": np.array(fingerprint(images, labels, split)),
        "color_constancy": np.array(preprocessing),  # the whole chain, hair removal included (color.py)
    }
    if grouping is not None:
        arrays["near_duplicates"] = np.array(json.dumps(grouping))
    for key, value in (("age", records.age), ("sex", records.sex), ("site", records.site),
                       ("skin_type", records.skin_type)):
        if value is not None:
            arrays[key] = np.asarray(value, dtype=np.float64 if key == "age" else str)
    return arrays, records.notices + notices


def prepare(config, progress=True):
    """Run `gan-aug prepare`: refuses an existing output unless config.force; writes atomically."""
    check_new_outputs([config.out], config.force)
    records = read_source(config)
    with decode_buffer(config, records) as buffer:
        arrays, notices = build_prepared(config, progress, records, buffer)
        with atomic_write(config.out) as handle:
            save_npz(handle, arrays)
    return arrays, notices
