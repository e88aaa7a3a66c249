"""The compare folder's layout (one run folder per arm x seed) and the summary the report is written from:
per split, each arm's BMA over seeds with its CI, and each generative arm's gain over the baseline."""

import dataclasses
import json
from pathlib import Path

import numpy as np

from gan_aug.compare.arms import draws_synthetic, is_generative, same_recipe_but_synthetic, twin
from gan_aug.compare.stats import baseline_arm, bma, bootstrap_mean_ci, gain_with_cis, mean_std
from gan_aug import legacy

PREDICTIONS = "{split}_predictions.npz"
DATA_FACTS = "data.json"


def run_dir(out, arm, seed):
    return Path(out) / "runs" / f"{arm.replace(':', '_')}_seed{seed}"


def load_predictions(out, arm, seed, split):
    """The saved per-image predictions of one run on one split (y_true, y_pred, probs, image_id), read whole now:
    a file cut short since would otherwise fail with a traceback when the report first reads it."""
    from gan_aug.data.prepared import read_npz
    from gan_aug.errors import UserError

    path = run_dir(out, arm, seed) / PREDICTIONS.format(split=split)
    try:
        arrays = read_npz(path, "predictions file")
        if any(key not in arrays for key in ("y_true", "y_pred", "probs")):
            raise UserError(f"{path} is not a readable predictions file: it lacks y_true, y_pred or probs")
    except UserError as err:
        raise UserError(f"{err}; delete {path.parent / 'done.json'} to run that arm x seed again") from None
    return arrays


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What a report says of the prepared set the runs trained on. compare writes it beside its runs and a
    bundle carries it, so a report can be written again where the prepared set (its images) is not."""

    path: str
    fingerprint: str
    image_size: int
    class_names: tuple
    train_counts: tuple
    color_constancy: str = "none"  # what rescore applies to new external sets, as prepare did to this set

    @classmethod
    def of(cls, prepared):
        counts = np.bincount(prepared.labels[prepared.indices("train")], minlength=len(prepared.class_names))
        return cls(str(prepared.path), prepared.fingerprint, int(prepared.image_size), tuple(prepared.class_names),
                   tuple(int(c) for c in counts), prepared.color_constancy)

    @classmethod
    def from_dict(cls, values):
        values = legacy.with_defaults(values, legacy.DATA_FACTS)
        return cls(str(values["path"]), str(values["fingerprint"]), int(values["image_size"]),
                   tuple(map(str, values["class_names"])), tuple(map(int, values["train_counts"])),
                   str(values["color_constancy"]))

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def write(self, path):
        from gan_aug.fileio import write_text

        write_text(path, json.dumps(self.to_dict(), indent=1))


def predicted_shares(metrics):
    """(predicted, true) share of each class on one split, from its confusion matrix (rows: true class,
    columns: predicted). A mix that moves these moves BMA without recognising any class better."""
    matrix = np.asarray(metrics["confusion_matrix"], dtype=float)
    total = max(matrix.sum(), 1.0)
    names = metrics["class_names"]
    return ({c: float(v) for c, v in zip(names, matrix.sum(axis=0) / total)},
            {c: float(v) for c, v in zip(names, matrix.sum(axis=1) / total)})


def summarize(config, records, splits, n_classes_by_split, predictions=None, train_prior=None):
    """Per split: each arm's seeds, mean/std/CI of BMA, mean per-class recall and predicted-class shares, and
    each generative arm's paired-bootstrap gain over the baseline arm (best non-generative arm by mean val BMA)
    and over its twin; with config.posthoc (and the train split's class prior), the same after each correction.
    `predictions(arm, seed, split)` gives a run's saved predictions (default: the npz under config.out).

    `selected` is the generative arm with the best mean val BMA: with several generative arms, one of
    them can clear a 95% CI on test by chance, so the claim is the arm chosen before looking at test. Twins
    that compare added itself are reported but never chosen as the baseline."""
    predictions = predictions or (lambda arm, seed, split: load_predictions(config.out, arm, seed, split))
    arms, seeds = list(config.run_arms()), list(config.seeds)
    generative = [a for a in config.arms if is_generative(a)]
    val_bma = {}
    for a in arms:
        mean, std = mean_std([records[(a, s)]["splits"]["val"]["bma"] for s in seeds])
        val_bma[a] = {"mean": mean, "std": std}
    baseline = baseline_arm(config.arms, lambda a: val_bma[a]["mean"])
    selected = max(generative, key=lambda a: val_bma[a]["mean"]) if generative else None
    summary = {"baseline": baseline, "selected": selected, "selected_on": "mean val BMA", "splits": {},
               "val_bma": val_bma,
               "twins": {a: twin(a) for a in config.arms if draws_synthetic(a) and twin(a) in arms},
               "reference": config.reference_arm,
               "confounded": [a for a in generative if baseline and not same_recipe_but_synthetic(a, baseline)]}
    corrections = list(config.posthoc) if train_prior is not None else []
    for split in splits:
        preds = {a: np.stack([predictions(a, s, split)["y_pred"] for s in seeds]) for a in arms}
        y_true = predictions(arms[0], seeds[0], split)["y_true"]
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
            shares = [predicted_shares(records[(a, s)]["splits"][split]) for s in seeds]
            rows[a]["predicted_share"] = {c: float(np.mean([p[c] for p, _ in shares])) for c in shares[0][0]}
            rows[a]["true_share"] = shares[0][1]
            for metric in ("accuracy", "macro_f1", "auc_macro"):
                rows[a][metric] = float(np.mean([records[(a, s)]["splits"][split][metric] for s in seeds]))
        _add_gains(rows, summary, y_true, preds, k, config.bootstrap)
        for name in corrections:
            corrected = _posthoc_rows(config, name, split, arms, seeds, predictions, train_prior, y_true, k)
            if corrected is None:  # binary / two-stage outputs: no class prior to correct
                continue
            for a, (row, corrected_preds) in corrected.items():
                rows[a].setdefault("posthoc", {})[name] = row
            posthoc_rows = {a: rows[a]["posthoc"][name] for a in arms}
            _add_gains(posthoc_rows, summary, y_true, {a: p for a, (_, p) in corrected.items()}, k, config.bootstrap)
        summary["splits"][split] = rows
    return summary


def _add_gains(rows, summary, y_true, preds, k, iterations):
    """Each arm that draws synthetic (or placebo) images: its paired gain over the baseline and over its twin;
    with a reference arm, every other arm's gain over it."""
    reference = summary.get("reference")
    for a in [a for a in rows if reference and a != reference]:
        rows[a]["gain_reference"] = gain_with_cis(y_true, preds[a], preds[reference], k, iterations)
    for a, twin_arm in [(a, summary["twins"].get(a)) for a in rows if draws_synthetic(a)]:
        if summary["baseline"]:
            rows[a]["gain"] = gain_with_cis(y_true, preds[a], preds[summary["baseline"]], k, iterations)
        if twin_arm and twin_arm != summary["baseline"]:
            rows[a]["gain_twin"] = gain_with_cis(y_true, preds[a], preds[twin_arm], k, iterations)


def _posthoc_rows(config, name, split, arms, seeds, predictions, train_prior, y_true, k):
    """arm -> (its row after correction `name`, its corrected predictions (S, N)); None where the outputs are
    not the prepared set's classes."""
    from classifier.posthoc import correct

    if len(train_prior) != k:
        return None
    out = {}
    for a in arms:
        facts, corrected = [], []
        for s in seeds:
            val = predictions(a, s, "val")
            probs, fact = correct(name, (val["probs"], val["y_true"]), (predictions(a, s, split)["probs"], y_true),
                                  np.asarray(train_prior, dtype=float) / np.sum(train_prior), config.posthoc_per_class)
            facts.append(fact)
            corrected.append(probs.argmax(axis=1))
        values = [bma(y_true, p, k) for p in corrected]
        bma_mean, bma_std = mean_std(values)
        row = {"bma_mean": bma_mean, "bma_std": bma_std, "bma_by_seed": values}
        if name == "bias":
            row["val_bma_raw"] = float(np.mean([f["val_bma_raw"] for f in facts]))
            row["val_bma"] = float(np.mean([f["val_bma"] for f in facts]))
        else:
            row["prior"] = np.mean([f["prior"] for f in facts], axis=0).tolist()
        out[a] = (row, np.stack(corrected))
    return out
