"""`gan-aug compare`: every arm x seed with identical settings, then a report that holds up (PROTOCOL.md).

Arms: none, oversample, class-weight, focal (non-generative) and mix:R / topup:R (GAN; mix:R@NAME uses
the synthetic set NAME of `synthetic_sets`, so several sets compete in one report). The suffix +kd
trains an arm on the config's `teachers`' probabilities (distillation): oversample+kd is then the
non-generative control of mix:R+kd. Each arm x seed is one classifier run under DIR/runs/; a finished
run leaves done.json and its test predictions, so a re-run skips it. The baseline for the headline is
the non-generative arm with the best mean *val* BMA (never chosen on test). Gains come with a paired
bootstrap 95% CI: pair by seed, resample test images within each seed, the same resample for both arms.
"""

import contextlib
import fcntl
import json
from pathlib import Path

import numpy as np

from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write

BASELINE_ARMS = ("none", "oversample", "class-weight", "focal")
MIX_POLICIES = {"mix": "balanced", "topup": "topup"}


DISTILL_SUFFIX = "+kd"


def split_distill(arm):
    """('mix:0.3@set', True) for 'mix:0.3@set+kd': the arm without its suffix, and whether it distils."""
    return (arm[:-len(DISTILL_SUFFIX)], True) if arm.endswith(DISTILL_SUFFIX) else (arm, False)


def parse_arm(arm):
    """'none' | 'oversample' | 'class-weight' | 'focal' | 'mix:0.3' | 'topup:0.5' -> ClassifierConfig overrides.
    'mix:0.5:0.6' draws synthetic images in the first 60% of the epochs only (mix_until).
    A generative arm may name its synthetic set: 'mix:0.3@filtered' (see CompareConfig.synthetic_sets).
    Any arm but focal may end in +kd (distil from CompareConfig.teachers); the overrides then say "distil"."""
    base, distil = split_distill(arm)
    if not distil:
        return _parse_base_arm(arm)
    if base == "focal":
        raise UserError("focal+kd: distillation replaces the hard labels focal loss needs")
    return {**_parse_base_arm(base), "distil": True}


def _parse_base_arm(arm):
    if arm in BASELINE_ARMS:
        return {"balance": arm}
    base, at, set_name = arm.partition("@")
    kind, *numbers = base.split(":")
    if kind in MIX_POLICIES and (set_name or not at) and len(numbers) in (1, 2):  # 'mix:0.3@' names no set
        try:
            mix, until = float(numbers[0]), float(numbers[1]) if len(numbers) == 2 else 1.0
        except ValueError:
            mix = until = -1.0
        if 0 <= mix <= 1 and 0 < until <= 1:
            return {"balance": "oversample", "mix": mix, "mix_policy": MIX_POLICIES[kind], "mix_until": until}
    raise UserError(f"unknown arm '{arm}' (use {', '.join(BASELINE_ARMS)}, mix:R or topup:R with R in [0, 1], "
                    "optionally :U, the share of epochs that draw synthetic images; any of them but focal "
                    "may end in +kd)")


def is_generative(arm):
    return split_distill(arm)[0] not in BASELINE_ARMS


def synthetic_set_name(arm):
    """The named synthetic set of a generative arm ('' = the config's default `synthetic`/`gan_run`)."""
    return split_distill(arm)[0].partition("@")[2]


def bma(y_true, y_pred, n_classes):
    """Balanced accuracy over the classes present in y_true (numpy, fast for bootstrap)."""
    support = np.bincount(y_true, minlength=n_classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    present = support > 0
    return float((hits[present] / support[present]).mean())


def paired_bootstrap_gain(y_true, pred_a, pred_b, n_classes, iterations=2000, seed=0, resample_seeds=False):
    """Mean over seeds of BMA(a) - BMA(b), and its 95% CI from resampling images within each seed.

    y_true: (N,) labels of the evaluation images; pred_a, pred_b: (S, N) predictions, one row per seed.
    resample_seeds: the stricter interval. It also draws the seeds with replacement (one lucky seed can
    make a mean), and draws one image resample for all of them (every seed is scored on the same test
    images, so a new test set would move them together); within-seed resampling alone narrows as seeds
    are added even where the test set is what limits the measurement.
    """
    rng = np.random.default_rng(seed)
    S, N = pred_a.shape
    point = np.mean([bma(y_true, pred_a[s], n_classes) - bma(y_true, pred_b[s], n_classes) for s in range(S)])
    gains = np.empty(iterations)
    for b in range(iterations):
        seeds = rng.integers(0, S, S) if resample_seeds else range(S)
        shared = rng.integers(0, N, N) if resample_seeds else None
        total = 0.0
        for s in seeds:
            idx = rng.integers(0, N, N) if shared is None else shared
            total += bma(y_true[idx], pred_a[s, idx], n_classes) - bma(y_true[idx], pred_b[s, idx], n_classes)
        gains[b] = total / S
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(point), float(low), float(high)


def gain_with_cis(y_true, pred_a, pred_b, n_classes, iterations):
    """The report's gain record: mean, the protocol's CI (within seeds) and the stricter one (seeds too)."""
    gain, low, high = paired_bootstrap_gain(y_true, pred_a, pred_b, n_classes, iterations)
    _, strict_low, strict_high = paired_bootstrap_gain(y_true, pred_a, pred_b, n_classes, iterations,
                                                       resample_seeds=True)
    return {"mean": gain, "ci_low": low, "ci_high": high, "strict_ci_low": strict_low, "strict_ci_high": strict_high}


def format_gain(gain):
    """'gain +0.12 [-0.84, +1.08], stricter [-1.60, +1.74]' in BMA points."""
    points = {k: 100 * v for k, v in gain.items()}
    return (f"gain {points['mean']:+.2f} [{points['ci_low']:+.2f}, {points['ci_high']:+.2f}], "
            f"stricter [{points['strict_ci_low']:+.2f}, {points['strict_ci_high']:+.2f}]")


def bootstrap_mean_ci(y_true, preds, n_classes, iterations=1000, seed=0):
    """95% CI of an arm's mean-over-seeds BMA, resampling images within seeds."""
    rng = np.random.default_rng(seed)
    S, N = preds.shape
    values = np.empty(iterations)
    for b in range(iterations):
        values[b] = np.mean([bma(y_true[idx], preds[s, idx], n_classes)
                             for s in range(S) for idx in [rng.integers(0, N, N)]])
    return tuple(float(v) for v in np.percentile(values, [2.5, 97.5]))


# ------------------------------------------------------------------------------------------------
# Running arms


def run_dir(out, arm, seed):
    return Path(out) / "runs" / f"{arm.replace(':', '_')}_seed{seed}"


def run_arm(config, arm, seed, prepared, synthetics, externals, teachers, progress):
    """Train + evaluate one arm x seed unless its done.json exists; returns the done record."""
    directory = run_dir(config.out, arm, seed)
    with exclusive_run(directory):
        done = directory / "done.json"
        if done.is_file():
            return json.loads(done.read_text())
        record = _train_and_evaluate(config, arm, seed, directory, prepared, synthetics, externals, teachers,
                                     progress)
        with atomic_write(done, "w") as handle:
            json.dump(record, handle)
        return record


@contextlib.contextmanager
def exclusive_run(directory):
    """Hold a lock on one arm x seed while it trains. Two compare processes given overlapping arms and seeds
    in one --out would otherwise train into the same folder and mix their checkpoints (it happened). flock
    is released when its process dies, so a killed run leaves no stale lock; the lock file sits beside the
    run folder because training with force replaces what is inside it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.with_name(directory.name + ".lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{directory} is being trained by another process: give this one other arms "
                            "or seeds, or wait for it") from None
        yield


def _train_and_evaluate(config, arm, seed, directory, prepared, synthetics, externals, teachers, progress):
    """Train one arm x seed into `directory`, evaluate its best checkpoint on every split; the record."""
    from classifier.evaluate import evaluate_checkpoint
    from classifier.train import train_classifier
    from gan_aug.config import ClassifierConfig, build_config

    overrides = parse_arm(arm)
    distil = overrides.pop("distil", False)
    if distil:
        overrides["teachers"] = config.teachers
    flags = {"data": config.data, "out": str(directory), "seed": seed, "force": True, **config.classifier_flags(),
             **overrides}
    if "mix" in overrides:
        flags["synthetic"] = config.synthetic_paths()[synthetic_set_name(arm)]
    clf_config = build_config(ClassifierConfig, None, flags)
    summary = train_classifier(clf_config, progress=progress, prepared=prepared,
                               synthetic=synthetics[synthetic_set_name(arm)] if "mix" in overrides else None,
                               teachers=teachers if distil else None)
    record = {"arm": arm, "seed": seed, "best_epoch": summary["best_epoch"], "splits": {}}
    for split_name, (dataset, split) in {"val": (prepared, "val"), "test": (prepared, "test"), **externals}.items():
        metrics, targets, probs = evaluate_checkpoint(directory / "best.pt", dataset, split,
                                                      directory / f"{split_name}.json", config.device)
        record["splits"][split_name] = metrics
        with atomic_write(directory / f"{split_name}_predictions.npz") as handle:
            np.savez(handle, y_true=targets, y_pred=probs.argmax(axis=1), probs=probs)
    return record


def load_synthetic_sets(config, progress):
    """Set name -> loaded synthetic set, for the sets the arms use. The default set ('') is the given
    `synthetic`, or one synthesized once from `gan_run`."""
    from gan_aug.config import SynthConfig
    from gan_aug.synth import MANIFEST, load_synthetic, synthesize

    paths, used = config.synthetic_paths(), {synthetic_set_name(a) for a in config.arms if is_generative(a)}
    if "" in used and not config.synthetic and not (Path(paths[""]) / MANIFEST).is_file():
        synthesize(SynthConfig(checkpoints=(config.gan_run,), out=paths[""], n=config.synth_n,
                               truncation=config.synth_truncation, distribution=config.synth_distribution,
                               force=True), progress=progress)
    return {name: load_synthetic(paths[name]) for name in sorted(used)}


def load_externals(config, image_size):
    from classifier.evaluate import external_set

    externals = {}
    for entry in config.external:
        name, _, rest = entry.partition("=")
        source, _, root = rest.partition(":")
        externals[name] = (external_set(source, root, image_size), "test")
    return externals


def mean_std(values):
    """(mean, sample std) over seeds; std 0 for a single seed."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def baseline_arm(arms, mean_val_bma):
    """The headline's baseline: the non-generative arm with the best mean val BMA (None without one)."""
    baselines = [a for a in arms if not is_generative(a)]
    return max(baselines, key=mean_val_bma) if baselines else None


def summarize(config, records, splits, n_classes_by_split):
    """Per split: each arm's seeds, mean/std/CI of BMA, mean per-class recall, and each generative arm's
    paired-bootstrap gain over the baseline arm (best non-generative arm by mean val BMA).

    `selected` is the generative arm with the best mean val BMA: with several generative arms, one of
    them can clear a 95% CI on test by chance, so the claim is the arm chosen before looking at test."""
    arms, seeds = list(config.arms), list(config.seeds)
    generative = [a for a in arms if is_generative(a)]
    val_bma = {}
    for a in arms:
        mean, std = mean_std([records[(a, s)]["splits"]["val"]["bma"] for s in seeds])
        val_bma[a] = {"mean": mean, "std": std}
    baseline = baseline_arm(arms, lambda a: val_bma[a]["mean"])
    selected = max(generative, key=lambda a: val_bma[a]["mean"]) if generative else None
    summary = {"baseline": baseline, "selected": selected, "selected_on": "mean val BMA", "splits": {},
               "val_bma": val_bma}
    for split in splits:
        preds = {a: np.stack([np.load(run_dir(config.out, a, s) / f"{split}_predictions.npz")["y_pred"] for s in seeds])
                 for a in arms}
        y_true = np.load(run_dir(config.out, arms[0], seeds[0]) / f"{split}_predictions.npz")["y_true"]
        k = n_classes_by_split[split]
        rows = {}
        for a in arms:
            values = [records[(a, s)]["splits"][split]["bma"] for s in seeds]
            per_class = [records[(a, s)]["splits"][split]["per_class"] for s in seeds]
            bma_mean, bma_std = mean_std(values)
            rows[a] = {"bma_mean": bma_mean, "bma_std": bma_std,
                       "bma_ci": bootstrap_mean_ci(y_true, preds[a], k, max(200, config.bootstrap // 2)),
                       "bma_by_seed": values,
                       "recall": {c: float(np.mean([p[c]["recall"] for p in per_class])) for c in per_class[0]}}
            for metric in ("accuracy", "macro_f1", "auc_macro"):
                rows[a][metric] = float(np.mean([records[(a, s)]["splits"][split][metric] for s in seeds]))
            if baseline and is_generative(a):
                rows[a]["gain"] = gain_with_cis(y_true, preds[a], preds[baseline], k, config.bootstrap)
        summary["splits"][split] = rows
    return summary


def compare(config, progress=True):
    """Run (or resume) every arm x seed, then write results.csv, report.md, plots and TensorBoard hparams."""
    from gan_aug.config import to_yaml
    from gan_aug.data.prepared import load_prepared
    from gan_aug.report import write_report

    prepared = load_prepared(config.data)
    teachers = None
    if config.teachers:  # loaded once, so a bad teacher is refused before any run and each pool labelled once
        from classifier.teachers import TeacherEnsemble
        from gan_aug.runtime import resolve_device

        teachers = TeacherEnsemble(config.teachers, prepared.fingerprint, prepared.image_size,
                                   resolve_device(config.device))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(config))
    synthetics = load_synthetic_sets(config, progress)
    externals = load_externals(config, prepared.image_size)
    records = {}
    total = len(config.arms) * len(config.seeds)
    for i, (arm, seed) in enumerate((a, s) for a in config.arms for s in config.seeds):
        if progress:
            print(f"[{i + 1}/{total}] arm {arm}, seed {seed}", flush=True)
        records[(arm, seed)] = run_arm(config, arm, seed, prepared, synthetics, externals, teachers, progress)
    splits = ["test"] + list(externals)
    n_classes = {s: len(records[(config.arms[0], config.seeds[0])]["splits"][s]["class_names"]) for s in splits}
    summary = summarize(config, records, splits, n_classes)
    write_report(config, prepared, records, summary, splits)
    return summary
