"""Diffusion checkpoints: the GAN runs' layout (checkpoints/stepNNNNNNN.pt, latest.pt, best.pt), their own format.

A checkpoint carries what rebuilds its UNet and schedule (model_args), the class names, the weights of the
trained and the averaged UNet, the optimizer, step and RNG (an exact resume), and the fingerprint of the data it
saw. synthesize samples the average.
"""

from gan_aug.errors import UserError, first_line
from gan_aug.gan.checkpoint import load_checkpoint as load_generator_checkpoint
from gan_aug.legacy import DIFFUSION_CHECKPOINT

FORMAT = DIFFUSION_CHECKPOINT
STATE_KEYS = ("model_args", "class_names", "image_size", "data", "config", "unet", "unet_ema", "opt", "step",
              "images_seen", "rng")


def load_checkpoint(path, map_location="cpu"):
    """A diffusion checkpoint's state, its class names (which name synthesize's folders) checked."""
    return load_generator_checkpoint(path, map_location, FORMAT, "diffusion", STATE_KEYS)


def load_sampling_unet(state, path):
    """The checkpoint's averaged UNet, rebuilt from its model_args; one line when they do not fit its weights."""
    from gan_aug.diffusion.model import build_unet

    try:
        unet = build_unet(state["model_args"])
        unet.load_state_dict(state["unet_ema"])
    except Exception as err:  # model_args edited into anything make diffusers raise anything
        raise UserError(f"{path}: its model_args do not rebuild its UNet ({first_line(err)})") from None
    return unet.eval()
