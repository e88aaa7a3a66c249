"""Colour constancy (issue #40) and hair removal (issue #44): per image, recorded by prepare, applied alike to the
external images a model of the set is evaluated, compared, rescored or served on."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_isic, write_prepared
from classifier.checkpoint import load_classifier
from classifier.evaluate import evaluate_checkpoint, external_set
from gan_aug.compare.runner import load_externals
from gan_aug.compare.summary import DataFacts
from gan_aug.data.color import METHODS, correct_colors, method_of, remove_hair, shades_of_gray, steps_of
from gan_aug.data.images import square_resize
from gan_aug.data.prepared import load_prepared
from gan_aug.errors import UserError

SOG = "shades-of-gray"
ISIC = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
CAST = np.array([1.0, 0.75, 0.5])  # a warm illuminant: red kept, green and blue dimmed


def test_shades_of_gray_makes_a_reddish_image_grey_and_leaves_grey_ones_alone():
    reddish = np.zeros((16, 16, 3), np.uint8) + np.array([200, 120, 80], np.uint8)
    corrected = shades_of_gray(reddish)
    means = corrected.reshape(-1, 3).mean(axis=0)
    assert means.max() - means.min() <= 1 and abs(means[0] - 142) <= 1  # (200, 120, 80) -> its rms, 142, grey
    rng = np.random.default_rng(0)
    textured = (rng.integers(60, 255, (24, 24, 1)) * CAST).astype(np.uint8)  # grey texture under the cast
    assert np.ptp(textured.reshape(-1, 3).mean(axis=0)) > 50
    assert np.ptp(shades_of_gray(textured).reshape(-1, 3).mean(axis=0)) <= 1.5
    grey = rng.integers(0, 256, (16, 16, 1), dtype=np.uint8).repeat(3, axis=2)
    assert np.array_equal(shades_of_gray(grey), grey)
    black = np.zeros((8, 8, 3), np.uint8)
    assert np.array_equal(shades_of_gray(black), black)
    pure_red = np.zeros((8, 8, 3), np.uint8) + np.array([255, 0, 0], np.uint8)  # zero estimates: no nan
    assert shades_of_gray(pure_red)[..., 1:].max() == 0


def test_correct_colors_is_per_image_and_none_is_the_identity():
    images = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    images = (images * CAST).astype(np.uint8)
    assert correct_colors(images, "none") is images
    batch = correct_colors(images, SOG)
    assert np.array_equal(batch[2], correct_colors(images[2], SOG))  # an upload alone gets the set's pixels
    assert not np.array_equal(batch, images)
    assert list(METHODS) == ["none", "hair-removal", SOG]
    with pytest.raises(UserError, match="unknown preprocessing step 'grey-world'"):
        correct_colors(images, "grey-world")
    assert method_of({"color_constancy": SOG}) == SOG  # a checkpoint without the key: gan_aug.legacy, below


def hairy_lesion():
    """Skin with a wide dark lesion and thin dark hairs across both: (image, hair mask off the lesion, lesion)."""
    size = 64
    y, x = np.mgrid[:size, :size]
    lesion = (y - 32) ** 2 + (x - 32) ** 2 < 14 ** 2
    image = np.where(lesion[..., None], [90, 50, 40], [205, 160, 140]).astype(np.uint8)
    hair = np.zeros((size, size), bool)
    for offset in (-20, 3, 25):  # three hairs, one pixel wide, diagonal
        hair |= np.abs(y - x - offset) < 1
    image[hair] = [25, 20, 20]
    return image, hair & ~lesion, lesion & ~hair


def test_hair_removal_inpaints_thin_dark_hairs_and_leaves_the_lesion():
    image, hair, lesion = hairy_lesion()
    skin = np.array([205, 160, 140])
    cleaned = remove_hair(image)
    assert np.abs(image[hair] - skin).mean() > 100  # a hair pixel before: far from the skin around it
    assert np.abs(cleaned[hair].astype(int) - skin).mean() < 25  # after: skin again
    assert np.abs(cleaned[lesion].astype(int) - image[lesion]).mean() < 5  # the lesion is wider than the cross
    plain = np.zeros((32, 32, 3), np.uint8) + np.array([205, 160, 140], np.uint8)
    assert np.array_equal(remove_hair(plain), plain)
    # the chain runs hair removal first, then colour constancy, and refuses any other order
    both = correct_colors(image[None], "hair-removal+" + SOG)[0]
    assert np.array_equal(both, shades_of_gray(remove_hair(image)))
    with pytest.raises(UserError, match=r"in the order hair-removal\+shades-of-gray"):
        steps_of(SOG + "+hair-removal")


def test_prepare_records_hair_removal_before_colour_constancy(ham_root, tmp_path, run_cli):
    common = ("prepare", "--source", "ham10000", "--root", ham_root, "--size", 32, "--workers", 1)
    assert run_cli(*common, "--out", tmp_path / "plain.npz").exit_code == 0
    result = run_cli(*common, "--out", tmp_path / "both.npz", "--hair-removal", "--color-constancy", SOG)
    assert result.exit_code == 0, result.output
    plain, both = load_prepared(tmp_path / "plain.npz"), load_prepared(tmp_path / "both.npz")
    assert both.color_constancy == "hair-removal+" + SOG
    assert np.array_equal(both.images, correct_colors(plain.images, "hair-removal+" + SOG))
    assert "pixels       with hair removed, then shades-of-gray colour constancy" in run_cli("info", both.path).output
    # an external set read for a model of this set is corrected the same way
    external = external_set("ham10000", ham_root, 32, color_constancy=both.color_constancy)
    assert np.array_equal(external.images, both.images[np.argsort(both.image_id)][np.argsort(np.argsort(
        external.image_id))])


def test_prepare_records_the_method_and_info_shows_it(ham_root, tmp_path, run_cli):
    plain, corrected = tmp_path / "plain.npz", tmp_path / "sog.npz"
    common = ("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--workers", 1)
    assert run_cli(*common, "--out", plain).exit_code == 0
    result = run_cli(*common, "--out", corrected, "--color-constancy", SOG)
    assert result.exit_code == 0, result.output
    before, after = load_prepared(plain), load_prepared(corrected)  # the fingerprint is the corrected pixels'
    assert (before.color_constancy, after.color_constancy) == ("none", SOG)
    assert np.array_equal(after.images, correct_colors(before.images, SOG))
    assert not np.array_equal(after.images, before.images)
    info = run_cli("info", corrected)
    assert info.exit_code == 0 and f"pixels       with {SOG} colour constancy" in info.output
    assert "pixels       as captured" in run_cli("info", plain).output
    refused = run_cli(*common, "--out", tmp_path / "x.npz", "--color-constancy", "grey-world")
    assert refused.exit_code == 1 and "unknown color_constancy 'grey-world'" in refused.output


def test_a_set_prepared_before_the_key_is_none_and_an_unknown_method_is_refused(tmp_path):
    old = write_prepared(tmp_path / "old.npz", 16)
    assert load_prepared(old).color_constancy == "none"
    arrays = dict(np.load(old))
    np.savez(tmp_path / "future.npz", **arrays, color_constancy=np.array("retinex"))
    with pytest.raises(UserError, match="prepared with 'retinex', which this gan-aug does not know"):
        load_prepared(tmp_path / "future.npz")


def cast_isic(root, n=28):
    """An ISIC-style external set of `n` images under a warm cast (each image's own strength)."""
    write_isic(root, ISIC, n)
    for i in range(n):
        path = root / "images" / f"ISIC_{i:07d}.jpg"
        pixels = np.asarray(Image.open(path)).astype(float) * (CAST ** (1 + i % 3))
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95)
    return root


@pytest.fixture
def sog_model(ham_root, tmp_path, run_cli):
    """A classifier trained on a shades-of-gray prepared set at 16 px."""
    data = tmp_path / "ham_sog.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--workers", 1,
                   "--color-constancy", SOG, "--out", data).exit_code == 0
    run = tmp_path / "clf"
    result = run_cli("train-classifier", "--data", data, "--out", run, "--epochs", 1)
    assert result.exit_code == 0, result.output
    return run


def test_evaluate_source_corrects_the_external_images_as_prepare_would(sog_model, tmp_path, run_cli):
    assert load_classifier(sog_model)[2]["model_args"]["color_constancy"] == SOG
    ext = cast_isic(tmp_path / "ext")
    result = run_cli("evaluate", "--checkpoint", sog_model, "--source", "isic-csv", "--root", ext,
                     "--out", tmp_path / "ext.json")
    assert result.exit_code == 0, result.output
    copy = tmp_path / "ext_sog.npz"  # the external set prepared as the model's set was: every image in train
    assert run_cli("prepare", "--source", "isic-csv", "--root", ext, "--size", 16, "--val-frac", 0, "--test-frac",
                   0, "--color-constancy", SOG, "--workers", 1, "--out", copy).exit_code == 0
    result = run_cli("evaluate", "--checkpoint", sog_model, "--data", copy, "--split", "train",
                     "--out", tmp_path / "copy.json")
    assert result.exit_code == 0, result.output
    by_cli, by_copy = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("ext", "copy"))
    for key in ("bma", "auc_macro", "per_class", "confusion_matrix", "ece"):
        assert by_cli[key] == by_copy[key], key
    prepared_copy = load_prepared(copy)
    external = external_set("isic-csv", ext, 16, color_constancy=SOG)
    assert np.array_equal(external.images, prepared_copy.images)
    probs = evaluate_checkpoint(sog_model, external, "test")[2]
    assert np.array_equal(probs, evaluate_checkpoint(sog_model, prepared_copy, "train")[2])
    # without the correction the model sees other pixels and answers otherwise; the check refuses that pairing
    uncorrected = external_set("isic-csv", ext, 16)
    with pytest.raises(UserError, match=f"learned from images with {SOG} colour constancy, but the evaluation set "
                                        "holds images as captured"):
        evaluate_checkpoint(sog_model, uncorrected, "test")
    forced = evaluate_checkpoint(sog_model, dataclasses.replace(uncorrected, color_constancy=SOG), "test")[2]
    assert not np.allclose(forced, probs, atol=1e-4)
    # compare's and rescore's external sets are read the same way
    loaded = load_externals([f"ext=isic-csv:{ext}"], 16, SOG)["ext"][0]
    assert loaded.color_constancy == SOG and np.array_equal(loaded.images, external.images)
    facts = DataFacts.of(prepared_copy)
    assert facts.color_constancy == SOG and DataFacts.from_dict(facts.to_dict()) == facts
    old = {k: v for k, v in facts.to_dict().items() if k != "color_constancy"}  # a bundle from before the key
    assert DataFacts.from_dict(old).color_constancy == "none"


def test_serve_and_explain_correct_an_image_with_the_models_method(sog_model, tmp_path, run_cli):
    from classifier.gradcam import EXPLANATIONS, grad_cam
    from gan_aug.app.lesion import LesionModel, enlarge

    upload = Image.fromarray((np.random.default_rng(3).integers(0, 256, (30, 40, 3)) * CAST).astype(np.uint8))
    result = LesionModel(sog_model, "cpu", neighbours=0).classify(upload)
    seen = correct_colors(np.asarray(square_resize(upload, 16)), SOG)
    assert np.array_equal(result.image, enlarge(seen))
    model, task, state = load_classifier(sog_model)
    expected = grad_cam(model, task, state["model_args"], seen[None])[0][0]
    assert [result.probabilities[n] for n in task.output_names] == pytest.approx(expected, abs=1e-6)
    upload.save(tmp_path / "lesion.png")
    result = run_cli("explain", "--checkpoint", sog_model, tmp_path / "lesion.png", "--out", tmp_path / "cams")
    assert result.exit_code == 0, result.output
    explained = json.loads((tmp_path / "cams" / EXPLANATIONS).read_text())[0]["probabilities"]
    assert [explained[n] for n in task.output_names] == pytest.approx(expected, abs=1e-6)


def test_a_checkpoint_without_the_key_loads_as_none(sog_model, ham_root, isic2018_root, tmp_path, run_cli):
    state = torch.load(sog_model / "best.pt", weights_only=True)
    del state["model_args"]["color_constancy"]  # as every checkpoint before issue #40
    torch.save(state, tmp_path / "old.pt")
    _, _, loaded = load_classifier(tmp_path / "old.pt")
    assert method_of(loaded["model_args"]) == "none"
    result = run_cli("evaluate", "--checkpoint", tmp_path / "old.pt", "--source", "isic-csv", "--root",
                     isic2018_root, "--out", tmp_path / "old.json")
    assert result.exit_code == 0, result.output
    plain = tmp_path / "plain.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--workers", 1,
                   "--out", plain).exit_code == 0
    result = run_cli("evaluate", "--checkpoint", tmp_path / "old.pt", "--data", plain, "--out", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    refused = run_cli("evaluate", "--checkpoint", sog_model, "--data", plain, "--out", tmp_path / "q.json")
    assert refused.exit_code == 1 and f"prepare it with --color-constancy {SOG}" in refused.output
    # a run started before the key resumes (its settings are the same: no colour constancy)
    run = tmp_path / "old_run"
    assert run_cli("train-classifier", "--data", plain, "--out", run, "--epochs", 1).exit_code == 0
    state = torch.load(run / "latest.pt", weights_only=True)
    del state["model_args"]["color_constancy"]
    torch.save(state, run / "latest.pt")
    result = run_cli("train-classifier", "--out", run, "--resume", "--epochs", 2)
    assert result.exit_code == 0, result.output
