"""Clinical operating points (issue #44 item 2): a threshold on the malignant score chosen on val by a rule, then
applied unchanged to test and external sets, per image and per patient.

Rules: `sens=X` (the highest threshold whose val sensitivity is at least X: a screening point), `spec=X` (the lowest
threshold whose val specificity is at least X) and `youden` (the most sensitivity + specificity on val). A threshold
chosen on the set it is scored on flatters it; one chosen on val and carried over is what a clinic would run.

Patient level: a patient (the set's groups: patient ids where the source has them, else lesions) is malignant when
any of its images is, and its score is the max (or mean) of its images' scores; the same threshold decides it.
"""

import numpy as np

from classifier.intervals import ITERATIONS, percentile_ci, resample_weights
from gan_aug.errors import UserError

AGGREGATES = ("max", "mean")


def parse_rule(rule):
    """'sens=0.95' -> ('sens', 0.95); 'youden' -> ('youden', None); a one-line error otherwise."""
    kind, _, value = str(rule).partition("=")
    if kind == "youden" and not value:
        return kind, None
    try:
        target = float(value)
    except ValueError:
        target = None
    if kind not in ("sens", "spec") or target is None or not 0 < target <= 1:
        raise UserError(f"--operating-point must be sens=X or spec=X with X in (0, 1], or youden; got {rule!r}")
    return kind, target


def choose_threshold(rule, truth, scores):
    """The threshold `rule` picks on (truth, scores): an image is called malignant when its score >= it."""
    kind, target = parse_rule(rule)
    truth, scores = np.asarray(truth, bool), np.asarray(scores, np.float64)
    positives, negatives = np.sort(scores[truth])[::-1], np.sort(scores[~truth])
    if not len(positives) or not len(negatives):
        raise UserError("the val split needs malignant and benign images to choose an operating point")
    if kind == "sens":  # the ceil(X * P)-th highest positive score: at least that share of positives reach it
        return float(positives[int(np.ceil(target * len(positives))) - 1])
    if kind == "spec":  # just above the ceil(X * N)-th lowest negative score: at least that share stay below it
        return float(np.nextafter(negatives[int(np.ceil(target * len(negatives))) - 1], np.inf))
    candidates = np.unique(scores)
    youden = [(scores[truth] >= t).mean() + (scores[~truth] < t).mean() for t in candidates]
    return float(candidates[int(np.argmax(youden))])


def by_patient(truth, scores, groups, aggregate):
    """(truth, score, name) per group: malignant when any of its images is; score the max or mean of its images'."""
    if aggregate not in AGGREGATES:
        raise UserError(f"--patient-level must be {' or '.join(AGGREGATES)}, got {aggregate!r}")
    names, group_of_image = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(group_of_image, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(group_of_image[order])) + 1]
    truth, scores = np.asarray(truth, bool)[order], np.asarray(scores, np.float64)[order]
    if aggregate == "max":
        score = np.maximum.reduceat(scores, starts)
    else:
        score = np.add.reduceat(scores, starts) / np.diff(np.r_[starts, len(scores)])
    return np.logical_or.reduceat(truth, starts), score, names


def rates(truth, called, weights=None):
    """Sensitivity, specificity, PPV and NPV of `called` (bool) against `truth`, under image weights (a bootstrap
    resample: (B, N)); nan where a denominator is 0."""
    w = np.ones((1, len(truth))) if weights is None else weights
    tp, fn = w @ (truth & called), w @ (truth & ~called)
    tn, fp = w @ (~truth & ~called), w @ (~truth & called)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp), "ppv": tp / (tp + fp),
                "npv": tn / (tn + fn)}


def operating_metrics(truth, scores, threshold, groups, iterations=ITERATIONS, seed=0):
    """The rates at `threshold` with their bootstrap 95% intervals (groups resampled), and the counts."""
    truth, called = np.asarray(truth, bool), np.asarray(scores) >= threshold
    point = {k: float(v[0]) for k, v in rates(truth, called).items()}
    out = {**point, "n_malignant": int(truth.sum()), "n_benign": int((~truth).sum())}
    if iterations:
        resampled = [rates(truth, called, w) for w in resample_weights(groups, iterations, seed)]
        out["intervals"] = {k: percentile_ci(np.concatenate([r[k] for r in resampled])) for k in point}
    return out


def operating_point(rule, val, evaluated, aggregate=None, iterations=ITERATIONS):
    """`val` and `evaluated`: (truth, scores, groups) of the val split and of the set being scored. The record
    evaluate writes: the rule, the threshold chosen on val, the rates on val and on the evaluated set (and per
    patient with `aggregate`, the threshold unchanged)."""
    threshold = choose_threshold(rule, *val[:2])
    record = {"rule": rule, "threshold": threshold, "val": operating_metrics(*val[:2], threshold, val[2], 0),
              "images": operating_metrics(evaluated[0], evaluated[1], threshold, evaluated[2], iterations)}
    if aggregate:
        truth, scores, names = by_patient(*evaluated, aggregate)
        record["patients"] = {"aggregate": aggregate,
                              **operating_metrics(truth, scores, threshold, names, iterations)}
    return record


def operating_lines(record):
    """Console lines of an operating point."""
    def line(name, m):
        cis = m.get("intervals", {})
        parts = [f"{k} {m[k]:.3f}" + (f" [{cis[k][0]:.3f}, {cis[k][1]:.3f}]" if cis.get(k) else "")
                 for k in ("sensitivity", "specificity", "ppv", "npv")]
        return f"  {name:<9} " + "  ".join(parts) + f"  ({m['n_malignant']} malignant, {m['n_benign']} benign)"
    lines = [f"operating point {record['rule']}: malignant when its score >= {record['threshold']:.4f} (chosen on "
             "val)", line("val", record["val"]), line("images", record["images"])]
    if "patients" in record:
        lines.append(line(f"patients ({record['patients']['aggregate']})", record["patients"]))
    return lines
