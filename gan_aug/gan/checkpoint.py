"""GAN checkpoints: plain state dicts and primitives, written atomically, loaded with weights_only=True.

A checkpoint carries everything that rebuilds its generator (model_args, class names, image size)
and everything that resumes training exactly (D, both optimizers, step, RNG states, augmentation p),
plus the fingerprint and split of the data the GAN saw, for provenance checks downstream.
"""

import os
import shutil
from pathlib import Path

from gan_aug.data.names import check_class_names
from gan_aug.errors import UserError, first_line
from gan_aug.fileio import load_checkpoint_file, save_torch
from gan_aug.legacy import GAN_CHECKPOINT
from gan_aug.gan.networks import build_networks

FORMAT = GAN_CHECKPOINT
LATEST = "latest.pt"
BEST = "best.pt"  # the snapshot with the lowest FD, when the run tracks quality (metrics_every)
RUN_ARTIFACTS = ("config.yaml", LATEST, BEST, "checkpoints", "samples", "tb", "stats.jsonl")
STEP_FILES = "checkpoints/step[0-9][0-9][0-9][0-9][0-9][0-9][0-9].pt"
RESUMABLE = (LATEST, STEP_FILES)  # a run folder holding one of these has a checkpoint to resume from
STATE_KEYS = ("model_args", "class_names", "image_size", "data", "config", "G", "D", "G_ema", "opt_G", "opt_D",
              "ada", "step", "images_seen", "rng")


def save_checkpoint(state, run_dir, step, format=FORMAT):
    """Write checkpoints/stepNNNNNNN.pt atomically and point latest.pt at it; returns its path. A generator
    run of another kind (train-diffusion) gives its own format."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"step{step:07d}.pt"
    save_torch({"format": format, **state}, path)
    latest = run_dir / LATEST
    tmp = run_dir / f".{LATEST}.tmp"
    if tmp.exists():
        tmp.unlink()
    try:
        try:
            os.link(path, tmp)  # a second name for the same bytes, swapped in atomically
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, latest)
    except BaseException:  # a full disk while copying: latest.pt still names the previous checkpoint
        tmp.unlink(missing_ok=True)
        raise
    return path


def resume_file(run_dir):
    """What --resume continues from: the newest checkpoints/stepNNNNNNN.pt (latest.pt names the same bytes, unless
    a kill came between writing one and pointing latest.pt at it), else latest.pt."""
    steps = sorted(Path(run_dir).glob(STEP_FILES))
    return steps[-1] if steps else Path(run_dir) / LATEST


def resolve_checkpoint(path):
    """A checkpoint file, or a run directory's latest.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / LATEST
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path, map_location="cpu", format=FORMAT, kind="GAN", keys=STATE_KEYS):
    """A generator checkpoint's state (a GAN's unless `format`, `kind` and its `keys` say another); its class
    names, which name the folders synthesize writes, are checked."""
    path = resolve_checkpoint(path)
    state = load_checkpoint_file(path, format, kind, map_location)
    missing = [key for key in keys if key not in state]
    if missing:
        raise UserError(f"{path} is not a whole {kind} checkpoint (it lacks {', '.join(missing)})")
    state["class_names"] = list(check_class_names(state["class_names"], str(path)))
    return state


def load_generator(state, path):
    """The checkpoint's G_ema, rebuilt from its model_args; a one-line UserError when they do not fit its weights."""
    try:
        G, _ = build_networks(state["model_args"])
        G.load_state_dict(state["G_ema"])
    except Exception as err:  # model_args edited into anything make the builders raise anything
        raise UserError(f"{path}: its model_args do not rebuild its generator ({first_line(err)})") from None
    return G
