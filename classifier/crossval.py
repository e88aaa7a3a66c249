"""`train-classifier --folds K`: one run per fold into OUT/fold_k (each a whole run directory that evaluate,
explain and --resume take), and the folds' val BMA, mean ± std, in OUT/cv.json. `gan-aug evaluate` with every
fold's checkpoint scores their ensemble on the test split, which no fold ever saw.

With --synthetic, fold k mixes a set from a GAN trained on fold k's train part only (train-gan --folds K), named
by a path with {fold}: a GAN that saw fold k's validation images would leak them into its training.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from classifier.train import train_classifier
from gan_aug.config import fold_runs, to_yaml
from gan_aug.data.folds import fold_view
from gan_aug.data.prepared import load_prepared
from gan_aug.data.synthetic import check_provenance, load_synthetic
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write, check_run_dir

CV_FILE = "cv.json"
FOLD_MARK = "{fold}"


def fold_synthetic(path, fold, prepared, folds):
    """Fold `fold`'s synthetic set (path's {fold} filled in), refused unless its GAN saw only that fold's
    train part: the fold's view has its own fingerprint, so check_provenance tells."""
    path = path.replace(FOLD_MARK, str(fold))
    synthetic = load_synthetic(path)
    try:
        check_provenance(synthetic[3], fold_view(prepared, folds, fold))
    except UserError as err:
        raise UserError(f"fold {fold}: {err}. With folds, each fold mixes images of a GAN trained without that "
                        f"fold's validation images: train-gan --folds {folds} (one GAN per fold, OUT/fold_k), "
                        f"synthesize each, and name the sets with {FOLD_MARK}, e.g. syn_fold{FOLD_MARK}") from None
    return path, synthetic


def cross_validate(config, progress=True, prepared=None, teachers=None, synthetics=None):
    """Train every fold of `config` (folds K, no fold); the record written to OUT/cv.json (None off rank 0).
    `synthetics`: the K folds' synthetic sets, already loaded and checked (compare's), else read here."""
    out = Path(config.out)
    if (out / "best.pt").exists() and not config.force:
        raise UserError(f"{out} holds a single run: give the folds another --out")
    check_run_dir(out, config.resume, config.force, ("config.yaml", CV_FILE), latest="config.yaml")
    prepared = prepared or load_prepared(config.data)  # read once; each fold takes its view of it
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(config))
    summaries = []
    for run in fold_runs(config):
        synthetic = synthetics[run.fold] if synthetics else None
        if config.synthetic:
            path = config.synthetic.replace(FOLD_MARK, str(run.fold))
            if synthetic is None:
                path, synthetic = fold_synthetic(config.synthetic, run.fold, prepared, config.folds)
            run = dataclasses.replace(run, synthetic=path)
        summaries.append(train_classifier(run, progress, prepared, synthetic, teachers))
    if summaries[0] is None:  # a torchrun rank other than 0
        return None
    bma = [s["best_val_bma"] for s in summaries]
    record = {"folds": config.folds, "val_bma": bma, "val_bma_mean": float(np.mean(bma)),
              "val_bma_std": float(np.std(bma, ddof=1)), "best_epochs": [s["best_epoch"] for s in summaries],
              "checkpoints": [s["checkpoint"] for s in summaries]}
    with atomic_write(out / CV_FILE, "w") as handle:
        json.dump(record, handle, indent=2)
    return record
