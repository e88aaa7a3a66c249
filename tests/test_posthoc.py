"""The class-prior controls of issue #40: balanced softmax / logit adjustment in the loss, and the post-hoc bias
and label-shift corrections, each against a value computed by hand or planted in simulated data."""

import math

import numpy as np
import pytest
import torch

from classifier.tasks import class_loss
from classifier.posthoc import apply_offset, bbse_prior, em_prior, fit_bias, label_shift
from gan_aug.compare.stats import bma


def test_balanced_softmax_is_cross_entropy_on_prior_shifted_logits():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    labels = torch.tensor([2, 0])
    counts = torch.tensor([70.0, 20.0, 10.0])
    offset = torch.log(counts / counts.sum())
    by_hand = 0.0
    for row, label in zip(logits.tolist(), labels.tolist()):
        shifted = [v + math.log(c / 100) for v, c in zip(row, counts.tolist())]
        by_hand += -(shifted[label] - math.log(sum(math.exp(v) for v in shifted)))
    assert float(class_loss(logits, labels, logit_offset=offset)) == pytest.approx(by_hand / 2, rel=1e-6)
    assert float(class_loss(logits, labels)) != pytest.approx(by_hand / 2, rel=1e-3)  # the offset matters


def gaussian_posteriors(rng, labels, prior, separation=1.5):
    """Exact posteriors of a 1-D three-class Gaussian model (means 0, s, 2s, unit variance) under `prior`."""
    x = rng.normal(separation * labels, 1.0)
    likelihood = np.exp(-0.5 * (x[:, None] - separation * np.arange(3)[None]) ** 2)
    posterior = likelihood * prior
    return posterior / posterior.sum(axis=1, keepdims=True)


def test_label_shift_em_recovers_a_planted_prior():
    rng = np.random.default_rng(0)
    source, target = np.array([1 / 3, 1 / 3, 1 / 3]), np.array([0.6, 0.3, 0.1])
    val_labels = rng.choice(3, 3000, p=source)
    test_labels = rng.choice(3, 4000, p=target)
    val_probs = gaussian_posteriors(rng, val_labels, source)  # calibrated for the source prior
    test_probs = gaussian_posteriors(rng, test_labels, source)
    assert np.abs(em_prior(test_probs, source) - target).max() < 0.05
    adjusted, prior, bbse = label_shift(val_probs, val_labels, test_probs)
    assert np.abs(prior - target).max() < 0.05 and np.abs(bbse - target).max() < 0.05
    assert np.abs(bbse_prior(val_probs, val_labels, test_probs, source) - target).max() < 0.05
    # the re-weighted probabilities predict the planted majority more often, as the truth has it
    assert (adjusted.argmax(axis=1) == 0).mean() > (test_probs.argmax(axis=1) == 0).mean()


def test_the_bias_fit_undoes_a_known_prior_shift_on_val():
    """A classifier trained on a skewed prior over-calls class 0; the tau fitted on a balanced val undoes it."""
    rng = np.random.default_rng(1)
    train_prior = np.array([0.8, 0.15, 0.05])
    val_labels = rng.choice(3, 3000)
    val_probs = gaussian_posteriors(rng, val_labels, train_prior)
    raw = bma(val_labels, val_probs.argmax(axis=1), 3)
    offset = fit_bias(val_probs, val_labels, train_prior)
    corrected = bma(val_labels, apply_offset(val_probs, offset).argmax(axis=1), 3)
    assert corrected > raw + 0.05
    tau = -offset[0] / np.log(train_prior[0])
    assert 0.6 <= tau <= 1.4  # the posterior's own prior: tau 1 is the exact correction
    test_labels = rng.choice(3, 3000)  # and it holds on a fresh split of the same distribution
    test_probs = gaussian_posteriors(rng, test_labels, train_prior)
    assert bma(test_labels, apply_offset(test_probs, offset).argmax(axis=1), 3) > \
        bma(test_labels, test_probs.argmax(axis=1), 3) + 0.05
    per_class = fit_bias(val_probs, val_labels, train_prior, per_class_min=500)
    assert bma(val_labels, apply_offset(val_probs, per_class).argmax(axis=1), 3) >= corrected - 1e-9


@pytest.mark.slow
def test_evaluate_reports_metrics_after_each_correction(toy16, isic2018_root, tmp_path, run_cli):
    import json

    run = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", toy16, "--out", run, "--epochs", 1, "--set", "threads=1").exit_code == 0
    result = run_cli("evaluate", "--checkpoint", run, "--source", "isic-csv", "--root", isic2018_root, "--val-data",
                     toy16, "--posthoc", "bias", "--posthoc", "label-shift", "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics["posthoc"]) == {"bias", "label-shift"} and 0 <= metrics["posthoc"]["bias"]["bma"] <= 1
    assert len(metrics["posthoc"]["label-shift"]["prior"]) == 7 and "after post-hoc bias: BMA" in result.output
    result = run_cli("evaluate", "--checkpoint", run, "--source", "isic-csv", "--root", isic2018_root, "--posthoc",
                     "bias", "--out", tmp_path / "n.json")
    assert result.exit_code == 1 and "give --val-data" in result.output and not (tmp_path / "n.json").exists()
