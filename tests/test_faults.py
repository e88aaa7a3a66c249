"""Hostile names and files stay inside their folders; a crash mid-write keeps the old synthetic set; no output
is overwritten without --force, and every refusal comes before any work (issue #21)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_aug.config import build_config
from gan_aug.data.names import check_class_names
from gan_aug.data.synthetic import load_synthetic
from gan_aug.errors import UserError
from gan_aug.fileio import SCRATCH_MARKER
from gan_aug.synth.config import SynthConfig


def one_line_error(result, *fragments):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def tree(folder):
    """Every path under `folder`, relative, with the bytes of each file."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(Path(folder).rglob("*"))}


def no_work(*_args, **_kwargs):
    raise AssertionError("the refusal should come before any work")


def synthesize_set(run_cli, gan, out, *args):
    result = run_cli("synthesize", "--checkpoint", gan, "-n", 14, "--distribution", "uniform", "--out", out, *args)
    assert result.exit_code == 0, result.output
    return out


# -- class names ---------------------------------------------------------------------------------------------

def test_the_class_name_rule():
    good = ("mel", "class0", "a.b", "x+y", "A-1_b")
    assert check_class_names(list(good), "here") == good
    for bad in ("", ".", "..", ".hidden", "../../x", "/tmp/x", "a/b", "a\\b", "a b", "mélanome", "a" * 101, 3):
        with pytest.raises(UserError, match="here: class name .* is not allowed"):
            check_class_names(["mel", bad], "here")
    with pytest.raises(UserError, match="mel appear more than once"):
        check_class_names(["mel", "df", "mel"], "here")
    with pytest.raises(UserError, match="no class names"):
        check_class_names([], "here")


@pytest.mark.parametrize("hostile", ["../../x", "ABSOLUTE"])
def test_synthesize_refuses_a_checkpoint_whose_class_escapes(hostile, toy_gan, tmp_path, run_cli):
    # An absolute name under tmp_path, not /tmp/x: a run of this test against unfixed code must not litter /tmp.
    hostile = str(tmp_path / "x") if hostile == "ABSOLUTE" else hostile
    state = torch.load(toy_gan / "latest.pt", weights_only=True)
    state["class_names"][3] = hostile
    torch.save(state, tmp_path / "evil.pt")
    out = tmp_path / "a" / "b" / "syn"
    out.parent.mkdir(parents=True)
    before, parent_before = tree(tmp_path), sorted(tmp_path.parent.iterdir())
    result = run_cli("synthesize", "--checkpoint", tmp_path / "evil.pt", "-n", 7, "--distribution", "uniform",
                     "--out", out)
    one_line_error(result, "evil.pt", "is not allowed")
    assert tree(tmp_path) == before and sorted(tmp_path.parent.iterdir()) == parent_before


def rewrite_manifest(folder, edit):
    with open(folder / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    edit(rows[0])
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def point_outside(folder, outside):
    rewrite_manifest(folder, lambda row: row.update(file="../../outside.png"))


def point_absolute(folder, outside):
    rewrite_manifest(folder, lambda row: row.update(file=str(outside)))


def link_outside(folder, outside):
    (folder / "mel" / "link.png").symlink_to(outside)
    rewrite_manifest(folder, lambda row: row.update(file="mel/link.png"))


def unknown_class(folder, outside):
    rewrite_manifest(folder, lambda row: row.update({"class": "wart"}))


def hostile_provenance(folder, outside):
    provenance = json.loads((folder / "synthetic.json").read_text())
    provenance["class_names"][0] = "../akiec"
    (folder / "synthetic.json").write_text(json.dumps(provenance))


@pytest.mark.parametrize("attack, message", [
    (point_outside, "outside the synthetic set's folder"), (point_absolute, "outside the synthetic set's folder"),
    (link_outside, "outside the synthetic set's folder"), (unknown_class, "class 'wart' is not one of the set's"),
    (hostile_provenance, "class name '../akiec' is not allowed")])
def test_a_hostile_synthetic_set_is_refused_and_nothing_outside_is_read(attack, message, toy_gan, tmp_path,
                                                                         run_cli, monkeypatch):
    out = synthesize_set(run_cli, toy_gan, tmp_path / "sets" / "syn")
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(outside)
    attack(out, outside)
    opened, open_image = [], Image.open
    monkeypatch.setattr(Image, "open", lambda path, *args: opened.append(Path(path).resolve()) or open_image(path))
    with pytest.raises(UserError, match=message):
        load_synthetic(out)
    assert outside not in opened


def test_a_prepared_set_or_npz_synthetic_set_with_a_hostile_class_name_is_refused(toy16, toy_gan, tmp_path,
                                                                                  run_cli):
    for source, name in ((toy16, "prepared.npz"),
                         (synthesize_set(run_cli, toy_gan, tmp_path / "syn.npz", "--format", "npz"), "syn2.npz")):
        with np.load(source, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        arrays["class_names"] = np.array(["../../evil"] + arrays["class_names"].tolist()[1:])
        np.savez(tmp_path / name, **arrays)
    one_line_error(run_cli("info", tmp_path / "prepared.npz"), "prepared.npz", "'../../evil' is not allowed")
    with pytest.raises(UserError, match="'../../evil' is not allowed"):
        load_synthetic(tmp_path / "syn2.npz")


def test_a_class_folder_with_an_unsafe_name_is_refused(imagefolder_root, tmp_path, run_cli):
    (imagefolder_root / "other").rename(imagefolder_root / "other kind")
    result = run_cli("prepare", "--source", "imagefolder", "--root", imagefolder_root, "--size", 16,
                     "--out", tmp_path / "f.npz")
    one_line_error(result, "'other kind' is not allowed")
    assert not (tmp_path / "f.npz").exists()


def test_distribution_names_follow_the_rule():
    flags = {"checkpoints": ("gan",), "out": "syn"}
    with pytest.raises(UserError, match="--distribution: class name '../x' is not allowed"):
        build_config(SynthConfig, None, {**flags, "distribution": "../x=3"})
    with pytest.raises(UserError, match="mel appear more than once"):
        build_config(SynthConfig, None, {**flags, "distribution": "mel=1,mel=2"})


# -- atomic synthetic sets -----------------------------------------------------------------------------------

def scratch_folders(out):
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_a_crash_while_writing_keeps_the_old_set(toy_gan, tmp_path, run_cli, monkeypatch):
    out = synthesize_set(run_cli, toy_gan, tmp_path / "syn", "--seed", 1)
    before = tree(out)
    calls, save = [], Image.Image.save

    def crash_in_second_class(image, *args, **kwargs):  # 2 images per class: the 3rd is the second class's
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return save(image, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", crash_in_second_class)
    with pytest.raises(OSError, match="simulated"):
        run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--distribution", "uniform", "--out", out,
                "--seed", 2, "--force")
    monkeypatch.undo()
    assert tree(out) == before and len(load_synthetic(out)[1]) == 14
    assert scratch_folders(out) == []

    # A process killed mid-write leaves a marked scratch folder: the next run deletes it.
    leftover = tmp_path / ".syn.partial-killed"
    (leftover / "mel").mkdir(parents=True)
    (leftover / SCRATCH_MARKER).write_text("")
    one_line_error(run_cli("synthesize", "--checkpoint", toy_gan, "-n", 7, "--out", out),
                   "holds a synthetic set; add --force to replace it", "or choose another --out")
    assert tree(out) == before
    synthesize_set(run_cli, toy_gan, out, "--seed", 2, "--force")
    assert tree(out) != before and not (out / SCRATCH_MARKER).exists() and scratch_folders(out) == []


def test_a_half_written_out_is_recognised_by_its_marker(toy_gan, tmp_path, run_cli, monkeypatch):
    out = tmp_path / "syn"
    (out / "mel").mkdir(parents=True)
    (out / SCRATCH_MARKER).write_text("")
    with monkeypatch.context() as patch:
        patch.setattr("gan_aug.synth.sample.load_sources", no_work)
        one_line_error(run_cli("synthesize", "--checkpoint", toy_gan, "-n", 7, "--out", out), "add --force")
    synthesize_set(run_cli, toy_gan, out, "--force")
    assert len(load_synthetic(out)[1]) == 14
    (tmp_path / "plain").mkdir()  # the set's folder gets the permissions of any new folder, not a temp dir's 0700
    assert out.stat().st_mode == (tmp_path / "plain").stat().st_mode


# -- no output is overwritten without --force ----------------------------------------------------------------

@pytest.mark.parametrize("existing", ["m.json", "m_roc.png"])
def test_evaluate_refuses_to_overwrite(existing, toy16, toy_classifier, tmp_path, run_cli, monkeypatch):
    (tmp_path / existing).write_bytes(b"precious")
    with monkeypatch.context() as patch:
        patch.setattr("classifier.evaluate.evaluate_checkpoint", no_work)
        patch.setattr("gan_aug.data.prepared.load_prepared", no_work)
        result = run_cli("evaluate", "--checkpoint", toy_classifier, "--data", toy16, "--out", tmp_path / "m.json")
    one_line_error(result, existing, "--force")
    assert (tmp_path / existing).read_bytes() == b"precious"
    result = run_cli("evaluate", "--checkpoint", toy_classifier, "--data", toy16, "--out", tmp_path / "m.json",
                     "--force")
    assert result.exit_code == 0, result.output
    assert (tmp_path / existing).read_bytes() != b"precious"


@pytest.mark.slow
def test_score_refuses_to_overwrite(toy16, toy_gan, toy_classifier, tmp_path, run_cli, monkeypatch):
    syn = synthesize_set(run_cli, toy_gan, tmp_path / "syn")
    args = ["score", "--data", toy16, "--synthetic", syn, "--features", f"lesion:{toy_classifier}/best.pt",
            "--no-cas", "--no-memorization", "--out", tmp_path / "s.json"]
    (tmp_path / "s.json").write_bytes(b"precious")
    with monkeypatch.context() as patch:
        patch.setattr("gan_aug.metrics.score.load_prepared", no_work)
        one_line_error(run_cli(*args), "s.json already exists (use --force to overwrite)")
    assert (tmp_path / "s.json").read_bytes() == b"precious"
    for _ in range(2):  # the second run replaces the TensorBoard log instead of adding to it
        result = run_cli(*args, "--force")
        assert result.exit_code == 0, result.output
    assert "per_class" in json.loads((tmp_path / "s.json").read_text())
    assert len(list((tmp_path / "s_tb").glob("events.*"))) == 1


def test_explain_keeps_inputs_of_one_name_apart_and_refuses_to_overwrite(toy16, toy_classifier, tmp_path,
                                                                         run_cli, monkeypatch):
    from classifier.gradcam import overlay_names
    from gan_aug.data.prepared import load_prepared

    names = overlay_names(["a/x.png", "b/x.png", "X.jpg", "x_gradcam_1.png", "y.png"])
    assert len(set(names)) == 5 and names[-1] == "y_gradcam.png"
    paths = [tmp_path / folder / "lesion.png" for folder in ("a", "b")]
    for path, image in zip(paths, load_prepared(toy16).images[:2]):
        path.parent.mkdir()
        Image.fromarray(image).save(path)
    out = tmp_path / "cams"
    result = run_cli("explain", "--checkpoint", toy_classifier, *paths, "--out", out)
    assert result.exit_code == 0, result.output
    overlays = [row["overlay"] for row in json.loads((out / "explanations.json").read_text())]
    assert len(set(overlays)) == 2 and all(Path(o).is_file() for o in overlays)
    before = tree(out)
    with monkeypatch.context() as patch:
        patch.setattr("classifier.gradcam.load_classifier", no_work)
        one_line_error(run_cli("explain", "--checkpoint", toy_classifier, paths[1], "--out", out), "--force")
    assert tree(out) == before
    result = run_cli("explain", "--checkpoint", toy_classifier, *paths, "--out", out, "--force")
    assert result.exit_code == 0, result.output
