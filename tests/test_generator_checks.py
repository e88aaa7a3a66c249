"""gan-aug analyze generator-checks: judge acceptance and pixel spread per class, for conditional and per-class GANs."""

import json

import numpy as np
import torch

from classifier.checkpoint import load_classifier
from classifier.inference import predict
from gan_aug.data.prepared import load_prepared
from gan_aug.synth.sample import GanSource
from conftest import tiny_gan, write_prepared

def test_acceptance_and_spread_match_a_direct_computation(toy16, toy_gan, tmp_path, run_cli):
    judge = tmp_path / "judge"
    assert run_cli("train-classifier", "--data", toy16, "--out", judge, "--epochs", 1, "--balance", "oversample",
                   "--set", "deterministic=true").exit_code == 0
    prepared = load_prepared(toy16)
    one_class = prepared.class_names[3]  # a per-class GAN: its class 0 is the judge's class 3
    per_class = tiny_gan(toy16, tmp_path / "gan_one", classes=(one_class,), batch_size=8)
    out = tmp_path / "checks.json"
    result = run_cli("analyze", "generator-checks", "--judge", judge, "--data", toy16, "-n", 64, "--out", out,
                     "--device", "cpu", toy_gan, per_class)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["class"] for r in rows] == list(prepared.class_names) + [one_class]
    assert result.output.count("\n") == len(rows) + 2  # a header, its rule and one line per row

    model, task, _ = load_classifier(judge)
    train = prepared.indices("train")
    for row, (run, class_index) in zip(rows, [(toy_gan, k) for k in range(7)] + [(per_class, 0)]):
        images = GanSource(run, "cpu").sample(class_index, 64, 0, 1.0, 256)
        probs = predict(model, task, torch.from_numpy(images).permute(0, 3, 1, 2), None)
        intended = prepared.class_names.index(row["class"])
        assert abs(row["p>=0.5"] - float((probs[:, intended] >= 0.5).float().mean())) <= 2 / 64  # bf16 vs fp32
        assert abs(row["mean_p"] - float(probs[:, intended].mean())) < 0.02
        assert row["p>=0.3"] >= row["p>=0.5"] >= row["p>=0.7"]
        assert abs(row["spread"] - images.astype(np.float64).std(axis=0).mean()) < 1e-6
        real = prepared.images[train[prepared.labels[train] == intended]][:200]
        assert abs(row["real_spread"] - real.astype(np.float64).std(axis=0).mean()) < 1e-6


def test_a_judge_of_another_prepared_set_is_refused(toy16, toy_gan, tmp_path, run_cli):
    other = tmp_path / "other.npz"
    write_prepared(other, 16)
    judge = tmp_path / "judge"
    assert run_cli("train-classifier", "--data", other, "--out", judge, "--epochs", 1).exit_code == 0
    result = run_cli("analyze", "generator-checks", "--judge", judge, "--data", toy16, "-n", 8, "--device", "cpu",
                     toy_gan)
    assert result.exit_code == 1 and "another prepared set" in result.output
