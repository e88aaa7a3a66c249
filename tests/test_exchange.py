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
def test_round_trip_export_generate_import_score_compare(toy16, tmp_path, run_cli):
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

    clf = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", toy16, "--out", clf, "--epochs", 1, "--set", "batch_size=32").exit_code == 0
    result = run_cli("score", "--data", toy16, "--synthetic", syn, "--features", f"lesion:{clf}", "--out",
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
