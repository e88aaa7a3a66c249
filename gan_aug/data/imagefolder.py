"""A folder with one subfolder per class (the torchvision ImageFolder convention)."""

import os
from pathlib import Path

import numpy as np

from gan_aug.data.records import IMAGE_EXTENSIONS, SourceRecords
from gan_aug.errors import UserError


def read(config):
    root = Path(config.root)
    if not root.is_dir():
        raise UserError(f"root folder not found: {root}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels, class_names = [], [], []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            continue
        class_names.append(class_dir.name)
        paths.extend(files)
        labels.extend([len(class_names) - 1] * len(files))
    if not paths:
        raise UserError(f"no class subfolders with images under {root}")
    # Without lesion ids each image is its own group; ids keep the class folder for uniqueness.
    image_ids = np.array([os.path.splitext(p.relative_to(root).as_posix())[0] for p in paths])
    return SourceRecords(
        class_names=tuple(class_names),
        labels=np.array(labels, dtype=np.int64),
        image_ids=image_ids,
        groups=image_ids.copy(),
        paths=paths,
    )
