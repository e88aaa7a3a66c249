"""Every image mode decodes to the RGB it shows, or is refused in one line; repeated image ids and labels
outside the class list never reach training (issue #21)."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import HAM
from gan_aug.data.images import decode_file, load_image
from gan_aug.errors import UserError
from test_cli_errors import assert_one_line_error, ham_args, rewrite_csv

SIZE = 8  # the images are SIZE x SIZE, so decoding at SIZE px is no resize: pixel values are exact

GREY16 = np.array([0, 255, 256, 4095, 32768, 40000, 65280, 65535], dtype=np.uint16)
RED, GREEN = (200, 30, 10), (10, 220, 40)


def image_of(mode, values):
    """A SIZE x SIZE image of `mode` whose pixels cycle through `values`."""
    image = Image.new(mode, (SIZE, SIZE))
    image.putdata([values[i % len(values)] for i in range(SIZE * SIZE)])
    return image


def palette(transparency=None):
    image = image_of("P", [0, 1])
    image.putpalette(list(RED) + list(GREEN) + [0] * 762)
    if transparency is not None:
        image.info["transparency"] = transparency
    return image


def cycle(rgb_values):
    return np.array([rgb_values[i % len(rgb_values)] for i in range(SIZE * SIZE)], np.uint8).reshape(SIZE, SIZE, 3)


# (name, file suffix, image maker, expected (SIZE, SIZE, 3) pixels). Alpha is composited over black.
CASES = [
    ("16-bit grayscale PNG", ".png", lambda: Image.fromarray(np.resize(GREY16, (SIZE, SIZE))),
     cycle([(v >> 8,) * 3 for v in GREY16])),
    ("grayscale", ".png", lambda: image_of("L", [0, 77, 255]), cycle([(0,) * 3, (77,) * 3, (255,) * 3])),
    ("palette", ".png", lambda: palette(), cycle([RED, GREEN])),
    ("palette, one colour transparent", ".png", lambda: palette(transparency=1), cycle([RED, (0, 0, 0)])),
    ("palette, red half transparent", ".png", lambda: palette(transparency=bytes([128, 255])),
     cycle([(100, 15, 5), GREEN])),
    ("RGBA", ".png", lambda: image_of("RGBA", [RED + (255,), RED + (0,), (200, 100, 50, 128)]),
     cycle([RED, (0, 0, 0), (100, 50, 25)])),
    ("grayscale + alpha", ".png", lambda: image_of("LA", [(200, 255), (200, 0), (200, 51)]),
     cycle([(200,) * 3, (0,) * 3, (40,) * 3])),
    ("CMYK TIFF", ".tif", lambda: image_of("CMYK", [(255, 0, 0, 0), (0, 0, 0, 255), (0, 0, 0, 0), (0, 255, 0, 128)]),
     cycle([(0, 255, 255), (0, 0, 0), (255, 255, 255), (127, 0, 127)])),
]


@pytest.mark.parametrize("name, suffix, make, expected", CASES, ids=[c[0] for c in CASES])
def test_each_mode_decodes_to_the_rgb_it_shows(name, suffix, make, expected, tmp_path):
    path = tmp_path / f"image{suffix}"
    make().save(path)
    decoded = decode_file(path, SIZE)
    assert decoded.dtype == np.uint8 and decoded.shape == (SIZE, SIZE, 3)
    assert np.abs(decoded.astype(int) - expected).max() <= 1, decoded[0]


def test_a_cmyk_jpeg_decodes_close_to_its_colours(tmp_path):
    Image.new("CMYK", (SIZE, SIZE), (255, 0, 0, 0)).save(tmp_path / "cyan.jpg", quality=100)
    assert np.abs(decode_file(tmp_path / "cyan.jpg", SIZE).astype(int) - (0, 255, 255)).max() <= 3


@pytest.mark.parametrize("mode, dtype", [("F", np.float32), ("I", np.int32)])
def test_modes_without_known_colours_are_refused(mode, dtype, tmp_path):
    path = tmp_path / f"{mode}.tif"
    Image.fromarray(np.full((SIZE, SIZE), 70000, dtype)).save(path)
    assert Image.open(path).mode == mode
    with pytest.raises(UserError, match=f"unreadable image .*{mode}.tif: {mode}.tif: image mode {mode} is not"):
        load_image(path, SIZE)


def modes_folder(root, count=8):
    """An ImageFolder source: class 'plain' of RGB images, class 'odd' of the other modes."""
    (root / "plain").mkdir(parents=True)
    for i in range(count):
        image_of("RGB", [RED, GREEN]).save(root / "plain" / f"rgb{i}.png")
    (root / "odd").mkdir()
    for i, (_, suffix, make, _) in enumerate(CASES):
        make().save(root / "odd" / f"case{i}{suffix}")
    return root


def test_prepare_stores_the_rgb_each_mode_shows(run_cli, tmp_path):
    root, out = modes_folder(tmp_path / "folders"), tmp_path / "modes.npz"
    result = run_cli("prepare", "--source", "imagefolder", "--root", root, "--size", SIZE, "--out", out,
                     "--val-frac", 0, "--test-frac", 0, "--workers", 1)
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        by_id = dict(zip(data["image_id"].tolist(), data["images"]))
    for i, (name, _, _, expected) in enumerate(CASES):
        assert np.abs(by_id[f"odd/case{i}"].astype(int) - expected).max() <= 1, name


def test_prepare_refuses_a_float_image_in_one_line(run_cli, tmp_path):
    root, out = modes_folder(tmp_path / "folders"), tmp_path / "modes.npz"
    Image.fromarray(np.zeros((SIZE, SIZE), np.float32)).save(root / "odd" / "depth.tif")
    result = run_cli("prepare", "--source", "imagefolder", "--root", root, "--size", SIZE, "--out", out,
                     "--val-frac", 0, "--test-frac", 0, "--workers", 1)
    assert_one_line_error(result, "1 unreadable image(s): depth.tif: image mode F is not supported", "--skip-bad")
    assert not out.exists()


# -- explain decodes as prepare does ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier16(toy16, tmp_path_factory):
    from classifier.config import ClassifierConfig
    from classifier.train import ClassifierTrainer
    from gan_aug.config import build_config

    out = tmp_path_factory.mktemp("clf16") / "run"
    ClassifierTrainer(build_config(ClassifierConfig, None, {"data": str(toy16), "out": str(out), "epochs": 1}),
                      progress=False).fit()
    return out


def test_explain_sees_a_16_bit_or_transparent_image_as_its_rgb(classifier16, run_cli, tmp_path):
    rng = np.random.default_rng(0)
    grey16 = rng.integers(0, 65536, (16, 16), dtype=np.uint16)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    Image.fromarray(grey16).save(tmp_path / "deep.png")
    Image.fromarray((grey16 >> 8).astype(np.uint8)).convert("RGB").save(tmp_path / "deep8.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    shown = (rgba[..., :3].astype(int) * rgba[..., 3:] + 127) // 255  # over black
    Image.fromarray(shown.astype(np.uint8)).save(tmp_path / "cut8.png")
    result = run_cli("explain", "--checkpoint", classifier16, *(tmp_path / f"{n}.png" for n in
                                                                 ("deep", "deep8", "cut", "cut8")),
                     "--out", tmp_path / "cams")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "cams" / "explanations.json").read_text())
    for original, rgb in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert original["probabilities"] == pytest.approx(rgb["probabilities"], abs=0.02)
    Image.fromarray(np.zeros((16, 16), np.float32)).save(tmp_path / "depth.tif")
    assert_one_line_error(run_cli("explain", "--checkpoint", classifier16, tmp_path / "depth.tif",
                                  "--out", tmp_path / "cams2"), "depth.tif", "image mode F is not supported")


# -- one image, one row; labels inside the class list ---------------------------------------------------------

def test_an_image_listed_under_two_lesions_is_refused(run_cli, ham_root, tmp_path):
    rewrite_csv(ham_root / "HAM10000_metadata.csv",
                edit=lambda row: row.update(image_id="ISIC_0000001") if row["image_id"] == "ISIC_0000040" else None)
    out = tmp_path / "o.npz"
    assert_one_line_error(run_cli(*ham_args(ham_root, out), "--skip-missing"),
                          "1 image id(s) listed more than once, e.g. ISIC_0000001 under lesion id(s) HAM_",
                          "give each image one row")
    assert not out.exists()


def test_a_csv_with_a_byte_order_mark_reads_and_a_binary_one_is_refused(run_cli, ham_root, tmp_path):
    csv_path = ham_root / "HAM10000_metadata.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())  # as spreadsheets save UTF-8
    assert run_cli(*ham_args(ham_root, tmp_path / "bom.npz")).exit_code == 0
    csv_path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    assert_one_line_error(run_cli(*ham_args(ham_root, tmp_path / "o.npz")), "is not a readable UTF-8 CSV file")


@pytest.fixture
def bad_labels(toy16, tmp_path):
    with np.load(toy16) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["labels"][5] = len(HAM)  # one past the last class
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("command", ["info", "train-gan", "train-classifier"])
def test_labels_outside_the_class_list_stop_every_reader(command, bad_labels, run_cli, tmp_path):
    tiny = {"train-gan": ["--kimg", 0.016, "--set", "batch_size=16"], "train-classifier": ["--epochs", 1]}
    args = ["info", bad_labels] if command == "info" else [command, "--data", bad_labels, "--out", tmp_path / "run",
                                                           *tiny[command]]
    assert_one_line_error(run_cli(*args), "bad.npz: 1 label(s) outside the 7 classes (e.g. 7; valid 0..6)")
    assert not (tmp_path / "run").exists()
