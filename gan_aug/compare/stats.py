"""The statistics of a compare report (protocol rule 5): BMA, paired-bootstrap gains and their CIs,
and the baseline rule. Pure numpy: the report and the tools recompute every number from saved predictions."""

import numpy as np

from classifier.metrics import bma  # noqa: F401 -- the report and the tools import it from here
from gan_aug.compare.arms import draws_synthetic


def paired_bootstrap_gain(y_true, pred_a, pred_b, n_classes, iterations=2000, seed=0, resample_seeds=False):
    """Mean over seeds of BMA(a) - BMA(b), and its 95% CI from resampling images within each seed.

    y_true: (N,) labels of the evaluation images; pred_a, pred_b: (S, N) predictions, one row per seed.
    resample_seeds: the stricter interval. It also draws the seeds with replacement (one lucky seed can
    make a mean), and draws one image resample for all of them (every seed is scored on the same test
    images, so a new test set would move them together); within-seed resampling alone narrows as seeds
    are added even where the test set is what limits the measurement.
    """
    rng = np.random.default_rng(seed)
    S, N = pred_a.shape
    point = np.mean([bma(y_true, pred_a[s], n_classes) - bma(y_true, pred_b[s], n_classes) for s in range(S)])
    gains = np.empty(iterations)
    for b in range(iterations):
        seeds = rng.integers(0, S, S) if resample_seeds else range(S)
        shared = rng.integers(0, N, N) if resample_seeds else None
        total = 0.0
        for s in seeds:
            idx = rng.integers(0, N, N) if shared is None else shared
            total += bma(y_true[idx], pred_a[s, idx], n_classes) - bma(y_true[idx], pred_b[s, idx], n_classes)
        gains[b] = total / S
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(point), float(low), float(high)


def gain_with_cis(y_true, pred_a, pred_b, n_classes, iterations):
    """The report's gain record: mean, the protocol's CI (within seeds) and the stricter one (seeds too)."""
    gain, low, high = paired_bootstrap_gain(y_true, pred_a, pred_b, n_classes, iterations)
    _, strict_low, strict_high = paired_bootstrap_gain(y_true, pred_a, pred_b, n_classes, iterations,
                                                       resample_seeds=True)
    return {"mean": gain, "ci_low": low, "ci_high": high, "strict_ci_low": strict_low, "strict_ci_high": strict_high}


def format_gain(gain):
    """'gain +0.12 [-0.84, +1.08], stricter [-1.60, +1.74]' in BMA points."""
    points = {k: 100 * v for k, v in gain.items()}
    return (f"gain {points['mean']:+.2f} [{points['ci_low']:+.2f}, {points['ci_high']:+.2f}], "
            f"stricter [{points['strict_ci_low']:+.2f}, {points['strict_ci_high']:+.2f}]")


def bootstrap_mean_ci(y_true, preds, n_classes, iterations=1000, seed=0):
    """95% CI of an arm's mean-over-seeds BMA, resampling images within seeds."""
    rng = np.random.default_rng(seed)
    S, N = preds.shape
    values = np.empty(iterations)
    for b in range(iterations):
        values[b] = np.mean([bma(y_true[idx], preds[s, idx], n_classes)
                             for s in range(S) for idx in [rng.integers(0, N, N)]])
    return tuple(float(v) for v in np.percentile(values, [2.5, 97.5]))


def mean_std(values):
    """(mean, sample std) over seeds; std 0 for a single seed."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def baseline_arm(arms, mean_val_bma):
    """The headline's baseline: the arm with the best mean val BMA of those that draw no synthetic images (no
    generative arm, no placebo; None without one)."""
    baselines = [a for a in arms if not draws_synthetic(a)]
    return max(baselines, key=mean_val_bma) if baselines else None
