"""synthesize: counts, determinism, manifest/provenance, crash safety, formats, several checkpoints."""

import csv

import numpy as np
import torch
import pytest

from conftest import tiny_gan
from gan_aug.data.prepared import load_prepared
from gan_aug.errors import UserError
from gan_aug.data.synthetic import Provenance, SampledProvenance, load_synthetic
from gan_aug.config import build_config
from gan_aug.synth.config import SynthConfig
from gan_aug.synth.sample import GanSource, split_counts


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_balance_fills_the_rarest_classes_first():
    real = {"nv": 100, "mel": 30, "df": 5}
    counts = split_counts(synth_config(distribution="balance", n=50), ["nv", "mel", "df"], real)
    assert counts["nv"] == 0 and counts["mel"] + counts["df"] == 50  # the largest class gets none
    assert abs((30 + counts["mel"]) - (5 + counts["df"])) <= 1  # the two rare classes end level
    assert split_counts(synth_config(distribution="uniform", n=10), ["a", "b", "c"], {}) == {"a": 4, "b": 3, "c": 3}
    assert split_counts(synth_config(distribution="mel=7,df=2"), ["mel", "df"], {}) == {"mel": 7, "df": 2}
    for bad in ("mel=x", "mel"):
        with pytest.raises(UserError, match="bad --distribution"):
            synth_config(distribution=bad)
    with pytest.raises(UserError, match="names class.es. wart"):
        split_counts(synth_config(distribution="wart=3"), ["mel", "df"], {})


def synth_config(**settings):
    return build_config(SynthConfig, None, {"checkpoints": ("gan",), "out": "syn", **settings})


def test_n_and_explicit_counts_must_agree(run_cli, toy_gan, tmp_path):
    """-n is never silently ignored: explicit counts set n, and a contradicting -n is refused."""
    assert synth_config(distribution="df=500").n == 500
    assert synth_config().n == 1000
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 10, "--distribution", "df=500",
                     "--out", tmp_path / "syn")
    assert result.exit_code == 1 and "-n 10 disagrees with --distribution df=500" in result.output
    assert not (tmp_path / "syn").exists()


def test_manifest_and_provenance_round_trip(toy_gan, toy16, tmp_path, run_cli):
    out = tmp_path / "syn"
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 40, "--out", out, "--seed", 3)
    assert result.exit_code == 0, result.output
    images, labels, names, provenance = load_synthetic(out)
    prepared = load_prepared(toy16)
    assert names == prepared.class_names and images.shape == (40, 16, 16, 3)
    assert provenance["gan_data"] == {"fingerprint": prepared.fingerprint, "split": "train"}
    train_counts = prepared.class_counts("train")
    totals = train_counts + np.bincount(labels, minlength=len(names))
    assert totals.max() - totals.min() < train_counts.max() - train_counts.min()  # more balanced
    assert provenance["counts"] == dict(zip(names, np.bincount(labels, minlength=7).tolist()))
    with open(out / "manifest.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and all((out / r["file"]).is_file() for r in rows)
    assert {r["seed"] for r in rows} == {"3"} and rows[0]["checkpoint_sha256"] == provenance["gans"][0]["sha256"]
    assert set(p.name for p in out.iterdir()) == set(names[i] for i in set(labels)) | {"manifest.csv", "synthetic.json"}
    # the record's type says what it holds (gan_aug.data.synthetic.Provenance): every key it requires, none unknown
    assert Provenance.__required_keys__ <= set(provenance) <= set(SampledProvenance.__annotations__)


def test_same_arguments_give_identical_files(toy_gan, tmp_path, run_cli):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 21, "--out", tmp_path / name,
                       "--seed", seed, "--distribution", "uniform").exit_code == 0
    a, b, c = (files_of(tmp_path / n) for n in "abc")
    assert a == b
    assert a["mel/000000.png"] != c["mel/000000.png"]


def test_truncation_reduces_diversity(toy_gan):
    source = GanSource(toy_gan, "cpu")
    wide = source.sample(4, 64, seed=0, truncation=1.0, batch_size=32).astype(float)
    narrow = source.sample(4, 64, seed=0, truncation=0.2, batch_size=32).astype(float)
    assert narrow.std(axis=0).mean() < wide.std(axis=0).mean()


def test_crash_leaves_no_manifest(toy_gan, tmp_path, monkeypatch):
    from gan_aug.synth import sample as synth

    calls = []
    original = GanSource.sample

    def crash_on_second_class(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GanSource, "sample", crash_on_second_class)
    out = tmp_path / "syn"
    with pytest.raises(RuntimeError):
        synth.synthesize(synth_config(checkpoints=(str(toy_gan),), out=str(out), n=20, distribution="uniform"),
                         progress=False)
    assert not (out / "manifest.csv").exists()
    assert not list(out.rglob("*.tmp"))
    with pytest.raises(UserError, match="not a complete synthetic set"):
        load_synthetic(out)


def test_npz_format_is_a_prepared_style_set(toy_gan, tmp_path, run_cli):
    out = tmp_path / "syn.npz"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 12, "--out", out, "--format", "npz",
                   "--distribution", "mel=5,df=7").exit_code == 0
    prepared = load_prepared(out)
    assert prepared.source == "synthetic" and prepared.class_counts().tolist() == [0, 0, 0, 7, 5, 0, 0]
    images, labels, names, provenance = load_synthetic(out)
    assert (images == prepared.images).all() and provenance["counts"]["df"] == 7


def test_per_class_checkpoints_together(toy16, tmp_path, run_cli):
    mel = tiny_gan(toy16, tmp_path / "mel", classes=("mel",))
    df = tiny_gan(toy16, tmp_path / "df", classes=("df",), batch_size=8)
    out = tmp_path / "syn"
    result = run_cli("synthesize", "--checkpoint", mel, "--checkpoint", df, "-n", 10, "--out", out)
    assert result.exit_code == 0, result.output
    _, labels, names, provenance = load_synthetic(out)
    assert names == ("mel", "df") and len(provenance["gans"]) == 2
    assert np.bincount(labels).sum() == 10
    line = run_cli("synthesize", "--checkpoint", mel, "--checkpoint", mel, "-n", 5, "--out", tmp_path / "x").output
    assert "class mel is in two checkpoints" in line


def test_bad_inputs(toy_gan, tmp_path, run_cli):
    out = tmp_path / "syn"
    cases = [
        (["--checkpoint", tmp_path / "none", "-n", 5, "--out", out], "checkpoint not found"),
        (["-n", 5, "--out", out], "missing required setting(s): checkpoints"),
        (["--checkpoint", toy_gan, "-n", 0, "--out", out], "-n must be in 1..10,000,000"),
        (["--checkpoint", toy_gan, "-n", 5, "--out", out, "--class", "wart"], "unknown class(es) wart"),
        (["--checkpoint", toy_gan, "-n", 5, "--out", out, "--format", "npz"], "--format npz writes a .npz"),
        (["--checkpoint", toy_gan, "-n", 5, "--out", out, "--truncation", 0], "--truncation"),
        (["--checkpoint", toy_gan, "-n", 5, "--out", out, "--min-confidence", 0.6], "needs --filter-checkpoint"),
    ]
    for args, message in cases:
        result = run_cli("synthesize", *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert not out.exists()
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 5, "--out", out).exit_code == 0
    before = files_of(out)
    assert "is not empty" in run_cli("synthesize", "--checkpoint", toy_gan, "-n", 9, "--out", out).output
    assert files_of(out) == before
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 9, "--out", out, "--force").exit_code == 0
    assert len(load_synthetic(out)[1]) == 9
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 5, "--out", mine, "--force")
    assert "not a synthetic set" in result.output and (mine / "keep.txt").exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    result = run_cli("synthesize", "--checkpoint", tmp_path / "junk.pt", "-n", 5, "--out", out, "--force")
    assert "not a readable checkpoint" in result.output


@pytest.mark.slow  # trains a study or a classifier of its own: the quick tier stays under 2 minutes
def test_confidence_filter_keeps_only_confident_samples(toy16, toy_gan, tmp_path, run_cli):
    from classifier.checkpoint import load_classifier
    from classifier.inference import predict

    clf = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", toy16, "--out", clf, "--epochs", 1, "--balance", "oversample",
                   "--set", "deterministic=true").exit_code == 0
    model, task, _ = load_classifier(clf)
    # A threshold every class passes sometimes and one class mostly fails: the lowest per-class
    # 90th percentile of the intended class's probability over the first 256 candidates.
    source = GanSource(toy_gan, torch.device("cpu"))
    threshold = min(float(np.quantile(predict(model, task, torch.from_numpy(source.sample(k, 256, 0, 1.0, 256))
                                              .permute(0, 3, 1, 2), None)[:, k].numpy(), 0.9)) for k in range(7))
    out = tmp_path / "syn"
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--out", out, "--distribution", "uniform",
                     "--filter-checkpoint", clf, "--min-confidence", threshold, "--set", "max_draws=200")
    assert result.exit_code == 0, result.output
    assert "kept at confidence >=" in result.output
    images, labels, names, provenance = load_synthetic(out)
    assert np.bincount(labels, minlength=7).tolist() == [2] * 7
    probs = predict(model, task, torch.from_numpy(images).permute(0, 3, 1, 2), None).numpy()
    assert (probs[np.arange(len(labels)), labels] >= threshold - 0.02).all()  # bf16 vs fp32 rounding
    acceptance = provenance["filter"]["acceptance"]
    assert set(acceptance) == set(names) and all(0 < rate <= 1 for rate in acceptance.values())
    assert min(acceptance.values()) < 1  # the filter did reject something: otherwise this test proves nothing

    # An ensemble: two classifiers, judged by their mean probability of the intended class.
    clf2 = tmp_path / "clf2"
    assert run_cli("train-classifier", "--data", toy16, "--out", clf2, "--epochs", 1, "--balance", "oversample",
                   "--seed", 1, "--set", "deterministic=true").exit_code == 0
    model2, _, _ = load_classifier(clf2)
    out2 = tmp_path / "syn2"
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--out", out2, "--distribution", "uniform",
                     "--filter-checkpoint", clf, "--filter-checkpoint", clf2, "--min-confidence", threshold,
                     "--set", "max_draws=200")
    assert result.exit_code == 0, result.output
    images2, labels2, _, provenance2 = load_synthetic(out2)
    x2 = torch.from_numpy(images2).permute(0, 3, 1, 2)
    mean_probs = (predict(model, task, x2, None) + predict(model2, task, x2, None)).numpy() / 2
    assert (mean_probs[np.arange(len(labels2)), labels2] >= threshold - 0.02).all()
    assert len(provenance2["filter"]["checkpoints"]) == 2 and len(set(provenance2["filter"]["sha256"])) == 2
    # Same latents in the same order: only different keep decisions can change the images.
    assert not np.array_equal(images2, images)  # the second judge changed some decisions

    # A threshold nothing reaches: one-line error, and the existing set is left as it was.
    before = files_of(out)
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--out", out, "--force",
                     "--filter-checkpoint", clf, "--min-confidence", 0.999, "--set", "max_draws=2")
    assert result.exit_code != 0 and "lower --min-confidence" in result.output
    assert files_of(out) == before


def test_confidence_filter_refuses_a_classifier_of_another_prepared_set(toy_gan, tmp_path, run_cli):
    from gan_aug.data.config import PrepareConfig
    from gan_aug.data.prepare import prepare

    other = tmp_path / "other16.npz"
    prepare(PrepareConfig(out=str(other), source="toy", size=16, toy_count=150, workers=1), progress=False)
    clf = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", other, "--out", clf, "--epochs", 1).exit_code == 0
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 7, "--out", tmp_path / "syn",
                     "--filter-checkpoint", clf)
    assert result.exit_code != 0 and "trained on another prepared set" in result.output
    assert not (tmp_path / "syn").exists()
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 7, "--out", tmp_path / "syn",
                     "--filter-checkpoint", clf, "--min-confidence", 1.5)
    assert result.exit_code != 0 and "--min-confidence must be in (0, 1)" in result.output


def test_threads_caps_torch_and_rejects_negatives(toy_gan, tmp_path, run_cli, two_threads):
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 7, "--out", tmp_path / "syn", "--set", "threads=1")
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    result = run_cli("synthesize", "--checkpoint", toy_gan, "-n", 7, "--out", tmp_path / "bad", "--set", "threads=-1")
    assert result.exit_code != 0 and "threads must be >= 0" in result.output
    assert not (tmp_path / "bad").exists()


def test_stylegan_lite_sets_are_byte_identical(toy16, tmp_path, run_cli):
    """stylegan_lite draws per-pixel noise inside G: two runs with the same arguments must still match."""
    from conftest import tiny_gan

    run = tiny_gan(toy16, tmp_path / "sg", arch="stylegan_lite", kimg=0.016)
    state = torch.load(run / "latest.pt", weights_only=True)
    noise_keys = [k for k in state["G_ema"] if k.endswith("noise_strength")]
    assert noise_keys
    for key in noise_keys:  # a few steps leave the noise strengths near 0: make the noise show in the pixels
        state["G_ema"][key] = torch.tensor(0.5)
    torch.save(state, run / "latest.pt")
    outs = [tmp_path / f"syn{i}" for i in range(3)]
    for out, seed in zip(outs, (0, 0, 1)):
        assert run_cli("synthesize", "--checkpoint", run, "-n", 14, "--out", out, "--seed", seed,
                       "--distribution", "uniform").exit_code == 0
    assert files_of(outs[0]) == files_of(outs[1])
    assert files_of(outs[0]) != files_of(outs[2])
