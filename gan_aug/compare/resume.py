"""What lets `gan-aug compare` resume honestly (issue #39).

A finished arm x seed is reused only when it was trained by what the config asks for now: each done.json records
its recipe (the shared classifier settings, the prepared set's fingerprint, the folds, and the content of the
synthetic set and teachers the arm used), and a resumed compare refuses, naming the keys that differ, unless
--force trains those runs again. A run finished before runs recorded this is judged by its own config.yaml and
best.pt, which train-classifier wrote. The report, config.yaml and data.json then describe the runs they sit
beside; a folder that compare did not make is not written over without --force; and a compare stopped by a bad
input before its first run leaves nothing behind.
"""

import contextlib
import json
import os
import typing
from pathlib import Path

import numpy as np
import yaml

from classifier.checkpoint import FORMAT as CLASSIFIER_FORMAT
from classifier.crossval import FOLD_MARK
from classifier.metrics import Metrics
from gan_aug.compare.arms import parse_arm, split_distill, synthetic_set_name
from gan_aug.compare.config import RECIPE_KEYS
from gan_aug.compare.summary import DATA_FACTS, load_predictions, run_dir
from gan_aug.config import brief
from gan_aug.data.prepared import fingerprint
from gan_aug.data.synthetic import MANIFEST, PROVENANCE, read_json, sha256_file
from gan_aug.errors import UserError, first_line
from gan_aug.fileio import load_checkpoint_file

# How a run ran, not what it learnt: a comparison may be resumed on another machine or with other threads.
NOT_RECIPE = ("device", "threads")
# What compare writes at the top of its folder; a folder that holds one of them without being compare's keeps it.
OUTPUTS = ("config.yaml", DATA_FACTS, "results.csv", "report.md")


class RunRecord(typing.TypedDict):
    """done.json: one finished arm x seed, what compare's report, bundle, rescore and a resumed compare read."""
    arm: str
    seed: int
    splits: typing.Dict[str, Metrics]  # val, test and each external set
    best_epoch: int  # of its best.pt (with folds: the folds' mean)


class RecordedRun(RunRecord, total=False):
    recipe: dict  # what trained it (resume.recipes), absent in runs that predate the record


RECORD_KEYS = tuple(RunRecord.__annotations__)
SPLIT_KEYS = tuple(k for k in Metrics.__annotations__ if k != "n")  # records older than `n` lack it


def draws(arm):
    """Whether an arm draws images from a synthetic set (a placebo's is made from the set the arm names)."""
    return "mix" in parse_arm(arm)


def is_compare_folder(out):
    """A folder compare made: its config.yaml beside runs/ (compare makes runs/ before it writes config.yaml)."""
    return (Path(out) / "config.yaml").is_file() and (Path(out) / "runs").is_dir()


def check_out_folder(out, force):
    """Refuse to write over a report.md, results.csv, config.yaml or data.json in a folder compare did not make."""
    out = Path(out)
    if not out.is_dir() or is_compare_folder(out):
        return
    theirs = [name for name in OUTPUTS if (out / name).exists() or (out / name).is_symlink()]
    if theirs and not force:
        raise UserError(f"{out} is not a compare folder (no runs/ beside a config.yaml) but holds "
                        f"{', '.join(theirs)}: give another --out, or --force to write over them")


@contextlib.contextmanager
def undone_on_failure(out):
    """Make `out`; if anything fails inside, remove what this made and nothing else: the folders it created,
    its config.lock and an empty runs/ (a shard beside it may have filled them: those stay)."""
    out = Path(out)
    created = [p for p in (out, *out.parents) if not p.exists() and not p.is_symlink()]
    before = set(os.listdir(out)) if out.is_dir() else set()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for name, remove in (("config.lock", Path.unlink), ("runs", Path.rmdir)):
            if name not in before:
                with contextlib.suppress(OSError):
                    remove(out / name)
        with contextlib.suppress(OSError):
            for folder in created:  # deepest first; one that is not empty stops it
                folder.rmdir()
        raise


def set_digest(synthetic):
    """The identity of a loaded synthetic set (with folds: a list of them), by its images and labels."""
    if isinstance(synthetic, list):
        return [set_digest(s) for s in synthetic]
    return fingerprint(synthetic[0], synthetic[1], np.full(len(synthetic[1]), "train"))


def recipes(config, prepared, synthetics=None, teachers=None):
    """Arm -> what trains it: done.json's `recipe`. Without `synthetics` (not loaded yet), no `synthetic` key.
    `synthetic_path`/`teacher_paths` are only compared with runs that predate the record (see stored_recipe)."""
    shared = {k: v for k, v in config.classifier_flags().items() if k not in NOT_RECIPE}
    shared.update(data=prepared.fingerprint, folds=config.folds)
    teacher_digests = [sha256_file(p) for p in teachers.paths] if teachers is not None else []
    result = {}
    for arm in config.run_arms():
        recipe = dict(shared)
        if draws(arm):
            name = synthetic_set_name(arm)
            recipe["synthetic_path"] = config.synthetic_paths()[name]
            if synthetics is not None and name in synthetics:
                recipe["synthetic"] = set_digest(synthetics[name])
        if split_distill(arm)[1]:
            recipe.update(teachers=teacher_digests, teacher_paths=list(config.teachers))
        result[arm] = json.loads(json.dumps(recipe))  # as done.json gives it back: lists, not tuples
    return result


def to_record(recipe):
    return {k: v for k, v in recipe.items() if not k.endswith("_path") and not k.endswith("_paths")}


def read_done(path) -> RecordedRun:
    """The record of a finished arm x seed; written atomically, so one that does not load was damaged since."""
    def damaged(why):
        return UserError(f"{path} is damaged ({why}): delete it to run that arm x seed again")
    try:
        record = json.loads(Path(path).read_bytes())
    except ValueError as err:
        raise damaged(first_line(err)) from None
    if not isinstance(record, dict) or any(k not in record for k in RECORD_KEYS):
        raise damaged(f"not a run's record: it needs {', '.join(RECORD_KEYS)}")
    splits = record["splits"]
    if not isinstance(splits, dict) or "val" not in splits or "test" not in splits or any(
            not isinstance(m, dict) or any(k not in m for k in SPLIT_KEYS) for m in splits.values()):
        raise damaged("its splits lack val, test or their metrics")
    return record


def stored_recipe(directory, record, arm):
    """What trained a finished run: its record's, or for a run that predates the record, what its own config.yaml
    and best.pt say (the data by its fingerprint, the synthetic set and teachers by their paths)."""
    if "recipe" in record:
        return record["recipe"]
    try:
        settings = yaml.safe_load((directory / "config.yaml").read_text())
        best = directory / "best.pt" if (directory / "best.pt").is_file() else directory / "fold_0" / "best.pt"
        data = load_checkpoint_file(best, CLASSIFIER_FORMAT, "classifier")["data"]["fingerprint"]
        recipe = {k: settings[k] for k in RECIPE_KEYS if k not in NOT_RECIPE and k in settings}
    except (OSError, ValueError, KeyError, TypeError, UserError, yaml.YAMLError) as err:
        raise UserError(f"cannot tell what trained {directory} ({first_line(err)}): delete its done.json to "
                        "train it again") from None
    recipe.update(data=data, folds=settings.get("folds", 0))
    if draws(arm):
        recipe["synthetic_path"] = settings.get("synthetic")
    if split_distill(arm)[1]:
        recipe["teacher_paths"] = settings.get("teachers")
    return recipe


def differences(stored, current):
    """The keys whose recorded value is not the config's (a key the record lacks is not held against it)."""
    return [k for k in stored if k in current and stored[k] != current[k]]


def show(key, value):
    if key in ("data", "synthetic", "teachers"):  # digests: their start tells them apart
        value = [v[:12] for v in value] if isinstance(value, list) else str(value)[:12]
    return f"{key} {brief(value)}"


def check_finished(config, current, externals, force, skip=()):
    """Refuse to reuse a finished run that another recipe trained (without --force, which trains it again), or
    one whose predictions no longer load; checked before anything is written. `skip`: keys not known yet."""
    current = {arm: {k: v for k, v in r.items() if k not in skip} for arm, r in current.items()}
    stale, example = [], None
    for arm in config.run_arms():
        for seed in config.seeds:
            directory = run_dir(config.out, arm, seed)
            if not (directory / "done.json").is_file():
                continue
            record = read_done(directory / "done.json")
            stored = stored_recipe(directory, record, arm)
            keys = differences(stored, current[arm])
            keys += [f"external {name}" for name in externals if name not in record["splits"]]
            if keys:
                stale.append(keys)
                example = example or (directory, keys, stored, current[arm])
            else:
                for split in record["splits"]:
                    load_predictions(config.out, arm, seed, split)
    if stale and not force:
        directory, keys, stored, now = example
        differ = sorted({k for keys in stale for k in keys})
        verb = "differs" if len(differ) == 1 else "differ"
        shown = [f"{show(k, stored[k])} (config: {show(k, now[k])})" for k in keys if k in stored][:3]
        raise UserError(f"{len(stale)} finished run(s) in {Path(config.out) / 'runs'} were trained otherwise than "
                        f"this config says: {', '.join(differ)} {verb} (e.g. {directory.name}: "
                        f"{'; '.join(shown) or 'no predictions on it'}): restore the config, give another --out, "
                        "or --force to train them again")


def matches(directory, record, arm, current, externals):
    """Whether a finished run may stand in the report of this config."""
    try:
        stored = stored_recipe(directory, record, arm)
    except UserError:
        return False
    return not differences(stored, current) and all(name in record["splits"] for name in externals)


def stale_syntheses(config, force):
    """The folders (OUT/synthetic, with folds one per fold) that compare synthesized from another gan_run or with
    other synth_* settings than the config's: refused without --force, synthesized again with it. A gan_run
    that is not there is refused here, before anything is written."""
    from gan_aug.compare.folds import gan_runs
    from gan_aug.gan.checkpoint import resolve_checkpoint

    if not config.gan_run or config.synthetic or "" not in {synthetic_set_name(a) for a in config.run_arms()
                                                           if draws(a)}:
        return set()
    folds = range(config.folds) if config.folds else [None]
    checkpoints = [resolve_checkpoint(run) for run in gan_runs(config.gan_run, len(folds))]
    stale = {}
    for fold, checkpoint in zip(folds, checkpoints):
        out = config.synthetic_paths()[""].replace(FOLD_MARK, str(fold))  # as load_synthetic_sets names it
        if not (Path(out) / MANIFEST).is_file():
            continue
        provenance_file = Path(out) / PROVENANCE
        provenance = read_json(provenance_file, provenance_file.read_bytes()) if provenance_file.is_file() else {}
        made = {"gan_run": (provenance.get("gans") or [{}])[0].get("sha256"),
                "synth_truncation": provenance.get("truncation"),
                "synth_distribution": provenance.get("distribution")}
        wanted = {"gan_run": sha256_file(checkpoint), "synth_truncation": config.synth_truncation,
                  "synth_distribution": config.synth_distribution}
        if config.synth_distribution in ("balance", "uniform"):  # these give synth_n images in all
            counts = provenance.get("counts")
            made["synth_n"] = sum(counts.values()) if isinstance(counts, dict) else None
            wanted["synth_n"] = config.synth_n
        keys = [k for k in wanted if made[k] != wanted[k]]
        if keys:
            stale[out] = keys
    if stale and not force:
        out, keys = next(iter(stale.items()))
        raise UserError(f"{out} was synthesized otherwise than this config says ({', '.join(keys)} "
                        f"{'differs' if len(keys) == 1 else 'differ'}): "
                        "restore the config, give another --out, or --force to synthesize it again and train "
                        "the arms that mix it again")
    return set(stale)
