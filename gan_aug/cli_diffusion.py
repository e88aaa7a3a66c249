"""`gan-aug train-diffusion` (issue #45), added to the `gan-aug` group in gan_aug/cli.py."""

from pathlib import Path

import click

from gan_aug.cli_config import build_or_print, options_from
from gan_aug.config import fold_runs
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
    from gan_aug.metrics.tracking import TrainingQuality
    from gan_aug.runtime import resolve_device

    for run in fold_runs(config):  # with --folds K and no --fold: one model per fold, into OUT/fold_k
        quality = TrainingQuality(run, resolve_device(run.device)) if run.metrics_every else None
        summary = run_training(run, quality=quality)
        if summary is not None:  # None: a torchrun rank other than 0
            click.echo(f"trained {summary['kimg']:.1f} kimg ({summary['step']} steps, {summary['img_per_s']:.0f} "
                       f"img/s); checkpoint {summary['checkpoint']}; browse: tensorboard --logdir "
                       f"{Path(run.out) / 'tb'}")


COMMANDS = (train_diffusion,)
