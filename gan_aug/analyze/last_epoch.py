"""Does a finished `gan-aug compare` hold without checkpoint selection? Every run's final-epoch weights
(latest.pt) scored on the test split, each arm's gain over a baseline arm with the report's paired bootstrap CIs.

The report scores each run's best-val epoch; on a small val split that choice is noisy (a run can keep a lucky
early epoch). The last epoch involves no choice at all, so a gain that is real should survive it. This checks
the report; the claim stays the one the report makes."""

import json
from pathlib import Path

import numpy as np

from classifier.evaluate import evaluate_checkpoint
from gan_aug.compare.arms import is_generative
from gan_aug.compare.config import CompareConfig
from gan_aug.compare.stats import baseline_arm, bma, gain_with_cis
from gan_aug.compare.summary import run_dir
from gan_aug.config import build_config
from gan_aug.data.prepared import load_prepared
from gan_aug.errors import UserError


def final_epoch_predictions(config, prepared, arm):
    """(labels, (S, N) predictions) of every seed's latest.pt on the test split."""
    rows = []
    for seed in config.seeds:
        _, targets, probs = evaluate_checkpoint(run_dir(config.out, arm, seed) / "latest.pt", prepared, "test",
                                                bootstrap=0)
        rows.append(probs.argmax(1))
    return targets, np.stack(rows)


def report_baseline(config):
    """The non-generative arm with the best mean val BMA over the finished runs (as the report chooses)."""
    def mean_val(arm):
        done = [run_dir(config.out, arm, s) / "done.json" for s in config.seeds]
        missing = [str(d.parent) for d in done if not d.is_file()]
        if missing:
            raise UserError(f"unfinished runs: {', '.join(missing)}; finish the compare first")
        return np.mean([json.loads(d.read_text())["splits"]["val"]["bma"] for d in done])

    baseline = baseline_arm(config.arms, mean_val)
    if baseline is None:
        raise UserError("the compare has no non-generative arm: give --baseline ARM")
    return baseline


def last_epoch_gains(compare_dir, baseline=None, arms=(), iterations=2000):
    """(baseline, its mean BMA, [(arm, mean BMA, gain_with_cis record)]) of the final-epoch weights."""
    out = Path(compare_dir)
    if not (out / "config.yaml").is_file():
        raise UserError(f"{out} is not a finished compare folder (no config.yaml)")
    config = build_config(CompareConfig, str(out / "config.yaml"), {"out": str(out)})
    prepared = load_prepared(config.data)
    k = len(prepared.class_names)
    baseline = baseline or report_baseline(config)
    arms = list(arms) or [a for a in config.arms if is_generative(a)]
    for arm in [baseline, *arms]:
        if arm not in config.arms:
            raise UserError(f"{arm} is not an arm of {out} ({', '.join(config.arms)})")
    y, base = final_epoch_predictions(config, prepared, baseline)
    rows = []
    for arm in arms:
        _, preds = final_epoch_predictions(config, prepared, arm)
        rows.append((arm, float(np.mean([bma(y, p, k) for p in preds])), gain_with_cis(y, preds, base, k, iterations)))
    return baseline, float(np.mean([bma(y, p, k) for p in base])), rows
