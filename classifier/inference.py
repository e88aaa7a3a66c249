"""Running a trained classifier: batched probabilities and the metrics of one split. Training, evaluation,
teachers and CAS all predict through here."""

import contextlib

import torch

from classifier.data import to_float


# Test-time augmentation: views of the image whose probabilities are averaged. A lesion has no up or left, so
# its flips (the default) or all 8 symmetries of the square (d8: 4 rotations, each also mirrored) are as good.
TTA_VIEWS = {"identity": lambda x: x, "hflip": lambda x: x.flip(3), "vflip": lambda x: x.flip(2),
             "hvflip": lambda x: x.flip((2, 3))}
D8_VIEWS = {**TTA_VIEWS, "transpose": lambda x: x.transpose(2, 3), "rot90": lambda x: x.rot90(1, (2, 3)),
            "rot270": lambda x: x.rot90(3, (2, 3)), "antitranspose": lambda x: x.rot90(1, (2, 3)).flip(3)}
TTA_SETS = {"none": {"identity": TTA_VIEWS["identity"]}, "flips": TTA_VIEWS, "d8": D8_VIEWS}


def tta_views(tta):
    """The views of a TTA setting: False/None/'none' (the image), True/'flips', or 'd8'."""
    return TTA_SETS[{None: "none", False: "none", True: "flips"}.get(tta, tta)]


@torch.no_grad()
def predict(model, task, images, meta, batch_size=512, autocast=None, tta=False):
    """(N, K) float probabilities for uint8 images (N, 3, H, W) on the model's device; with `tta` (True or
    'flips', or 'd8'), the mean over its views."""
    model.eval()
    views = list(tta_views(tta).values())
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
