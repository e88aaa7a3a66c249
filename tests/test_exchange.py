"""export / import-synthetic: any generator can be judged. The train split goes out exactly (StyleGAN2-ADA zip or
ImageFolder) with a receipt; another generator's images come back as a synthetic set that score and compare take,
and only with a receipt of this prepared set's train split."""

import csv
import io
import json
import zipfile

import numpy as np
import pytest
from conftest import write_prepared
from PIL import Image

from gan_aug.data.prepared import load_prepared
from gan_aug.data.synthetic import load_synthetic


def export(run_cli, data, out, fmt, *extra):
    result = run_cli("export", "--data", data, "--split", "train", "--format", fmt, "--out", out, *extra)
    assert result.exit_code == 0, result.output
    return json.loads(out.with_name(out.name.removesuffix(".zip") + ".receipt.json").read_text())


def external_generator(exported, out, per_class=6, size=None):
    """A stand-in for StyleGAN2-ADA & co: 'learns' from the exported class folders and writes new images into
    class folders of its own (flipped, noisy copies), at `size` px if given."""
    rng = np.random.default_rng(0)
    for class_dir in sorted(p for p in exported.iterdir() if p.is_dir()):
        sources = sorted(class_dir.glob("*.png"))
        (out / class_dir.name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.asarray(Image.open(sources[i % len(sources)]))[::-1].astype(np.int16)
            pixels = np.clip(pixels + rng.integers(-20, 21, pixels.shape), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            (image.resize((size, size)) if size else image).save(out / class_dir.name / f"seed{i:04d}.png")
    return out


def test_stylegan2_ada_export_is_exactly_the_train_split(toy16, tmp_path, run_cli):
    prepared = load_prepared(toy16)
    train = prepared.indices("train")
    receipt = export(run_cli, toy16, tmp_path / "toy16_train.zip", "stylegan2-ada")
    with zipfile.ZipFile(tmp_path / "toy16_train.zip") as archive:
        labels = json.loads(archive.read("dataset.json"))["labels"]
        images = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(name)))) for name, _ in labels])
    assert labels[0][0] == "00000/img00000000.png" and len(labels) == len(train)
    assert np.array_equal(images, prepared.images[train])  # PNG is lossless: the very pixels
    assert [c for _, c in labels] == prepared.labels[train].tolist()  # class_index = position in class_names
    assert receipt["fingerprint"] == prepared.fingerprint and receipt["split"] == "train"
    assert receipt["class_names"] == list(prepared.class_names) and receipt["count"] == len(train)
    assert receipt["export_format"] == "stylegan2-ada" and sum(receipt["counts"].values()) == len(train)
    result = run_cli("export", "--data", toy16, "--out", tmp_path / "x.tar")
    assert result.exit_code == 1 and "--out must end in .zip" in result.output
    result = run_cli("export", "--data", toy16, "--out", tmp_path / "toy16_train.zip")
    assert result.exit_code == 1 and "already exist" in result.output


@pytest.mark.slow
def test_round_trip_export_generate_import_score_compare(toy16, toy_classifier, tmp_path, run_cli):
    exported = tmp_path / "toy16_train"
    receipt = export(run_cli, toy16, exported, "imagefolder")
    with open(exported / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == receipt["count"] and rows[0]["file"].endswith(".png")
    generated = external_generator(exported, tmp_path / "generated")
    syn = tmp_path / "syn"
    result = run_cli("import-synthetic", generated, "--data", toy16, "--receipt", tmp_path / "toy16_train.receipt.json",
                     "--generator", "stub-gan v0", "--out", syn)
    assert result.exit_code == 0, result.output
    images, labels, names, provenance = load_synthetic(syn)
    assert len(images) == 42 and names == load_prepared(toy16).class_names
    assert provenance["generator"]["name"] == "stub-gan v0" and provenance["gan_data"]["split"] == "train"
    assert provenance["gan_data"]["fingerprint"] == receipt["fingerprint"]

    result = run_cli("score", "--data", toy16, "--synthetic", syn, "--features", f"lesion:{toy_classifier}", "--out",
                     tmp_path / "scores.json", "--set", "cas_epochs=1", "--set", "embed_per_source=0")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["per_class"]["all"]["n_synthetic"] == 42 and "memorization" in scores
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(f"data: {toy16}\nsynthetic: {syn}\narms: [oversample, mix:0.5]\nseeds: [0]\nepochs: 1\n"
                   "batch_size: 32\nbootstrap: 200\n")
    result = run_cli("compare", "--config", cfg, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "**mix:0.5** vs oversample" in (tmp_path / "cmp" / "report.md").read_text()


def test_an_import_needs_a_receipt_of_this_sets_train_split(toy16, tmp_path, run_cli):
    exported = tmp_path / "toy16_train"
    export(run_cli, toy16, exported, "imagefolder")
    generated = external_generator(exported, tmp_path / "generated", per_class=2)
    args = ["import-synthetic", generated, "--data", toy16, "--generator", "g", "--out", tmp_path / "syn"]
    result = run_cli(*args)
    assert result.exit_code == 1 and "missing required setting(s): receipt" in result.output
    other = write_prepared(tmp_path / "other.npz", 16, classes=("mel", "nv"))
    export(run_cli, other, tmp_path / "other_train", "imagefolder")
    result = run_cli(*args, "--receipt", tmp_path / "other_train.receipt.json")
    assert result.exit_code == 1 and "trained on a different prepared set" in result.output
    test_export = tmp_path / "toy16_test"
    assert run_cli("export", "--data", toy16, "--split", "test", "--format", "imagefolder", "--out",
                   test_export).exit_code == 0
    result = run_cli(*args, "--receipt", tmp_path / "toy16_test.receipt.json")
    assert result.exit_code == 1 and "trained on the 'test' split" in result.output
    (tmp_path / "toy16_train.receipt.json").write_text("{}")
    result = run_cli(*args, "--receipt", tmp_path / "toy16_train.receipt.json")
    assert result.exit_code == 1 and "is not a gan-aug export receipt" in result.output
    assert not (tmp_path / "syn").exists()


def test_import_refuses_unknown_classes_and_other_sizes_unless_resized(toy16, tmp_path, run_cli):
    exported = tmp_path / "toy16_train"
    export(run_cli, toy16, exported, "imagefolder")
    receipt = tmp_path / "toy16_train.receipt.json"
    args = ["--data", toy16, "--receipt", receipt, "--generator", "g"]
    big = external_generator(exported, tmp_path / "big", per_class=2, size=24)
    result = run_cli("import-synthetic", big, *args, "--out", tmp_path / "s1")
    assert result.exit_code == 1 and "is 24x24 px, the prepared set's images are 16x16" in result.output
    result = run_cli("import-synthetic", big, *args, "--out", tmp_path / "s2", "--resize")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s2" / "synthetic.json").read_text())["generator"]["resized"] == 14
    (big / "wart").mkdir()
    Image.new("RGB", (16, 16)).save(big / "wart" / "x.png")
    result = run_cli("import-synthetic", big, *args, "--out", tmp_path / "s3", "--resize")
    assert result.exit_code == 1 and "class(es) wart are not in the prepared set" in result.output

    # a flat folder with the generator's own class indices (StyleGAN's --class) in a labels CSV
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (i * 80, 0, 0)).save(flat / f"seed{i:04d}.png")
    (flat / "labels.csv").write_text("file,class_index\nseed0000.png,4\nseed0001.png,4\nseed0002.png,3\n")
    result = run_cli("import-synthetic", flat, *args, "--labels", flat / "labels.csv", "--out", tmp_path / "s4")
    assert result.exit_code == 0, result.output
    _, labels, names, _ = load_synthetic(tmp_path / "s4")
    assert names == ("df", "mel") and sorted(labels.tolist()) == [0, 1, 1]


def setup_import(run_cli, toy16, tmp_path, per_class=2):
    """An imagefolder export of toy16's train split, a stand-in generator's images, and import's flags."""
    exported = tmp_path / "toy16_train"
    export(run_cli, toy16, exported, "imagefolder")
    generated = external_generator(exported, tmp_path / "generated", per_class=per_class)
    return generated, ["--data", toy16, "--receipt", tmp_path / "toy16_train.receipt.json", "--generator", "g"]


def refused(result, fragment):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert fragment in result.output, result.output


def test_import_reads_nothing_outside_images(toy16, tmp_path, run_cli):
    """Issue #39: a --labels row naming ../x.png or an absolute path, and a linked image or class folder that
    leads elsewhere, were read; a missing --labels file was a traceback."""
    generated, args = setup_import(run_cli, toy16, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (16, 16)).save(outside / "x.png")
    syn, labels = tmp_path / "syn", tmp_path / "labels.csv"
    for name in ("../outside/x.png", str(outside / "x.png")):
        labels.write_text(f"file,class\n{name},mel\n")
        refused(run_cli("import-synthetic", generated, *args, "--labels", labels, "--out", syn),
                "is outside the image folder")
    (generated / "mel" / "link.png").symlink_to(outside / "x.png")
    refused(run_cli("import-synthetic", generated, *args, "--out", syn), "'mel/link.png' is outside the image")
    (generated / "mel" / "link.png").unlink()
    (generated / "df").rename(outside / "df")
    (generated / "df").symlink_to(outside / "df")
    refused(run_cli("import-synthetic", generated, *args, "--out", syn), "'df/seed0000.png' is outside the image")
    refused(run_cli("import-synthetic", generated, *args, "--labels", tmp_path / "none.csv", "--out", syn),
            "CSV file not found")
    assert not syn.exists()


def test_import_takes_each_file_once_under_the_class_its_row_says(toy16, tmp_path, run_cli):
    """Issue #39: a file listed twice (or under two classes, or again through a link) was imported twice, and a
    class_index of -1 became the last class."""
    generated, args = setup_import(run_cli, toy16, tmp_path)
    syn, labels = tmp_path / "syn", tmp_path / "labels.csv"
    for rows in ("file,class\nmel/seed0000.png,mel\nmel/seed0000.png,mel\n",
                 "file,class\nmel/seed0000.png,mel\n./mel/seed0000.png,nv\n"):
        labels.write_text(rows)
        refused(run_cli("import-synthetic", generated, *args, "--labels", labels, "--out", syn), "listed twice")
    for rows, fragment in (("file,class_index\nmel/seed0000.png,-1\n", "class_index '-1' is not one of 0-6"),
                           ("file,class,class_index\nmel/seed0000.png,mel,5\n", "disagree")):
        labels.write_text(rows)
        refused(run_cli("import-synthetic", generated, *args, "--labels", labels, "--out", syn), fragment)
    (generated / "nv" / "again.png").symlink_to(generated / "mel" / "seed0000.png")
    refused(run_cli("import-synthetic", generated, *args, "--out", syn), "listed twice, or a link to it")
    assert not syn.exists()


def test_a_receipt_edited_after_export_is_refused(toy16, tmp_path, run_cli):
    """Issue #39: a receipt whose class order was edited was accepted, its class_index read in the set's order."""
    generated, args = setup_import(run_cli, toy16, tmp_path)
    receipt_file = tmp_path / "toy16_train.receipt.json"
    receipt = json.loads(receipt_file.read_text())
    for key, value in (("class_names", receipt["class_names"][::-1]), ("counts", {**receipt["counts"], "mel": 1})):
        receipt_file.write_text(json.dumps({**receipt, key: value}))
        refused(run_cli("import-synthetic", generated, *args, "--out", tmp_path / "syn"),
                f"its {key} ")
    assert not (tmp_path / "syn").exists()


def test_import_out_stays_apart_from_its_inputs(toy16, tmp_path, run_cli):
    """Issue #39: an --out inside IMAGES re-imported its own output; --force over IMAGES replaced what it read."""
    generated, args = setup_import(run_cli, toy16, tmp_path)
    refused(run_cli("import-synthetic", generated, *args, "--out", generated / "syn"), "lies inside IMAGES")
    syn = tmp_path / "syn"
    assert run_cli("import-synthetic", generated, *args, "--out", syn).exit_code == 0
    before = sorted(p.name for p in syn.rglob("*"))
    refused(run_cli("import-synthetic", syn, *args, "--out", syn, "--force"), "is IMAGES")
    assert sorted(p.name for p in syn.rglob("*")) == before


def tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_linked_out_is_replaced_as_a_link_only_with_force(toy16, toy_gan, tmp_path, run_cli):
    """Issue #39: --force followed a linked --out into the set it points to. A link is refused without --force
    and replaced as a link with it; what it points to is left byte for byte."""
    generated, args = setup_import(run_cli, toy16, tmp_path)
    target = tmp_path / "elsewhere"
    assert run_cli("import-synthetic", generated, *args, "--out", target).exit_code == 0
    (target / "keep.txt").write_text("mine")
    before = tree(target)
    commands = {"import-synthetic": ["import-synthetic", generated, *args],
                "synthesize": ["synthesize", "--checkpoint", toy_gan, "-n", 7, "--device", "cpu"]}
    for name, command in commands.items():
        link = tmp_path / f"link_{name}"
        link.symlink_to(target)
        refused(run_cli(*command, "--out", link), "is a symbolic link")
        result = run_cli(*command, "--out", link, "--force")
        assert result.exit_code == 0, result.output
        assert not link.is_symlink() and (link / "manifest.csv").is_file() and tree(target) == before


def test_an_imagefolder_export_is_replaced_with_force_and_nothing_else_is(toy16, tmp_path, run_cli):
    """Issue #39: an imagefolder export could never be replaced, even with --force; `export --out .` was a
    traceback."""
    out = tmp_path / "toy16_train"
    export(run_cli, toy16, out, "imagefolder")
    refused(run_cli("export", "--data", toy16, "--format", "imagefolder", "--out", out), "already exist")
    export(run_cli, toy16, out, "imagefolder", "--force")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    refused(run_cli("export", "--data", toy16, "--format", "imagefolder", "--out", mine, "--force"),
            "is not a gan-aug export")
    refused(run_cli("export", "--data", toy16, "--format", "imagefolder", "--out", "."), "names no file or folder")
    assert (mine / "notes.txt").read_text() == "mine"


def test_a_receipt_never_describes_other_data_and_a_killed_export_is_redone(toy16, tmp_path, run_cli, monkeypatch):
    """Issue #39: a kill between the zip and its receipt left a zip with no receipt ("already exists" after) and
    a temp file that nothing removed. The old receipt goes before the new zip lands; the next export, without
    --force, replaces a zip that has no receipt and removes the temp files."""
    import os

    out, receipt_file = tmp_path / "set.zip", tmp_path / "set.receipt.json"
    export(run_cli, toy16, out, "stylegan2-ada")
    export(run_cli, toy16, tmp_path / "again.zip", "stylegan2-ada")
    assert out.read_bytes() == (tmp_path / "again.zip").read_bytes()  # the same set, the same bytes
    other = write_prepared(tmp_path / "other.npz", 16, classes=("mel", "nv"))
    real_replace = os.replace

    def killed_before_the_receipt(src, dst):
        if str(dst).endswith(".receipt.json"):
            raise KeyboardInterrupt  # as a SIGKILL between the two renames
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_receipt)
    assert run_cli("export", "--data", other, "--out", out, "--force").exit_code == 1
    monkeypatch.undo()
    with zipfile.ZipFile(out) as archive:  # the new zip is in place, and no receipt of the old one is beside it
        assert json.loads(archive.read("dataset.json"))["gan_aug"]["fingerprint"] == load_prepared(other).fingerprint
    assert not receipt_file.exists()
    (tmp_path / ".set.zip.k1ll3d.tmp").write_bytes(b"\0" * 1000)  # what a kill inside a write leaves
    (tmp_path / ".set.receipt.json.k1ll3d.tmp").write_text("{")
    receipt = export(run_cli, other, out, "stylegan2-ada")  # no --force: an export without its receipt is unfinished
    assert receipt["fingerprint"] == load_prepared(other).fingerprint
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    from gan_aug.data.synthetic import sha256_file
    assert receipt["sha256"] == sha256_file(out)
