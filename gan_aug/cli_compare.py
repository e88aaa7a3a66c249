"""The commands of comparisons and their results: compare, bundle and rescore (added to the `gan-aug` group
in gan_aug/cli.py)."""

from pathlib import Path

import click

from gan_aug.cli_config import build_or_print, options_from
from gan_aug.compare.config import CompareConfig


@click.command()
@options_from(CompareConfig)
def compare(config_path, sets, dry_run, **flags):
    """Run every augmentation arm x seed and report gains with confidence intervals (resumable).

    \b
    Example:
      gan-aug compare --config configs/experiments/compare_ham32.yaml --out results/ham32
    """
    config = build_or_print(CompareConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.compare.runner import compare as run_compare

    summary = run_compare(config)
    if summary is None:  # other shards still running
        return
    _echo_summary(summary)
    click.echo(f"report: {Path(config.out) / 'report.md'}")


def _echo_summary(summary, matches=None):
    """Each split's arms, BMA and gains as lines; with `matches`, how many runs gave the bundle's predictions."""
    from gan_aug.compare.stats import format_gain

    for split, rows in summary["splits"].items():
        for arm, row in rows.items():
            gain = row.get("gain")
            extra = f"  {format_gain(gain)}" if gain else ""
            click.echo(f"{split:<8} {arm:<14} BMA {row['bma_mean']:.4f} ± {row['bma_std']:.4f}{extra}")
        if matches and matches.get(split) is not None:
            click.echo(f"{split}: {matches[split]} of {sum(len(r['bma_by_seed']) for r in rows.values())} runs "
                       "predict every image as the bundle recorded")


@click.command()
@click.argument("results_dir", type=str)
@click.option("--out", required=True, help="The bundle folder to write.")
@click.option("--external-predictions/--no-external-predictions", default=True, show_default=True,
              help="Bundle the runs' predictions on the compare's external sets too (leave them out where the "
                   "set's license forbids sharing anything derived from it).")
@click.option("--force", is_flag=True, help="Replace an existing bundle folder.")
def bundle(results_dir, out, external_predictions, force):
    """Bundle a comparison's finished runs (best weights, configs, predictions, report) for re-scoring.

    \b
    Example:
      gan-aug bundle results/ham64 --out results/ham64_bundle
    """
    from gan_aug.compare.bundle import write_bundle

    manifest = write_bundle(results_dir, out, force, external_predictions)
    size = sum(entry["size"] for entry in manifest["files"].values())
    click.echo(f"wrote {out}: {len(manifest['runs'])} runs, {len(manifest['files'])} files, {size / 1e6:.1f} MB")


@click.command()
@click.argument("bundle_dir", type=str)
@click.option("--external", "externals", multiple=True, required=True,
              help="A new external set NAME=SOURCE:ROOT (any reader: isic-csv, imagefolder, ham10000, ...); "
                   "repeatable.")
@click.option("--out", type=str, help="Report folder [rescore_<bundle name>].")
@click.option("--tta", is_flag=False, flag_value="flips", default=None, type=click.Choice(["flips", "d8"]),
              help="Test-time augmentation: mean probabilities over the image and its flips (--tta), or its 8 "
                   "rotations and mirror images (--tta d8).")
@click.option("--device", default="auto", show_default=True)
@click.option("--posthoc", multiple=True, help="Post-hoc corrections to report (bias, label-shift; repeatable) "
                                               "[the comparison's own].")
@click.option("--exclude", type=str, help="An audit.json (gan-aug audit ... --external NAME=...): score each "
                                         "external set without its images that have a near duplicate in the "
                                         "train split.")
@click.option("--force", is_flag=True, help="Replace an existing report folder.")
def rescore(bundle_dir, externals, out, tta, device, posthoc, exclude, force):
    """Re-score a bundle's runs on new external sets: the compare report's claim and CIs, no training.

    \b
    Example:
      gan-aug rescore results/round10 --external isic2018dev=isic-csv:data/isic2018_test_dev --out rescore10
      gan-aug rescore results/round10 --external isic2018dev=isic-csv:data/isic2018_test_dev \\
        --exclude audit_ham64/audit.json --out rescore10_clean
    """
    from gan_aug.compare.rescore import default_out, rescore as run_rescore

    summary, matches = run_rescore(bundle_dir, externals, out, tta, device, force, posthoc=posthoc or None,
                                   exclude=exclude)
    _echo_summary(summary, matches)
    click.echo(f"report: {Path(out or default_out(bundle_dir)) / 'report.md'}")


COMMANDS = (compare, bundle, rescore)
