"""The compare folder's layout (one run folder per arm x seed) and the summary the report is written from:
per split, each arm's BMA over seeds with its CI, and each generative arm's gain over the baseline."""

from pathlib import Path

import numpy as np

from gan_aug.compare.arms import is_generative
from gan_aug.compare.stats import baseline_arm, bootstrap_mean_ci, gain_with_cis, mean_std

PREDICTIONS = "{split}_predictions.npz"


def run_dir(out, arm, seed):
    return Path(out) / "runs" / f"{arm.replace(':', '_')}_seed{seed}"



def load_predictions(out, arm, seed, split):
    """The saved per-image predictions of one run on one split: an npz with y_true, y_pred and probs."""
    return np.load(run_dir(out, arm, seed) / PREDICTIONS.format(split=split))


def summarize(config, records, splits, n_classes_by_split):
    """Per split: each arm's seeds, mean/std/CI of BMA, mean per-class recall, and each generative arm's
    paired-bootstrap gain over the baseline arm (best non-generative arm by mean val BMA).

    `selected` is the generative arm with the best mean val BMA: with several generative arms, one of
    them can clear a 95% CI on test by chance, so the claim is the arm chosen before looking at test."""
    arms, seeds = list(config.arms), list(config.seeds)
    generative = [a for a in arms if is_generative(a)]
    val_bma = {}
    for a in arms:
        mean, std = mean_std([records[(a, s)]["splits"]["val"]["bma"] for s in seeds])
        val_bma[a] = {"mean": mean, "std": std}
    baseline = baseline_arm(arms, lambda a: val_bma[a]["mean"])
    selected = max(generative, key=lambda a: val_bma[a]["mean"]) if generative else None
    summary = {"baseline": baseline, "selected": selected, "selected_on": "mean val BMA", "splits": {},
               "val_bma": val_bma}
    for split in splits:
        preds = {a: np.stack([load_predictions(config.out, a, s, split)["y_pred"] for s in seeds])
                 for a in arms}
        y_true = load_predictions(config.out, arms[0], seeds[0], split)["y_true"]
        k = n_classes_by_split[split]
        rows = {}
        for a in arms:
            values = [records[(a, s)]["splits"][split]["bma"] for s in seeds]
            per_class = [records[(a, s)]["splits"][split]["per_class"] for s in seeds]
            bma_mean, bma_std = mean_std(values)
            rows[a] = {"bma_mean": bma_mean, "bma_std": bma_std,
                       "bma_ci": bootstrap_mean_ci(y_true, preds[a], k, max(200, config.bootstrap // 2)),
                       "bma_by_seed": values,
                       "recall": {c: float(np.mean([p[c]["recall"] for p in per_class])) for c in per_class[0]}}
            for metric in ("accuracy", "macro_f1", "auc_macro"):
                rows[a][metric] = float(np.mean([records[(a, s)]["splits"][split][metric] for s in seeds]))
            if baseline and is_generative(a):
                rows[a]["gain"] = gain_with_cis(y_true, preds[a], preds[baseline], k, config.bootstrap)
        summary["splits"][split] = rows
    return summary
