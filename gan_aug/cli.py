"""The `gan-aug` command line: thin commands that build one validated config and call one function.

Each config command's flags are generated from its config dataclass (name, type, default, help), so they
cannot drift from the config. Heavy imports (torch, sklearn) happen inside commands so `gan-aug --help`
stays instant; the config modules import neither.
"""

from pathlib import Path

import click

from classifier.config import ClassifierConfig
from gan_aug.app.config import ServeConfig
from gan_aug.cli_compare import COMMANDS
from gan_aug.cli_config import build_or_print, echo_notes, options_from, train_generator_runs
from gan_aug.data.config import ExportConfig, ImportConfig, PrepareConfig
from gan_aug.errors import UserError, environment_error, require_extra
from gan_aug.gan.config import GanConfig
from gan_aug.metrics.config import ScoreConfig
from gan_aug.synth.config import SynthConfig
from gan_aug.tune.config import TuneConfig


class _Group(click.Group):
    """Turns UserError anywhere below a command, and an OSError of the machine's (a full disk), into click's
    one-line 'Error: ...' and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            message = environment_error(err)
            if message is None:
                raise
            raise click.ClickException(message) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gan-aug")
def cli():
    """GAN data augmentation and synthesis for dermoscopic skin-lesion images.

    \b
    The flow: prepare -> train-gan -> synthesize -> score -> train-classifier / compare -> report.
    Quick start: `make demo`, then `make test`.
    """


@cli.command()
@options_from(PrepareConfig)
def prepare(config_path, sets, dry_run, **flags):
    """Decode, square-crop, resize and split a dataset by lesion into one .npz.

    \b
    Example:
      gan-aug prepare --source ham10000 --root data/ham10000 --size 64 --out ham64.npz
    """
    config = build_or_print(PrepareConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.data.prepare import prepare as run_prepare
    from gan_aug.data.prepared import load_prepared, summary_table

    _, notices = run_prepare(config)
    echo_notes(notices)
    click.echo(summary_table(load_prepared(config.out)))


@cli.command()
@click.argument("prepared", type=str)
def info(prepared):
    """Class counts per split, image size, source and fingerprint of a prepared set.

    \b
    Example:
      gan-aug info ham64.npz
    """
    from gan_aug.data.prepared import load_prepared, summary_table

    click.echo(summary_table(load_prepared(prepared)))


@cli.command()
@options_from(ExportConfig)
def export(config_path, sets, dry_run, **flags):
    """Write a split for another generator (StyleGAN2-ADA zip or ImageFolder) and a receipt beside it.

    \b
    Examples:
      gan-aug export --data ham64.npz --split train --format stylegan2-ada --out ham64_train.zip
      gan-aug export --data ham64.npz --split train --format imagefolder --out ham64_train
    """
    config = build_or_print(ExportConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.data.exchange import export as run_export, receipt_path

    receipt, notices = run_export(config)
    echo_notes(notices)
    counts = ", ".join(f"{c} {n}" for c, n in receipt["counts"].items())
    click.echo(f"wrote {receipt['count']} {config.split} images to {config.out} ({counts}); receipt "
               f"{receipt_path(config.out)}")


@cli.command("import-synthetic")
@click.argument("images", required=False)
@options_from(ImportConfig)
def import_synthetic(images, config_path, sets, dry_run, **flags):
    """Turn another generator's labelled images (IMAGES/<class>/*.png, or --labels CSV) into a synthetic set.

    \b
    Example:
      gan-aug import-synthetic generated --data ham64.npz --receipt ham64_train.receipt.json \\
          --generator "stylegan2-ada-pytorch network-snapshot-005000.pkl" --out syn_sg2
    """
    config = build_or_print(ImportConfig, config_path, {**flags, "images": images}, sets, dry_run)
    if config is None:
        return
    from gan_aug.data.exchange import import_synthetic as run_import

    provenance = run_import(config)
    counts = ", ".join(f"{c} {n}" for c, n in provenance["counts"].items())
    click.echo(f"wrote {sum(provenance['counts'].values())} images by {config.generator} to {config.out} ({counts})")


@cli.command("train-gan")
@options_from(GanConfig)
def train_gan(config_path, sets, dry_run, **flags):
    """Train a class-conditional GAN on a prepared set's train split.

    \b
    Examples:
      gan-aug train-gan --data ham32.npz --out runs/gan32 --config configs/presets/dcgan32.yaml
      gan-aug train-gan --data ham32.npz --out runs/mel --class mel --kimg 200
      gan-aug train-gan --data ham32.npz --out runs/gan32 --resume --kimg 400
      gan-aug train-gan --data ham32.npz --out runs/gan_cv --folds 5 --config configs/presets/dcgan32.yaml
    """
    config = build_or_print(GanConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.gan.train import train_gan as run_training

    train_generator_runs(config, run_training)


@cli.command()
@options_from(SynthConfig)
def synthesize(config_path, sets, dry_run, **flags):
    """Sample a labelled synthetic set from trained GANs.

    \b
    Examples:
      gan-aug synthesize --checkpoint runs/gan32 -n 5000 --out syn32
      gan-aug synthesize --checkpoint runs/mel --checkpoint runs/df -n 2000 --out syn --distribution uniform
      gan-aug synthesize --checkpoint runs/gan32 -n 5000 --out syn32f --filter-checkpoint runs/clf --min-confidence 0.5
    """
    config = build_or_print(SynthConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.synth.sample import synthesize as run_synthesis

    provenance = run_synthesis(config)
    counts = ", ".join(f"{c} {n}" for c, n in provenance["counts"].items())
    click.echo(f"wrote {sum(provenance['counts'].values())} images to {config.out} ({counts})")
    if "filter" in provenance:
        kept = ", ".join(f"{c} {rate:.0%}" for c, rate in provenance["filter"]["acceptance"].items())
        click.echo(f"kept at confidence >= {config.min_confidence}: {kept} of the candidates")


@cli.command("train-classifier")
@options_from(ClassifierConfig)
def train_classifier(config_path, sets, dry_run, **flags):
    """Train a lesion classifier on real (+ synthetic) images; selects on val BMA.

    \b
    Examples:
      gan-aug train-classifier --data ham32.npz --out runs/clf --balance oversample
      gan-aug train-classifier --data ham32.npz --out runs/clf_mix --synthetic syn32 --mix 0.3
      gan-aug train-classifier --data ham32.npz --out runs/clf_mix --synthetic syn32 --mix 0.5 --mix-until 0.6
      gan-aug train-classifier --data ham32.npz --out runs/clf_kd --synthetic syn32 --mix 0.2 \\
          --teacher runs/clf_s100 --teacher runs/clf_s101
      gan-aug train-classifier --data ham32.npz --out runs/clf_cv --balance oversample --folds 5
    """
    config = build_or_print(ClassifierConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from classifier.crossval import cross_validate
    from classifier.train import train_classifier as run_training

    if config.folds and config.fold is None:
        cv = cross_validate(config)
        if cv is not None:  # None: a torchrun rank other than 0
            click.echo(f"val BMA over {cv['folds']} folds {cv['val_bma_mean']:.4f} ± {cv['val_bma_std']:.4f} "
                       f"({', '.join(f'{b:.4f}' for b in cv['val_bma'])}); runs {config.out}/fold_*")
        return
    summary = run_training(config)
    if summary is None:  # a torchrun rank other than 0
        return
    click.echo(f"best val BMA {summary['best_val_bma']:.4f} at epoch {summary['best_epoch']} of "
               f"{summary['epochs']}; checkpoint {summary['checkpoint']}")


@cli.command()
@options_from(ScoreConfig)
def score(config_path, sets, dry_run, **flags):
    """FD/KID/precision-recall per class, CAS and a memorization audit of a synthetic set.

    \b
    Examples:
      gan-aug score --data ham32.npz --synthetic syn32 --features lesion:runs/clf/best.pt --out scores.json
      gan-aug score --data ham32.npz --synthetic syn32 --features inception --fid-weights inception.pth
    """
    config = build_or_print(ScoreConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.metrics.score import output_paths, score as run_score, scores_table

    results = run_score(config)
    click.echo(scores_table(results))
    click.echo(f"wrote {config.out}; browse: tensorboard --logdir {output_paths(config.out)[2]}")


@cli.command()
@options_from(TuneConfig)
def tune(config_path, sets, dry_run, **flags):
    """Search the classifier recipe with Optuna (TPE, median pruning on val BMA); resumable, shareable.

    \b
    Examples:
      gan-aug tune --config configs/experiments/tune_ham32.yaml --out runs/tune --trials 20
      gan-aug tune --config configs/experiments/tune_ham32.yaml --out runs/tune --trials 20 &  # a second worker
    """
    config = build_or_print(TuneConfig, config_path, flags, sets, dry_run)
    if config is None:
        return
    require_extra("optuna", "tune")
    from gan_aug.tune.study import tune as run_tune

    s = run_tune(config)
    running = f", {s['running']} running in other processes" if s.get("running") else ""
    click.echo(f"{s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed trials{running}; best val BMA "
               f"{s['best']['val_bma']:.4f} (trial {s['best']['trial']}): {s['best']['params']}\nwrote "
               f"{Path(config.out) / 'best.yaml'}, best_compare.yaml, trials.csv and plots")


@cli.command()
@click.option("--data", type=str, help="A prepared set to use instead of the embedded toy data.")
@click.option("--out", default="demo_out", show_default=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Start over in an existing --out.")
def demo(data, out, force):
    """The whole pipeline in one command: prepare, GAN, synthesize, compare, score, report.

    \b
    Example:
      gan-aug demo --out demo_out
    """
    from gan_aug.demo import run_demo

    report = run_demo(out, data=data, force=force)
    click.echo(f"report: {report}")
    click.echo(f"browse samples and curves: tensorboard --logdir {out}")


@cli.command()
@click.option("--checkpoint", required=True, help="Classifier best.pt (or its run directory).")
@click.argument("images", nargs=-1)
@click.option("--out", default="explain_out", show_default=True, help="Folder for the overlays.")
@click.option("--force", is_flag=True, help="Overwrite overlays and explanations.json already in --out.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N")
def explain(checkpoint, images, out, force, device):
    """Grad-CAM overlays of a classifier's predictions, with class probabilities.

    \b
    Example:
      gan-aug explain --checkpoint runs/clf/best.pt ISIC_0024306.jpg ISIC_0024307.jpg --out cams
    """
    from classifier.gradcam import explain as run_explain

    for row in run_explain(checkpoint, list(images), out, force, device):
        click.echo(f"{row['image']}: {row['predicted']} ({row['probabilities'][row['predicted']]:.3f}) -> {row['overlay']}")


@cli.command()
@options_from(ServeConfig)
def serve(config_path, sets, dry_run, **flags):
    """Web app: classify a lesion image (probabilities, risk, Grad-CAM, nearest training images); with --gan,
    generate synthetic images. A research tool, not a diagnostic device. Serves 127.0.0.1 only.

    \b
    Example:
      gan-aug serve --checkpoint runs/clf --gan runs/gan32 --port 7860
    """
    config = build_or_print(ServeConfig, config_path, flags, sets, dry_run)
    if config is not None:
        require_extra("gradio", "app")
        from gan_aug.app.ui import serve as run_serve

        run_serve(config)


from gan_aug.cli_analyze import COMMANDS as ANALYZE_COMMANDS  # noqa: E402
from gan_aug.cli_audit import COMMANDS as AUDIT_COMMANDS  # noqa: E402  (its module imports this one's)
from gan_aug.cli_diffusion import COMMANDS as DIFFUSION_COMMANDS  # noqa: E402
from gan_aug.cli_evaluate import COMMANDS as EVALUATE_COMMANDS  # noqa: E402

for _command in COMMANDS + EVALUATE_COMMANDS + AUDIT_COMMANDS + ANALYZE_COMMANDS + DIFFUSION_COMMANDS:
    cli.add_command(_command)


def main():
    cli(prog_name="gan-aug")


if __name__ == "__main__":
    main()
