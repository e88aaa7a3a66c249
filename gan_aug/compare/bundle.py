"""Result bundles: what stands behind a comparison's numbers, small enough to publish, so that anyone can
re-score its runs on new data without training (`gan-aug bundle`, `gan-aug rescore`).

A bundle holds, per finished arm x seed, the best weights (model state and model_args only), the run's
resolved config, its done record and its per-image predictions; beside them the compare config, its report
and results.csv, and the prepared set's facts (fingerprint, classes, image size, train counts). Nothing in
it holds images. MANIFEST.json lists every file with its sha256 and size; a bundle whose files do not match
it is refused, so a re-score runs the weights that were published.
"""

import csv
import dataclasses
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
from pathlib import Path, PurePosixPath

import numpy as np

from classifier.checkpoint import FORMAT as CLASSIFIER_FORMAT, inference_state
from gan_aug.compare.config import CompareConfig
from gan_aug.compare.summary import DATA_FACTS, PREDICTIONS, DataFacts, run_dir
from gan_aug.config import build_config, to_yaml
from gan_aug.errors import UserError, first_line
from gan_aug.fileio import SCRATCH_MARKER, atomic_folder, load_checkpoint_file, save_torch

BUNDLE_FORMAT = "gan-aug/bundle/1"
MANIFEST = "MANIFEST.json"
COMPARE_CONFIG = "compare.yaml"
# A publisher's notes beside the manifest (license, attribution); not hashed, never read by gan-aug.
PUBLISHER_FILES = ("README.md", "LICENSE")
BUNDLED_PREDICTIONS = "{split}_predictions.csv.gz"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_compare_config(path):
    config = build_config(CompareConfig, path)
    return dataclasses.replace(config, shard="1/1")


def _data_facts(results_dir, config):
    """The prepared set's facts: compare's data.json, or (a comparison older than it) the prepared set itself."""
    facts_file = Path(results_dir) / DATA_FACTS
    if facts_file.is_file():
        try:
            return DataFacts.from_dict(json.loads(facts_file.read_text()))
        except (ValueError, KeyError, TypeError) as err:
            raise UserError(f"{facts_file} is damaged ({first_line(err)})") from None
    if not Path(config.data).is_file():
        raise UserError(f"{results_dir} has no {DATA_FACTS} and its prepared set {config.data} is not here: "
                        "re-run compare there once (it writes the file) or give the set at that path")
    from gan_aug.data.prepared import load_prepared

    return DataFacts.of(load_prepared(config.data))


def _predictions_csv(npz_path, class_names):
    """A run's npz predictions as gzipped CSV text: image_id, y_true, y_pred, then one probability per output."""
    with np.load(npz_path) as saved:
        probs, y_true, y_pred = saved["probs"], saved["y_true"], saved["y_pred"]
        ids = saved["image_id"] if "image_id" in saved.files else np.full(len(y_true), "")
    names = class_names if len(class_names) == probs.shape[1] else [f"output_{i}" for i in range(probs.shape[1])]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["image_id", "y_true", "y_pred", *names])
    for row in zip(ids, y_true, y_pred, probs):
        writer.writerow([row[0], int(row[1]), int(row[2]), *(f"{p:.8g}" for p in row[3])])
    return gzip.compress(text.getvalue().encode(), mtime=0)  # mtime 0: the same runs give the same bytes


def read_bundled_predictions(path):
    """A bundled predictions file as the dict compare's npz holds (y_true, y_pred, probs, image_id)."""
    rows = list(csv.reader(io.StringIO(gzip.decompress(Path(path).read_bytes()).decode())))[1:]
    return {"image_id": np.array([r[0] for r in rows], dtype=str),
            "y_true": np.array([int(r[1]) for r in rows], dtype=np.int64),
            "y_pred": np.array([int(r[2]) for r in rows], dtype=np.int64),
            "probs": np.array([[float(p) for p in r[3:]] for r in rows], dtype=np.float32)}


def write_bundle(results_dir, out, force=False, external_predictions=True, progress=True):
    """Bundle the finished runs of the comparison in `results_dir` into the folder `out`; its manifest."""
    results_dir, out = Path(results_dir), Path(out)
    config_file = results_dir / "config.yaml"
    if not config_file.is_file():
        raise UserError(f"{results_dir} is not a compare folder (no config.yaml)")
    if out.resolve() in (results_dir.resolve(), *results_dir.resolve().parents):
        raise UserError(f"--out {out} would replace the comparison it bundles: give a new folder")
    if (out.exists() or out.is_symlink()) and not force:
        raise UserError(f"{out} already exists (use --force to replace it)")
    config = _read_compare_config(config_file)
    facts = _data_facts(results_dir, config)
    finished = [(a, s) for a in config.run_arms() for s in config.seeds
                if (run_dir(results_dir, a, s) / "done.json").is_file()]
    if not finished:
        raise UserError(f"{results_dir} has no finished run to bundle")
    splits = ["val", "test"] + ([entry.partition("=")[0] for entry in config.external] if external_predictions else [])
    with atomic_folder(out) as staging:
        for i, (arm, seed) in enumerate(finished):
            if progress:
                print(f"[{i + 1}/{len(finished)}] bundling {arm}, seed {seed}", flush=True)
            source, target = run_dir(results_dir, arm, seed), run_dir(staging, arm, seed)
            target.mkdir(parents=True)
            state = load_checkpoint_file(source / "best.pt", CLASSIFIER_FORMAT, "classifier")
            if state["data"]["fingerprint"] != facts.fingerprint:
                raise UserError(f"{source} trained on another prepared set than the comparison's "
                                f"({state['data']['fingerprint'][:12]}, not {facts.fingerprint[:12]})")
            save_torch(inference_state(state), target / "best.pt")
            for name in ("done.json", "config.yaml"):
                if (source / name).is_file():
                    shutil.copyfile(source / name, target / name)
            for split in splits:
                saved = source / PREDICTIONS.format(split=split)
                if not saved.is_file():
                    raise UserError(f"{saved} is missing: that run is not finished")
                (target / BUNDLED_PREDICTIONS.format(split=split)).write_bytes(
                    _predictions_csv(saved, list(facts.class_names)))
        (staging / COMPARE_CONFIG).write_text(to_yaml(config))
        for name in ("report.md", "results.csv"):
            if (results_dir / name).is_file():
                shutil.copyfile(results_dir / name, staging / name)
        manifest = {"format": BUNDLE_FORMAT, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                        timespec="seconds"),
                    "data": facts.to_dict(),
                    "runs": [{"arm": a, "seed": s, "dir": run_dir("", a, s).as_posix()} for a, s in finished],
                    "splits": splits, "files": _inventory(staging)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _inventory(folder):
    """Relative POSIX path -> {sha256, size} of every file under `folder`."""
    files = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in (MANIFEST, SCRATCH_MARKER)):
        files[path.relative_to(folder).as_posix()] = {"sha256": _sha256(path), "size": path.stat().st_size}
    return files


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder, the compare config, the prepared set's facts, run folders by (arm, seed)."""

    path: Path
    config: CompareConfig
    facts: DataFacts
    runs: dict
    splits: tuple

    def record(self, arm, seed):
        return json.loads((self.runs[(arm, seed)] / "done.json").read_text())

    def predictions(self, arm, seed, split):
        return read_bundled_predictions(self.runs[(arm, seed)] / BUNDLED_PREDICTIONS.format(split=split))


def read_bundle(folder):
    """The bundle in `folder`, checked file by file against its manifest; one-line refusals."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise UserError(f"{folder} is not a gan-aug bundle (no {MANIFEST})")
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files, runs = dict(manifest["files"]), list(manifest["runs"])
        if manifest["format"] != BUNDLE_FORMAT:
            raise ValueError(f"format {manifest['format']!r}, not {BUNDLE_FORMAT}")
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{folder / MANIFEST} is damaged ({first_line(err)})") from None
    _check_files(folder, files)
    config = _read_compare_config(folder / COMPARE_CONFIG)
    run_dirs = {}
    for run in runs:
        directory = run.get("dir", "") if isinstance(run, dict) else ""
        if not (isinstance(directory, str) and f"{directory}/best.pt" in files and f"{directory}/done.json" in files):
            raise UserError(f"{folder / MANIFEST} names a run that the bundle does not hold: {run!r}")
        run_dirs[(run.get("arm"), run.get("seed"))] = folder / directory
    try:
        facts = DataFacts.from_dict(manifest["data"])
        splits = tuple(manifest["splits"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{folder / MANIFEST} is damaged ({first_line(err)})") from None
    return Bundle(folder, config, facts, run_dirs, splits)


def _check_files(folder, files):
    """Refuse a bundle whose files differ from its manifest: a file changed, missing or added, a link, or a
    listed path that leaves the folder."""
    for name, entry in files.items():
        parts = PurePosixPath(name).parts
        if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name:
            raise UserError(f"{folder / MANIFEST} lists a path outside the bundle: {name}")
        path = folder.joinpath(*parts)
        if path.is_symlink() or not path.is_file():
            raise UserError(f"{path} is {'a link' if path.is_symlink() else 'missing'}: the bundle does not match "
                            f"its manifest")
        if not isinstance(entry, dict) or path.stat().st_size != entry.get("size") or _sha256(path) != entry.get(
                "sha256"):
            raise UserError(f"{path} does not match the bundle's manifest (changed since it was bundled)")
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(root) / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise UserError(f"{path} is a link: a bundle holds plain files only")
            if path.is_file() and relative not in files and relative not in (MANIFEST, *PUBLISHER_FILES):
                raise UserError(f"{path} is not in the bundle's manifest (added since it was bundled)")
