"""Is a generator class-faithful, and does it vary? Two checks `gan-aug score` does not make (issue #24).

For each class of each GAN checkpoint (a conditional GAN or a per-class one made with --class), n draws:
- acceptance: the share of draws a real-data classifier (the judge: trained on the same prepared set's train
  split, selected on val) gives the intended class probability >= 0.3 / 0.5 / 0.7, the mean of that
  probability, and how often the judge's top class is the intended one;
- spread: the per-pixel standard deviation across the first 200 draws, averaged over pixels, beside the same
  for the class's real train images (at most 200). A collapsed generator draws one picture: its spread is a
  fraction of the real one even when the judge accepts every draw.
It reads the train split only, never val or test."""

from pathlib import Path

import numpy as np
import torch

from classifier.teachers import TeacherEnsemble
from gan_aug.data.prepared import load_prepared
from gan_aug.errors import UserError
from gan_aug.synth.sample import open_source

THRESHOLDS = (0.3, 0.5, 0.7)
SPREAD_IMAGES = 200


def pixel_spread(images):
    """Mean over pixels and channels of the standard deviation across images, in 0-255 units."""
    return float(images[:SPREAD_IMAGES].astype(np.float64).std(axis=0).mean())


def check_class(source, class_index, judge, n, truncation, real_images):
    name = source.class_names[class_index]
    images = source.sample(class_index, n, seed=0, truncation=truncation, batch_size=256)
    probs = judge.probabilities(torch.from_numpy(images).permute(0, 3, 1, 2)).float().cpu()
    intended = judge.class_names.index(name)
    row = {"checkpoint": str(source.path), "kimg": source.kimg, "class": name,
           "truncation": truncation, "mean_p": float(probs[:, intended].mean()),
           "argmax": float((probs.argmax(1) == intended).float().mean()),
           "spread": pixel_spread(images), "real_spread": pixel_spread(real_images)}
    row.update({f"p>={t}": float((probs[:, intended] >= t).float().mean()) for t in THRESHOLDS})
    return row


def markdown(rows):
    head = ["checkpoint", "kimg", "class", "trunc"] + [f"p >= {t}" for t in THRESHOLDS] + [
        "mean p", "argmax", "spread (real)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [Path(r["checkpoint"]).parent.name, f"{r['kimg']:.0f}", r["class"], f"{r['truncation']:g}"]
        cells += [f"{r[f'p>={t}']:.3f}" for t in THRESHOLDS]
        cells += [f"{r['mean_p']:.3f}", f"{r['argmax']:.3f}", f"{r['spread']:.1f} ({r['real_spread']:.1f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def generator_checks(checkpoints, judge, data, n=1024, truncation=1.0, device="cpu"):
    """One row per class of each checkpoint (a run folder: its best.pt, else latest.pt; or a file)."""
    if n < 2:
        raise UserError("-n must be at least 2: a spread needs two draws")
    prepared = load_prepared(data)
    train = prepared.indices("train")
    # one judge for every checkpoint: each is checked against this prepared set, whose images fix the size
    judge = TeacherEnsemble([judge], prepared.fingerprint, prepared.image_size, torch.device(device))
    rows = []
    for path in checkpoints:
        best = Path(path) / "best.pt"  # a run's FD-chosen snapshot; without one, its latest.pt
        source = open_source(best if best.is_file() else path, device)
        if source.data["fingerprint"] != prepared.fingerprint:
            raise UserError(f"{path} was trained on another prepared set than {data}")
        for class_index, name in enumerate(source.class_names):
            real = prepared.rows(train[prepared.labels[train] == prepared.class_names.index(name)])
            rows.append(check_class(source, class_index, judge, n, truncation, real))
    return rows
