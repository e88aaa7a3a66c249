"""The commands of tools/crash_trials.py: each one's tiny arguments, what a kill may leave of its files (every
one must load), how much work a checkpoint holds, and its final state, compared with an uninterrupted run's."""

import csv
import hashlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.checkpoint import FORMAT as CLASSIFIER_FORMAT  # noqa: E402
from gan_aug.compare.runner import read_done  # noqa: E402
from gan_aug.data.synthetic import load_synthetic  # noqa: E402
from gan_aug.fileio import load_checkpoint_file  # noqa: E402
from gan_aug.gan.checkpoint import load_checkpoint, resume_file  # noqa: E402

TINY_GAN = {"batch_size": 16, "z_dim": 16, "g_channels": 8, "d_channels": 8, "grid_columns": 2, "threads": 1,
            "device": "cpu"}


class Torn(Exception):
    """A file a kill left behind that does not load."""


def digest(value, out):
    """sha256 of a checkpoint's content (tensors by their bytes) with the run's own folder written as OUT."""
    h = hashlib.sha256()

    def feed(x):
        if isinstance(x, torch.Tensor):
            h.update(str((x.dtype, tuple(x.shape))).encode() + x.detach().cpu().contiguous().view(-1).numpy().tobytes())
        elif isinstance(x, dict):
            for key in sorted(x, key=str):
                h.update(str(key).encode())
                feed(x[key])
        elif isinstance(x, (list, tuple)):
            for item in x:
                feed(item)
        else:
            h.update(repr(x).replace(str(out), "OUT").encode())
    feed(value)
    return h.hexdigest()


def file_digest(path, out):
    return hashlib.sha256(Path(path).read_bytes().replace(str(out).encode(), b"OUT")).hexdigest()


def jsonl_steps(path):
    """The step of every row of a stats file; Torn for a row that is not whole."""
    if not path.is_file():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        raise Torn(f"{path.name} ends in a cut row")
    try:
        return [json.loads(line)["step"] for line in text.splitlines()]
    except ValueError as err:
        raise Torn(f"{path.name}: {err}") from None


def check_yaml(path):
    if path.is_file():
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise Torn(f"{path.name}: {err}") from None


def check_pngs(folder):
    for png in sorted(Path(folder).glob("*.png")):
        try:
            with Image.open(png) as image:
                image.load()
        except OSError as err:
            raise Torn(f"{png.name}: {err}") from None


def loads(what, load):
    try:
        return load()
    except Exception as err:  # anything that does not load is torn, whatever the loader raises
        raise Torn(f"{what}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


class Command:
    """One command of the trials: its arguments, what a kill may leave, and its final state."""
    name = unit = ""
    interval = 1

    def __init__(self, inputs):
        self.inputs = inputs

    def setup(self, out):
        """What is in place before the command runs."""

    def rerun(self, out, rng):
        return self.args(out)

    def inspect(self, out):
        """(units done, units a checkpoint holds) after a kill; Torn when a file left behind does not load."""
        raise NotImplementedError

    def final(self, out):
        raise NotImplementedError

    def steps(self, out):
        return []


class Trainer(Command):
    def rerun(self, out, rng):
        # The command a user types again. A folder killed before its first checkpoint starts over either way:
        # with --resume or without it (half the trials each).
        if not out.exists() or (not self.has_checkpoint(out) and rng.random() < 0.5):
            return self.args(out)
        return self.args(out) + ["--resume"]


class TrainGan(Trainer):
    name, unit, interval = "train-gan", "steps", 2  # ckpt_every 0.032 kimg of 16-image steps

    def args(self, out):
        sets = {**TINY_GAN, "ckpt_every": 0.032, "snapshot_every": 0.016}
        return ["train-gan", "--data", self.inputs["data"], "--out", out, "--kimg", 0.16,
                *sum((["--set", f"{k}={v}"] for k, v in sets.items()), [])]

    def has_checkpoint(self, out):
        return resume_file(out).is_file()

    def inspect(self, out):
        for path in sorted(out.glob("*.pt")) + sorted(out.glob("checkpoints/*.pt")):
            loads(path.name, lambda: load_checkpoint(path))
        check_yaml(out / "config.yaml")
        check_pngs(out / "samples")
        done = max(jsonl_steps(out / "stats.jsonl"), default=0)
        ckpt = load_checkpoint(resume_file(out))["step"] if self.has_checkpoint(out) else 0
        return done, ckpt

    def final(self, out):
        state = load_checkpoint(out / "latest.pt")
        keys = ("G", "D", "G_ema", "opt_G", "opt_D", "ada", "step", "images_seen", "rng", "best_fd")
        return {"latest.pt": digest({k: state[k] for k in keys}, out),
                **{f"samples/{p.name}": file_digest(p, out) for p in sorted((out / "samples").glob("*.png"))}}

    def steps(self, out):
        return jsonl_steps(out / "stats.jsonl")


class TrainClassifier(Trainer):
    name, unit = "train-classifier", "epochs"
    KEYS = ("model", "training_model", "optimizer", "scheduler", "sampler_rng", "epoch", "best", "history")

    def args(self, out):
        return ["train-classifier", "--data", self.inputs["data"], "--out", out, "--epochs", 4, "--device", "cpu",
                "--set", "threads=1"]

    def has_checkpoint(self, out):
        return (out / "latest.pt").is_file()

    def load(self, path):
        return loads(path.name, lambda: load_checkpoint_file(path, CLASSIFIER_FORMAT, "classifier"))

    def inspect(self, out):
        states = {path.name: self.load(path) for path in sorted(out.glob("*.pt"))}
        check_yaml(out / "config.yaml")
        done = max(jsonl_steps(out / "history.jsonl"), default=0)
        return done, states["latest.pt"]["epoch"] if "latest.pt" in states else 0

    def final(self, out):
        return {name: digest({k: v for k, v in self.load(out / name).items() if k in self.KEYS}, out)
                for name in ("latest.pt", "best.pt")}

    def steps(self, out):
        return jsonl_steps(out / "history.jsonl")


def set_digest(folder, out):
    return {p.relative_to(folder).as_posix(): file_digest(p, out) for p in sorted(Path(folder).rglob("*"))
            if p.is_file()}


class Synthesize(Command):
    """Replaces an older set (--force): a kill must leave the old set or the new one, whole."""
    name, unit, old = "synthesize", "runs", "old_set"

    def args(self, out):
        return ["synthesize", "--checkpoint", self.inputs["gan"], "-n", 70, "--distribution", "uniform", "--seed", 1,
                "--out", out, "--force", "--set", "threads=1", "--device", "cpu"]

    def setup(self, out):
        shutil.copytree(self.inputs[self.old], out)

    def inspect(self, out):
        if out.exists():
            loads(out.name, lambda: load_synthetic(out))
            if set_digest(out, out) not in (set_digest(self.inputs[self.old], out), self.inputs["reference"]):
                raise Torn(f"{out.name} is neither the old set nor the new one")
        return 1, int(out.exists() and set_digest(out, out) == self.inputs["reference"])  # one run, done or not

    def final(self, out):
        return set_digest(out, out)


class ImportSynthetic(Synthesize):
    """Another generator's images imported over an older import (--force): the old set or the new one, whole."""
    name, old = "import-synthetic", "old_import"

    def args(self, out):
        return ["import-synthetic", self.inputs["generated"], "--data", self.inputs["data"], "--receipt",
                self.inputs["receipt"], "--generator", "stub-gan", "--out", out, "--force"]


class Export(Command):
    """The train split as a StyleGAN2-ADA zip over an older export of the val split (--force), in the folder OUT.
    After a kill the zip is whole (old or new), and a receipt, when there is one, describes the zip beside it."""
    name, unit = "export", "runs"
    ZIP, RECEIPT = "train.zip", "train.receipt.json"

    def args(self, out):
        return ["export", "--data", self.inputs["data"], "--format", "stylegan2-ada", "--out", out / self.ZIP,
                "--force"]

    def setup(self, out):
        shutil.copytree(self.inputs["old_export"], out)

    def inspect(self, out):
        data, receipt_file = out / self.ZIP, out / self.RECEIPT
        if data.exists():
            loads(self.ZIP, lambda: check_zip(data))
        if receipt_file.exists():
            receipt = loads(self.RECEIPT, lambda: json.loads(receipt_file.read_text()))
            if not data.exists() or receipt.get("sha256") != hashlib.sha256(data.read_bytes()).hexdigest():
                raise Torn(f"{self.RECEIPT} describes data that is not beside it")
        old = set_digest(self.inputs["old_export"], out)
        state = self.final(out)
        if state.get(self.ZIP) not in (old[self.ZIP], self.inputs["reference"][self.ZIP]):
            raise Torn(f"{self.ZIP} is neither the old export nor the new one")
        return 1, int(state == self.inputs["reference"])  # one run, done or not

    def final(self, out):
        return {name: file_digest(out / name, out) for name in (self.ZIP, self.RECEIPT) if (out / name).is_file()}


def check_zip(path):
    """Every PNG of a dataset zip decodes and its dataset.json lists them all."""
    import io
    import zipfile

    with zipfile.ZipFile(path) as archive:
        labels = json.loads(archive.read("dataset.json"))["labels"]
        for name, _ in labels:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                image.load()


class Compare(Command):
    name, unit = "compare", "arm x seed runs"

    def args(self, out):
        config = {"data": str(self.inputs["data"]), "arms": ["none", "mix:0.3"], "seeds": [0, 1], "epochs": 2,
                  "gan_run": str(self.inputs["gan"]), "synth_n": 70, "threads": 1, "device": "cpu", "bootstrap": 100}
        path = out.parent / "compare.yaml"
        path.write_text(yaml.safe_dump(config))
        return ["compare", "--config", path, "--out", out]

    def inspect(self, out):
        runs = sorted(p for p in (out / "runs").glob("*") if p.is_dir()) if out.exists() else []
        finished = 0
        for run in runs:
            for path in run.glob("*.pt"):
                loads(f"{run.name}/{path.name}", lambda: load_checkpoint_file(path, CLASSIFIER_FORMAT, "classifier"))
            for path in run.glob("*.npz"):
                loads(f"{run.name}/{path.name}", lambda: np.load(path).files)
            if (run / "done.json").is_file():
                loads(f"{run.name}/done.json", lambda: read_done(run / "done.json"))
                finished += 1
        if (out / "synthetic" / "manifest.csv").is_file():
            loads("synthetic", lambda: load_synthetic(out / "synthetic"))
        check_yaml(out / "config.yaml") if out.exists() else None
        started = finished + sum(1 for run in runs if not (run / "done.json").is_file() and any(run.iterdir()))
        return started, finished

    def final(self, out):
        kept = [p for p in sorted(out.rglob("*")) if p.is_file() and p.suffix in (".json", ".npz", ".csv")
                and "tb" not in p.relative_to(out).parts]
        return {**{p.relative_to(out).as_posix(): file_digest(p, out) for p in kept},
                **set_digest(out / "synthetic", out)}


class Tune(Command):
    """A study of five trials (two epochs each, never pruned). A kill costs at most the trial it interrupts: the
    next tune fails that trial at once (its process is gone) and runs its parameters again. The study then ends
    with its five trials finished, none left running or waiting, every failed trial retried, trials.csv and
    best.yaml saying what the study holds, and every value equal to the uninterrupted run's where the
    parameters are the same (a kill changes which parameters later trials draw, not what a trial gives)."""
    name, unit = "tune", "trials"
    TRIALS = 5

    def __init__(self, inputs):
        super().__init__(inputs)
        self.reference_values = None

    def args(self, out):
        config = {"data": str(self.inputs["data"]), "startup_trials": 2, "warmup_epochs": 5,
                  "space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "balance": ["none", "oversample"]},
                  "recipe": {"epochs": 2, "batch_size": 32, "threads": 1, "device": "cpu"}}
        path = out.parent / "tune.yaml"
        path.write_text(yaml.safe_dump(config))
        return ["tune", "--config", path, "--out", out, "--trials", self.TRIALS]

    def trials(self, out):
        """The study's trials; none before tune has made its tables. Torn when the database does not load."""
        import sqlite3

        import optuna

        database = out / "study.db"
        if not database.is_file():
            return []

        def tables():
            with sqlite3.connect(database) as connection:  # a killed writer's journal is rolled back here
                if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise ValueError("PRAGMA quick_check fails")
                return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}

        if "trials" not in loads("study.db", tables):
            return []
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return loads("study.db", lambda: optuna.load_study(study_name="gan-aug-tune",
                                                           storage=f"sqlite:///{database}").trials)

    def inspect(self, out):
        from optuna.trial import TrialState

        trials = self.trials(out)
        for path in sorted(out.glob("trials/*/*.pt")):
            loads(f"{path.parent.name}/{path.name}", lambda: load_checkpoint_file(path, CLASSIFIER_FORMAT,
                                                                                  "classifier"))
        for name in ("best.yaml", "best_compare.yaml"):
            check_yaml(out / name)
        if (out / "trials.csv").is_file():
            loads("trials.csv", lambda: list(csv.DictReader(io.StringIO((out / "trials.csv").read_text()))))
        check_pngs(out)
        finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        return finished + sum(t.state == TrialState.RUNNING for t in trials), finished

    def final(self, out):
        from optuna.trial import TrialState

        trials = self.trials(out)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        values = {tuple(sorted(t.params.items())): t.value for t in finished}
        self.reference_values = self.reference_values or values  # the uninterrupted run's come first
        retried = {t.system_attrs.get("failed_trial") for t in trials}
        failed = [t.number for t in trials if t.state == TrialState.FAIL]
        table = csv.DictReader(io.StringIO((out / "trials.csv").read_text()))
        rows = [(row["number"], row["state"]) for row in table]
        best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value, default=None)
        settings = yaml.safe_load((out / "best.yaml").read_text()) if best else {}
        return {"finished trials": len(finished),
                "left running or waiting": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
                "failed trials not retried": [n for n in failed if n not in retried],
                "trials.csv is the study": rows == [(str(t.number), t.state.name.lower()) for t in trials],
                "best.yaml is the best trial's": bool(best) and {k: settings.get(k) for k in best.params} ==
                best.params,
                "values equal where the parameters are": all(self.reference_values.get(k, v) == v
                                                             for k, v in values.items())}


COMMANDS = {c.name: c for c in (TrainGan, TrainClassifier, Synthesize, Compare, Export, ImportSynthetic, Tune)}
