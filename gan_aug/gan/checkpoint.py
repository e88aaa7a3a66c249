"""GAN checkpoints: plain state dicts and primitives, written atomically, loaded with weights_only=True.

A checkpoint carries everything that rebuilds its generator (model_args, class names, image size)
and everything that resumes training exactly (D, both optimizers, step, RNG states, augmentation p),
plus the fingerprint and split of the data the GAN saw, for provenance checks downstream.
"""

import os
import shutil
from pathlib import Path

import torch

from gan_aug.data.names import check_class_names
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write, load_checkpoint_file

FORMAT = "gan-aug/gan-checkpoint/1"
LATEST = "latest.pt"
BEST = "best.pt"  # the snapshot with the lowest FD, when the run tracks quality (metrics_every)
RUN_ARTIFACTS = ("config.yaml", LATEST, BEST, "checkpoints", "samples", "tb", "stats.jsonl")


def save_checkpoint(state, run_dir, step):
    """Write checkpoints/stepNNNNNNN.pt atomically and point latest.pt at it; returns its path."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"step{step:07d}.pt"
    with atomic_write(path) as handle:
        torch.save({"format": FORMAT, **state}, handle)
    latest = run_dir / LATEST
    tmp = run_dir / f".{LATEST}.tmp"
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(path, tmp)  # a second name for the same bytes, swapped in atomically
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, latest)
    return path


def resolve_checkpoint(path):
    """A checkpoint file, or a run directory's latest.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / LATEST
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path, map_location="cpu"):
    """A GAN checkpoint's state; its class names, which name the folders synthesize writes, are checked."""
    path = resolve_checkpoint(path)
    state = load_checkpoint_file(path, FORMAT, "GAN", map_location)
    state["class_names"] = list(check_class_names(state.get("class_names", ()), str(path)))
    return state
