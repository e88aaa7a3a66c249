"""Evaluate like a reviewer: the multilabel task (ISIC 2017), expected calibration error and the reliability
diagram, test-time augmentation, subgroup results in metrics.json and the compare report, evaluate --metadata-csv."""

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from classifier.checkpoint import load_classifier
from classifier.evaluate import evaluate_checkpoint, external_set
from classifier.inference import predict
from classifier.models import LesionClassifier
from classifier.intervals import MIN_SUBGROUP_N
from classifier.review import calibration, subgroup_metrics
from classifier.tasks import TASKS
from gan_aug.data.prepared import load_prepared


@pytest.fixture
def isic2017(tmp_path, run_cli):
    """A prepared ISIC 2017 set: melanoma / seborrheic keratosis / neither (nevus), 16 px."""
    from conftest import write_jpeg

    root = tmp_path / "isic2017"
    with open(tmp_path / "gt.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "melanoma", "seborrheic_keratosis"])
        for n in range(60):
            writer.writerow([f"ISIC_{n:07d}", float(n % 3 == 0), float(n % 3 == 1)])
            write_jpeg(root / f"ISIC_{n:07d}.jpg", n)
    out = tmp_path / "isic2017.npz"
    result = run_cli("prepare", "--source", "isic-csv", "--root", root, "--csv", tmp_path / "gt.csv", "--size", 16,
                     "--workers", 1, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_multilabel_loss_probabilities_and_metrics():
    task = TASKS["multilabel"](("mel", "bkl", "nv"))
    assert task.output_names == ("mel", "bkl") and task.heads == {"labels": 2}
    labels = torch.tensor([0, 1, 2, 2])
    logits = torch.randn(4, 2)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.tensor([[1.0, 0], [0, 1], [0, 0], [0, 0]]))  # a nevus is negative for both labels
    assert task.loss({"labels": logits}, labels, None) == pytest.approx(float(expected))
    probs = task.probabilities({"labels": logits})
    assert ((probs > 0) & (probs < 1)).all() and not torch.allclose(probs.sum(1), torch.ones(4))

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    p = np.clip(rng.random((200, 2)) * 0.6 + 0.4 * task.positives(y), 0, 1)
    m = task.metrics(y, p)
    for j, name in enumerate(("mel", "bkl")):
        assert m["per_class"][name]["auc"] == pytest.approx(roc_auc_score(y == j, p[:, j]))
        assert m["per_class"][name]["support"] == (y == j).sum()
    assert m["auc_macro"] == pytest.approx(np.mean([m["per_class"][n]["auc"] for n in ("mel", "bkl")]))
    assert np.array(m["confusion_matrix"]).shape == (3, 3) and np.array(m["confusion_matrix"]).sum() == 200
    decided = np.where((p >= 0.5).any(1), p.argmax(1), 2)  # most probable label above 0.5, else nevus
    assert m["accuracy"] == pytest.approx((decided == y).mean())


def test_multilabel_trains_and_evaluates_on_isic_2017(isic2017, tmp_path, run_cli):
    run = tmp_path / "ml"
    result = run_cli("train-classifier", "--data", isic2017, "--out", run, "--task", "multilabel", "--epochs", 1,
                     "--set", "batch_size=16")
    assert result.exit_code == 0, result.output
    result = run_cli("evaluate", "--checkpoint", run, "--data", isic2017, "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics["per_class"]) == {"mel", "bkl"} and metrics["calibration"]["kind"] == "per-label"
    assert "mel_sensitivity_at_spec90" in metrics and (tmp_path / "m_roc.png").is_file()
    result = run_cli("train-classifier", "--data", isic2017, "--out", tmp_path / "x", "--task", "multilabel",
                     "--balance", "focal")
    assert result.exit_code == 1 and "takes --balance none or oversample" in result.output


def test_ece_by_its_definition():
    rng = np.random.default_rng(1)
    n = 10000
    confidence = rng.uniform(0.34, 1.0, n)
    correct = rng.random(n) < confidence  # calibrated: right as often as it is confident
    probs = np.stack([confidence, (1 - confidence) / 2, (1 - confidence) / 2], 1)
    targets = np.where(correct, 0, 1)
    positives = targets[:, None] == np.arange(3)[None]
    calibrated = calibration(probs, positives)
    assert calibrated["ece"] < 0.02 and sum(b["count"] for b in calibrated["bins"]) == n
    # right half the time whatever its confidence (0.5 to 1): ECE is about the mean confidence minus 0.5
    probs[:, 0] = confidence = rng.uniform(0.5, 1.0, n)
    probs[:, 1:] = ((1 - confidence) / 2)[:, None]
    overconfident = calibration(probs, np.where(rng.random(n) < 0.5, 0, 1)[:, None] == np.arange(3)[None])
    expected = sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in overconfident["bins"])
    assert overconfident["ece"] == pytest.approx(expected)
    assert abs(overconfident["ece"] - (confidence.mean() - 0.5)) < 0.02
    assert calibration(np.array([[0.2, 0.9]]), np.array([[False, True]]), top_label=False)["kind"] == "per-label"


def test_tta_is_the_mean_over_flips():
    torch.manual_seed(0)
    model, task = LesionClassifier("small_cnn", {"class": 3}), TASKS["multiclass"](("a", "b", "c"))
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    views = [images, images.flip(3), images.flip(2), images.flip((2, 3))]
    expected = torch.stack([predict(model, task, v, None) for v in views]).mean(0)
    assert torch.allclose(predict(model, task, images, None, tta=True), expected, atol=1e-6)
    assert not torch.allclose(predict(model, task, images, None), expected, atol=1e-4)


def test_subgroups_by_sex_age_band_and_site(ham_root, tmp_path, run_cli):
    data = tmp_path / "ham.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--out", data).exit_code == 0
    run = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", data, "--out", run, "--epochs", 1).exit_code == 0
    result = run_cli("evaluate", "--checkpoint", run, "--data", data, "--tta", "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert "expected calibration error (top-label)" in result.output and "sex=female" in result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["tta"] == ["identity", "hflip", "vflip", "hvflip"] and (tmp_path / "m_reliability.png").is_file()
    result = run_cli("evaluate", "--checkpoint", run, "--data", data, "--tta", "d8", "--out", tmp_path / "d8.json")
    assert result.exit_code == 0 and len(json.loads((tmp_path / "d8.json").read_text())["tta"]) == 8
    assert 0 <= metrics["ece"] <= 1 and sum(b["count"] for b in metrics["calibration"]["bins"]) == metrics["n"]
    subgroups = metrics["subgroups"]
    assert set(subgroups) == {"sex", "age", "site"} and set(subgroups["site"]) == {"back"}
    for rows in subgroups.values():
        assert sum(r["n"] for r in rows.values()) == metrics["n"]
    assert set(subgroups["sex"]) == {"male", "female"} and "unknown" in subgroups["age"]  # some ages are missing
    assert "too small" in result.output  # the fixture's test split: every subgroup under MIN_SUBGROUP_N
    # each subgroup's BMA is the task's BMA on its images alone (the train split: subgroups large enough)
    prepared = load_prepared(data)
    _, targets, probs = evaluate_checkpoint(run, prepared, "train", bootstrap=0)
    _, task, _ = load_classifier(run)
    sex = prepared.sex[prepared.indices("train")]
    rows = subgroup_metrics(task, targets, probs, {"sex": sex})["sex"]
    assert any(row["n"] >= MIN_SUBGROUP_N for row in rows.values())
    for value, row in rows.items():
        if row["n"] < MIN_SUBGROUP_N:  # too few to score: no number, not a 0.000 or 1.000
            assert row["bma"] is None and row["too_small"]
        else:
            assert row["bma"] == pytest.approx(task.metrics(targets[sex == value], probs[sex == value])["bma"])
    assert subgroup_metrics(task, targets, probs, {}) == {}


def test_evaluate_metadata_csv_feeds_a_metadata_model_on_an_external_set(ham_root, isic2018_root, tmp_path, run_cli):
    data = tmp_path / "ham.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--out", data).exit_code == 0
    run = tmp_path / "meta"
    assert run_cli("train-classifier", "--data", data, "--out", run, "--epochs", 2, "--use-metadata").exit_code == 0
    meta = tmp_path / "ISIC2018_metadata.csv"
    with open(meta, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "age_approx", "sex", "anatom_site_general"])
        writer.writerows([[f"ISIC_{i:07d}", 30 + i, "male" if i % 2 else "female", "back"] for i in range(84)])
    result = run_cli("evaluate", "--checkpoint", run, "--source", "isic-csv", "--root", isic2018_root,
                     "--metadata-csv", meta, "--out", tmp_path / "ext.json")
    assert result.exit_code == 0, result.output
    subgroups = json.loads((tmp_path / "ext.json").read_text())["subgroups"]
    assert subgroups["sex"]["male"]["n"] == 42 and set(subgroups["site"]) == {"back"}
    with_meta = evaluate_checkpoint(run, external_set("isic-csv", isic2018_root, 16, metadata_csv=meta), "test")[2]
    without = evaluate_checkpoint(run, external_set("isic-csv", isic2018_root, 16), "test")[2]
    assert not np.allclose(with_meta, without)  # the model sees the ages, sexes and sites, not 'unknown'
    result = run_cli("evaluate", "--checkpoint", run, "--data", data, "--metadata-csv", meta, "--out", tmp_path / "x.json")
    assert result.exit_code == 1 and "--metadata-csv goes with --source" in result.output


@pytest.mark.slow
def test_compare_report_has_a_subgroup_table(ham_root, tmp_path, run_cli):
    data = tmp_path / "ham.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--out", data).exit_code == 0
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"data: {data}\narms: [none, oversample]\nseeds: [0]\nepochs: 1\nbatch_size: 32\nbootstrap: 200\n")
    result = run_cli("compare", "--config", cfg, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "## Subgroups (test BMA, mean over seeds;" in report and "| subgroup | n | none | oversample |" in report
    assert "| sex=female |" in report and "| site=back |" in report
    assert "| too small | too small |" in report  # the fixture's test split is under MIN_SUBGROUP_N images
    result = run_cli("compare", "--config", cfg, "--out", tmp_path / "ml", "--set", "task=multilabel")
    assert result.exit_code == 1 and "compare reports BMA gains of single-label tasks" in result.output


def test_d8_tta_is_the_mean_of_the_eight_symmetries(toy16, tmp_path):
    """--tta d8: the mean of the model's probabilities over the 4 rotations of the image and their mirror images,
    computed here view by view; the 8 views are distinct, and flips (--tta) are 4 of them."""
    import torch

    from classifier.checkpoint import load_classifier
    from classifier.config import ClassifierConfig
    from classifier.inference import D8_VIEWS, TTA_VIEWS, predict
    from classifier.train import train_classifier
    from gan_aug.config import build_config

    run = tmp_path / "clf"
    train_classifier(build_config(ClassifierConfig, None, {"data": str(toy16), "out": str(run), "epochs": 1,
                                                           "threads": 1}), progress=False)
    model, task, _ = load_classifier(run)
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    square = torch.arange(16.0).view(1, 1, 4, 4)
    assert len({tuple(view(square).flatten().tolist()) for view in D8_VIEWS.values()}) == 8
    assert set(TTA_VIEWS) < set(D8_VIEWS)
    by_hand = torch.stack([predict(model, task, view(images).contiguous(), None) for view in D8_VIEWS.values()])
    assert torch.allclose(predict(model, task, images, None, tta="d8"), by_hand.mean(0), atol=1e-6)
    assert not torch.allclose(predict(model, task, images, None, tta="flips"), by_hand.mean(0), atol=1e-6)
