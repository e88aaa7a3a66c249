"""Running a trained classifier: batched probabilities and the metrics of one split. Training, evaluation,
teachers and CAS all predict through here."""

import contextlib

import torch

from classifier.data import to_float
from classifier.metrics import compute_metrics


@torch.no_grad()
def predict(model, task, images, meta, batch_size=512, autocast=None):
    """(N, K) float probabilities for uint8 images (N, 3, H, W) on the model's device."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        with autocast or contextlib.nullcontext():
            x = to_float(images[i:i + batch_size]).contiguous(memory_format=torch.channels_last)
            outputs = model(x, None if meta is None else meta[i:i + batch_size])
        out.append(task.probabilities(outputs).cpu())
    return torch.cat(out) if out else torch.zeros(0, len(task.output_names))


def split_metrics(model, task, split, autocast=None):
    """(metrics, probabilities) of `model` on one SplitTensors."""
    probs = predict(model, task, split.images, split.meta, autocast=autocast)
    targets = task.targets(split.labels).cpu().numpy()
    return compute_metrics(targets, probs.numpy(), task.output_names), probs
