"""The metric suite (protocol rule 6): BMA first, then accuracy, macro-F1, per-class precision/recall/F1,
one-vs-rest AUC, melanoma sensitivity at fixed specificity, confusion matrix; plus the plots."""

import typing
import warnings

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score, roc_curve)

from gan_aug.data.domain import MELANOMA

SPECIFICITIES = (0.8, 0.9)


class ClassMetrics(typing.TypedDict):
    precision: float
    recall: float
    f1: float
    support: int
    auc: float


class Metrics(typing.TypedDict):
    """One prediction set's metrics, as metrics.json and compare's run records (done.json) hold them; beside these
    keys, `label_names` (multilabel), a melanoma (or malignant) sensitivity per SPECIFICITIES, and what evaluate
    adds (ECE, subgroups, TTA)."""
    n: int
    bma: float  # mean recall over the classes present (the ISIC challenge metric)
    accuracy: float
    macro_f1: float
    auc_macro: float
    per_class: typing.Dict[str, ClassMetrics]  # per label for multilabel
    confusion_matrix: typing.List[typing.List[int]]
    class_names: typing.List[str]


def bma(y_true, y_pred, n_classes):
    """Balanced accuracy over the classes present in y_true (numpy, fast for bootstrap)."""
    support = np.bincount(y_true, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = support > 0
    return float((hits[present] / support[present]).mean())


def sensitivity_at_specificity(is_positive, score, specificity):
    """Highest sensitivity reachable with specificity >= the target (from the ROC curve)."""
    if is_positive.all() or not is_positive.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(is_positive, score)
    ok = fpr <= 1 - specificity + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def _balanced_accuracy(y_true, y_pred):
    if not len(y_true):
        return float("nan")
    with warnings.catch_warnings():  # predictions of classes absent from y_true are fine here
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def compute_metrics(y_true, probs, names) -> Metrics:
    """All metrics of one prediction set. y_true (N,) ints, probs (N, K) rows summing to 1."""
    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    k = len(names)
    y_pred = probs.argmax(axis=1)
    labels = np.arange(k)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0
    auc = {}
    for i, name in enumerate(names):
        positive = y_true == i
        auc[name] = float(roc_auc_score(positive, probs[:, i])) if 0 < positive.sum() < len(y_true) else float("nan")
    out: Metrics = {
        "n": int(len(y_true)),
        "bma": _balanced_accuracy(y_true, y_pred),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels[present], average="macro", zero_division=0)),
        "auc_macro": float(np.nanmean(list(auc.values()))) if any(np.isfinite(list(auc.values()))) else float("nan"),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i]), "auc": auc[name]} for i, name in enumerate(names)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "class_names": list(names),
    }
    add_sensitivities(out, names, y_true[:, None] == np.arange(k)[None], probs)
    return out


def add_sensitivities(out, names, positives, probs):
    """Melanoma's (else malignant's) sensitivity at the fixed specificities, into `out`."""
    positive_name = MELANOMA if MELANOMA in names else ("malignant" if "malignant" in names else None)
    if positive_name:
        i = list(names).index(positive_name)
        for spec in SPECIFICITIES:
            out[f"{positive_name}_sensitivity_at_spec{int(spec * 100)}"] = sensitivity_at_specificity(
                positives[:, i], probs[:, i], spec)


def decided_classes(probs, class_names, label_names, threshold=0.5):
    """A multilabel model's class for each image: its most probable label's class when that label reaches
    `threshold`, else the class without a label (ISIC 2017's nevus)."""
    probs = np.asarray(probs, dtype=np.float64)
    decided = np.array([list(class_names).index(label_names[j]) for j in probs.argmax(axis=1)], dtype=np.int64)
    unlabelled = [i for i, c in enumerate(class_names) if c not in label_names]
    if unlabelled:
        decided = np.where((probs >= threshold).any(axis=1), decided, unlabelled[0])
    return decided


def multilabel_metrics(y_class, probs, class_names, label_names, positives, threshold=0.5) -> Metrics:
    """Per label: AUC (ISIC 2017's score; auc_macro is their mean) and precision/recall/F1 at `threshold`,
    support = its positives. BMA, accuracy and the confusion matrix are over the classes, each image given the
    class of its most probable label when that reaches `threshold`, else the class without a label."""
    y_class, probs = np.asarray(y_class), np.asarray(probs, dtype=np.float64)
    predicted = probs >= threshold
    per_label = {}
    for j, name in enumerate(label_names):
        y = positives[:, j]
        precision, recall, f1, _ = precision_recall_fscore_support(y, predicted[:, j], average="binary",
                                                                   zero_division=0)
        auc = float(roc_auc_score(y, probs[:, j])) if 0 < y.sum() < len(y) else float("nan")
        per_label[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(y.sum()), "auc": auc}
    decided = decided_classes(probs, class_names, label_names, threshold)
    aucs = [row["auc"] for row in per_label.values()]
    out: Metrics = {"n": int(len(y_class)), "bma": _balanced_accuracy(y_class, decided),
           "accuracy": float(accuracy_score(y_class, decided)) if len(y_class) else float("nan"),
           "macro_f1": float(np.mean([row["f1"] for row in per_label.values()])),
           "auc_macro": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan"),
           "per_class": per_label, "label_names": list(label_names), "class_names": list(class_names),
           "confusion_matrix": confusion_matrix(y_class, decided, labels=np.arange(len(class_names))).tolist()}
    add_sensitivities(out, label_names, positives, probs)
    return out


def save_confusion_png(metrics, path, title=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(metrics["confusion_matrix"], dtype=float)
    normalised = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    names = metrics["class_names"]
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(names), 1 + 0.6 * len(names)))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if normalised[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title or f"BMA {metrics['bma']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_roc_png(positives, probs, names, path):
    """One ROC curve per output; `positives` (N, outputs) bool says which outputs are true of each image."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for i, name in enumerate(names):
        positive = np.asarray(positives)[:, i]
        if 0 < positive.sum() < len(positive):
            fpr, tpr, _ = roc_curve(positive, np.asarray(probs)[:, i])
            ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(positive, np.asarray(probs)[:, i]):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
