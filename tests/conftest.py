"""Tiny fixtures of every source format, built fresh in a temp folder for each test."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gan_aug.cli import cli

HAM = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def write_jpeg(path, seed, size=(40, 30)):
    rng = np.random.default_rng(seed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)


@pytest.fixture
def ham_root(tmp_path):
    """A HAM10000-style root: metadata CSV + images over two part folders; lesions of 1-3 images."""
    root = tmp_path / "ham"
    rows, image_no = [], 0
    for lesion_no in range(42):
        dx = HAM[lesion_no % len(HAM)]
        for _ in range(1 + lesion_no % 3):
            image_id = f"ISIC_{image_no:07d}"
            part = "HAM10000_images_part_1" if image_no % 2 else "HAM10000_images_part_2"
            write_jpeg(root / part / f"{image_id}.jpg", image_no)
            rows.append({"lesion_id": f"HAM_{lesion_no:07d}", "image_id": image_id, "dx": dx,
                         "dx_type": "histo", "age": "" if image_no % 5 == 0 else str(30 + image_no % 50),
                         "sex": "male" if image_no % 2 else "female", "localization": "back"})
            image_no += 1
    with open(root / "HAM10000_metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def write_isic(root, columns, n, metadata=False):
    """ISIC one-hot ground truth with n images under root/images; returns the CSV path."""
    classes = [c for c in columns if c != "UNK"]
    path = root / "ISIC_GroundTruth.csv"
    root.mkdir(parents=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image"] + list(columns))
        for i in range(n):
            hot = classes[i % len(classes)]
            writer.writerow([f"ISIC_{i:07d}"] + ["1.0" if c == hot else "0.0" for c in columns])
            write_jpeg(root / "images" / f"ISIC_{i:07d}.jpg", i)
    if metadata:
        with open(root / "meta.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image", "age_approx", "anatom_site_general", "lesion_id", "sex"])
            for i in range(n):
                writer.writerow([f"ISIC_{i:07d}", 40 + i % 30, "torso", f"IL_{i // 2:07d}", "female"])
    return path


@pytest.fixture
def isic2018_root(tmp_path):
    root = tmp_path / "isic2018"
    write_isic(root, ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"), 84)
    return root


@pytest.fixture
def isic2019_root(tmp_path):
    root = tmp_path / "isic2019"
    write_isic(root, ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"), 96, metadata=True)
    return root


@pytest.fixture
def medmnist_file(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 8), ("test", 10)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 7).reshape(-1, 1).astype(np.uint8)
    path = tmp_path / "dermamnist.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def imagefolder_root(tmp_path):
    root = tmp_path / "folders"
    for c, name in enumerate(("benign", "malignant", "other")):
        for i in range(12):
            write_jpeg(root / name / f"img_{i}.png", c * 100 + i)
    return root


def write_prepared(path, size, per_split=(6, 3, 3), classes=("mel", "nv", "bkl"), **metadata):
    """A prepared set of random images at `size` px, train/val/test counts `per_split`, classes in turn;
    `metadata`: age/sex/site arrays, one value per image."""
    from gan_aug.data.prepared import fingerprint

    split = np.concatenate([np.full(n, s) for n, s in zip(per_split, ("train", "val", "test"))])
    labels = np.arange(len(split)) % len(classes)
    images = np.random.default_rng(size).integers(0, 256, (len(split), size, size, 3), dtype=np.uint8)
    ids = np.array([f"img_{i}" for i in range(len(split))])
    np.savez(path, images=images, labels=labels, class_names=np.array(classes), split=split, group=ids,
             image_id=ids, source=np.array("test"), fingerprint=np.array(fingerprint(images, labels, split)),
             **metadata)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Every connection refused, as on a machine without internet (name lookups fail too)."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache: torch.hub.get_dir() reads TORCH_HOME on every call."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def run_cli():
    """Invoke `gan-aug ARGS...` in-process; returns click's Result."""
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def two_threads():
    """torch's thread count set to 2 for a test that expects a command to lower it, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def listing(folder):
    return sorted(os.listdir(folder))


@pytest.fixture(scope="session")
def toy16(tmp_path_factory):
    """A small prepared toy set at 16 px (shared by the GAN tests; read-only)."""
    from gan_aug.data.config import PrepareConfig
    from gan_aug.data.prepare import prepare

    out = tmp_path_factory.mktemp("data") / "toy16.npz"
    prepare(PrepareConfig(out=str(out), source="toy", size=16, toy_count=200, workers=1), progress=False)
    return out


@pytest.fixture(scope="session")
def toy_classifier(toy16, tmp_path_factory):
    """A small CNN trained for one epoch on toy16: a judge for score's features and a checkpoint to evaluate
    (read-only)."""
    from classifier.config import ClassifierConfig
    from classifier.train import ClassifierTrainer
    from gan_aug.config import build_config

    out = tmp_path_factory.mktemp("clf") / "run"
    ClassifierTrainer(build_config(ClassifierConfig, None, {"data": str(toy16), "out": str(out), "epochs": 1}),
                      progress=False).fit()
    return out


def tiny_gan(data, out, **changes):
    """Train a tiny GAN for a few steps (CPU, seconds); returns the run directory."""
    from gan_aug.config import build_config
    from gan_aug.gan.config import GanConfig
    from gan_aug.gan.train import train_gan

    flags = {"data": str(data), "out": str(out), "batch_size": 16, "z_dim": 16, "g_channels": 8,
             "d_channels": 8, "kimg": 0.032, "snapshot_every": 1, "ckpt_every": 1, "grid_columns": 2, **changes}
    train_gan(build_config(GanConfig, None, flags), progress=False)
    return out


@pytest.fixture(scope="session")
def toy_gan(toy16, tmp_path_factory):
    """A 7-class conditional GAN trained briefly on toy16."""
    return tiny_gan(toy16, tmp_path_factory.mktemp("gan") / "run")
