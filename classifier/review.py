"""What reviewers of dermatology classifiers ask for beyond the headline numbers: calibration (expected
calibration error and a reliability diagram) and the results of each subgroup (sex, age band, anatomical site)
where the evaluation set has metadata."""

import numpy as np

from classifier.intervals import MIN_SUBGROUP_N

CALIBRATION_BINS = 15  # Guo et al. 2017's number: enough bins to see a shape, enough images per bin
# Age bands (lower bound, label): wide enough that a test split of a few thousand images fills each.
AGE_BANDS = ((0, "<30"), (30, "30-44"), (45, "45-59"), (60, "60-74"), (75, "75+"))
UNKNOWN = "unknown"


def calibration(probs, positives, top_label=True, bins=CALIBRATION_BINS):
    """Expected calibration error and the reliability diagram's bins. top_label: each image's most probable output
    against whether it was right (single-label tasks, Guo et al. 2017); else every output's probability against
    whether its label holds (multilabel). Bins are equal-width on [0, 1]; ECE = sum of |accuracy - confidence|
    weighted by each bin's share of the predictions."""
    probs, positives = np.asarray(probs, dtype=np.float64), np.asarray(positives, dtype=bool)
    if top_label:
        confidence, hit = probs.max(axis=1), positives[np.arange(len(probs)), probs.argmax(axis=1)]
    else:
        confidence, hit = probs.ravel(), positives.ravel()
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (low, high], 0 in bin 0
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            row = {"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(inside.sum()),
                   "confidence": float(confidence[inside].mean()), "accuracy": float(hit[inside].mean())}
            ece += inside.mean() * abs(row["accuracy"] - row["confidence"])
            rows.append(row)
    return {"ece": float(ece) if len(confidence) else float("nan"), "kind": "top-label" if top_label else "per-label",
            "bins": rows}


def age_band(age):
    if not np.isfinite(age):
        return UNKNOWN
    return [label for low, label in AGE_BANDS if age >= low][-1]


def subgroup_values(prepared, idx):
    """{'sex': (n,) str, 'age': (n,) band, 'site': (n,) str, 'skin type': (n,) str} of rows `idx`, for the
    metadata the set has."""
    out = {}
    if prepared.sex is not None:
        out["sex"] = np.array([s or UNKNOWN for s in prepared.sex[idx]])
    if prepared.age is not None:
        out["age"] = np.array([age_band(a) for a in prepared.age[idx]])
    if prepared.site is not None:
        out["site"] = np.array([s or UNKNOWN for s in prepared.site[idx]])
    if prepared.skin_type is not None:  # Fitzpatrick17k, DDI, PAD-UFES-20 (issue #44)
        out["skin type"] = np.array([s or UNKNOWN for s in prepared.skin_type[idx]])
    return out


def subgroup_metrics(task, targets, probs, groups, cis=None):
    """{attribute: {value: {n, bma, auc_macro, bma_ci}}}: the task's metrics within each subgroup of `groups`
    (subgroup_values), with the BMA intervals `cis` (intervals()['subgroups']) where given. A subgroup where a class
    is missing gets its AUC from the classes present (or nan); one under MIN_SUBGROUP_N images gets no numbers,
    only its n and too_small: a BMA of 1.000 over three images is no result."""
    out = {}
    for attribute, values in groups.items():
        out[attribute] = {}
        for value in sorted(set(values.tolist()), key=lambda v: (v == UNKNOWN, v)):
            inside = values == value
            n = int(inside.sum())
            if n < MIN_SUBGROUP_N:
                out[attribute][value] = {"n": n, "bma": None, "auc_macro": None, "too_small": True}
                continue
            m = task.metrics(targets[inside], probs[inside])
            out[attribute][value] = {"n": n, "bma": m["bma"], "auc_macro": m["auc_macro"],
                                     "bma_ci": ((cis or {}).get(attribute) or {}).get(value)}
    return out


def save_reliability_png(result, path, title=""):
    """The reliability diagram: each bin's accuracy against its mean confidence, the diagonal being perfect."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    bins = result["bins"]
    ax.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=[b["high"] - b["low"] for b in bins],
           align="edge", edgecolor="black", color="tab:blue", label="accuracy")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="tab:orange", ms=3,
            label="mean confidence")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence" if result["kind"] == "top-label" else "predicted probability")
    ax.set_ylabel("accuracy" if result["kind"] == "top-label" else "observed frequency")
    ax.set_title(title or f"ECE {result['ece']:.3f} ({result['kind']})")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def subgroup_lines(subgroups):
    """Text rows of the subgroup results, for the console."""
    return [f"{attribute}={value:<18} n={row['n']:<5} " + (
        f"too small (under {MIN_SUBGROUP_N} images)" if row.get("too_small") else
        f"BMA {row['bma']:.3f}{format_ci(row.get('bma_ci'))}  AUC {row['auc_macro']:.3f}")
        for attribute, rows in subgroups.items() for value, row in rows.items()]


def format_ci(ci):
    return f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
