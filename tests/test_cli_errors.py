"""Every bad input of `prepare`/`info` ends in one 'Error:' line, a non-zero exit and no output file."""

import csv

import numpy as np
import pytest

from conftest import listing


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    # A progress bar may have drawn before the error; it ends in '\r' and a terminal overwrites it.
    lines = [line.split("\r")[-1] for line in result.output.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def rewrite_csv(path, drop_column=None, edit=None):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    fields = [f for f in rows[0] if f != drop_column]
    for row in rows:
        row.pop(drop_column, None)
        if edit:
            edit(row)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def ham_args(root, out):
    return ("prepare", "--source", "ham10000", "--root", root, "--size", 16, "--out", out, "--workers", 1)


def test_missing_csv_column(run_cli, ham_root, tmp_path):
    rewrite_csv(ham_root / "HAM10000_metadata.csv", drop_column="lesion_id")
    assert_one_line_error(run_cli(*ham_args(ham_root, tmp_path / "o.npz")), "lacks column(s) lesion_id")
    assert not (tmp_path / "o.npz").exists()


def test_unknown_class_label(run_cli, ham_root, tmp_path):
    rewrite_csv(ham_root / "HAM10000_metadata.csv", edit=lambda r: r.update(dx="xyz") if r["image_id"].endswith("3") else None)
    assert_one_line_error(run_cli(*ham_args(ham_root, tmp_path / "o.npz")), "unknown dx label(s) xyz")


def test_missing_images_listed_then_skipped(run_cli, ham_root, tmp_path):
    for name in ("ISIC_0000004.jpg", "ISIC_0000007.jpg"):
        next(ham_root.rglob(name)).unlink()
    out = tmp_path / "o.npz"
    assert_one_line_error(run_cli(*ham_args(ham_root, out)), "2 image id(s) have no file",
                          "ISIC_0000004, ISIC_0000007", "--skip-missing")
    assert not out.exists()
    result = run_cli(*ham_args(ham_root, out), "--skip-missing")
    assert result.exit_code == 0 and "skipped 2 image id(s)" in result.output
    with np.load(out) as data:
        assert len(data["labels"]) == 82 and "ISIC_0000004" not in data["image_id"]


def test_corrupt_images_named_then_skipped(run_cli, ham_root, tmp_path):
    truncated = next(ham_root.rglob("ISIC_0000005.jpg"))
    truncated.write_bytes(truncated.read_bytes()[:200])
    next(ham_root.rglob("ISIC_0000009.jpg")).write_bytes(b"not an image at all")
    out = tmp_path / "o.npz"
    assert_one_line_error(run_cli(*ham_args(ham_root, out)), "2 unreadable image(s)", "ISIC_0000005.jpg",
                          "ISIC_0000009.jpg", "--skip-bad")
    assert not out.exists()
    result = run_cli(*ham_args(ham_root, out), "--skip-bad")
    assert result.exit_code == 0
    with np.load(out) as data:
        assert len(data["labels"]) == 82


def test_corrupt_image_with_parallel_workers(run_cli, ham_root, tmp_path):
    next(ham_root.rglob("ISIC_0000070.jpg")).write_bytes(b"\xff\xd8\xff garbage")
    args = list(ham_args(ham_root, tmp_path / "o.npz"))
    args[-1] = 2
    assert_one_line_error(run_cli(*args), "ISIC_0000070.jpg")


@pytest.mark.parametrize("source", ["ham10000", "isic-csv", "imagefolder"])
def test_empty_or_absent_root(run_cli, tmp_path, source):
    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (empty, tmp_path / "absent"):
        result = run_cli("prepare", "--source", source, "--root", root, "--out", tmp_path / "o.npz")
        assert_one_line_error(result)
    assert listing(tmp_path) == ["empty"]


def test_csv_without_images(run_cli, ham_root, tmp_path):
    for image in ham_root.rglob("*.jpg"):
        image.unlink()
    assert_one_line_error(run_cli(*ham_args(ham_root, tmp_path / "o.npz")), "no images")


@pytest.mark.parametrize("size", [0, 4, 513, 100000])
def test_size_out_of_range(run_cli, tmp_path, size):
    result = run_cli("prepare", "--size", size, "--out", tmp_path / "o.npz")
    assert_one_line_error(result, "--size must be between 8 and 512")


def test_output_exists_is_not_touched(run_cli, tmp_path):
    out = tmp_path / "o.npz"
    out.write_bytes(b"precious")
    assert_one_line_error(run_cli("prepare", "--toy-count", 60, "--size", 16, "--out", out), "already exists", "--force")
    assert out.read_bytes() == b"precious"


@pytest.mark.parametrize("args, message", [
    (["--source", "nope"], "unknown source 'nope'"),
    (["--source", "ham10000"], "--root is required"),
    (["--set", "bogus=1"], "unknown config key 'bogus'"),
    (["--set", "size=big"], "config key 'size' must be an integer"),
    (["--set", "noequals"], "--set expects key=value"),
    (["--val-frac", "0.5", "--test-frac", "0.6"], "split fractions"),
    (["--config", "/no/such.yaml"], "config file not found"),
])
def test_bad_config(run_cli, tmp_path, args, message):
    assert_one_line_error(run_cli("prepare", "--out", tmp_path / "o.npz", *args), message)


def test_isic_row_not_one_hot(run_cli, isic2018_root, tmp_path):
    path = isic2018_root / "ISIC_GroundTruth.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("0.0", "1.0", 1)
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("prepare", "--source", "isic-csv", "--root", isic2018_root, "--out", tmp_path / "o.npz")
    assert_one_line_error(result, "line 4", "exactly one class")


def test_isic_unknown_column(run_cli, isic2018_root, tmp_path):
    path = isic2018_root / "ISIC_GroundTruth.csv"
    path.write_text(path.read_text().replace("VASC", "WART", 1))
    result = run_cli("prepare", "--source", "isic-csv", "--root", isic2018_root, "--out", tmp_path / "o.npz")
    assert_one_line_error(result, "unknown class column(s) WART")


def test_medmnist_missing_keys_and_bad_labels(run_cli, tmp_path):
    bad = tmp_path / "dermamnist.npz"
    np.savez(bad, train_images=np.zeros((2, 28, 28, 3), np.uint8))
    result = run_cli("prepare", "--source", "medmnist-npz", "--root", bad, "--out", tmp_path / "o.npz")
    assert_one_line_error(result, "lacks key(s)")
    arrays = {f"{s}_{k}": (np.zeros((2, 28, 28, 3), np.uint8) if k == "images" else np.full((2, 1), 9))
              for s in ("train", "val", "test") for k in ("images", "labels")}
    np.savez(bad, **arrays)
    result = run_cli("prepare", "--source", "medmnist-npz", "--root", bad, "--out", tmp_path / "o.npz")
    assert_one_line_error(result, "labels outside 0..6")


def test_info_on_bad_files(run_cli, tmp_path):
    assert_one_line_error(run_cli("info", tmp_path / "none.npz"), "not found")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    assert_one_line_error(run_cli("info", tmp_path / "other.npz"), "not a gan-aug prepared set")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert_one_line_error(run_cli("info", tmp_path / "junk.npz"), "not a readable")


def test_too_few_images_to_split(run_cli, imagefolder_root, tmp_path):
    result = run_cli("prepare", "--source", "imagefolder", "--root", imagefolder_root, "--out", tmp_path / "o.npz",
                     "--test-frac", 0.05)
    assert_one_line_error(result, "too few")
