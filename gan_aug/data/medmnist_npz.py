"""MedMNIST `.npz` files (e.g. dermamnist.npz, dermamnist_64.npz), keeping their official split.

Licence: DermaMNIST is CC BY-NC 4.0 (MedMNIST v2, Yang et al. 2023), a derivative of HAM10000 (CC BY-NC-SA 4.0).
"""

import os
from pathlib import Path

import numpy as np

from gan_aug.data.domain import HAM_CLASSES
from gan_aug.data.prepared import SPLITS, read_npz
from gan_aug.data.records import SourceRecords
from gan_aug.errors import UserError

# DermaMNIST's labels 0..6 are HAM10000's classes in alphabetical order of their codes.
DERMAMNIST_CLASSES = HAM_CLASSES


def read(config):
    path = Path(config.root)
    if path.is_dir():
        hits = sorted(path.glob("*.npz"))
        if len(hits) != 1:
            raise UserError(f"expected exactly one .npz under {path}, found {len(hits)} (pass the file)")
        path = hits[0]
    if not path.is_file():
        raise UserError(f"MedMNIST file not found: {path}")
    archive = read_npz(path, "MedMNIST .npz file")
    missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in archive]
    if missing:
        raise UserError(f"{path} lacks key(s) {', '.join(missing)}")
    images = [_to_rgb(archive[f"{s}_images"], path) for s in SPLITS]
    labels = [archive[f"{s}_labels"].reshape(-1).astype(np.int64) for s in SPLITS]
    all_labels = np.concatenate(labels)
    is_derma = os.path.basename(path).lower().startswith("dermamnist")
    n_classes = len(DERMAMNIST_CLASSES) if is_derma else int(all_labels.max()) + 1
    if all_labels.min() < 0 or all_labels.max() >= n_classes:
        raise UserError(f"{path}: labels outside 0..{n_classes - 1}")
    class_names = DERMAMNIST_CLASSES if is_derma else tuple(f"class{i}" for i in range(n_classes))
    split = np.concatenate([np.full(len(l), s) for s, l in zip(SPLITS, labels)])
    image_ids = np.array([f"{s}_{i}" for s, l in zip(SPLITS, labels) for i in range(len(l))])
    records = SourceRecords(
        class_names=class_names,
        labels=all_labels,
        image_ids=image_ids,
        groups=image_ids.copy(),  # MedMNIST keeps no lesion ids; its official split is kept as is
        arrays=np.concatenate(images),
        split=split,
    )
    return records.drop_empty_classes()


def _to_rgb(images, path):
    if images.dtype != np.uint8:
        raise UserError(f"{path}: images must be uint8, got {images.dtype}")
    if images.ndim == 3:  # grayscale MedMNIST sets
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"{path}: images must be (N,H,W) or (N,H,W,3), got {images.shape}")
    return images
