"""train-diffusion (issue #45) on CPU at 16 px: an exact resume, synthesis that repeats byte for byte and that
guidance changes, a model that learns per-class colours well enough for a classifier trained on its samples,
and the refusals."""

import json

import numpy as np
import pytest
import torch

from gan_aug.config import build_config
from gan_aug.data.prepared import fingerprint, load_prepared
from gan_aug.diffusion.config import DiffusionConfig
from gan_aug.diffusion.train import dihedral, train_diffusion
from gan_aug.errors import UserError
from gan_aug.synth.sample import DiffusionSource, open_source

TINY = {"batch_size": 16, "channels": (16, 32), "layers_per_block": 1, "grid_columns": 2, "sample_steps": 2,
        "snapshot_every": 0.048, "ckpt_every": 0.048}
COLOURS = np.array([[200, 40, 40], [40, 160, 60], [50, 60, 200]])


def tiny_diffusion(data, out, **changes):
    train_diffusion(build_config(DiffusionConfig, None, {"data": str(data), "out": str(out), "kimg": 0.096,
                                                         **TINY, **changes}), progress=False)
    return out


@pytest.fixture(scope="module")
def toy_diffusion(toy16, tmp_path_factory):
    return tiny_diffusion(toy16, tmp_path_factory.mktemp("diffusion") / "run")


@pytest.mark.slow
def test_a_resumed_run_matches_an_uninterrupted_one(toy16, tmp_path):
    straight = torch.load(tiny_diffusion(toy16, tmp_path / "straight") / "latest.pt", weights_only=True)
    tiny_diffusion(toy16, tmp_path / "halves", kimg=0.048)
    resumed = torch.load(tiny_diffusion(toy16, tmp_path / "halves", resume=True) / "latest.pt", weights_only=True)
    assert resumed["step"] == straight["step"] == 6
    for key in ("unet", "unet_ema"):
        assert all(torch.equal(straight[key][k], resumed[key][k]) for k in straight[key])
    assert torch.equal(straight["rng"]["batch"], resumed["rng"]["batch"])
    assert sorted(p.name for p in (tmp_path / "halves" / "samples").iterdir()) == \
        ["step0000000.png", "step0000003.png", "step0000006.png"]
    with pytest.raises(UserError, match="another UNet"):
        tiny_diffusion(toy16, tmp_path / "halves", resume=True, kimg=0.2, channels=(16, 16))


def synthesize(run_cli, checkpoint, out, *flags):
    result = run_cli("synthesize", "--checkpoint", checkpoint, "-n", 6, "--distribution", "uniform", "--steps", 3,
                     "--format", "npz", "--out", out, *flags)
    assert result.exit_code == 0, result.output
    return np.load(out)["images"]


def test_synthesis_repeats_and_guidance_changes_it(toy_diffusion, tmp_path, run_cli):
    first = synthesize(run_cli, toy_diffusion, tmp_path / "a.npz")
    synthesize(run_cli, toy_diffusion, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    guided = synthesize(run_cli, toy_diffusion, tmp_path / "g.npz", "--guidance", 3)
    assert first.shape == guided.shape == (6, 16, 16, 3) and not np.array_equal(first, guided)
    solver = synthesize(run_cli, toy_diffusion, tmp_path / "s.npz", "--sampler", "dpm-solver")
    assert not np.array_equal(first, solver)
    provenance = json.loads(str(np.load(tmp_path / "g.npz")["provenance"]))
    assert provenance["gans"][0]["kind"] == "diffusion"
    assert provenance["gans"][0]["sampling"] == {"sampler": "ddim", "steps": 3, "guidance": 3.0}


def test_guidance_needs_a_model_that_learned_without_labels(toy16, tmp_path, run_cli):
    run = tiny_diffusion(toy16, tmp_path / "run", label_dropout=0.0, kimg=0.016)
    result = run_cli("synthesize", "--checkpoint", run, "-n", 2, "--guidance", 2, "--out", tmp_path / "syn")
    assert result.exit_code == 1 and "without label_dropout" in result.output, result.output
    assert not (tmp_path / "syn").exists()


def test_the_eight_views_are_the_symmetries_of_the_square():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    views = {tuple(v.flatten().tolist()) for v in dihedral(x, torch.arange(8))}
    assert len(views) == 8 and tuple(x[0].flatten().tolist()) in views


@pytest.mark.parametrize("changes, message", [
    ({"prediction": "x0"}, "prediction"), ({"channels": (16, 32, 32, 32, 32)}, "UNet levels"),
    ({"guidance": 0.5}, "guidance must be >= 1"), ({"label_dropout": 1.0}, "label_dropout"),
    ({"sample_steps": 2000}, "cannot exceed timesteps")])
def test_refusals(toy16, tmp_path, changes, message):
    with pytest.raises(UserError, match=message):
        tiny_diffusion(toy16, tmp_path / "run", **changes)
    assert not (tmp_path / "run").exists()


def colour_set(path):
    """Three classes told apart by colour alone, 16 px, 60/30/30 images each in train/val/test."""
    rng = np.random.default_rng(0)
    split = np.concatenate([np.full(n * 3, s) for s, n in (("train", 60), ("val", 30), ("test", 30))])
    labels = np.tile(np.arange(3), len(split) // 3)
    noise = rng.normal(0, 25, (len(split), 16, 16, 3))
    images = np.clip(COLOURS[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    ids = np.array([f"i{i}" for i in range(len(split))])
    np.savez(path, images=images, labels=labels, class_names=np.array(["red", "green", "blue"]), split=split,
             group=ids, image_id=ids, source=np.array("test"), fingerprint=np.array(fingerprint(images, labels, split)))
    return path


@pytest.mark.slow  # two minutes of training
def test_it_learns_each_class_well_enough_for_a_classifier(tmp_path):
    from gan_aug.metrics.score import classification_accuracy_score

    data = colour_set(tmp_path / "colours.npz")
    run = tiny_diffusion(data, tmp_path / "run", kimg=6.4, batch_size=32, lr=1e-3, ema_kimg=0.5, snapshot_every=100,
                         ckpt_every=100)
    source = open_source(run, "cpu", ("ddim", 10, 1.0))
    assert isinstance(source, DiffusionSource)
    images = np.concatenate([source.sample(c, 20, 0, 1.0, 64) for c in range(3)])
    labels = np.repeat(np.arange(3), 20)
    means = np.stack([images[labels == c].reshape(-1, 3).mean(axis=0) for c in range(3)])
    nearest = np.linalg.norm(means[:, None] - COLOURS[None], axis=2).argmin(axis=1)
    assert nearest.tolist() == [0, 1, 2], means  # each class's samples have its colour
    cas = classification_accuracy_score(load_prepared(data), images, labels, epochs=10, seed=0, device="cpu")
    assert cas["bma"] > 0.6, cas  # chance is 1/3


@pytest.mark.slow  # trains the judge classifier too
def test_quality_is_tracked_while_training(toy16, tmp_path, run_cli):
    """FD/KID in stats.jsonl, overall and per class; best.pt is the lowest-FD snapshot, in the diffusion format."""
    judge = tmp_path / "judge"
    assert run_cli("train-classifier", "--data", toy16, "--out", judge, "--epochs", 1).exit_code == 0
    run = tmp_path / "run"
    result = run_cli("train-diffusion", "--data", toy16, "--out", run, "--kimg", 0.064, "--set", "channels=16,32",
                     "--set", "layers_per_block=1", "--set", "batch_size=16", "--set", "sample_steps=2",
                     "--set", "grid_columns=1", "--set", "metrics_every=0.032", "--set", "metrics_n=32",
                     "--set", f"metrics_features=lesion:{judge}/best.pt")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    measured = [r for r in rows if "Metrics/fd" in r]
    assert len(measured) == 2 and all("Metrics/kid" in r and "Metrics/fd/df" in r for r in measured)
    best = min(measured, key=lambda r: r["Metrics/fd"])
    state = torch.load(run / "best.pt", weights_only=True)
    assert state["format"] == "gan-aug/diffusion-checkpoint/1" and state["step"] == best["step"]
    assert isinstance(open_source(run / "best.pt", "cpu"), DiffusionSource)


def test_the_web_app_generates_from_a_diffusion_checkpoint(toy_diffusion, tmp_path):
    from PIL import Image

    from gan_aug.app.gallery import generate

    images, archive = generate(str(toy_diffusion), "df", 2, 1.0, 7, tmp_path)
    assert len(images) == 2 and Image.open(images[0]).size == (16, 16) and archive.stat().st_size > 0


@pytest.mark.parametrize("changes", [{"prediction": "eps", "schedule": "linear"}, {"classes": ("df", "vasc"), "batch_size": 8}])
def test_eps_prediction_the_linear_schedule_and_a_class_subset_train_and_sample(toy16, tmp_path, changes):
    run = tiny_diffusion(toy16, tmp_path / "run", kimg=0.016, **changes)
    source = open_source(run, "cpu", ("dpm-solver", 3, 1.0))
    assert source.class_names == changes.get("classes", source.class_names)
    assert source.sample(len(source.class_names) - 1, 3, 0, 1.0, 8).shape == (3, 16, 16, 3)


@pytest.mark.slow  # trains compare's classifiers
def test_score_and_compare_take_a_diffusion_set(toy16, toy_diffusion, toy_classifier, tmp_path, run_cli):
    syn = tmp_path / "syn"
    assert run_cli("synthesize", "--checkpoint", toy_diffusion, "-n", 28, "--steps", 3, "--out", syn).exit_code == 0
    result = run_cli("score", "--data", toy16, "--synthetic", syn, "--features", f"lesion:{toy_classifier}/best.pt",
                     "--no-cas", "--out", tmp_path / "scores.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "scores.json").read_text())["per_class"]["all"]["frechet_distance"] > 0
    config = tmp_path / "compare.yaml"
    config.write_text(f"data: {toy16}\nsynthetic_sets: [diffusion={syn}]\narms: [oversample, mix:0.5@diffusion]\n"
                      "seeds: [0]\nepochs: 1\nbatch_size: 32\nbootstrap: 200\n")
    result = run_cli("compare", "--config", config, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "mix:0.5@diffusion" in (tmp_path / "cmp" / "report.md").read_text()


def test_a_damaged_diffusion_checkpoint_is_refused_in_one_line(toy_diffusion, tmp_path, run_cli):
    state = torch.load(toy_diffusion / "latest.pt", weights_only=True)
    del state["unet_ema"]
    torch.save(state, tmp_path / "partial.pt")
    state = torch.load(toy_diffusion / "latest.pt", weights_only=True)
    state["model_args"]["unet"]["block_out_channels"] = [8, 8]
    torch.save(state, tmp_path / "edited.pt")
    for name, message in (("partial.pt", "not a whole diffusion checkpoint (it lacks unet_ema)"),
                          ("edited.pt", "its model_args do not rebuild its UNet")):
        result = run_cli("synthesize", "--checkpoint", tmp_path / name, "-n", 2, "--out", tmp_path / "syn")
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
