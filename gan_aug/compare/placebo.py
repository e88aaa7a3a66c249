"""Placebo sets: what a mix arm draws in place of its synthetic images, with the same sampler and schedule, so a
gain can be told from what any extra variety gives (protocol rule 5a). Each is built from the arm's synthetic
set, class by class with its counts, once per comparison (seeded: every run of the arm sees the same set).

- placebo-aug: real train images of the class, strongly augmented (random resized crop + TrivialAugment + flips);
- placebo-shuffle: the synthetic images with their labels permuted among the synthesized classes;
- placebo-early: the same generator's snapshot from the first 5% of its training (the class in name only).
"""

from pathlib import Path

import numpy as np
import torch

from gan_aug.errors import UserError

PLACEBO_SEED = 2026
EARLY_SHARE = 0.05


def _counts(labels, names):
    return {name: int((labels == i).sum()) for i, name in enumerate(names)}


def augmented_real(synthetic, prepared, context=None):
    """As many strongly augmented real train images of each class as the synthetic set has of it."""
    from torchvision.transforms import v2

    images, labels, names, provenance = synthetic
    size = prepared.image_size
    augment = v2.Compose([v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True), v2.TrivialAugmentWide(),
                          v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
    rng = np.random.default_rng(PLACEBO_SEED)
    torch.manual_seed(PLACEBO_SEED)  # the transforms draw from torch's global RNG
    train = prepared.indices("train")
    out_images, out_labels = [], []
    for i, name in enumerate(names):
        n = int((labels == i).sum())
        real = train[prepared.labels[train] == prepared.class_names.index(name)] if name in prepared.class_names \
            else np.zeros(0, dtype=np.int64)
        if n and not len(real):
            raise UserError(f"placebo-aug: the train split has no {name} image to augment")
        for row in rng.choice(real, n) if n else []:
            tensor = torch.from_numpy(prepared.images[row]).permute(2, 0, 1)  # (3, H, W) uint8
            out_images.append(augment(tensor).permute(1, 2, 0).numpy())
            out_labels.append(i)
    stacked = np.stack(out_images) if out_images else images[:0]
    return stacked, np.array(out_labels, dtype=np.int64), names, {**provenance, "placebo": "placebo-aug"}


def shuffled_labels(synthetic, prepared, context=None):
    """The synthetic images with their labels permuted (class counts kept): right images, wrong names."""
    images, labels, names, provenance = synthetic
    permuted = np.random.default_rng(PLACEBO_SEED).permutation(labels)
    return images, permuted, names, {**provenance, "placebo": "placebo-shuffle"}


def early_snapshot(synthetic, prepared, context):
    """The same counts drawn from the GAN run's latest checkpoint within the first 5% of its training."""
    from gan_aug.config import build_config
    from gan_aug.data.synthetic import load_synthetic
    from gan_aug.gan.checkpoint import load_checkpoint
    from gan_aug.synth.config import SynthConfig
    from gan_aug.synth.sample import synthesize

    images, labels, names, provenance = synthetic
    run, out = context.get("gan_run"), Path(context["out"])
    if not run:
        raise UserError("placebo-early draws from the generator's early snapshot: give `gan_run: RUN` (the GAN run "
                        "of the synthetic set) in the config")
    checkpoints = sorted(Path(run).glob("checkpoints/step*.pt"))
    if not checkpoints:
        raise UserError(f"placebo-early: {run} keeps no step checkpoints (checkpoints/step*.pt)")
    total = load_checkpoint(checkpoints[-1])["images_seen"]  # the last snapshot the run kept
    early = [p for p in checkpoints if load_checkpoint(p)["images_seen"] <= EARLY_SHARE * total]
    if not early:
        raise UserError(f"placebo-early: {run} keeps no checkpoint from the first {EARLY_SHARE:.0%} of its training")
    counts = {name: n for name, n in _counts(labels, names).items() if n}
    if not (out / "manifest.csv").is_file():
        synthesize(build_config(SynthConfig, None, {
            "checkpoints": (str(early[-1]),), "out": str(out), "classes": tuple(counts),
            "distribution": ",".join(f"{c}={n}" for c, n in counts.items()), "seed": PLACEBO_SEED,
            "force": True}), progress=False)
    drawn = load_synthetic(out)
    return drawn[0], drawn[1], drawn[2], {**drawn[3], "placebo": "placebo-early"}


PLACEBOS = {"placebo-aug": augmented_real, "placebo-shuffle": shuffled_labels, "placebo-early": early_snapshot}
