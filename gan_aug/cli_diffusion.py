"""`gan-aug train-diffusion` (issue #45), added to the `gan-aug` group in gan_aug/cli.py."""

import click

from gan_aug.cli_config import build_or_print, options_from, train_generator_runs
from gan_aug.diffusion.config import DiffusionConfig


@click.command("train-diffusion")
@options_from(DiffusionConfig)
def train_diffusion(config_path, sets, dry_run, **flags):
    """Train a class-conditional diffusion model (diffusers' UNet2DModel) on a prepared set's train split;
    `synthesize` samples it like a GAN (pip install -e '.[diffusion]').

    \b
    Examples:
      gan-aug train-diffusion --data ham32.npz --out runs/diff32 --config configs/presets/diffusion32.yaml
      gan-aug train-diffusion --data ham32.npz --out runs/diff32 --resume --kimg 400
      gan-aug synthesize --checkpoint runs/diff32 -n 5000 --steps 50 --guidance 2 --out syn_diff32
    """
    config = build_or_print(DiffusionConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.diffusion.train import train_diffusion as run_training

    train_generator_runs(config, run_training)

COMMANDS = (train_diffusion,)
