"""Operating points (issue #44 item 2): a threshold chosen on val by a rule holds its rate on a test set of the
same distribution within sampling error; patients are scored by their images; a multiclass and a two-stage model
give one malignant answer; the command carries the val threshold to the evaluated set unchanged."""

import json

import numpy as np
import pytest
import torch

from classifier.operating import by_patient, choose_threshold, operating_point, parse_rule
from classifier.tasks import TASKS
from gan_aug.errors import UserError


def scores_of(rng, n_malignant, n_benign):
    truth = np.r_[np.ones(n_malignant, bool), np.zeros(n_benign, bool)]
    return truth, rng.normal(np.where(truth, 1.5, 0.0), 1.0)


@pytest.mark.parametrize("rule, rate", [("sens=0.9", "sensitivity"), ("spec=0.8", "specificity")])
def test_a_point_chosen_on_val_holds_on_a_test_set_of_the_same_distribution(rule, rate):
    rng = np.random.default_rng(0)
    target = parse_rule(rule)[1]
    misses = 0
    for _ in range(40):
        val, test = scores_of(rng, 400, 400), scores_of(rng, 400, 400)
        record = operating_point(rule, (*val, np.arange(800)), (*test, np.arange(800)), iterations=200)
        assert record["val"][rate] >= target  # on the set it was chosen on, the rule holds by construction
        # on a fresh draw it holds within sampling error: val's and test's binomial errors, about 0.021 each at 0.9
        misses += abs(record["images"][rate] - target) > 3 * np.sqrt(2 * target * (1 - target) / 400)
    assert misses <= 2


def test_rules_pick_the_documented_thresholds():
    truth = np.array([True, True, True, True, False, False, False, False])
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.1, 0.05])
    assert choose_threshold("sens=0.75", truth, scores) == 0.7  # 3 of 4 malignant reach it
    assert choose_threshold("sens=1", truth, scores) == 0.2  # every malignant image called
    assert 0.3 < choose_threshold("spec=0.75", truth, scores) <= 0.6 and choose_threshold("youden", truth, scores) == 0.7
    for bad in ("sens=1.5", "sens=0", "spec=x", "recall=0.9", "youden=1", ""):
        with pytest.raises(UserError, match="--operating-point"):
            parse_rule(bad)


def test_a_patient_is_malignant_when_any_image_is_and_scored_by_max_or_mean():
    truth = np.array([False, True, False, False, False])
    scores = np.array([0.1, 0.9, 0.4, 0.2, 0.6])
    groups = np.array(["p1", "p1", "p2", "p2", "p3"])
    patient_truth, patient_max, names = by_patient(truth, scores, groups, "max")
    assert list(names) == ["p1", "p2", "p3"] and list(patient_truth) == [True, False, False]
    assert list(patient_max) == [0.9, 0.4, 0.6]
    assert np.allclose(by_patient(truth, scores, groups, "mean")[1], [0.5, 0.3, 0.6])
    record = operating_point("sens=0.5", (truth, scores, np.arange(5)), (truth, scores, groups), "max", iterations=0)
    assert record["patients"]["n_malignant"] == 1 and record["patients"]["n_benign"] == 2
    assert record["patients"]["specificity"] == 1.0 and record["threshold"] == 0.9


def test_multiclass_and_two_stage_give_one_malignant_score():
    names = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    two_stage = TASKS["two-stage"](names)
    torch.manual_seed(0)
    outputs = {"malignant": torch.randn(6, 2), "class": torch.randn(6, 7)}
    probs = two_stage.probabilities(outputs).numpy()
    truth, score = two_stage.malignancy(np.array([0, 1, 2, 3, 4, 5]), probs)
    screen = two_stage.stages(outputs)[0][:, 1].numpy()
    assert np.allclose(score, screen, atol=1e-6)  # the classes' answer is the screen's answer
    assert list(truth) == [True, True, False, False, True, False]
    multiclass_truth, multiclass_score = TASKS["multiclass"](names).malignancy(np.array([4, 5]), np.eye(7)[[4, 5]])
    assert list(multiclass_truth) == [True, False] and list(multiclass_score) == [1.0, 0.0]


def test_evaluate_carries_the_val_threshold_to_the_evaluated_set(ham_root, tmp_path, run_cli):
    data = tmp_path / "ham.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--out", data).exit_code == 0
    assert run_cli("train-classifier", "--data", data, "--out", tmp_path / "clf", "--epochs", 2).exit_code == 0
    result = run_cli("evaluate", "--checkpoint", tmp_path / "clf", "--data", data, "--out", tmp_path / "m.json",
                     "--operating-point", "sens=0.8", "--patient-level", "max", "--bootstrap", 100)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "m.json").read_text())["operating_point"]
    assert record["val"]["sensitivity"] >= 0.8 and "operating point sens=0.8" in result.output
    from classifier.evaluate import evaluate_checkpoint
    from classifier.checkpoint import load_classifier
    from gan_aug.data.prepared import load_prepared

    prepared = load_prepared(data)
    _, targets, probs = evaluate_checkpoint(tmp_path / "clf", prepared, "test", bootstrap=0)
    truth, score = load_classifier(tmp_path / "clf")[1].malignancy(targets, probs)
    called = score >= record["threshold"]  # the val threshold, applied unchanged
    assert record["images"]["sensitivity"] == pytest.approx(called[truth].mean())
    assert record["images"]["n_malignant"] + record["images"]["n_benign"] == len(targets)
    assert record["patients"]["n_malignant"] + record["patients"]["n_benign"] == len(set(
        prepared.group[prepared.indices("test")]))
    refused = run_cli("evaluate", "--checkpoint", tmp_path / "clf", "--data", data, "--out", tmp_path / "x.json",
                      "--patient-level", "max")
    assert refused.exit_code == 1 and "give --operating-point too" in refused.output
