"""compare with `folds: K`: each arm x seed is a cross-validation (classifier/crossval.py) in its run folder,
one model per fold of train+val. Its val metrics are the out-of-fold predictions (every train+val image
predicted by the one model that did not train on it), with the folds' own val BMAs beside them; its test and
external metrics are the K models' ensemble, so the report's seeds, gains and CIs work as without folds.

A GAN arm's fold k mixes images of a GAN that never saw fold k's validation images: set paths hold {fold}
(one GAN per fold, from train-gan --folds K), and every set is checked against its fold's view up front.
"""

import json
from pathlib import Path

import numpy as np

from classifier.crossval import FOLD_MARK, cross_validate, fold_synthetic
from classifier.evaluate import evaluate_checkpoint
from classifier.metrics import compute_metrics
from gan_aug.data.folds import fold_view
from gan_aug.fileio import atomic_write


def fold_synthetic_sets(paths, used, prepared, folds):
    """Set name -> the K loaded sets of its folds, each refused unless its GAN saw only that fold's train part."""
    return {name: [fold_synthetic(paths[name], k, prepared, folds)[1] for k in range(folds)] for name in used}


def gan_runs(gan_run, folds):
    return [gan_run.replace(FOLD_MARK, str(k)) for k in range(folds)]


def out_of_fold_metrics(checkpoints, prepared, folds, device, out):
    """(metrics, targets, probabilities) of every train+val image, each from the fold model that held it out."""
    parts = [evaluate_checkpoint(ckpt, fold_view(prepared, folds, k), "val", None, device, bootstrap=0)
             for k, ckpt in enumerate(checkpoints)]
    targets = np.concatenate([p[1] for p in parts])
    probs = np.concatenate([p[2] for p in parts])
    metrics = compute_metrics(targets, probs, parts[0][0]["class_names"])
    bma = [p[0]["bma"] for p in parts]
    metrics.update({"split": "val", "folds": folds, "fold_bma": bma, "fold_bma_mean": float(np.mean(bma)),
                    "fold_bma_std": float(np.std(bma, ddof=1)), "checkpoint": [str(c) for c in checkpoints]})
    with atomic_write(out, "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics, targets, probs


def train_and_evaluate_folds(clf_config, splits, prepared, synthetics, teachers, progress, device, save):
    """One arm x seed over the folds: train them, score val out of fold and every other split by their ensemble.
    `splits`: name -> (dataset, split) beside val; `save(name, metrics, targets, probs)` keeps each result. The
    best epochs of the folds, as 'e0/e1/...'."""
    out = Path(clf_config.out)
    cv = cross_validate(clf_config, progress, prepared, teachers, synthetics)
    save("val", *out_of_fold_metrics(cv["checkpoints"], prepared, clf_config.folds, device, out / "val.json"))
    for name, (dataset, split) in splits.items():
        save(name, *evaluate_checkpoint(cv["checkpoints"], dataset, split, out / f"{name}.json", device))
    return "/".join(str(e) for e in cv["best_epochs"])
