"""Bootstrap intervals (issue #44 item 1): they cover the true value at about their level, resampling groups
widens them where images of one lesion are alike, and a subgroup too small to score says so."""

import numpy as np
import pytest

from classifier.intervals import MIN_SUBGROUP_N, intervals
from classifier.review import subgroup_lines, subgroup_metrics
from classifier.tasks import TASKS

RECALL = np.array([0.9, 0.6, 0.4, 0.75])  # the population's per-class recall: its BMA is their mean
SHARES = np.array([0.55, 0.25, 0.12, 0.08])


def draw(rng, n, per_group=1):
    """A test set of n images from the population, `per_group` identical images per lesion."""
    lesions = n // per_group
    y = rng.choice(len(SHARES), lesions, p=SHARES)
    correct = rng.random(lesions) < RECALL[y]
    wrong = (y + rng.integers(1, len(SHARES), lesions)) % len(SHARES)
    pred = np.where(correct, y, wrong)
    return np.repeat(y, per_group), np.repeat(pred, per_group), np.repeat(np.arange(lesions), per_group)


def coverage(per_group, resample_groups, sets=200):
    rng = np.random.default_rng(1)
    hits = 0
    for k in range(sets):
        y, pred, groups = draw(rng, 400, per_group)
        ci = intervals(y, pred, list("abcd"), groups if resample_groups else np.arange(len(y)), iterations=400,
                       seed=k)["bma"]
        hits += ci[0] <= RECALL.mean() <= ci[1]
    return hits / sets


@pytest.mark.slow  # a statistical or whole-model check: the quick tier stays under 2 minutes
def test_the_bma_interval_covers_the_true_bma_at_about_95_percent():
    assert 0.88 <= coverage(per_group=1, resample_groups=True) <= 0.99


@pytest.mark.slow  # a statistical or whole-model check: the quick tier stays under 2 minutes
def test_lesions_with_several_images_are_resampled_as_lesions():
    # Four identical images per lesion: resampling images treats them as four draws and under-covers badly;
    # resampling the lesions restores the level.
    assert coverage(per_group=4, resample_groups=False, sets=100) < 0.80
    assert 0.86 <= coverage(per_group=4, resample_groups=True, sets=100) <= 0.99


def test_recall_and_subgroup_intervals_hold_their_point_estimates():
    rng = np.random.default_rng(0)
    y, pred, groups = draw(rng, 600)
    sex = np.where(np.arange(600) < 300, "female", "male")
    result = intervals(y, pred, list("abcd"), groups, {"sex": sex}, iterations=300)
    for i, name in enumerate("abcd"):
        recall = (pred[y == i] == i).mean()
        assert result["recall"][name][0] <= recall <= result["recall"][name][1]
    female = result["subgroups"]["sex"]["female"]
    assert female[0] < female[1] and result["resampled"] == "images" and result["iterations"] == 300


def test_a_subgroup_under_the_minimum_is_too_small_not_a_perfect_score():
    task = TASKS["multiclass"](["a", "b"])
    targets = np.array([0, 1] * 30)
    probs = np.eye(2)[targets]  # every image right: a subgroup of three would show BMA 1.000
    site = np.array(["back"] * (len(targets) - 3) + ["palm"] * 3)
    rows = subgroup_metrics(task, targets, probs, {"site": site}, {"site": {"back": [0.9, 1.0]}})["site"]
    assert rows["palm"] == {"n": 3, "bma": None, "auc_macro": None, "too_small": True}
    assert rows["back"]["bma"] == 1.0 and rows["back"]["bma_ci"] == [0.9, 1.0]
    lines = subgroup_lines({"site": rows})
    assert f"too small (under {MIN_SUBGROUP_N} images)" in lines[1] and "[0.900, 1.000]" in lines[0]
