"""Memorization audit: is any synthetic image a near-copy of a training patient's image?

For every synthetic image, the distance to its nearest real training image (in pixels and in
features) is compared with the same distance for held-out real images (val -> train). A synthetic
image closer to the training set than the 1st percentile of val->train distances is flagged: a real
new lesion is rarely that close to a training image, a copy always is.
"""

import numpy as np
import torch
from PIL import Image

from gan_aug.fileio import atomic_write

PERCENTILE = 1.0


def nearest(query, reference, batch=1024):
    """(distance, index) of each query row's nearest reference row (Euclidean)."""
    query, reference = torch.as_tensor(query, dtype=torch.float32), torch.as_tensor(reference, dtype=torch.float32)
    dists, idxs = [], []
    for i in range(0, len(query), batch):
        d = torch.cdist(query[i:i + batch], reference)  # (b, R)
        best = d.min(dim=1)
        dists.append(best.values)
        idxs.append(best.indices)
    return torch.cat(dists).numpy(), torch.cat(idxs).numpy()


def pixels(images):
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def audit(synthetic, train, val, space):
    """Flags for one representation ('pixels' or 'features'). Arrays are (N, D)."""
    syn_dist, syn_nn = nearest(synthetic, train)
    val_dist, _ = nearest(val, train)
    threshold = float(np.percentile(val_dist, PERCENTILE))
    flagged = syn_dist < threshold
    return {
        "space": space, "threshold": threshold, "flagged_fraction": float(flagged.mean()),
        "flagged": int(flagged.sum()), "synthetic_median_nn": float(np.median(syn_dist)),
        "val_median_nn": float(np.median(val_dist)),
    }, syn_dist, syn_nn


def save_closest_pairs(path, synthetic_images, train_images, syn_dist, syn_nn, k=8):
    """A PNG of the k closest (synthetic, nearest training image) pairs: synthetic on top."""
    order = np.argsort(syn_dist)[:k]
    top = np.concatenate([synthetic_images[i] for i in order], axis=1)
    bottom = np.concatenate([train_images[syn_nn[i]] for i in order], axis=1)
    with atomic_write(path) as handle:
        Image.fromarray(np.concatenate([top, bottom], axis=0)).save(handle, format="PNG")
