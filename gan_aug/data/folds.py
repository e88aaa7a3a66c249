"""Grouped k-fold cross-validation views of a prepared set: its train+val rows split again into K lesion-grouped,
class-stratified folds (StratifiedGroupKFold, as prepare splits); the test split is never touched.

Fold k's view is the prepared set with fold k's rows as 'val' and the other folds' as 'train'. Its fingerprint
is its own (the parent's with the new split column), so a synthetic set from a GAN trained on fold k's train
part passes fold k's provenance check and no other fold's: never one whose validation images that GAN saw.
"""

import dataclasses
import hashlib
import warnings

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from gan_aug.data.prepared import load_prepared
from gan_aug.errors import UserError

FOLD_SEED = 0  # one assignment per (prepared set, K): train-gan, train-classifier and compare see the same folds


def fold_splits(prepared, folds):
    """K split columns (N,): each fold's rows 'val', the other train+val rows 'train', test rows as they were."""
    pool = np.flatnonzero(prepared.split != "test")
    groups = prepared.group[pool]
    if len(np.unique(groups)) < folds:
        raise UserError(f"{prepared.path}: {len(np.unique(groups))} lesion groups in train+val, too few for "
                        f"{folds} folds")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=FOLD_SEED)
    with warnings.catch_warnings():  # classes smaller than K are expected (HAM10000's df at K = 10), not news
        warnings.simplefilter("ignore", UserWarning)
        parts = [val for _, val in splitter.split(np.zeros(len(pool)), prepared.labels[pool], groups)]
    columns = []
    for val in parts:
        split = prepared.split.astype("<U5")
        split[pool] = "train"
        split[pool[val]] = "val"
        columns.append(split)
    return columns


def fold_view(prepared, folds, fold):
    """The prepared set as fold `fold` of `folds` sees it: its own split column and fingerprint."""
    split = fold_splits(prepared, folds)[fold]
    digest = hashlib.sha256(f"{prepared.fingerprint}\nfolds {folds}\n".encode() + "\n".join(split).encode())
    return dataclasses.replace(prepared, split=split, fingerprint=digest.hexdigest())


def view(prepared, folds=0, fold=None):
    """`prepared` itself, or with folds (and a fold chosen) that fold's view."""
    assert not folds or fold is not None, "a fold of the folds"
    return fold_view(prepared, folds, fold) if folds else prepared


def load_view(path, folds=0, fold=None):
    return view(load_prepared(path), folds, fold)
