"""Placebo sets (issue #40): the same counts per class as the synthetic set they stand in for; placebo-aug holds
augmented real images of the right class, placebo-shuffle the synthetic images under permuted labels."""

import numpy as np
import pytest

from conftest import write_prepared
from gan_aug.compare.placebo import augmented_real, shuffled_labels
from gan_aug.data.prepared import load_prepared

COLOURS = np.array([(220, 30, 30), (30, 220, 30), (30, 30, 220)], dtype=np.uint8)


def flat_colour_set(tmp_path):
    """A prepared set whose classes are flat colours (red, green, blue), and a 'synthetic' set of 5, 0 and 7."""
    path = write_prepared(tmp_path / "flat.npz", 16, per_split=(30, 6, 6))
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["images"] = COLOURS[arrays["labels"]][:, None, None, :].repeat(16, 1).repeat(16, 2)
    from gan_aug.data.prepared import fingerprint

    arrays["fingerprint"] = np.array(fingerprint(arrays["images"], arrays["labels"], arrays["split"]))
    np.savez(path, **arrays)
    labels = np.array([0] * 5 + [2] * 7)
    synthetic = (np.zeros((12, 16, 16, 3), np.uint8), labels, ("mel", "nv", "bkl"), {"gan_data": {}})
    return load_prepared(path), synthetic


def test_placebo_aug_draws_augmented_real_images_of_each_class(tmp_path):
    prepared, synthetic = flat_colour_set(tmp_path)
    images, labels, names, provenance = augmented_real(synthetic, prepared)
    assert list(labels) == list(synthetic[1]) and names == synthetic[2] and provenance["placebo"] == "placebo-aug"
    means = images.reshape(len(images), -1, 3).mean(axis=1)
    nearest = np.linalg.norm(means[:, None] - COLOURS[None].astype(float), axis=2).argmin(axis=1)
    assert (nearest == labels).mean() >= 0.7  # a real image of the class, whatever the augmentation did
    again = augmented_real(synthetic, prepared)[0]
    assert np.array_equal(images, again)  # seeded: every run of the arm sees the same set


def test_placebo_shuffle_keeps_the_images_and_permutes_the_labels(tmp_path):
    prepared, synthetic = flat_colour_set(tmp_path)
    images = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    synthetic = (images,) + synthetic[1:]
    shuffled, labels, names, provenance = shuffled_labels(synthetic, prepared)
    assert shuffled is images and sorted(labels) == sorted(synthetic[1]) and provenance["placebo"] == "placebo-shuffle"
    assert not np.array_equal(labels, synthetic[1])


@pytest.mark.slow  # a whole pipeline of its own: the quick tier stays under 2 minutes
def test_placebo_early_draws_from_the_first_snapshot_of_the_gan_run(toy16, tmp_path):
    """The same counts per class, from the run's checkpoint at or before 5% of its training."""
    from conftest import tiny_gan
    from gan_aug.compare.placebo import early_snapshot
    from gan_aug.data.synthetic import load_synthetic

    run = tiny_gan(toy16, tmp_path / "gan", kimg=0.64, ckpt_every=0.016, snapshot_every=1)
    prepared = load_prepared(toy16)
    labels = np.array([0] * 4 + [3] * 6)
    synthetic = (np.zeros((10, 16, 16, 3), np.uint8), labels, prepared.class_names, {})
    images, drawn, names, provenance = early_snapshot(synthetic, prepared, {"gan_run": run, "out": tmp_path / "early"})
    assert provenance["placebo"] == "placebo-early" and len(images) == 10
    assert sorted(np.array(names)[drawn]) == sorted(np.array(prepared.class_names)[labels])
    assert provenance["gans"][0]["checkpoint"].endswith("step0000002.pt")  # 32 of 640 images seen: 5%
    assert len(load_synthetic(tmp_path / "early")[0]) == 10
