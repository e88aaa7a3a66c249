"""Bootstrap 95% intervals of one model's metrics on one set (issue #44): BMA, accuracy and each class's recall,
overall and within each subgroup.

Where the set has groups (lesions, patients) the groups are resampled, not the images: a patient's images are not
independent draws, and resampling them one by one makes an interval too narrow. A set without groups has one group
per image, which is the ordinary bootstrap. Every resample is a vector of counts (how often each group was drawn),
so a resample's metrics are weighted sums and all of them come from one matrix product.
"""

import warnings

import numpy as np

ITERATIONS = 1000
# Below this many images a subgroup's BMA says more about chance than about the model: shown as too small.
MIN_SUBGROUP_N = 20
CHUNK = 200  # resamples at a time, so memory stays at CHUNK x images whatever the set's size


def resample_weights(groups, iterations, seed):
    """Yield (chunk, N) float arrays: each row an image's weight in one resample of the groups (how many times
    its group was drawn; drawing G of the G groups with replacement)."""
    _, group_of_image = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = group_of_image.max() + 1 if len(group_of_image) else 0
    rng = np.random.default_rng(seed)
    for start in range(0, iterations, CHUNK):
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=min(CHUNK, iterations - start))
        yield counts[:, group_of_image].astype(np.float64)


def weighted_scores(weights, y_true, y_pred, n_classes):
    """(bma, accuracy, recall) of each resample: (B,), (B,), (B, K); recall nan for a class the resample lacks,
    and BMA the mean over the classes present, as compute_metrics has it."""
    truth = np.eye(n_classes)[y_true]  # (N, K)
    hit = (y_true == y_pred).astype(np.float64)
    support = weights @ truth
    hits = (weights * hit) @ truth
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample that drew none of a subgroup: nan, dropped
        recall = np.where(support > 0, hits / support, np.nan)
        accuracy = (weights @ hit) / weights.sum(axis=1)
        bma = np.nanmean(recall, axis=1)
    return bma, accuracy, recall


def percentile_ci(values):
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def intervals(y_true, y_pred, class_names, groups, subgroups=None, iterations=ITERATIONS, seed=0):
    """{'bma': [low, high], 'accuracy': [...], 'recall': {class: [...]}, 'resampled', 'iterations'} and, for each
    subgroup (subgroup_values: attribute -> (N,) value per image) of at least MIN_SUBGROUP_N images,
    subgroups[attribute][value] = its BMA's interval, from the same resamples."""
    y_true, y_pred, n_classes = np.asarray(y_true), np.asarray(y_pred), len(class_names)
    masks = {}
    for attribute, values in (subgroups or {}).items():
        for value in set(values.tolist()):
            inside = values == value
            if inside.sum() >= MIN_SUBGROUP_N:
                masks[(attribute, value)] = inside
    bmas, accuracies, recalls, sub_bmas = [], [], [], {key: [] for key in masks}
    for weights in resample_weights(groups, iterations, seed):
        bma, accuracy, recall = weighted_scores(weights, y_true, y_pred, n_classes)
        bmas.append(bma)
        accuracies.append(accuracy)
        recalls.append(recall)
        for key, inside in masks.items():
            sub_bmas[key].append(weighted_scores(weights * inside, y_true, y_pred, n_classes)[0])
    recalls = np.concatenate(recalls)
    out = {"bma": percentile_ci(np.concatenate(bmas)), "accuracy": percentile_ci(np.concatenate(accuracies)),
           "recall": {name: percentile_ci(recalls[:, i]) for i, name in enumerate(class_names)},
           "resampled": "images" if len(set(np.asarray(groups).tolist())) == len(y_true) else "groups",
           "iterations": iterations, "subgroups": {}}
    for (attribute, value), values in sub_bmas.items():
        out["subgroups"].setdefault(attribute, {})[value] = percentile_ci(np.concatenate(values))
    return out
