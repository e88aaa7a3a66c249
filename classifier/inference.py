"""Running a trained classifier: batched probabilities and the metrics of one split. Training, evaluation,
teachers and CAS all predict through here."""

import contextlib

import torch

from classifier.data import to_float


# Test-time augmentation: the image and its flips (lesions have no up or left), probabilities averaged.
TTA_VIEWS = {"identity": lambda x: x, "hflip": lambda x: x.flip(3), "vflip": lambda x: x.flip(2),
             "hvflip": lambda x: x.flip((2, 3))}


@torch.no_grad()
def predict(model, task, images, meta, batch_size=512, autocast=None, tta=False):
    """(N, K) float probabilities for uint8 images (N, 3, H, W) on the model's device; with `tta`, the mean
    over TTA_VIEWS."""
    model.eval()
    views = list(TTA_VIEWS.values()) if tta else [TTA_VIEWS["identity"]]
    out = []
    for i in range(0, len(images), batch_size):
        batch_meta = None if meta is None else meta[i:i + batch_size]
        probs = 0
        for view in views:
            with autocast or contextlib.nullcontext():
                x = view(to_float(images[i:i + batch_size])).contiguous(memory_format=torch.channels_last)
                probs = probs + task.probabilities(model(x, batch_meta))
        out.append((probs / len(views)).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(task.output_names))


def split_metrics(model, task, split, autocast=None):
    """(metrics, probabilities) of `model` on one SplitTensors."""
    probs = predict(model, task, split.images, split.meta, autocast=autocast)
    targets = task.targets(split.labels).cpu().numpy()
    return task.metrics(targets, probs.numpy()), probs
