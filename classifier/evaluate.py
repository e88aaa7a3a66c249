"""`gan-aug evaluate`: a trained classifier on a prepared split or an external set, classes matched by name."""

import json
from pathlib import Path

import numpy as np
import torch

from classifier.checkpoint import load_classifier, run_files
from classifier.data import device_images, rows_metadata
from classifier.inference import predict, tta_views
from classifier.intervals import ITERATIONS, intervals
from classifier.operating import operating_lines
from classifier.metrics import save_confusion_png, save_roc_png
from classifier.review import (calibration, format_ci, save_reliability_png, subgroup_lines, subgroup_metrics,
                               subgroup_values)
from gan_aug.data import images as image_ops
from gan_aug.data.color import NONE, correct_colors, describe, method_of, prepare_flags
from gan_aug.data.config import PrepareConfig
from gan_aug.data.domain import BINARY_CLASSES
from gan_aug.data.prepared import PreparedSet
from gan_aug.data.readers import read_source
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write
from gan_aug.runtime import autocast_for, resolve_device


def external_set(source, root, size, csv=None, workers=0, metadata_csv=None, color_constancy=NONE):
    """All images of an external source (no split) as a PreparedSet-like object at `size` px, corrected with
    `color_constancy` (the method of the set the models learned from, as prepare applies it); `metadata_csv`
    gives them age, sex and site (for metadata models and subgroup results)."""
    config = PrepareConfig(out="unused.npz", source=source, root=str(root), size=size, csv=csv,
                           metadata_csv=metadata_csv)  # the reader's settings; the corrections come after decoding
    config.validate()
    records = read_source(config)
    if records.arrays is not None:
        images = image_ops.resize_arrays(records.arrays, size)
    else:
        images, errors = image_ops.decode_files(records.paths, size, workers or 2)
        if errors:
            raise UserError(f"{len(errors)} unreadable image(s) in {root}: {'; '.join(list(errors.values())[:3])}")
    images = correct_colors(images, color_constancy)
    n = len(records)
    return PreparedSet(path=Path(root), images=images, labels=records.labels, class_names=records.class_names,
                       split=np.full(n, "test"), group=records.groups, image_id=records.image_ids, source=source,
                       fingerprint="", age=records.age, sex=records.sex, site=records.site, skin_type=records.skin_type,
                       color_constancy=color_constancy)


def output_paths(out):
    """What evaluate writes for `out`: the metrics JSON, then its confusion-matrix, ROC and reliability PNGs."""
    out = Path(out)
    return (out, *(out.with_name(f"{out.stem}_{plot}.png") for plot in ("confusion", "roc", "reliability")))


def relabel_to_model(prepared, model_classes):
    """The set's labels in the model's class order; refuses classes the model never learned."""
    unknown = [c for c in prepared.class_names if c not in model_classes]
    if unknown:
        raise UserError(f"class(es) {', '.join(unknown)} of the evaluation set are unknown to the model "
                        f"(it knows {', '.join(model_classes)})")
    remap = np.array([list(model_classes).index(c) for c in prepared.class_names], dtype=np.int64)
    return remap[prepared.labels]


def split_targets(task, prepared, idx, model_classes):
    """The targets of rows `idx` in the task's terms. A benign/malignant set (ISIC 2016, 2020) holds only the
    verdict, which is what a binary model predicts: it is scored on that; any other set is matched by class name."""
    if task.name == "binary" and set(prepared.class_names) <= set(BINARY_CLASSES):
        return (np.array(prepared.class_names)[prepared.labels[idx]] == "malignant").astype(np.int64)
    return task.targets(torch.from_numpy(relabel_to_model(prepared, model_classes)[idx])).numpy()


def evaluate_checkpoint(checkpoint, prepared, split, out=None, device="auto", amp=True, tta=False, extra=None,
                        bootstrap=ITERATIONS):
    """(metrics, targets, probabilities) of `checkpoint` on one split of `prepared`, with calibration and, where
    the set has metadata, subgroup results; with `out`, also writes the metrics JSON and the confusion-matrix, ROC
    and reliability PNGs. A list of checkpoints is evaluated as an ensemble: the mean of their class
    probabilities (they must predict the same classes at the same size). `tta`: each model's probabilities are
    the mean over the image and its flips (True, 'flips') or its 8 symmetries ('d8'). `extra(targets, probs, task)`: more entries for the metrics (e.g. evaluate's
    post-hoc results), computed before anything is written. `bootstrap`: resamples of the 95% intervals of BMA,
    accuracy, each recall and each subgroup's BMA (the set's groups resampled: lesions or patients; 0: none)."""
    device = resolve_device(device)
    checkpoints = [c for path in ([checkpoint] if isinstance(checkpoint, (str, Path)) else checkpoint)
                   for c in run_files(path)]
    idx = prepared.indices(split)
    if len(idx) == 0:
        raise UserError(f"the evaluation set has no '{split}' images")
    images = device_images(prepared.rows(idx), device)
    members = [load_classifier(path, device) for path in checkpoints]
    first = members[0][2]["model_args"]
    for path, (_, _, state) in zip(checkpoints, members):
        args = state["model_args"]
        if (args["class_names"], args["task"]) != (first["class_names"], first["task"]):
            raise UserError(f"{path} predicts other classes or another task than {checkpoints[0]}: "
                            "an ensemble needs members of one kind")
        if split != "test" and state["config"].get("folds") and state["data"]["fingerprint"] != prepared.fingerprint:
            raise UserError(f"{path} is a fold model: its training mixed this set's train and val images, so score "
                            "it on test or an external set")
        if prepared.image_size != args["image_size"]:
            raise UserError(f"the model takes {args['image_size']} px images, the evaluation set has "
                            f"{prepared.image_size} px (prepare it with --size {args['image_size']})")
        if prepared.color_constancy != method_of(args):  # the same pixels under another light: a silent shift
            raise UserError(f"{path} learned from images {describe(method_of(args))}, but the evaluation set holds "
                            f"images {describe(prepared.color_constancy)} (prepare it with "
                            f"{prepare_flags(method_of(args))})")
    targets = split_targets(members[0][1], prepared, idx, first["class_names"])
    member_probs = []
    for model, task, state in members:
        meta = None
        if state["model_args"]["metadata_vocab"] is not None:
            meta = torch.from_numpy(rows_metadata(prepared, idx, state["model_args"]["metadata_vocab"])).to(device)
        member_probs.append(predict(model, task, images, meta, autocast=autocast_for(device, amp), tta=tta).numpy())
    probs = np.mean(member_probs, axis=0)
    metrics = task.metrics(targets, probs)
    positives = task.positives(targets)
    metrics["calibration"] = calibration(probs, positives, top_label=not task.multilabel)
    metrics["ece"] = metrics["calibration"]["ece"]
    subgroups = subgroup_values(prepared, idx)
    if bootstrap:
        y_class, decided, names = task.decisions(targets, probs)
        metrics["intervals"] = intervals(y_class, decided, names, prepared.group[idx], subgroups, bootstrap)
    metrics["subgroups"] = subgroup_metrics(task, targets, probs, subgroups,
                                            metrics.get("intervals", {}).get("subgroups"))
    metrics.update({"checkpoint": str(checkpoints[0]) if len(checkpoints) == 1 else [str(c) for c in checkpoints],
                    "data": str(prepared.path), "split": split, "task": first["task"], "model": first["model"],
                    "tta": list(tta_views(tta)) if tta else []})
    if extra is not None:
        metrics.update(extra(targets, probs, members[0][1]))
    if out is None:
        return metrics, targets, probs
    out, confusion_png, roc_png, reliability_png = output_paths(out)
    with atomic_write(out, "w") as handle:
        json.dump(metrics, handle, indent=2)
    save_confusion_png(metrics, confusion_png)
    save_roc_png(positives, probs, task.output_names, roc_png)
    save_reliability_png(metrics["calibration"], reliability_png)
    return metrics, targets, probs


def posthoc_metrics(checkpoints, probs, targets, val_prepared, names, device="auto", tta=False):
    """{correction: metrics of `probs` after it}, each fitted on the val split of `val_prepared` (the set the model
    was selected on), with that set's train split as the train prior. Multiclass models only."""
    from classifier.metrics import compute_metrics
    from classifier.posthoc import correct

    val_metrics, val_targets, val_probs = evaluate_checkpoint(checkpoints, val_prepared, "val", device=device, tta=tta,
                                                              bootstrap=0)
    if list(val_metrics["class_names"]) != list(val_prepared.class_names):
        raise UserError("--posthoc corrects the class prior of multiclass models of the --val-data set's classes only")
    prior = val_prepared.class_counts("train").astype(float)
    out = {}
    for name in names:
        corrected, facts = correct(name, (val_probs, val_targets), (probs, targets), prior / prior.sum())
        out[name] = {**compute_metrics(targets, corrected, list(val_prepared.class_names)), **facts}
    return out


def operating_point_metrics(task, checkpoints, targets, probs, groups, val_prepared, rule, aggregate=None,
                            device="auto", tta=False, bootstrap=ITERATIONS):
    """The operating point `rule` chosen on the val split of `val_prepared` (the set the model was selected on) and
    applied to (targets, probs) of `task`'s models: classifier.operating's record, per image and, with `aggregate`,
    per patient."""
    from classifier.operating import operating_point, parse_rule

    parse_rule(rule)  # a bad rule fails before the val split is predicted
    _, val_targets, val_probs = evaluate_checkpoint(checkpoints, val_prepared, "val", device=device, tta=tta,
                                                    bootstrap=0)
    val = (*task.malignancy(val_targets, val_probs), val_prepared.group[val_prepared.indices("val")])
    return operating_point(rule, val, (*task.malignancy(targets, probs), groups), aggregate, bootstrap)


def metrics_table(metrics):
    """Per-class rows plus the headline numbers, as text."""
    cis = metrics.get("intervals") or {}
    lines = [f"BMA {metrics['bma']:.4f}{format_ci(cis.get('bma'))}  accuracy {metrics['accuracy']:.4f}"
             f"{format_ci(cis.get('accuracy'))}  macro-F1 {metrics['macro_f1']:.4f}  AUC {metrics['auc_macro']:.4f}  "
             f"(n={metrics['n']})" + (f"; 95% intervals from {cis['iterations']} bootstrap resamples of the "
                                      f"{cis['resampled']}" if cis else ""),
             "class      precision  recall   f1      auc     support  recall 95% interval"]
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<10} {row['precision']:.3f}      {row['recall']:.3f}    {row['f1']:.3f}   "
                     f"{row['auc']:.3f}   {row['support']:<8}{format_ci(cis.get('recall', {}).get(name))}")
    for key in sorted(k for k in metrics if "sensitivity_at_spec" in k):
        lines.append(f"{key}: {metrics[key]:.3f}")
    for name, corrected in metrics.get("posthoc", {}).items():
        fitted = f" (val {corrected['val_bma_raw']:.4f} -> {corrected['val_bma']:.4f})" if "val_bma" in corrected else ""
        lines.append(f"after post-hoc {name}: BMA {corrected['bma']:.4f}  accuracy {corrected['accuracy']:.4f}{fitted}")
    if "operating_point" in metrics:
        lines += operating_lines(metrics["operating_point"])
    if "ece" in metrics:
        lines.append(f"expected calibration error ({metrics['calibration']['kind']}): {metrics['ece']:.4f}")
    return "\n".join(lines + subgroup_lines(metrics.get("subgroups", {})))
