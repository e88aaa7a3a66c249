"""Post-hoc class corrections, no retraining: what a shift of the classifier's class prior alone can do to a
split's BMA, so that a gain from synthetic images can be told from one a prior correction gives for free
(protocol rule 5a). Pure numpy on saved probabilities: they work on compare folders and bundles alike.

- bias: log-probabilities + tau * -log(train prior), tau fitted on val (one parameter); optionally one shift per
  class with at least `per_class_min` val images, shrunk towards 0 by n / (n + per_class_min).
- label-shift: the target split's class prior estimated without its labels, by EM (Saerens et al. 2002) on
  bias-corrected temperature-scaled probabilities (BCTS, Alexandari et al. 2020) fitted on val; probabilities
  re-weighted to it. BBSE (Lipton et al. 2018) from val's confusion matrix is computed beside it as a check.
"""

import numpy as np

from classifier.metrics import bma

TAU_GRID = np.round(np.linspace(0.0, 2.0, 41), 3)
SHIFT_GRID = np.round(np.linspace(-1.0, 1.0, 21), 3)
EPS = 1e-12


def _log(probs):
    return np.log(np.clip(probs, EPS, 1.0))


def _softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_bias(val_probs, val_labels, train_prior, per_class_min=0):
    """The class offsets (K,) added to log-probabilities that raise val BMA most: -tau * log(train prior) with tau
    on a grid (ties: the smallest tau), then with per_class_min > 0 a shrunk shift per well-populated class."""
    k = val_probs.shape[1]
    log_p, log_prior = _log(val_probs), np.log(np.clip(train_prior, EPS, None))
    score = lambda offset: bma(val_labels, (log_p + offset).argmax(axis=1), k)
    offset = max((-tau * log_prior for tau in TAU_GRID), key=score)  # max keeps the first of equals
    if per_class_min:
        counts = np.bincount(val_labels, minlength=k)
        for c in np.flatnonzero(counts >= per_class_min):
            best = max(SHIFT_GRID, key=lambda d: (score(offset + d * np.eye(k)[c]), -abs(d)))
            offset = offset + best * counts[c] / (counts[c] + per_class_min) * np.eye(k)[c]
    return offset


def apply_offset(probs, offset):
    return _softmax(_log(probs) + offset)


def fit_bcts(val_probs, val_labels, steps=300):
    """(temperature, bias) minimising val's negative log-likelihood of softmax(log p / T + b)."""
    import torch

    log_p = torch.from_numpy(_log(val_probs)).double()
    labels = torch.from_numpy(np.asarray(val_labels)).long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(val_probs.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t, bias], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(log_p / log_t.exp() + bias, labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp()), bias.detach().numpy()


def em_prior(probs, source_prior, iterations=1000, tol=1e-8):
    """The target prior under which `probs` (calibrated for `source_prior`) are self-consistent (Saerens EM)."""
    prior = np.asarray(source_prior, dtype=float).copy()
    for _ in range(iterations):
        weighted = probs * (prior / source_prior)
        weighted /= weighted.sum(axis=1, keepdims=True)
        new = weighted.mean(axis=0)
        if np.abs(new - prior).max() < tol:
            return new
        prior = new
    return prior


def bbse_prior(val_probs, val_labels, target_probs, source_prior):
    """Black-box shift estimate: val's joint of (prediction, label) inverted against the target's predictions."""
    k = val_probs.shape[1]
    joint = np.zeros((k, k))
    np.add.at(joint, (val_probs.argmax(axis=1), val_labels), 1.0)
    joint /= max(len(val_labels), 1)
    predicted = np.bincount(target_probs.argmax(axis=1), minlength=k) / max(len(target_probs), 1)
    weights = np.linalg.lstsq(joint, predicted, rcond=None)[0]
    prior = np.clip(weights * source_prior, 0, None)
    return prior / max(prior.sum(), EPS)


def label_shift(val_probs, val_labels, target_probs):
    """(re-weighted target probabilities, EM prior, BBSE prior): calibrated on val, prior re-estimated on target."""
    k = val_probs.shape[1]
    temperature, bias = fit_bcts(val_probs, val_labels)
    calibrate = lambda p: _softmax(_log(p) / temperature + bias)
    source_prior = np.clip(np.bincount(val_labels, minlength=k) / len(val_labels), EPS, None)
    calibrated = calibrate(target_probs)
    prior = em_prior(calibrated, source_prior)
    adjusted = calibrated * (prior / source_prior)
    adjusted /= adjusted.sum(axis=1, keepdims=True)
    return adjusted, prior, bbse_prior(calibrate(val_probs), val_labels, calibrated, source_prior)


def correct(name, val, target, train_prior, per_class_min=0):
    """One correction of one run: `val` and `target` are (probs, labels); returns (corrected target probs, facts)."""
    if name == "bias":
        offset = fit_bias(val[0], val[1], train_prior, per_class_min)
        k = val[0].shape[1]
        facts = {"val_bma_raw": bma(val[1], val[0].argmax(axis=1), k),
                 "val_bma": bma(val[1], apply_offset(val[0], offset).argmax(axis=1), k), "offset": offset.tolist()}
        return apply_offset(target[0], offset), facts
    adjusted, prior, bbse = label_shift(val[0], val[1], target[0])
    return adjusted, {"prior": prior.tolist(), "bbse_prior": bbse.tolist()}


CORRECTIONS = ("bias", "label-shift")
