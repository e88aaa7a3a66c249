"""prepare + info on tiny fixtures of every source: contents, grouped split, determinism, atomicity."""

import numpy as np
import pytest

from conftest import listing
from gan_aug.data.prepare import fingerprint, group_split
from gan_aug.data.prepared import load_prepared

REQUIRED = {"images": np.uint8, "labels": np.int64, "class_names": str, "split": str, "group": str,
            "image_id": str, "source": str, "fingerprint": str}


def prepare(run_cli, out, *args):
    result = run_cli("prepare", "--out", out, "--workers", 1, *args)
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def assert_groups_disjoint(data):
    owners = {}
    for group, split in zip(data["group"], data["split"]):
        assert owners.setdefault(group, split) == split, f"group {group} in two splits"


def test_ham10000_prepared_set(run_cli, ham_root, tmp_path):
    data = prepare(run_cli, tmp_path / "ham.npz", "--source", "ham10000", "--root", ham_root, "--size", 16)
    for key, kind in REQUIRED.items():
        assert np.issubdtype(data[key].dtype, kind), key
    assert data["images"].shape == (84, 16, 16, 3)
    assert list(data["class_names"]) == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert set(data["split"]) == {"train", "val", "test"}
    assert_groups_disjoint(data)
    assert np.isnan(data["age"]).sum() == 17 and data["age"][1] == 31.0
    assert set(data["sex"]) == {"male", "female"} and set(data["site"]) == {"back"}
    assert str(data["fingerprint"]) == fingerprint(data["images"], data["labels"], data["split"])
    assert str(data["source"]) == "ham10000"


def test_split_is_stratified_grouped_and_seeded():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=600, p=[0.7, 0.2, 0.1])
    groups = np.array([f"g{i // 3}" for i in range(600)])
    split = group_split(labels, groups, 0.1, 0.2, seed=0)
    assert abs((split == "test").mean() - 0.2) < 0.03 and abs((split == "val").mean() - 0.1) < 0.03
    for c in range(3):  # every class lands in every split in about the right share
        share = (split[labels == c] == "test").mean()
        assert 0.1 < share < 0.3
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    assert (group_split(labels, groups, 0.1, 0.2, seed=0) == split).all()
    assert (group_split(labels, groups, 0.1, 0.2, seed=1) != split).any()


def test_isic_2018_and_2019_map_class_names(run_cli, isic2018_root, isic2019_root, tmp_path):
    d18 = prepare(run_cli, tmp_path / "a.npz", "--source", "isic-csv", "--root", isic2018_root, "--size", 16)
    assert list(d18["class_names"]) == ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    assert "age" not in d18
    result = run_cli("prepare", "--out", tmp_path / "b.npz", "--workers", 1, "--source", "isic-csv",
                     "--root", isic2019_root, "--metadata-csv", isic2019_root / "meta.csv", "--size", 16)
    assert result.exit_code == 0, result.output
    assert "class unk has no images and was dropped" in result.output
    d19 = load_prepared(tmp_path / "b.npz")
    assert d19.class_names == ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc", "scc")
    assert d19.group[0] == d19.group[1] == "IL_0000000"  # lesion ids from the metadata CSV
    assert d19.age[0] == 40 and d19.site[0] == "torso"
    assert_groups_disjoint({"group": d19.group, "split": d19.split})


def test_medmnist_keeps_official_split(run_cli, medmnist_file, tmp_path):
    data = prepare(run_cli, tmp_path / "m.npz", "--source", "medmnist-npz", "--root", medmnist_file, "--size", 32)
    assert data["images"].shape == (48, 32, 32, 3)
    assert (data["split"] == "train").sum() == 30 and (data["split"] == "test").sum() == 10
    assert data["split"][30] == "val" and data["image_id"][30] == "val_0"
    assert data["class_names"][3] == "df"
    with np.load(medmnist_file) as raw:
        assert (data["labels"][:30] == raw["train_labels"].ravel()).all()


def test_imagefolder_uses_folder_names(run_cli, imagefolder_root, tmp_path):
    data = prepare(run_cli, tmp_path / "f.npz", "--source", "imagefolder", "--root", imagefolder_root, "--size", 16)
    assert list(data["class_names"]) == ["benign", "malignant", "other"]
    assert np.bincount(data["labels"]).tolist() == [12, 12, 12]
    assert data["image_id"][0] == "benign/img_0" and (data["group"] == data["image_id"]).all()


def test_parallel_decoding_matches_serial(run_cli, ham_root, tmp_path):
    serial = prepare(run_cli, tmp_path / "s.npz", "--source", "ham10000", "--root", ham_root, "--size", 16)
    result = run_cli("prepare", "--out", tmp_path / "p.npz", "--workers", 2, "--source", "ham10000",
                     "--root", ham_root, "--size", 16)
    assert result.exit_code == 0, result.output
    parallel = load_prepared(tmp_path / "p.npz")
    assert (parallel.images == serial["images"]).all()
    assert parallel.fingerprint == str(serial["fingerprint"])


def test_force_overwrites_and_leaves_no_temp_files(run_cli, tmp_path):
    out = tmp_path / "toy.npz"
    first = prepare(run_cli, out, "--toy-count", 60, "--size", 16)
    second = prepare(run_cli, out, "--toy-count", 70, "--size", 16, "--force")
    assert len(first["labels"]) == 60 and len(second["labels"]) == 70
    assert listing(tmp_path) == ["toy.npz"]


def test_info_prints_counts_per_split(run_cli, tmp_path):
    out = tmp_path / "toy.npz"
    data = prepare(run_cli, out, "--toy-count", 100, "--size", 16)
    result = run_cli("info", out)
    assert result.exit_code == 0
    nv_row = next(line for line in result.output.splitlines() if line.startswith("nv "))
    counts = [int(v) for v in nv_row.split()[1:]]
    nv = data["labels"] == 5
    assert counts == [int((data["split"][nv] == s).sum()) for s in ("train", "val", "test")] + [int(nv.sum())]
    assert str(data["fingerprint"]) in result.output and "16x16" in result.output


@pytest.mark.parametrize("extra", [[], ["--config", "CFG"]])
def test_dry_run_prints_config_and_writes_nothing(run_cli, tmp_path, extra):
    cfg = tmp_path / "prep.yaml"
    cfg.write_text("size: 24\nseed: 3\n")
    args = [a if a != "CFG" else cfg for a in extra]
    result = run_cli("prepare", "--out", tmp_path / "x.npz", "--set", "toy_count=77", "--dry-run", *args)
    assert result.exit_code == 0
    assert "toy_count: 77" in result.output
    assert ("size: 24" in result.output) == bool(extra)
    assert not (tmp_path / "x.npz").exists()


def test_a_set_edited_after_prepare_is_refused(toy16, tmp_path):
    from gan_aug.errors import UserError

    with np.load(toy16) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["images"] = arrays["images"].copy()
    arrays["images"][0, 0, 0, 0] ^= 1  # one bit of one pixel; the stored fingerprint kept
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(UserError, match="changed after prepare"):
        load_prepared(tmp_path / "edited.npz")
    assert load_prepared(toy16).fingerprint == str(arrays["fingerprint"])
