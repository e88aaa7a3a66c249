"""`gan-aug analyze`: checks of finished work (added to the `gan-aug` group in gan_aug/cli.py)."""

import json
from pathlib import Path

import click


@click.group()
def analyze():
    """Check finished work: final-epoch gains, one arm under two recipes, a generator's fidelity and variety.

    \b
    Examples:
      gan-aug analyze last-epoch-gain results/ham64
      gan-aug analyze recipe-gain results/tuned results/untuned --arm oversample
      gan-aug analyze generator-checks runs/gan64 --judge runs/judge --data ham64.npz
    """


@analyze.command("last-epoch-gain")
@click.argument("compare_dir")
@click.option("--baseline", help="Arm to compare with [the report's baseline: best mean val BMA, non-generative].")
@click.option("--arm", "arms", multiple=True, help="Arm scored against the baseline; repeatable [every generative "
                                                   "arm].")
@click.option("--bootstrap", default=2000, show_default=True, type=click.IntRange(min=10), help="Resamples.")
def last_epoch_gain(compare_dir, baseline, arms, bootstrap):
    """Does a finished comparison's gain hold for the final-epoch weights (no checkpoint selection)? Test split.

    \b
    Example:
      gan-aug analyze last-epoch-gain results/ham64 --arm mix:0.3
    """
    import torch

    from gan_aug.analyze.last_epoch import last_epoch_gains
    from gan_aug.compare.stats import format_gain

    torch.set_num_threads(1)
    baseline, base_bma, rows = last_epoch_gains(compare_dir, baseline, arms, bootstrap)
    click.echo(f"{baseline:<20} last-epoch test BMA {base_bma:.4f}")
    for arm, arm_bma, gain in rows:
        click.echo(f"{arm:<20} last-epoch test BMA {arm_bma:.4f}  {format_gain(gain)}")


@analyze.command("recipe-gain")
@click.argument("compare_a")
@click.argument("compare_b")
@click.option("--arm", default="oversample", show_default=True, help="The arm both comparisons ran.")
@click.option("--split", default="test", show_default=True, help="The split (or external set) to score.")
@click.option("--iterations", default=2000, show_default=True, type=click.IntRange(min=10), help="Resamples.")
def recipe_gain(compare_a, compare_b, arm, split, iterations):
    """Is recipe A better than recipe B? One arm in two finished comparisons, paired on their common seeds.

    \b
    Example:
      gan-aug analyze recipe-gain results/tuned results/untuned --arm oversample --split test
    """
    from gan_aug.analyze.recipes import recipe_gain as gain_of
    from gan_aug.compare.stats import format_gain

    result = gain_of(compare_a, compare_b, arm, split, iterations)
    click.echo(f"{arm} on {split}, seeds {result['seeds']}")
    for name, out in (("A", compare_a), ("B", compare_b)):
        mean, std = result[name.lower()]
        click.echo(f"  {name} {out}: BMA {mean:.4f} +- {std:.4f}")
    click.echo(f"  A - B: {format_gain(result['gain'])} (BMA points, 95% CIs)")


@analyze.command("generator-checks")
@click.argument("checkpoints", nargs=-1, required=True)
@click.option("--judge", required=True, help="A classifier run trained on --data (train split), selected on val.")
@click.option("--data", required=True, help="The prepared set the GANs and the judge were trained on.")
@click.option("-n", default=1024, show_default=True, help="Draws per class.")
@click.option("--truncation", default=1.0, show_default=True, type=float)
@click.option("--device", default="auto", show_default=True)
@click.option("--out", help="Also write the rows here as JSON.")
def generator_checks(checkpoints, judge, data, n, truncation, device, out):
    """Per class of each GAN: the judge's acceptance of its draws and their pixel spread beside the real images'.

    \b
    Example:
      gan-aug analyze generator-checks runs/gan64 --judge runs/judge --data ham64.npz --out checks.json
    """
    from gan_aug.analyze.generators import generator_checks as check, markdown
    from gan_aug.config import check_device_name
    from gan_aug.fileio import write_text
    from gan_aug.runtime import resolve_device

    check_device_name(device)
    rows = check(checkpoints, judge, data, n, truncation, str(resolve_device(device)))
    click.echo(markdown(rows))
    if out:
        write_text(Path(out), json.dumps(rows, indent=1))


COMMANDS = (analyze,)
