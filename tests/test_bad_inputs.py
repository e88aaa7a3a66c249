"""The catalogue of bad inputs (issue #21): for each case, every command ends with exit status 1 and one line
`Error: ...`, no traceback, and every file that was there before is byte for byte as it was.

The cases live in bad_input_cases.py; docs/bad-inputs.md lists them with their messages. To rewrite that file
from a run: GAN_AUG_WRITE_BAD_INPUTS=1 pytest tests/test_bad_inputs.py.
"""

import errno
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bad_input_cases import CASES, KINDS
from conftest import HAM, write_isic, write_jpeg

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md"
MESSAGES = {}


@pytest.fixture(scope="module")
def stock(toy16, toy_gan, tmp_path_factory):
    """Inputs every case copies from: a prepared set, GAN and classifier runs, a synthetic set, a HAM10000-style
    folder and a one-class image folder, built once for the module."""
    from classifier.config import ClassifierConfig
    from classifier.train import train_classifier
    from gan_aug.config import build_config
    from gan_aug.synth.config import SynthConfig
    from gan_aug.synth.sample import synthesize

    root = tmp_path_factory.mktemp("stock")
    shutil.copy(toy16, root / "toy16.npz")
    shutil.copytree(toy_gan, root / "gan", ignore=shutil.ignore_patterns("tb"))
    train_classifier(build_config(ClassifierConfig, None, {"data": str(toy16), "out": str(root / "clf"), "epochs": 1,
                                                           "threads": 1}), progress=False)
    synthesize(build_config(SynthConfig, None, {"checkpoints": (str(toy_gan),), "out": str(root / "syn"), "n": 14,
                                                "distribution": "uniform"}), progress=False)
    ham = root / "ham"
    rows = ["lesion_id,image_id,dx"]
    for i in range(21):
        write_jpeg(ham / "images" / f"ISIC_{i:07d}.jpg", i, size=(20, 16))
        rows.append(f"HAM_{i:07d},ISIC_{i:07d},{HAM[i % len(HAM)]}")
    (ham / "HAM10000_metadata.csv").write_text("\n".join(rows) + "\n")
    for i in range(4):
        write_jpeg(root / "folder" / "nv" / f"img{i}.png", i, size=(16, 16))
    write_isic(root / "isic", ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"), 14)
    write_isic(root / "isic2019", ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"), 9)
    from gan_aug.compare.bundle import write_bundle
    from gan_aug.compare.config import CompareConfig
    from gan_aug.compare.runner import compare

    compare(build_config(CompareConfig, None, {"data": str(toy16), "out": str(root / "cmp"), "arms": ("oversample",),
                                               "seeds": (0,), "epochs": 1, "threads": 1, "bootstrap": 100}),
            progress=False)
    write_bundle(root / "cmp", root / "bundle", progress=False)
    return root


class Bench:
    """One case's inputs, copied from the stock into the case's own folder when first asked for."""

    def __init__(self, tmp, stock, monkeypatch):
        self.tmp, self.stock, self.patch = tmp, stock, monkeypatch

    def copy(self, name, to=None):
        target = self.tmp / (to or name)
        if not target.exists():
            source = self.stock / name
            shutil.copytree(source, target) if source.is_dir() else shutil.copy(source, target)
        return target

    data = property(lambda self: self.copy("toy16.npz"))
    gan = property(lambda self: self.copy("gan"))
    clf = property(lambda self: self.copy("clf"))
    syn = property(lambda self: self.copy("syn"))
    ham = property(lambda self: self.copy("ham"))
    folder = property(lambda self: self.copy("folder"))
    out = property(lambda self: self.tmp / "out")

    def file(self, name, content):
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
        return path

    def cut(self, path, keep=0.5):
        """`path` cut short, as a copy that a kill interrupted would be."""
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[:int(len(data) * keep)])
        return path

    def npz(self, name="edited.npz", **changes):
        """A copy of the toy set with arrays replaced (None drops one), its fingerprint that of the new content."""
        from gan_aug.data.prepared import fingerprint

        with np.load(self.stock / "toy16.npz") as archive:
            arrays = {key: archive[key] for key in archive.files}
        arrays.update(changes)
        if all(arrays.get(key) is not None for key in ("images", "labels", "split")):
            arrays["fingerprint"] = np.array(fingerprint(arrays["images"], arrays["labels"], arrays["split"]))
        np.savez(self.tmp / name, **{k: v for k, v in arrays.items() if v is not None})
        return self.tmp / name

    def checkpoint(self, path, edit):
        """The torch checkpoint at `path`, edited in place by `edit(state)`."""
        state = torch.load(path, weights_only=True)
        edit(state)
        torch.save(state, path)
        return path

    def manifest(self, edit):
        """The synthetic set's first manifest row edited by `edit(row)`; returns the set."""
        lines = (self.syn / "manifest.csv").read_text().splitlines()
        header = lines[0].split(",")
        row = dict(zip(header, lines[1].split(",")))
        edit(row)
        lines[1] = ",".join(row[key] for key in header)
        (self.syn / "manifest.csv").write_text("\n".join(lines) + "\n")
        return self.syn

    def disk_full(self, where="os.fsync"):
        """`where` (a durable write's fsync by default, or torch.save) fails as on a full disk."""
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.patch.setattr(where, full)

    def read_only(self, folder):
        """`folder` refuses new files and folders, as a read-only mount does (for root too, whom chmod does not
        stop: os.open and os.mkdir are refused there)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        inside = lambda path: Path(os.fspath(path)).resolve().is_relative_to(folder.resolve())
        real_open, real_mkdir = os.open, os.mkdir

        def guarded_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and inside(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        def guarded_mkdir(path, *args, **kwargs):
            if inside(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real_mkdir(path, *args, **kwargs)

        self.patch.setattr(os, "open", guarded_open)
        self.patch.setattr(os, "mkdir", guarded_mkdir)
        return folder


def fingerprints(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file() and not p.is_symlink()}


def visible_lines(output):
    """The lines a terminal shows: a progress bar redrawn with '\\r' shows its last state only."""
    return [line.split("\r")[-1] for line in output.split("\n") if line.split("\r")[-1].strip()]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, stock, tmp_path, run_cli, monkeypatch):
    bench = Bench(tmp_path, stock, monkeypatch)
    args = case.make(bench)
    before = fingerprints(tmp_path)
    result = run_cli(*args)
    lines = visible_lines(result.output)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in lines if line.startswith("Error: ")]
    # A command that fails part way has drawn progress above its error; every other case prints one line.
    assert errors == lines[-1:] and (case.progress or lines == errors), result.output
    assert case.expect in errors[0], errors[0]
    after = fingerprints(tmp_path)
    assert {name: after.get(name) for name in before} == before, "a file that was there before changed"
    MESSAGES[case.id] = errors[0].replace(str(tmp_path), "TMP")


def test_the_catalogue_covers_every_command_and_failure_class():
    commands = {case.command for case in CASES}
    assert commands == {"prepare", "info", "train-gan", "synthesize", "score", "train-classifier", "evaluate",
                        "explain", "compare", "bundle", "rescore", "demo", "export", "import-synthetic", "tune", "audit"}
    assert {case.kind for case in CASES} == set(KINDS) and len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def test_the_doc_lists_every_case():
    """docs/bad-inputs.md is written from this module's run (see the docstring); it must name every case."""
    if os.environ.get("GAN_AUG_WRITE_BAD_INPUTS") and len(MESSAGES) == len(CASES):
        DOC.write_text(render_doc())
    text = DOC.read_text()
    missing = [case.id for case in CASES if f"`{case.id}`" not in text]
    assert not missing, f"docs/bad-inputs.md lacks {missing}: rewrite it (see this module's docstring)"


def render_doc():
    lines = ["# Bad inputs and what gan-aug says", "",
             "Each row is a case of `tests/test_bad_inputs.py` (cases in `tests/bad_input_cases.py`): the command "
             "exits with status 1, prints one `Error:` line (progress drawn before it aside) and no traceback, and "
             "leaves every file that was there before as it was. Generated by "
             "`GAN_AUG_WRITE_BAD_INPUTS=1 pytest tests/test_bad_inputs.py`; `TMP` is the case's folder.", ""]
    for kind in KINDS:
        lines += [f"## {kind}", "", "| case | command | input | message |", "| --- | --- | --- | --- |"]
        for case in (c for c in CASES if c.kind == kind):
            message = MESSAGES[case.id].replace("|", "\\|")
            lines.append(f"| `{case.id}` | {case.command} | {case.what} | {message} |")
        lines.append("")
    return "\n".join(lines)
