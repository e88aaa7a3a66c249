"""`gan-aug rescore`: a bundle's runs evaluated on new external sets, with no training and no prepared set,
and the report compare would have written for them: the same baseline and claim (chosen on the bundle's val
records), the same bootstrap resamples, predicted-class shares."""

import dataclasses
import json
from pathlib import Path

import numpy as np

from classifier.evaluate import evaluate_checkpoint
from gan_aug.compare.bundle import read_bundle
from gan_aug.compare.config import parse_external
from gan_aug.compare.report import write_report
from gan_aug.compare.runner import load_externals, save_predictions
from gan_aug.compare.summary import PREDICTIONS, run_dir, summarize
from gan_aug.data.prepared import METADATA
from gan_aug.config import check_device_name
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_folder, check_apart

SUMMARY_FILE = "rescore.json"


def default_out(bundle_dir):
    return Path(f"rescore_{Path(bundle_dir).resolve().name}")


def check_out(bundle_dir, out, force):
    """Refuse an output that would write into the bundle (or replace it), or replace a folder without --force."""
    check_apart(out, {"the bundle": bundle_dir})  # rescore never writes to the bundle
    if (Path(out).exists() or Path(out).is_symlink()) and not force:
        raise UserError(f"{out} already exists (use --force to replace it)")


def without_images(dataset, split, ids):
    """`dataset` (an external set, all of it `split`) without the images whose id is in `ids`."""
    keep = ~np.isin(dataset.image_id.astype(str), sorted(ids)) | (dataset.split != split)
    rows = {key: getattr(dataset, key)[keep] for key in ("images", "labels", "split", "group", "image_id", *METADATA)
            if getattr(dataset, key) is not None}
    return dataclasses.replace(dataset, **rows)


def rescore(bundle_dir, externals, out=None, tta=False, device="auto", force=False, progress=True, posthoc=None,
            exclude=None):
    """Evaluate every run of the bundle on each `externals` entry (NAME=SOURCE:ROOT) and write the report into
    `out`; returns (summary, matches): matches[name] counts the runs whose predictions on a set the bundle
    was also scored on are identical to the bundled ones (None where the bundle has none of that name).
    `posthoc`: the corrections to report (default: the comparison's own), fitted on the bundle's val predictions.
    `exclude`: an audit.json; each external set is scored without its images that have a near duplicate in the
    train split."""
    check_device_name(device)
    from classifier.posthoc import CORRECTIONS

    if any(p not in CORRECTIONS for p in posthoc or ()):
        raise UserError(f"--posthoc takes {', '.join(CORRECTIONS)}, got {', '.join(posthoc)}")
    out = Path(out) if out else default_out(bundle_dir)
    check_out(bundle_dir, out, force)
    names = [parse_external(entry)[0] for entry in externals]
    if not names:
        raise UserError("give at least one --external NAME=SOURCE:ROOT")
    bundle = read_bundle(bundle_dir)
    config, facts = bundle.config, bundle.facts
    seeds = tuple(s for s in config.seeds if all((a, s) in bundle.runs for a in config.run_arms()))
    if not seeds:
        raise UserError(f"{bundle_dir} holds no seed that every arm finished")
    sets = load_externals(externals, facts.image_size, facts.color_constancy)
    excluded = {}
    if exclude is not None:
        from gan_aug.audit.exclusions import flagged_external_ids, read_audit

        audit = read_audit(exclude)
        for name, (dataset, split) in sets.items():
            flagged = flagged_external_ids(audit, exclude, name, facts.fingerprint)
            kept = without_images(dataset, split, flagged)
            excluded[name] = sorted(set(dataset.image_id.astype(str)) - set(kept.image_id.astype(str)))
            sets[name] = (kept, split)
    for name, (dataset, _) in sets.items():
        unknown = [c for c in dataset.class_names if c not in facts.class_names]
        if unknown:
            raise UserError(f"{name} has class(es) {', '.join(unknown)}, which the bundle's models never learned "
                            f"(they know {', '.join(facts.class_names)})")
    records, predictions = {}, {}
    runs = [(a, s) for a in config.run_arms() for s in seeds]
    for i, (arm, seed) in enumerate(runs):
        if progress:
            print(f"[{i + 1}/{len(runs)}] scoring {arm}, seed {seed}", flush=True)
        record = bundle.record(arm, seed)
        for name, (dataset, split) in sets.items():
            metrics, targets, probs = evaluate_checkpoint(bundle.runs[(arm, seed)] / "best.pt", dataset, split,
                                                          device=device, tta=tta)
            record["splits"][name] = metrics
            predictions[(arm, seed, name)] = {"y_true": targets, "y_pred": probs.argmax(axis=1), "probs": probs,
                                              "image_id": dataset.image_id[dataset.indices(split)]}
        records[(arm, seed)] = record
    rescored = dataclasses.replace(config, seeds=seeds, out=str(out), external=tuple(externals),
                                   posthoc=config.posthoc if posthoc is None else tuple(posthoc))
    n_classes = {name: len(records[runs[0]]["splits"][name]["class_names"]) for name in names}
    def saved(arm, seed, split):  # the new sets' predictions; val's, for the post-hoc fits, from the bundle
        return predictions[(arm, seed, split)] if split in names else bundle.predictions(arm, seed, split)

    summary = summarize(rescored, records, names, n_classes, predictions=saved, train_prior=facts.train_counts)
    matches = {name: _matching_runs(bundle, runs, predictions, name) for name in names}
    heading = [f"# gan-aug rescore: {Path(bundle_dir).resolve().name}", "",
               f"The runs of bundle `{bundle_dir}` re-scored, without training, on "
               + ", ".join(f"**{e.partition('=')[0]}** (`{e.partition('=')[2]}`, "
                           f"{len(sets[e.partition('=')[0]][0].labels)} images)" for e in externals)
               + (f" with test-time augmentation ({tta})" if tta else "")
               + (f", leaving out the images `{exclude}` found near duplicates of in the train split ("
                  + ", ".join(f"{n}: {len(ids)}" for n, ids in excluded.items()) + ")" if exclude else "")
               + ". Baseline and claim are chosen on the "
               "bundle's val records, as compare chose them; the bootstrap draws compare's resamples."]
    with atomic_folder(out) as staging:
        for (arm, seed), record in records.items():
            directory = run_dir(staging, arm, seed)
            directory.mkdir(parents=True)
            for name in names:
                p = predictions[(arm, seed, name)]
                save_predictions(directory / PREDICTIONS.format(split=name), p["y_true"], p["probs"], p["image_id"])
            (directory / "done.json").write_text(json.dumps(record))
        write_report(rescored, facts, records, summary, names, into=staging, heading=heading)
        (staging / SUMMARY_FILE).write_text(json.dumps({"bundle": str(bundle_dir), "external": list(externals),
                                                        "tta": tta, "seeds": list(seeds), "matches": matches,
                                                        "exclude": exclude and str(exclude), "excluded": excluded,
                                                        "summary": summary}, indent=1))
    return summary, matches


def _matching_runs(bundle, runs, predictions, name):
    """How many runs predict every image of `name` as the bundle recorded (None: the bundle has no such set,
    or it holds other images under that name)."""
    if name not in bundle.splits:
        return None
    same = 0
    for arm, seed in runs:
        bundled, now = bundle.predictions(arm, seed, name), predictions[(arm, seed, name)]
        if len(bundled["y_pred"]) != len(now["y_pred"]) or not np.array_equal(bundled["image_id"], now["image_id"]):
            return None
        same += bool(np.array_equal(bundled["y_pred"], now["y_pred"]))
    return same
