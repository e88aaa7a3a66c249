"""compare: rows of results.csv and report.md, resumability, and the bootstrap's coverage."""

import csv
import json
import re

import numpy as np
import pytest

from gan_aug.compare.config import CompareConfig

from gan_aug.config import build_config
from gan_aug.errors import UserError
from gan_aug.compare.arms import parse_arm
from gan_aug.compare.stats import bma, bootstrap_mean_ci, gain_with_cis, paired_bootstrap_gain
from gan_aug.compare.summary import run_dir


def test_bootstrap_ci_covers_a_known_difference():
    rng = np.random.default_rng(0)
    n, k = 3000, 3
    y = rng.integers(0, k, n)
    # Arm a is right 80% of the time, arm b 70%, independently per image and seed: true gain 0.10.
    seeds = 3
    a = np.where(rng.random((seeds, n)) < 0.8, y, (y + 1) % k)
    b = np.where(rng.random((seeds, n)) < 0.7, y, (y + 1) % k)
    gain, low, high = paired_bootstrap_gain(y, a, b, k, iterations=400)
    assert low < 0.10 < high and low > 0.05
    _, strict_low, strict_high = paired_bootstrap_gain(y, a, b, k, iterations=400, resample_seeds=True)
    assert strict_low < 0.10 < strict_high and strict_low > 0.05
    same, low0, high0 = paired_bootstrap_gain(y, a, a, k, iterations=100)
    assert same == 0 and low0 == high0 == 0


def test_the_stricter_ci_sees_a_gain_made_by_one_seed():
    rng = np.random.default_rng(1)
    n, k, seeds = 3000, 3, 5
    y = rng.integers(0, k, n)
    # b is right 70% of the time; a the same on four seeds and 90% on the fifth: a mean gain of one seed.
    a_accuracy = np.array([0.7, 0.7, 0.7, 0.7, 0.9])[:, None]
    a = np.where(rng.random((seeds, n)) < a_accuracy, y, (y + 1) % k)
    b = np.where(rng.random((seeds, n)) < 0.7, y, (y + 1) % k)
    gain, low, high = paired_bootstrap_gain(y, a, b, k, iterations=300)
    _, strict_low, strict_high = paired_bootstrap_gain(y, a, b, k, iterations=300, resample_seeds=True)
    true_gain = 0.2 / seeds
    assert low < true_gain < high and strict_low < true_gain < strict_high
    assert low > 0  # within seeds, the one seed's gain looks certain ...
    # ... while a third of the seed resamples miss the fifth seed entirely ((4/5)^5), so the stricter
    # interval's lower end sits at the no-gain level.
    assert strict_low < 0.01 < low


@pytest.mark.slow  # a statistical or whole-model check: the quick tier stays under 2 minutes
def test_bootstrap_intervals_cover_the_truth_at_their_level():
    """Coverage on a known distribution: 60 independent experiments, each with two arms whose true BMA gain is
    exactly known; the 95% interval must contain it in about 95% of them (binomial: >= 51 of 60 fails with
    probability < 2% if the true coverage is 95%), and the interval of a mean over seeds likewise."""
    rng = np.random.default_rng(7)
    n, k, seeds, accuracy_a, accuracy_b = 600, 3, 2, 0.75, 0.70
    covered_gain = covered_mean = 0
    for _ in range(60):
        y = np.repeat(np.arange(k), n // k)  # balanced classes: each class's recall is its accuracy
        a = np.where(rng.random((seeds, n)) < accuracy_a, y, (y + 1) % k)
        b = np.where(rng.random((seeds, n)) < accuracy_b, y, (y + 1) % k)
        _, low, high = paired_bootstrap_gain(y, a, b, k, iterations=200, seed=int(rng.integers(1 << 30)))
        covered_gain += low < accuracy_a - accuracy_b < high
        low, high = bootstrap_mean_ci(y, a, k, iterations=200, seed=int(rng.integers(1 << 30)))
        covered_mean += low < accuracy_a < high
    assert covered_gain >= 51 and covered_mean >= 51


def test_bma_matches_definition():
    y = np.array([0, 0, 0, 1, 2, 2])
    p = np.array([0, 1, 0, 1, 0, 2])
    assert bma(y, p, 3) == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)


def test_arm_parsing():
    assert parse_arm("focal") == {"balance": "focal"}
    assert parse_arm("mix:0.3") == {"balance": "oversample", "mix": 0.3, "mix_policy": "balanced", "mix_until": 1.0}
    assert parse_arm("topup:1") == {"balance": "oversample", "mix": 1.0, "mix_policy": "topup", "mix_until": 1.0}
    assert parse_arm("mix:0.3@filtered") == parse_arm("mix:0.3")
    assert parse_arm("mix:0.5:0.6@filtered")["mix_until"] == 0.6
    assert parse_arm("pretrain:0.3@filtered") == parse_arm("mix:1:0.3") == {
        "balance": "oversample", "mix": 1.0, "mix_policy": "balanced", "mix_until": 0.3}
    for bad in ("mix:2", "mix:x", "smote", "mix:0.3@", "oversample@filtered", "mix:0.3:0", "mix:0.3:0.5:1",
                "pretrain:0", "pretrain:0.3:0.5"):
        with pytest.raises(UserError, match="unknown arm"):
            parse_arm(bad)


@pytest.mark.slow
def test_compare_on_toy_writes_results_and_resumes(toy16, toy_gan, tmp_path, run_cli):
    syn = tmp_path / "syn"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 60, "--out", syn).exit_code == 0
    out = tmp_path / "cmp"
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"data: {toy16}\nsynthetic: {syn}\narms: [none, oversample, mix:0.5]\nseeds: [0, 1]\n"
                   "epochs: 1\nbatch_size: 32\nbootstrap: 200\n")
    result = run_cli("compare", "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 2 * 2  # arm x seed x {val, test}
    assert {(r["arm"], r["seed"], r["split"]) for r in rows} == {
        (a, s, sp) for a in ("none", "oversample", "mix:0.5") for s in ("0", "1") for sp in ("val", "test")}
    report = (out / "report.md").read_text()
    assert "## Headline" in report and "**mix:0.5** vs" in report and "95% CI" in report
    assert "| none |" in report and "df" in report
    for png in ("bma_ci.png", "recall_per_class.png", "confusion_mix_0.5.png"):
        assert (out / png).is_file()
    assert list((out / "tb").rglob("events.out.tfevents.*"))

    # Re-running skips finished runs: their files stay untouched.
    done = run_dir(out, "none", 0) / "done.json"
    stamp = done.stat().st_mtime_ns
    best = run_dir(out, "none", 0) / "best.pt"
    best_stamp = best.stat().st_mtime_ns
    # ... and new arms join, here one mixing a second, named synthetic set.
    other = tmp_path / "syn_other"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 30, "--out", other, "--seed", 1).exit_code == 0
    result = run_cli("compare", "--config", cfg, "--out", out, "--set", "arms=[none, oversample, mix:0.5, focal, "
                     "mix:0.5@other]", "--set", f"synthetic_sets=[other={other}]")
    assert result.exit_code == 0, result.output
    assert done.stat().st_mtime_ns == stamp and best.stat().st_mtime_ns == best_stamp
    assert (run_dir(out, "focal", 1) / "done.json").is_file()
    assert f"synthetic: {other}" in (run_dir(out, "mix:0.5@other", 0) / "config.yaml").read_text()
    assert f"synthetic: {syn}\n" in (run_dir(out, "mix:0.5", 0) / "config.yaml").read_text()
    report = (out / "report.md").read_text()
    assert "**mix:0.5@other** vs" in report and f"Synthetic set other: `{other}`" in report
    # The claimed arm is the generative arm with the best mean val BMA, recomputed here from results.csv.
    with open(out / "results.csv") as handle:
        val = [r for r in csv.DictReader(handle) if r["split"] == "val"]
    mean_val = {a: np.mean([float(r["bma"]) for r in val if r["arm"] == a]) for a in ("mix:0.5", "mix:0.5@other")}
    selected = max(mean_val, key=mean_val.get)
    assert f"The claim is **{selected}**" in report and f"**{selected}** vs " in report
    assert [line for line in report.splitlines() if "selected on val" in line][0].startswith(f"- test: **{selected}**")
    assert f"| {selected} | {mean_val[selected]:.4f} ±" in report
    assert_report_gains_recompute(out, report, ["none", "oversample", "mix:0.5", "focal", "mix:0.5@other"], [0, 1],
                                  val)

    # analyze last-epoch-gain: final-epoch weights against the report's baseline (best mean val BMA of the
    # non-generative arms), every generative arm by default; an unknown arm is a one-line error. It only
    # reads the compare folder.
    before = sorted(out.rglob("*"))
    result = run_cli("analyze", "last-epoch-gain", out, "--bootstrap", 100)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    baseline_val = {a: np.mean([float(r["bma"]) for r in val if r["arm"] == a]) for a in ("none", "oversample", "focal")}
    assert lines[0].split()[0] == max(baseline_val, key=baseline_val.get)
    assert [line.split()[0] for line in lines[1:]] == ["mix:0.5", "mix:0.5@other"]
    assert all("gain" in line and "stricter" in line for line in lines[1:])
    assert sorted(out.rglob("*")) == before
    result = run_cli("analyze", "last-epoch-gain", out, "--arm", "nope")
    assert result.exit_code == 1 and result.output.strip().startswith("Error: nope is not an arm")


def assert_report_gains_recompute(out, report, arms, seeds, val_rows):
    """Every headline gain of report.md, recomputed from the runs' saved test predictions: the baseline by
    mean val BMA from results.csv, the point gain with sklearn's balanced accuracy, the CIs with the
    bootstrap helpers (same resamples: the report's numbers must come back to the digit)."""
    from sklearn.metrics import balanced_accuracy_score

    mean_val = {a: np.mean([float(r["bma"]) for r in val_rows if r["arm"] == a]) for a in arms}
    baseline = max(("none", "oversample", "focal"), key=mean_val.get)
    predictions = {a: [np.load(run_dir(out, a, s) / "test_predictions.npz") for s in seeds] for a in arms}
    y_true = predictions[arms[0]][0]["y_true"]
    n_classes = len(json.loads((run_dir(out, arms[0], seeds[0]) / "done.json").read_text())["splits"]["test"]["class_names"])
    claimed = re.findall(r"- test: \*\*(\S+)\*\* vs (\S+): ([+-]?[\d.]+) BMA points, 95% CI \[([-\d.]+), ([-\d.]+)\].*"
                         r"stricter CI \[([-\d.]+), ([-\d.]+)\]", report)
    assert sorted(c[0] for c in claimed) == ["mix:0.5", "mix:0.5@other"]
    for arm, against, *numbers in claimed:
        assert against == baseline
        gain = np.mean([balanced_accuracy_score(y_true, pa["y_pred"]) - balanced_accuracy_score(y_true, pb["y_pred"])
                        for pa, pb in zip(predictions[arm], predictions[baseline])])
        assert float(numbers[0]) == pytest.approx(100 * gain, abs=0.006)
        stack = lambda a: np.stack([p["y_pred"] for p in predictions[a]])
        cis = gain_with_cis(y_true, stack(arm), stack(baseline), n_classes, 200)
        expected = [cis[key] for key in ("ci_low", "ci_high", "strict_ci_low", "strict_ci_high")]
        assert [float(x) for x in numbers[1:]] == pytest.approx([100 * e for e in expected], abs=0.006)


def test_compare_config_errors(toy16, tmp_path):
    with pytest.raises(UserError, match="need `synthetic: SYN` or `gan_run: RUN`"):
        build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path)})
    with pytest.raises(UserError, match="synthetic_sets does not define"):
        build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path), "synthetic": "s",
                                           "arms": "none,mix:0.3@filtered"})
    with pytest.raises(UserError, match="NAME=PATH"):
        build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path), "synthetic_sets": "filtered"})
    with pytest.raises(UserError, match="must not repeat"):
        build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path), "arms": "none,none"})
    with pytest.raises(UserError, match="reference_arm focal is not one of the arms"):
        build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path), "arms": "none,oversample",
                                           "reference_arm": "focal"})
    # The classifier recipe every arm shares is checked when the config is built, not at the first run.
    with pytest.raises(UserError, match="unknown keep rule"):
        build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path), "arms": "none", "keep": "first"})
    with pytest.raises(UserError, match="lr must be > 0"):
        build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path), "arms": "none", "lr": 0})


def test_a_run_in_training_elsewhere_is_refused_not_shared(toy16, tmp_path, run_cli):
    from gan_aug.compare.runner import exclusive_run

    out = tmp_path / "cmp"
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"data: {toy16}\narms: [none]\nseeds: [0]\nepochs: 1\nbatch_size: 32\nbootstrap: 100\n")
    with exclusive_run(run_dir(out, "none", 0)):  # as if another compare process were training it
        result = run_cli("compare", "--config", cfg, "--out", out)
    assert result.exit_code != 0
    assert "being trained by another process" in result.output
    assert not run_dir(out, "none", 0).exists()


@pytest.mark.slow
def test_shards_split_the_runs_and_the_report_merges_what_finished(toy16, tmp_path, run_cli):
    out = tmp_path / "cmp"
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"data: {toy16}\narms: [none, oversample]\nseeds: [0, 1]\nepochs: 1\nbatch_size: 64\n"
                   "bootstrap: 100\n")
    result = run_cli("compare", "--config", cfg, "--out", out, "--shard", "1/2")
    assert result.exit_code == 0, result.output
    done = sorted(p.parent.name for p in (out / "runs").glob("*/done.json"))
    assert done == ["none_seed0", "oversample_seed0"]  # runs 1 and 3 of none x {0,1}, oversample x {0,1}
    report = (out / "report.md").read_text()
    assert "Partial report**: seeds 1 are not finished" in report and "(seeds 0)" in report
    result = run_cli("compare", "--config", cfg, "--out", out, "--shard", "2/2")
    assert result.exit_code == 0, result.output
    assert len(list((out / "runs").glob("*/done.json"))) == 4
    report = (out / "report.md").read_text()
    assert "Partial report" not in report and "(seeds 0, 1)" in report
    assert "--shard looks like K/N" in run_cli("compare", "--config", cfg, "--out", out, "--shard", "3/2").output


def test_recipe_gain_pairs_two_compares_on_their_common_seeds(tmp_path, run_cli):
    """analyze recipe-gain: A's gain over B is the mean BMA difference over the seeds both ran (B's extra seed
    is left out), its CI covers the planted difference, and two different test sets are refused."""
    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(3), 200)

    def write_run(out, seed, accuracy, labels=y_true):
        right = rng.random(len(labels)) < accuracy
        y_pred = np.where(right, labels, (labels + 1) % 3)
        run = run_dir(out, "oversample", seed)
        run.mkdir(parents=True)
        np.savez(run / "test_predictions.npz", y_true=labels, y_pred=y_pred, probs=np.eye(3)[y_pred])
        return bma(labels, y_pred, 3)

    a = [write_run(tmp_path / "a", s, 0.80) for s in (1, 2, 3)]
    b = [write_run(tmp_path / "b", s, 0.70) for s in (1, 2, 3, 4)]
    (tmp_path / "b" / "runs" / "oversample_seed5").mkdir()  # a run still training: no predictions yet
    (tmp_path / "b" / "runs" / "oversample_seed5.lock").touch()
    result = run_cli("analyze", "recipe-gain", tmp_path / "a", tmp_path / "b", "--iterations", 200)
    assert result.exit_code == 0, result.output
    assert "seeds [1, 2, 3]" in result.output
    gain, low, high = map(float, re.search(r"gain ([+-][\d.]+) \[([+-][\d.]+), ([+-][\d.]+)\]", result.output).groups())
    assert gain == pytest.approx(100 * (np.mean(a) - np.mean(b[:3])), abs=0.006)
    assert low < 10 < high and low > 0  # the planted 10 points, and clearly above 0

    write_run(tmp_path / "c", 1, 0.8, labels=np.roll(y_true, 1))
    result = run_cli("analyze", "recipe-gain", tmp_path / "a", tmp_path / "c")
    assert result.exit_code == 1 and "different test images" in result.output


@pytest.mark.slow
def test_loss_and_mixing_arms_twins_and_posthoc_in_one_compare(toy16, toy_gan, tmp_path, run_cli):
    """balanced-softmax, a generative arm with cutmix and two placebos: the generative arm's twin (oversample+cutmix) runs
    without being listed, the claim against a control of another recipe is marked confounded, and every arm is
    reported raw and after both post-hoc corrections, with predicted-class shares."""
    syn = tmp_path / "syn"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 60, "--out", syn).exit_code == 0
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"data: {toy16}\nsynthetic: {syn}\narms: [balanced-softmax, mix:0.5+cutmix, placebo-aug:0.5, "
                   "placebo-shuffle:0.5]\nseeds: [0]\n"
                   "epochs: 1\nbatch_size: 32\nbootstrap: 100\nposthoc: [bias, label-shift]\n"
                   "reference_arm: oversample\n")
    out = tmp_path / "cmp"
    result = run_cli("compare", "--config", cfg, "--out", out)
    assert result.exit_code == 0, result.output
    twin_run = run_dir(out, "oversample+cutmix", 0)
    assert (twin_run / "done.json").is_file() and "mixing: cutmix" in (twin_run / "config.yaml").read_text()
    assert "loss: balanced-softmax" in (run_dir(out, "balanced-softmax", 0) / "config.yaml").read_text()
    report = (out / "report.md").read_text()
    assert "Baseline: **balanced-softmax**" in report  # the twin was added, never chosen as the baseline
    assert "vs its twin oversample+cutmix" in report and "**Confounded**: mix:0.5+cutmix" in report
    assert "## Post-hoc class corrections" in report and "both after bias" in report and "both after label-shift" in report
    assert "## Predicted-class shares" in report
    # reference_arm (here the twin compare added): every other arm against it, raw and after each correction.
    assert "against the reference arm **oversample**" in report
    for arm in ("balanced-softmax", "mix:0.5+cutmix", "placebo-aug:0.5"):
        assert f"- test: **{arm}** vs oversample: " in report
        assert re.search(rf"- test: \*\*{re.escape(arm)}\*\* vs oversample: .*both after bias", report)
    assert "**oversample** vs oversample" not in report
    assert "The claim is **mix:0.5+cutmix**" in report  # placebos are reported, never the claim or the baseline
    assert "**placebo-aug:0.5** vs balanced-softmax" in report and "**placebo-shuffle:0.5** vs its twin oversample" in report
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["arm"] for r in rows} == {"balanced-softmax", "mix:0.5+cutmix", "oversample+cutmix", "placebo-aug:0.5",
                                        "placebo-shuffle:0.5", "oversample"}
    shares = [float(rows[0][f"predicted_share_{c}"]) for c in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-5)
