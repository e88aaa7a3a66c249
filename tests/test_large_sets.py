"""Prepared sets larger than memory (gan_aug.data.rows): the same file, memory-mapped above a size, read batch by
batch by every trainer, with results identical to the set held in memory. GAN_AUG_MEMORY_MAP_ABOVE_MB=0 makes
these tiny sets "large"."""

import zipfile

import numpy as np
import pytest
import torch

from classifier.data import DeviceRows
from gan_aug.config import build_config
from gan_aug.data.config import PrepareConfig
from gan_aug.data.prepare import prepare
from gan_aug.data.prepared import load_prepared
from gan_aug.data.rows import ImageRows, map_member
from gan_aug.errors import UserError
from conftest import listing, tiny_gan

THRESHOLD = "GAN_AUG_MEMORY_MAP_ABOVE_MB"


def prepare_ham(root, out, **changes):
    prepare(PrepareConfig(out=str(out), source="ham10000", root=str(root), size=16, workers=1, **changes),
            progress=False)
    return out


@pytest.mark.parametrize("changes", [{}, {"color_constancy": "shades-of-gray"}, {"skip_bad": True}])
def test_prepare_through_a_file_writes_the_same_set(ham_root, tmp_path, monkeypatch, changes):
    if changes.get("skip_bad"):  # rows after the unreadable ones move up in the file
        next(ham_root.rglob("ISIC_0000003.jpg")).write_bytes(b"not a jpeg")
    (tmp_path / "memory").mkdir()
    in_memory = prepare_ham(ham_root, tmp_path / "memory" / "set.npz", **changes)
    monkeypatch.setenv(THRESHOLD, "0")
    (tmp_path / "mapped").mkdir()
    mapped = prepare_ham(ham_root, tmp_path / "mapped" / "set.npz", **changes)
    assert in_memory.read_bytes() == mapped.read_bytes()
    assert listing(mapped.parent) == ["set.npz"]  # the decode buffer is gone


def test_a_large_set_is_memory_mapped_and_reads_as_the_array(ham_root, tmp_path, monkeypatch):
    path = prepare_ham(ham_root, tmp_path / "set.npz")
    held = load_prepared(path)
    assert not isinstance(held.images, np.memmap)
    monkeypatch.setenv(THRESHOLD, "0")
    mapped = load_prepared(path)
    assert isinstance(mapped.images, np.memmap) and mapped.fingerprint == held.fingerprint
    np.testing.assert_array_equal(mapped.images, held.images)
    rows = mapped.rows(mapped.indices("train"))
    assert isinstance(rows, ImageRows) and rows.shape == held.rows(held.indices("train")).shape
    pick = np.array([5, 0, 5, 2])  # out of file order, repeated: handed back as asked
    np.testing.assert_array_equal(rows[pick], held.images[held.indices("train")[pick]])
    np.testing.assert_array_equal(rows[3], held.images[held.indices("train")[3]])
    np.testing.assert_array_equal(np.asarray(rows[1:4]), held.images[held.indices("train")[1:4]])
    np.testing.assert_array_equal(np.stack(list(rows)), held.images[held.indices("train")])
    device_rows = DeviceRows([rows, np.zeros((2, 16, 16, 3), np.uint8)], torch.device("cpu"))
    expected = torch.cat([torch.from_numpy(held.images[held.indices("train")]), torch.zeros(2, 16, 16, 3,
                                                                                              dtype=torch.uint8)])
    order = torch.tensor([len(rows) + 1, 0, 4])
    assert torch.equal(device_rows[order], expected[order].permute(0, 3, 1, 2))


def test_an_edited_mapped_set_is_refused(ham_root, tmp_path, monkeypatch):
    path = prepare_ham(ham_root, tmp_path / "set.npz")
    monkeypatch.setenv(THRESHOLD, "0")
    with zipfile.ZipFile(path) as archive:
        images = map_member(path, archive, "images.npy")
        offset = images.rows_at[1]
    del images
    data = bytearray(path.read_bytes())
    data[offset + 100] ^= 0xFF  # one pixel: the zip's checksum is not read for a mapped member, the fingerprint is
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="changed after prepare"):
        load_prepared(path)


def test_a_bad_threshold_is_refused_in_one_line(ham_root, tmp_path, monkeypatch):
    path = prepare_ham(ham_root, tmp_path / "set.npz")
    monkeypatch.setenv(THRESHOLD, "lots")
    with pytest.raises(UserError, match="GAN_AUG_MEMORY_MAP_ABOVE_MB='lots' is not a number"):
        load_prepared(path)


def train_classifier_once(data, out, **changes):
    from classifier.config import ClassifierConfig
    from classifier.train import train_classifier

    flags = {"data": str(data), "out": str(out), "epochs": 2, "batch_size": 8, "balance": "oversample", **changes}
    train_classifier(build_config(ClassifierConfig, None, flags), progress=False)
    return torch.load(out / "best.pt", weights_only=True), (out / "history.jsonl").read_text()


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("synthetic", [False, True])
def test_a_mapped_set_trains_the_classifier_identically(toy16, toy_gan, tmp_path, monkeypatch, run_cli, synthetic):
    extra = {}
    if synthetic:  # the pool is then the mapped train rows and the synthetic images in memory
        assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--out", tmp_path / "syn").exit_code == 0
        extra = {"synthetic": str(tmp_path / "syn"), "mix": 0.5}
    held, held_history = train_classifier_once(toy16, tmp_path / "held", **extra)
    monkeypatch.setenv(THRESHOLD, "0")
    mapped, mapped_history = train_classifier_once(toy16, tmp_path / "mapped", **extra)
    assert same_weights(held["model"], mapped["model"])
    assert held_history == mapped_history  # val BMA per epoch too: val is read batch by batch
    evaluate = ("evaluate", "--checkpoint", tmp_path / "mapped", "--data", toy16, "--split", "test", "--bootstrap", 0,
                "--out", tmp_path / "metrics.json", "--force")
    result = run_cli(*evaluate)
    assert result.exit_code == 0, result.output
    monkeypatch.delenv(THRESHOLD)
    assert run_cli(*evaluate).output == result.output


def test_a_mapped_set_trains_the_gan_identically(toy16, tmp_path, monkeypatch):
    held = torch.load(tiny_gan(toy16, tmp_path / "held") / "latest.pt", weights_only=True)
    monkeypatch.setenv(THRESHOLD, "0")
    mapped = torch.load(tiny_gan(toy16, tmp_path / "mapped") / "latest.pt", weights_only=True)
    assert same_weights(held["G"], mapped["G"]) and same_weights(held["D"], mapped["D"])


@pytest.mark.slow  # the near-duplicate search fits its detector: 25 s for both sets
def test_grouping_near_duplicates_through_a_file_writes_the_same_set(tmp_path, monkeypatch):
    from test_audit import SIZE, copies_of, toy_lesions, write_imagefolder

    lesions = toy_lesions(90, seed=4)
    images = np.concatenate([lesions, copies_of(lesions, range(12), seed=5)])
    source = write_imagefolder(tmp_path / "folder", images, [f"l{i}" for i in range(90)] +
                               [f"c{i}" for i in range(12)])
    written = []
    for threshold in (None, "0"):
        if threshold is not None:
            monkeypatch.setenv(THRESHOLD, threshold)
        out = tmp_path / f"grouped_{threshold}.npz"
        prepare(PrepareConfig(out=str(out), source="imagefolder", root=str(source), size=SIZE, workers=1,
                              group_near_duplicates=True), progress=False)
        written.append(out.read_bytes())
    assert written[0] == written[1] and load_prepared(tmp_path / "grouped_0.npz").near_duplicates["pairs"] > 0
