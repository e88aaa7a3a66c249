"""The `gan-aug` command line: thin commands that build one validated config and call one function.

Heavy imports (torch, sklearn) happen inside commands so `gan-aug --help` stays instant.
"""

from pathlib import Path

import click

from gan_aug.errors import UserError


class _Group(click.Group):
    """Turns UserError anywhere below a command into click's one-line 'Error: ...' and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gan-aug")
def cli():
    """GAN data augmentation and synthesis for dermoscopic skin-lesion images.

    \b
    The flow: prepare -> train-gan -> synthesize -> score -> train-classifier / compare -> report.
    Quick start: `make demo`, then `make test`.
    """


def config_options(func):
    """--config, --set and --dry-run, shared by every command that builds a config."""
    func = click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")(func)
    func = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                        help="Override any config key (repeatable).")(func)
    func = click.option("--config", "config_path", type=click.Path(), help="YAML file of config keys.")(func)
    return func


def build_or_print(cls_name, config_path, flags, sets, dry_run):
    """The command's validated config, or None after printing it for --dry-run.

    A resumed run starts from the config.yaml saved in its --out, so only what changes need be given;
    the saved `force` was that earlier invocation's action, not a setting, so it is not carried over.
    """
    from gan_aug import config as configs

    saved = {}
    if flags.get("resume") and not config_path and flags.get("out"):
        saved_path = Path(flags["out"]) / "config.yaml"
        if saved_path.is_file():
            saved = {k: v for k, v in configs.read_yaml(saved_path).items() if k != "force"}
    config = configs.build_config(getattr(configs, cls_name), config_path, flags, sets, base=saved)
    if dry_run:
        click.echo(configs.to_yaml(config), nl=False)
        return None
    return config


@cli.command()
@click.option("--source", type=str, help="Reader: ham10000, isic-csv, medmnist-npz, imagefolder or toy [toy].")
@click.option("--root", type=str, help="Folder holding the source (the .npz file for medmnist-npz).")
@click.option("--size", type=int, help="Output image side in pixels, 8-512 [64].")
@click.option("--out", type=str, help="Output .npz file.")
@click.option("--csv", type=str, help="Labels CSV when it is not under --root.")
@click.option("--metadata-csv", type=str, help="isic-csv: ISIC 2019 metadata CSV (age, site, sex, lesion_id).")
@click.option("--val-frac", type=float, help="Validation fraction [0.1].")
@click.option("--test-frac", type=float, help="Test fraction [0.2].")
@click.option("--seed", type=int, help="Seed of the grouped split [0].")
@click.option("--workers", type=int, help="Decoding processes, 0 = one per core [0].")
@click.option("--toy-count", type=int, help="toy: number of images [2000].")
@click.option("--skip-missing", is_flag=True, help="Go on without image ids that have no file.")
@click.option("--skip-bad", is_flag=True, help="Go on without unreadable or corrupt images.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@config_options
def prepare(config_path, sets, dry_run, **flags):
    """Decode, square-crop, resize and split a dataset by lesion into one .npz.

    \b
    Example:
      gan-aug prepare --source ham10000 --root data/ham10000 --size 64 --out ham64.npz
    """
    config = build_or_print("PrepareConfig", config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.data.prepare import prepare as run_prepare
    from gan_aug.data.prepared import load_prepared, summary_table

    _, notices = run_prepare(config)
    for notice in notices:
        click.echo(f"note: {notice}", err=True)
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


@cli.command("train-gan")
@click.option("--data", type=str, help="Prepared set (.npz); the GAN sees its train split only.")
@click.option("--out", type=str, help="Run directory (checkpoints, samples, TensorBoard).")
@click.option("--class", "class_", type=str, help="Train on this one class.")
@click.option("--classes", type=str, help="Train on these classes, comma-separated [all].")
@click.option("--arch", type=str, help="Network: dcgan or stylegan_lite [dcgan].")
@click.option("--kimg", type=float, help="Training length in thousands of real images shown to D.")
@click.option("--ckpt-every", type=float, help="kimg between checkpoints.")
@click.option("--snapshot-every", type=float, help="kimg between sample grids.")
@click.option("--seed", type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out where it stopped.")
@click.option("--force", is_flag=True, help="Replace a run already in --out.")
@config_options
def train_gan(config_path, sets, dry_run, class_, classes, **flags):
    """Train a class-conditional GAN on a prepared set's train split.

    \b
    Examples:
      gan-aug train-gan --data ham32.npz --out runs/gan32 --config configs/dcgan32.yaml
      gan-aug train-gan --data ham32.npz --out runs/mel --class mel --kimg 200
      gan-aug train-gan --data ham32.npz --out runs/gan32 --resume --kimg 400
    """
    if class_ and classes:
        raise UserError("give --class or --classes, not both")
    flags["classes"] = class_ or classes
    config = build_or_print("GanConfig", config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.gan.train import train_gan as run_training

    summary = run_training(config)
    click.echo(f"trained {summary['kimg']:.1f} kimg ({summary['step']} steps, {summary['img_per_s']:.0f} img/s); "
               f"checkpoint {summary['checkpoint']}")
    click.echo(f"browse: tensorboard --logdir {Path(config.out) / 'tb'}")


@cli.command()
@click.option("--checkpoint", "checkpoints", multiple=True,
              help="GAN run directory or .pt file (repeatable: e.g. one per-class GAN each).")
@click.option("-n", "n", type=int, help="Number of images in all [1000].")
@click.option("--out", type=str, help="Output folder (png) or .npz file (npz).")
@click.option("--class", "class_", type=str, help="Only this class (or a comma-separated list).")
@click.option("--distribution", type=str, help="balance (default: fill the rarest classes first), uniform, "
                                                "or e.g. mel=1000,df=500.")
@click.option("--truncation", type=float, help="Truncation psi, 1 = none [1].")
@click.option("--seed", type=int, help="Sampling seed [0]; same arguments give byte-identical files.")
@click.option("--format", "format_", type=click.Choice(["png", "npz"]), help="png (ImageFolder) or npz [png].")
@click.option("--filter-checkpoint", "filter_checkpoints", multiple=True,
              help="Classifier (run dir or .pt) trained on the GAN's prepared set: keep only samples it puts "
                   "in their class ... (repeatable: an ensemble, judged by its mean probability)")
@click.option("--min-confidence", type=float, help="... with at least this probability [0.5].")
@click.option("--force", is_flag=True, help="Replace an existing synthetic set.")
@config_options
def synthesize(config_path, sets, dry_run, class_, format_, **flags):
    """Sample a labelled synthetic set from trained GANs.

    \b
    Examples:
      gan-aug synthesize --checkpoint runs/gan32 -n 5000 --out syn32
      gan-aug synthesize --checkpoint runs/mel --checkpoint runs/df -n 2000 --out syn --distribution uniform
      gan-aug synthesize --checkpoint runs/gan32 -n 5000 --out syn32f --filter-checkpoint runs/clf --min-confidence 0.5
    """
    flags.update(classes=class_, format=format_, checkpoints=flags["checkpoints"] or None,
                 filter_checkpoints=flags["filter_checkpoints"] or None)
    config = build_or_print("SynthConfig", config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.synth import synthesize as run_synthesis

    provenance = run_synthesis(config)
    counts = ", ".join(f"{c} {n}" for c, n in provenance["counts"].items())
    click.echo(f"wrote {sum(provenance['counts'].values())} images to {config.out} ({counts})")
    if "filter" in provenance:
        kept = ", ".join(f"{c} {rate:.0%}" for c, rate in provenance["filter"]["acceptance"].items())
        click.echo(f"kept at confidence >= {config.min_confidence}: {kept} of the candidates")


@cli.command("train-classifier")
@click.option("--data", type=str, help="Prepared set (.npz).")
@click.option("--out", type=str, help="Run directory (best.pt, latest.pt, TensorBoard).")
@click.option("--model", type=str, help="small_cnn, resnet18, resnet50, densenet121, efficientnet_b0 [small_cnn].")
@click.option("--task", type=str, help="multiclass, binary or two-stage [multiclass].")
@click.option("--balance", type=str, help="none, oversample, class-weight or focal [none].")
@click.option("--synthetic", type=str, help="Synthetic set (folder or .npz) to mix in.")
@click.option("--mix", type=float, help="Share of synthetic images in each class's draws, 0-1.")
@click.option("--mix-policy", type=str, help="balanced (default) or topup.")
@click.option("--mix-until", type=float, help="Draw synthetic images only in this first share of the epochs [1].")
@click.option("--teacher", "teachers", multiple=True,
              help="Distil: train on this classifier's class probabilities (repeatable: their mean).")
@click.option("--epochs", type=int)
@click.option("--seed", type=int)
@click.option("--pretrained", type=str, help="Local state dict for a torchvision backbone.")
@click.option("--use-metadata", is_flag=True, help="Fuse age, sex and site with the image features.")
@click.option("--resume", is_flag=True)
@click.option("--force", is_flag=True)
@config_options
def train_classifier(config_path, sets, dry_run, **flags):
    """Train a lesion classifier on real (+ synthetic) images; selects on val BMA.

    \b
    Examples:
      gan-aug train-classifier --data ham32.npz --out runs/clf --balance oversample
      gan-aug train-classifier --data ham32.npz --out runs/clf_mix --synthetic syn32 --mix 0.3
      gan-aug train-classifier --data ham32.npz --out runs/clf_mix --synthetic syn32 --mix 0.5 --mix-until 0.6
      gan-aug train-classifier --data ham32.npz --out runs/clf_kd --synthetic syn32 --mix 0.2 \\
          --teacher runs/clf_s100 --teacher runs/clf_s101
    """
    flags["teachers"] = flags["teachers"] or None
    config = build_or_print("ClassifierConfig", config_path, flags, sets, dry_run)
    if config is None:
        return
    from classifier.train import train_classifier as run_training

    summary = run_training(config)
    click.echo(f"best val BMA {summary['best_val_bma']:.4f} at epoch {summary['best_epoch']} of "
               f"{summary['epochs']}; checkpoint {summary['checkpoint']}")


@cli.command()
@click.option("--checkpoint", "checkpoints", required=True, multiple=True,
              help="Classifier best.pt (or its run directory); repeat it to evaluate an ensemble (mean probabilities).")
@click.option("--data", type=str, help="Prepared set (.npz) to evaluate on.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--source", type=str, help="External set instead of --data: isic-csv, imagefolder, ham10000, ...")
@click.option("--root", type=str, help="Folder of the external set.")
@click.option("--csv", type=str, help="Labels CSV of the external set when not under --root.")
@click.option("--out", default="metrics.json", show_default=True, help="metrics.json path; PNGs go beside it.")
@click.option("--device", default="auto", show_default=True)
def evaluate(checkpoints, data, split, source, root, csv, out, device):
    """Evaluate a classifier on a test split or an external set (classes matched by name).

    \b
    Examples:
      gan-aug evaluate --checkpoint runs/clf/best.pt --data ham32.npz --split test --out runs/clf/test.json
      gan-aug evaluate --checkpoint runs/clf/best.pt --source isic-csv --root ISIC2018_Test --out isic.json
      gan-aug evaluate --checkpoint runs/clf_s0 --checkpoint runs/clf_s1 --data ham32.npz --split val --out ens.json
    """
    from classifier.checkpoint import load_classifier
    from classifier.evaluate import evaluate_checkpoint, external_set, metrics_table
    from gan_aug.data.prepared import load_prepared

    if bool(data) == bool(source):
        raise UserError("give --data PREPARED.npz or --source S --root DIR (one of them)")
    if source:
        _, _, state = load_classifier(checkpoints[0])
        prepared, split = external_set(source, root, state["model_args"]["image_size"], csv), "test"
    else:
        prepared = load_prepared(data)
    metrics, _, _ = evaluate_checkpoint(checkpoints, prepared, split, out, device)
    click.echo(metrics_table(metrics))
    click.echo(f"wrote {out}")


@cli.command()
@click.option("--data", type=str, help="Prepared set (.npz); its train split is the reference.")
@click.option("--synthetic", type=str, help="Synthetic set (folder or .npz).")
@click.option("--features", type=str, help="inception (needs local weights) or lesion:CLASSIFIER_CKPT.")
@click.option("--fid-weights", type=str, help="Local Inception-v3 weights file for --features inception.")
@click.option("--out", type=str, help="scores.json path [scores.json]; PNG and TensorBoard go beside it.")
@click.option("--no-cas", "cas", flag_value=False, default=None, help="Skip CAS.")
@click.option("--no-memorization", "memorization", flag_value=False, default=None, help="Skip the audit.")
@config_options
def score(config_path, sets, dry_run, cas, memorization, **flags):
    """FD/KID/precision-recall per class, CAS and a memorization audit of a synthetic set.

    \b
    Examples:
      gan-aug score --data ham32.npz --synthetic syn32 --features lesion:runs/clf/best.pt --out scores.json
      gan-aug score --data ham32.npz --synthetic syn32 --features inception --fid-weights inception.pth
    """
    if cas is False:
        sets = sets + ("cas=false",)
    if memorization is False:
        sets = sets + ("memorization=false",)
    config = build_or_print("ScoreConfig", config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.metrics.score import score as run_score, scores_table

    results = run_score(config)
    click.echo(scores_table(results))
    click.echo(f"wrote {config.out}; browse: tensorboard --logdir {Path(config.out).with_name(Path(config.out).stem + '_tb')}")


@cli.command()
@click.option("--data", type=str, help="Prepared set (.npz) [from the config].")
@click.option("--out", type=str, help="Output folder: runs/, results.csv, report.md, plots.")
@config_options
def compare(config_path, sets, dry_run, **flags):
    """Run every augmentation arm x seed and report gains with confidence intervals (resumable).

    \b
    Example:
      gan-aug compare --config configs/compare_ham32.yaml --out results/ham32
    """
    config = build_or_print("CompareConfig", config_path, flags, sets, dry_run)
    if config is None:
        return
    from gan_aug.experiment import compare as run_compare, format_gain

    summary = run_compare(config)
    for split, rows in summary["splits"].items():
        for arm, row in rows.items():
            gain = row.get("gain")
            extra = f"  {format_gain(gain)}" if gain else ""
            click.echo(f"{split:<8} {arm:<14} BMA {row['bma_mean']:.4f} ± {row['bma_std']:.4f}{extra}")
    click.echo(f"report: {Path(config.out) / 'report.md'}")


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
def explain(checkpoint, images, out):
    """Grad-CAM overlays of a classifier's predictions, with class probabilities.

    \b
    Example:
      gan-aug explain --checkpoint runs/clf/best.pt ISIC_0024306.jpg ISIC_0024307.jpg --out cams
    """
    from classifier.gradcam import explain as run_explain

    for row in run_explain(checkpoint, list(images), out):
        click.echo(f"{row['image']}: {row['predicted']} ({row['probabilities'][row['predicted']]:.3f}) -> {row['overlay']}")


def main():
    cli(prog_name="gan-aug")


if __name__ == "__main__":
    main()
