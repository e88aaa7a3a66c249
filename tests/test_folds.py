"""Grouped k-fold CV: folds of train+val with disjoint lesion groups and the test split untouched, one classifier
per fold and their ensemble, one GAN per fold enforced by the provenance check, and compare with folds."""

import json

import numpy as np
import pytest
import torch
import yaml

from gan_aug.compare.config import CompareConfig
from gan_aug.config import build_config
from gan_aug.data.config import PrepareConfig
from gan_aug.data.folds import fold_splits, fold_view
from gan_aug.data.prepare import prepare
from gan_aug.data.prepared import load_prepared
from gan_aug.data.synthetic import check_provenance, load_synthetic
from gan_aug.errors import UserError

TINY = ("--epochs", 1, "--batch-size", 16, "--set", "threads=1")


@pytest.fixture
def ham16(ham_root, tmp_path):
    out = tmp_path / "ham16.npz"
    prepare(PrepareConfig(out=str(out), source="ham10000", root=str(ham_root), size=16, workers=1), progress=False)
    return out


@pytest.mark.slow
def test_five_folds_give_five_models_with_disjoint_lesion_groups_and_test_untouched(ham16, run_cli, tmp_path):
    prepared = load_prepared(ham16)
    out = tmp_path / "cv"
    result = run_cli("train-classifier", "--data", ham16, "--out", out, "--balance", "oversample", "--folds", 5, *TINY)
    assert result.exit_code == 0, result.output
    assert "val BMA over 5 folds" in result.output and "±" in result.output
    cv = json.loads((out / "cv.json").read_text())
    assert len(cv["val_bma"]) == 5 and np.isclose(cv["val_bma_mean"], np.mean(cv["val_bma"]))

    pool = set(prepared.group[prepared.split != "test"])
    val_groups = []
    for k, split in enumerate(fold_splits(prepared, 5)):
        assert np.array_equal(split == "test", prepared.split == "test")  # the test split never moves
        val, train = set(prepared.group[split == "val"]), set(prepared.group[split == "train"])
        assert val and not val & train  # a lesion sits in one part of a fold
        val_groups.append(val)
        state = torch.load(out / f"fold_{k}" / "best.pt", weights_only=True)
        assert state["data"]["fingerprint"] == fold_view(prepared, 5, k).fingerprint
    assert sum(len(v) for v in val_groups) == len(pool) and set().union(*val_groups) == pool  # disjoint, complete
    assert len({fold_view(prepared, 5, k).fingerprint for k in range(5)} | {prepared.fingerprint}) == 6

    checkpoints = [a for k in range(5) for a in ("--checkpoint", out / f"fold_{k}")]
    ensemble = run_cli("evaluate", *checkpoints, "--data", ham16, "--split", "test", "--out", tmp_path / "ens.json")
    assert ensemble.exit_code == 0, ensemble.output
    by_folder = run_cli("evaluate", "--checkpoint", out, "--data", ham16, "--out", tmp_path / "ens2.json")
    assert by_folder.exit_code == 0, by_folder.output  # the folder stands for its folds' ensemble
    scores = [json.loads((tmp_path / name).read_text()) for name in ("ens.json", "ens2.json")]
    assert len(scores[0]["checkpoint"]) == 5 and scores[0]["bma"] == scores[1]["bma"]
    leaky = run_cli("evaluate", "--checkpoint", out, "--data", ham16, "--split", "val", "--out", tmp_path / "v.json")
    assert leaky.exit_code == 1 and "is a fold model" in leaky.output
    resumed = run_cli("train-classifier", "--out", out, "--resume")  # every fold finished: nothing to add
    assert resumed.exit_code == 0, resumed.output
    assert len((out / "fold_4" / "history.jsonl").read_text().splitlines()) == 1


def test_fold_settings_are_checked(ham16, run_cli, tmp_path):
    for flags, message in ((("--folds", 1), "folds must be 0"), (("--fold", 0), "--fold needs --folds"),
                           (("--folds", 3, "--fold", 3), "must be in 0..2")):
        result = run_cli("train-classifier", "--data", ham16, "--out", tmp_path / "x", *flags)
        assert result.exit_code == 1 and message in result.output


@pytest.mark.slow
def test_one_gan_per_fold_is_enforced_by_provenance(ham16, run_cli, tmp_path):
    gans = tmp_path / "gan_cv"
    gan_flags = ("--batch-size", 16, "--z-dim", 16, "--g-channels", 8, "--d-channels", 8, "--kimg", 0.032,
                 "--snapshot-every", 1, "--ckpt-every", 1, "--grid-columns", 2)
    result = run_cli("train-gan", "--data", ham16, "--out", gans, "--folds", 2, *gan_flags)
    assert result.exit_code == 0, result.output
    for k in range(2):
        synth = run_cli("synthesize", "--checkpoint", gans / f"fold_{k}", "-n", 30, "--out", tmp_path / f"syn_fold{k}")
        assert synth.exit_code == 0, synth.output
    prepared = load_prepared(ham16)
    provenance = load_synthetic(tmp_path / "syn_fold0")[3]
    check_provenance(provenance, fold_view(prepared, 2, 0))
    for other in (fold_view(prepared, 2, 1), prepared):  # a GAN that saw this fold's val images, or the whole set
        with pytest.raises(UserError, match="synthetic set refused"):
            check_provenance(provenance, other)

    mixed = ("train-classifier", "--data", ham16, "--folds", 2, "--mix", 0.3, *TINY)
    refused = run_cli(*mixed, "--out", tmp_path / "leaky", "--synthetic", tmp_path / "syn_fold0")
    assert refused.exit_code == 1 and "fold 1:" in refused.output and "one GAN per fold" in refused.output
    ok = run_cli(*mixed, "--out", tmp_path / "cv", "--synthetic", str(tmp_path / "syn_fold{fold}"))
    assert ok.exit_code == 0, ok.output
    assert yaml.safe_load((tmp_path / "cv" / "fold_1" / "config.yaml").read_text())["synthetic"] == str(
        tmp_path / "syn_fold1")

    cmp = tmp_path / "cmp.yaml"
    settings = {"data": str(ham16), "arms": ["oversample", "mix:0.3"], "seeds": [0], "folds": 2, "epochs": 1,
                "batch_size": 16, "threads": 1, "synth_n": 30, "bootstrap": 100}
    cmp.write_text(yaml.safe_dump({**settings, "gan_run": str(gans)}))
    with pytest.raises(UserError, match="one GAN per fold"):
        build_config(CompareConfig, cmp, {"out": str(tmp_path / "c0")})
    cmp.write_text(yaml.safe_dump({**settings, "gan_run": str(gans / "fold_{fold}")}))
    result = run_cli("compare", "--config", cmp, "--out", tmp_path / "compare")
    assert result.exit_code == 0, result.output
    run = tmp_path / "compare" / "runs" / "mix_0.3_seed0"
    record = json.loads((run / "done.json").read_text())
    assert len(record["splits"]["val"]["fold_bma"]) == 2 and len(record["splits"]["test"]["checkpoint"]) == 2
    assert record["splits"]["val"]["n"] == int((load_prepared(ham16).split != "test").sum())  # out of fold: all
    assert (tmp_path / "compare" / "synthetic_fold1" / "manifest.csv").is_file()
    assert (tmp_path / "compare" / "report.md").is_file()
