"""`gan-aug evaluate` (added to the `gan-aug` group in gan_aug/cli.py): the metric suite on a split or an external
set, with intervals, post-hoc corrections and operating points."""

import click

from gan_aug.config import check_device_name
from gan_aug.errors import UserError


@click.command()
@click.option("--checkpoint", "checkpoints", required=True, multiple=True,
              help="Classifier best.pt, its run directory, or a --folds folder (its folds); repeat it to evaluate "
                   "an ensemble (mean probabilities).")
@click.option("--data", type=str, help="Prepared set (.npz) to evaluate on.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--source", type=str, help="External set instead of --data: isic-csv, imagefolder, ham10000, ...")
@click.option("--root", type=str, help="Folder of the external set.")
@click.option("--csv", type=str, help="Labels CSV of the external set when not under --root.")
@click.option("--metadata-csv", type=str, help="Age, sex and site of the external set's images (per-image CSV).")
@click.option("--tta", is_flag=False, flag_value="flips", default=None, type=click.Choice(["flips", "d8"]),
              help="Test-time augmentation: mean probabilities over the image and its flips (--tta), or its 8 "
                   "rotations and mirror images (--tta d8).")
@click.option("--out", default="metrics.json", show_default=True, help="metrics.json path; PNGs go beside it.")
@click.option("--device", default="auto", show_default=True)
@click.option("--posthoc", multiple=True, type=click.Choice(["bias", "label-shift"]),
              help="Also report the metrics after a post-hoc class correction fitted on val (repeatable).")
@click.option("--val-data", type=str, help="The prepared set whose val split --posthoc fits on [--data].")
@click.option("--operating-point", type=str, help="A threshold on the malignant score chosen on val by a rule, "
                                               "sens=X, spec=X or youden, and applied unchanged to the evaluated set: "
                                               "sensitivity, specificity, PPV, NPV.")
@click.option("--patient-level", type=click.Choice(["max", "mean"]),
              help="Also score the operating point per patient (the set's groups: patient ids where it has them, "
                   "else lesions): malignant when any image is, scored by the max or mean of its images.")
@click.option("--bootstrap", default=1000, show_default=True, type=click.IntRange(min=0),
              help="Resamples of the 95% intervals (BMA, accuracy, recalls, subgroups); the set's lesions or "
                   "patients are resampled where it has them. 0: no intervals.")
@click.option("--force", is_flag=True, help="Overwrite --out and the PNGs beside it.")
def evaluate(checkpoints, data, split, source, root, csv, metadata_csv, tta, out, device, posthoc, val_data,
             operating_point, patient_level, bootstrap, force):
    """Evaluate a classifier on a test split or an external set (classes matched by name).

    \b
    Examples:
      gan-aug evaluate --checkpoint runs/clf/best.pt --data ham32.npz --split test --out runs/clf/test.json
      gan-aug evaluate --checkpoint runs/clf/best.pt --source isic-csv --root ISIC2018_Test --out isic.json
      gan-aug evaluate --checkpoint runs/meta --source isic-csv --root ISIC2020 --metadata-csv meta.csv --tta
      gan-aug evaluate --checkpoint runs/clf_s0 --checkpoint runs/clf_s1 --data ham32.npz --split val --out ens.json
      gan-aug evaluate --checkpoint runs/clf --source isic-csv --root ISIC2018_Test --val-data ham32.npz --posthoc bias
      gan-aug evaluate --checkpoint runs/clf --data isic20.npz --operating-point sens=0.95 --patient-level max
    """
    from classifier.checkpoint import load_classifier, run_files
    from classifier.evaluate import (evaluate_checkpoint, external_set, metrics_table, operating_point_metrics,
                                     output_paths, posthoc_metrics)
    from gan_aug.data.color import method_of
    from gan_aug.data.prepared import load_prepared
    from gan_aug.fileio import check_new_outputs

    check_device_name(device)
    if bool(data) == bool(source):
        raise UserError("give --data PREPARED.npz or --source S --root DIR (one of them)")
    if metadata_csv and not source:
        raise UserError("--metadata-csv goes with --source (a prepared set carries its own metadata)")
    check_new_outputs(output_paths(out), force)
    if source:
        _, _, state = load_classifier(run_files(checkpoints[0])[0])
        # read as the model's own set was prepared: its size, its colour constancy
        prepared = external_set(source, root, state["model_args"]["image_size"], csv, metadata_csv=metadata_csv,
                                color_constancy=method_of(state["model_args"]))
        split = "test"
    else:
        prepared = load_prepared(data)
    if patient_level and not operating_point:
        raise UserError("--patient-level scores an operating point: give --operating-point too")
    if (posthoc or operating_point) and not (val_data or data):
        raise UserError("--posthoc and --operating-point are fitted on the val split of the model's prepared set: give "
                        "--val-data PREPARED.npz")
    val_prepared = load_prepared(val_data) if val_data else prepared
    groups = prepared.group[prepared.indices(split)]

    def extra(targets, probs, task):
        out = {}
        if posthoc:
            out["posthoc"] = posthoc_metrics(checkpoints, probs, targets, val_prepared, posthoc, device, tta)
        if operating_point:
            out["operating_point"] = operating_point_metrics(task, checkpoints, targets, probs, groups, val_prepared,
                                                             operating_point, patient_level, device, tta, bootstrap)
        return out

    metrics, _, _ = evaluate_checkpoint(checkpoints, prepared, split, out, device, tta=tta, extra=extra,
                                        bootstrap=bootstrap)
    click.echo(metrics_table(metrics))
    click.echo(f"wrote {out}")


COMMANDS = (evaluate,)
