"""What a GAN learns from and is judged by: the train split's images of the chosen classes, and the name of
the quality scalar best.pt is chosen by. Shared by the training loop and the quality tracker of
gan_aug/metrics/tracking.py, so scoring never imports the loop itself."""

import numpy as np

from gan_aug.errors import UserError

TRAIN_SPLIT = "train"
FD_KEY = "Metrics/fd"  # the scalar best.pt is chosen by


def select_training_data(prepared, classes, batch_size):
    """The train-split images and labels of the chosen classes, labels renumbered 0..C-1."""
    names = list(prepared.class_names)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise UserError(f"unknown class(es) {', '.join(unknown)} (this set has {', '.join(names)})")
    chosen = list(classes) or names
    train = prepared.split == TRAIN_SPLIT
    counts = {name: int((train & (prepared.labels == names.index(name))).sum()) for name in chosen}
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise UserError(f"class(es) {', '.join(empty)} have no training images")
    total = sum(counts.values())
    if total < batch_size:
        scope = f"class {chosen[0]}" if len(chosen) == 1 else "the chosen classes"
        raise UserError(f"{scope} has {total} training images, fewer than the batch size {batch_size} "
                        f"(try --set batch_size={max(8, 2 ** int(np.log2(total)))})")
    keep = train & np.isin(prepared.labels, [names.index(n) for n in chosen])
    remap = {names.index(n): i for i, n in enumerate(chosen)}
    labels = np.array([remap[int(l)] for l in prepared.labels[keep]], dtype=np.int64)
    return prepared.rows(np.flatnonzero(keep)), labels, tuple(chosen)  # a memory-mapped set's rows stay on disk
