"""`gan-aug compare`: every arm x seed with identical settings, then a report that holds up (docs/protocol.md).

Each arm x seed is one classifier run under DIR/runs/; a finished run leaves done.json and its
predictions, so a re-run skips it. The baseline for the headline is the non-generative arm with the best
mean *val* BMA (never chosen on test). Gains come with a paired bootstrap 95% CI: pair by seed, resample
test images within each seed, the same resample for both arms.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from classifier.config import ClassifierConfig
from classifier.evaluate import evaluate_checkpoint, external_set
from classifier.teachers import TeacherEnsemble
from classifier.train import train_classifier
from classifier.crossval import FOLD_MARK
from gan_aug.compare.arms import draws_synthetic, parse_arm, placebo_of, synthetic_set_name
from gan_aug.compare.config import parse_external
from gan_aug.compare.placebo import PLACEBOS
from gan_aug.compare.folds import fold_synthetic_sets, gan_runs, train_and_evaluate_folds
from gan_aug.compare.report import write_report
from gan_aug.compare.resume import (RecordedRun, check_finished, check_out_folder, matches, read_done, recipes,
                                    stale_syntheses, to_record, undone_on_failure)
from gan_aug.compare.summary import DATA_FACTS, PREDICTIONS, DataFacts, run_dir, summarize
from gan_aug.config import build_config, to_yaml
from gan_aug.data.prepared import load_prepared
from gan_aug.data.synthetic import MANIFEST, load_synthetic
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write, locked, remove_temp_files
from gan_aug.runtime import resolve_device
from gan_aug.synth.config import SynthConfig
from gan_aug.synth.sample import synthesize

BUNDLE_FOLDER = "bundle"  # where `bundle: true` writes the comparison's bundle, inside its --out


def run_arm(config, arm, seed, prepared, synthetics, externals, teachers, progress, recipe):
    """Train + evaluate one arm x seed unless its done.json records that `recipe` trained it; the done record."""
    directory = run_dir(config.out, arm, seed)
    with exclusive_run(directory):
        done = directory / "done.json"
        if done.is_file():
            record = read_done(done)
            if matches(directory, record, arm, recipe, externals):
                return record
            if not config.force:  # checked before the first run: another process finished it since, otherwise
                raise UserError(f"{directory} was trained otherwise than this config says: give another --out, or "
                                "--force to train it again")
            done.unlink()  # no record of the old recipe survives a kill while it trains again
        remove_temp_files(directory)  # a killed try's (its lock is ours: no one else writes here)
        record = _train_and_evaluate(config, arm, seed, directory, prepared, synthetics, externals, teachers,
                                     progress)
        record["recipe"] = to_record(recipe)  # what trained it, so a later compare reuses it only for this recipe
        with atomic_write(done, "w") as handle:
            json.dump(record, handle)
        return record


def exclusive_run(directory):
    """Hold a lock on one arm x seed while it trains. Two compare processes given overlapping arms and seeds
    in one --out would otherwise train into the same folder and mix their checkpoints (it happened). The lock
    file sits beside the run folder because training with force replaces what is inside it."""
    return locked(directory.with_name(directory.name + ".lock"),
                  busy_message=f"{directory} is being trained by another process: give this one other arms or "
                               "seeds, or wait for it")


def _train_and_evaluate(config, arm, seed, directory, prepared, synthetics, externals, teachers, progress):
    """Train one arm x seed into `directory`, evaluate its best checkpoint on every split; the record."""
    overrides = parse_arm(arm)
    distil = overrides.pop("distil", False)
    overrides.pop("placebo", None)  # not a classifier setting: the runner hands the placebo set over itself
    if distil:
        overrides["teachers"] = config.teachers
    flags = {"data": config.data, "out": str(directory), "seed": seed, "force": True, **config.classifier_flags(),
             **overrides, "folds": config.folds}
    if "mix" in overrides:
        flags["synthetic"] = config.synthetic_paths()[synthetic_set_name(arm)]
    clf_config = build_config(ClassifierConfig, None, flags)
    synthetic = synthetics[synthetic_key(arm)] if "mix" in overrides else None
    record: RecordedRun = {"arm": arm, "seed": seed, "splits": {}}  # best_epoch below, recipe by the caller

    splits = {"test": (prepared, "test"), **externals}

    def save(split_name, metrics, targets, probs):
        record["splits"][split_name] = metrics
        dataset, split = {"val": (prepared, "val"), **splits}[split_name]
        save_predictions(directory / PREDICTIONS.format(split=split_name), targets, probs,
                         dataset.image_id[dataset.indices(split)])

    if config.folds:  # one model per fold: val out of fold, the other splits by their ensemble
        record["best_epoch"] = train_and_evaluate_folds(clf_config, splits, prepared, synthetic,
                                                        teachers if distil else None, progress, config.device, save)
        return record
    summary = train_classifier(clf_config, progress=progress, prepared=prepared, synthetic=synthetic,
                               teachers=teachers if distil else None)
    record["best_epoch"] = summary["best_epoch"]
    for split_name, (dataset, split) in {"val": (prepared, "val"), **splits}.items():
        save(split_name, *evaluate_checkpoint(directory / "best.pt", dataset, split, directory / f"{split_name}.json",
                                              config.device))
    return record


def save_predictions(path, targets, probs, image_ids):
    """A run's per-image predictions on one split; the image ids let a later audit leave images out."""
    with atomic_write(path) as handle:
        np.savez(handle, y_true=targets, y_pred=probs.argmax(axis=1), probs=probs,
                 image_id=np.asarray(image_ids, dtype=str))


def load_synthetic_sets(config, prepared, progress, again=()):
    """Set name -> loaded synthetic set (with folds: the list of its folds' sets), for the sets the arms use.
    The default set ('') is the given `synthetic`, or one synthesized once from `gan_run` (with folds, one per
    fold from that fold's GAN; those in `again` are synthesized anew)."""
    paths, used = config.synthetic_paths(), {synthetic_set_name(a) for a in config.arms if draws_synthetic(a)}
    folds = range(config.folds) if config.folds else [None]
    for fold, gan_run in zip(folds, gan_runs(config.gan_run, len(folds)) if config.gan_run else []):
        out = paths[""].replace(FOLD_MARK, str(fold))
        if "" in used and not config.synthetic and (out in again or not (Path(out) / MANIFEST).is_file()):
            synthesize(build_config(SynthConfig, None, {
                "checkpoints": (gan_run,), "out": out, "n": config.synth_n, "truncation": config.synth_truncation,
                "distribution": config.synth_distribution, "force": True}), progress=progress)
    if config.folds:
        return fold_synthetic_sets(paths, sorted(used), prepared, config.folds)
    sets = {name: load_synthetic(paths[name]) for name in sorted(used)}
    for arm in config.arms:  # each placebo once, from the set its arm names
        if placebo_of(arm) and synthetic_key(arm) not in sets:
            name = synthetic_set_name(arm)
            context = {"gan_run": config.gan_run, "out": Path(config.out) / f"{placebo_of(arm)}_{name or 'synthetic'}"}
            sets[synthetic_key(arm)] = PLACEBOS[placebo_of(arm)](sets[name], prepared, context)
    return sets


def synthetic_key(arm):
    """Which loaded set an arm draws from: its synthetic set's name, or 'placebo@name' for a placebo."""
    name = synthetic_set_name(arm)
    return f"{placebo_of(arm)}@{name}" if placebo_of(arm) else name


def load_externals(entries, image_size, color_constancy="none"):
    """Name -> (the external set read at `image_size` and corrected with `color_constancy`, as prepare would
    resize and correct it, "test")."""
    externals = {}
    for entry in entries:
        name, source, root = parse_external(entry)
        if name in externals:
            raise UserError(f"two external sets are named {name}")
        externals[name] = (external_set(source, root, image_size, color_constancy=color_constancy), "test")
    return externals


def compare(config, progress=True):
    """Run (or resume) every arm x seed, then write results.csv, report.md, plots and TensorBoard hparams."""
    prepared = load_prepared(config.data)
    teachers = None
    if config.teachers:  # loaded once, so a bad teacher is refused before any run and each pool labelled once
        teachers = TeacherEnsemble(config.teachers, prepared.fingerprint, prepared.image_size,
                                   resolve_device(config.device))
    externals = load_externals(config.external, prepared.image_size, prepared.color_constancy)
    # Every input is checked before anything is written: the folder, the finished runs' recipes, the GAN runs.
    out = Path(config.out)
    check_out_folder(out, config.force)
    check_finished(config, recipes(config, prepared, None, teachers), externals, config.force, skip=("synthetic",))
    again = stale_syntheses(config, config.force)
    with undone_on_failure(out), locked(out / "config.lock"):  # shards started together all write it
        # one shard synthesizes, the others wait for it
        synthetics = load_synthetic_sets(config, prepared, progress, again)
        current = recipes(config, prepared, synthetics, teachers)
        check_finished(config, current, externals, config.force)  # now the synthetic sets' content too
        (out / "runs").mkdir(exist_ok=True)  # before config.yaml: the two mark a folder compare made
        remove_temp_files(out, ("config.yaml", DATA_FACTS))  # of a killed compare: no one else writes them now
        with atomic_write(out / "config.yaml", "w") as handle:
            handle.write(to_yaml(dataclasses.replace(config, shard="1/1", force=False)))
        DataFacts.of(prepared).write(out / DATA_FACTS)
    k, n = config.shard_index()
    runs = [(a, s) for a in config.run_arms() for s in config.seeds][k - 1::n]
    for i, (arm, seed) in enumerate(runs):
        if progress:
            print(f"[{i + 1}/{len(runs)}{f' of shard {k}/{n}' if n > 1 else ''}] arm {arm}, seed {seed}", flush=True)
        run_arm(config, arm, seed, prepared, synthetics, externals, teachers, progress, current[arm])
    summary = report_finished(config, prepared, externals, current)
    if config.bundle and summary is not None and not summary["unfinished_seeds"]:
        from gan_aug.compare.bundle import write_bundle

        with locked(out / "bundle.lock"):  # the last two shards to finish may both get here
            write_bundle(out, out / BUNDLE_FOLDER, force=True, progress=progress)
    return summary


def report_finished(config, prepared, externals, current):
    """The report over the seeds every arm has finished (other shards may still be running); None when no
    seed is complete yet. Paired gains need every arm on the same seeds, so a half-done seed waits. A run that
    another recipe trained (a shard given another config, or one --force has yet to train again) is not one."""
    records = {}
    for arm in config.run_arms():
        for seed in config.seeds:
            done = run_dir(config.out, arm, seed) / "done.json"
            if done.is_file():
                record = read_done(done)
                if matches(done.parent, record, arm, current[arm], externals):
                    records[(arm, seed)] = record
    seeds = tuple(s for s in config.seeds if all((a, s) in records for a in config.run_arms()))
    if not seeds:
        print(f"no seed finished by every arm yet ({len(records)} of {len(config.run_arms()) * len(config.seeds)} "
              "runs done): the report waits for the other shards", flush=True)
        return None
    finished = dataclasses.replace(config, seeds=seeds)
    missing = [f"{a} seed {s}" for a in config.run_arms() for s in config.seeds if s not in seeds]
    splits = ["test"] + list(externals)
    n_classes = {s: len(records[(config.arms[0], seeds[0])]["splits"][s]["class_names"]) for s in splits}
    facts = DataFacts.of(prepared)
    summary = summarize(finished, {key: records[key] for key in records if key[1] in seeds}, splits, n_classes,
                        train_prior=facts.train_counts)
    summary["unfinished_seeds"] = [s for s in config.seeds if s not in seeds]
    with locked(Path(config.out) / "report.lock"):  # two shards finishing at once write one report each in turn
        remove_temp_files(config.out, ("results.csv",))
        write_report(finished, facts, {key: records[key] for key in records if key[1] in seeds},
                     summary, splits)
    if missing and len(missing) < 20:
        print(f"not yet in the report: {', '.join(missing)}", flush=True)
    return summary


