"""The embedded toy source: deterministic, HAM-like imbalance, and learnable by a small CNN."""

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from gan_aug.data.config import PrepareConfig
from gan_aug.data import toy
from gan_aug.data.prepare import build_prepared


def toy_set(count, size=32, seed=0):
    config = PrepareConfig(out="unused.npz", source="toy", size=size, toy_count=count, seed=seed, workers=1)
    arrays, _ = build_prepared(config, progress=False)
    return arrays


def test_class_counts_follow_ham_imbalance():
    counts = toy.class_counts(2000)
    assert sum(counts.values()) == 2000
    assert counts["nv"] > 10 * counts["df"] and counts["df"] >= toy.MIN_PER_CLASS
    assert counts["mel"] > counts["bcc"] > counts["akiec"] > counts["vasc"] > counts["df"]


def test_deterministic_and_seeded():
    a, b, c = toy_set(80, 16), toy_set(80, 16), toy_set(80, 16, seed=1)
    assert a["fingerprint"] == b["fingerprint"]
    assert (a["images"] == b["images"]).all()
    assert not (a["images"] == c["images"]).all()


def test_images_vary_within_a_class():
    images = toy_set(80, 16)["images"].astype(np.float32)
    assert images.std(axis=0).mean() > 10  # not one template repeated


@pytest.mark.slow
def test_small_cnn_clearly_beats_chance():
    torch.manual_seed(0)
    data = toy_set(1000)
    x = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, 32, 32)
    y = torch.from_numpy(data["labels"])
    train, test = data["split"] == "train", data["split"] == "test"
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 7))
    counts = torch.bincount(y[train], minlength=7).float()
    loss_fn = nn.CrossEntropyLoss(weight=counts.sum() / (7 * counts))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = x[train], y[train]
    for _ in range(25):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            batch = order[i:i + 64]
            optimizer.zero_grad()
            loss_fn(model(xt[batch]), yt[batch]).backward()
            optimizer.step()
    with torch.no_grad():
        predicted = model(x[test]).argmax(1).numpy()
    bma = balanced_accuracy_score(y[test].numpy(), predicted)
    assert bma > 0.4, f"balanced accuracy {bma:.2f} (chance is 1/7 = 0.14)"
