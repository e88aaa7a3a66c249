"""train-gan end to end on tiny data: learning, checkpoints, exact resume, modes, run directory, bad input."""

import json

import numpy as np
import pytest
import torch

from gan_aug.config import build_config

from gan_aug.data.config import PrepareConfig

from gan_aug.gan.config import GanConfig
from gan_aug.data.prepare import prepare
from gan_aug.data.prepared import fingerprint, load_prepared
from gan_aug.gan.checkpoint import load_checkpoint
from gan_aug.gan.ema import refresh_standing_stats
from gan_aug.gan.networks import build_networks
from gan_aug.gan.train import GanTrainer, conditioning_weight, train_gan
from gan_aug.sinks import StatsCollector

TINY = {"batch_size": 16, "z_dim": 16, "g_channels": 8, "d_channels": 8, "snapshot_every": 0.032,
        "ckpt_every": 0.064, "grid_columns": 3}


def tiny_config(data, out, **changes):
    return build_config(GanConfig, None, {"data": str(data), "out": str(out), **TINY, **changes})


def test_discriminator_learns_a_trivial_set(tmp_path):
    out = tmp_path / "flat.npz"
    prepare(PrepareConfig(out=str(out), source="toy", size=16, toy_count=60, workers=1), progress=False)
    with np.load(out) as data:
        arrays = dict(data)
    arrays["images"][:] = (200, 60, 40)  # every real image one flat colour
    arrays["fingerprint"] = np.array(fingerprint(arrays["images"], arrays["labels"], arrays["split"]))
    np.savez(out, **arrays)
    trainer = GanTrainer(tiny_config(out, tmp_path / "run", diffaugment=(), lr_g=1e-5), progress=False)
    stats = StatsCollector()
    losses = [trainer.train_step(stats)[0] for _ in range(30)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5, losses


@pytest.mark.parametrize("arch", ["dcgan", "stylegan_lite"])
def test_resume_equals_uninterrupted_run(toy16, tmp_path, arch):
    # Every stateful piece on: lazy R1, adaptive augmentation, transitional conditioning, EMA; and minibatch std.
    common = dict(arch=arch, loss="nonsat", r1_gamma=1.0, r1_every=2, ada_target=0.01, ada_speed_kimg=0.05,
                  cond_start_kimg=0.016, cond_end_kimg=0.1, deterministic=True, mbstd_group=4)
    train_gan(tiny_config(toy16, tmp_path / "full", kimg=0.128, **common), progress=False)
    train_gan(tiny_config(toy16, tmp_path / "split", kimg=0.064, **common), progress=False)
    train_gan(tiny_config(toy16, tmp_path / "split", kimg=0.128, resume=True, **common), progress=False)
    full, split = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "split")
    assert full["step"] == split["step"] == 8
    assert full["ada"] == split["ada"] and full["ada"]["steps"] == 8
    for name in ("G", "D", "G_ema"):
        for key, value in full[name].items():
            assert torch.equal(value, split[name][key]), f"{name}.{key} differs after resume"


def test_checkpoint_round_trip_gives_identical_samples(toy16, tmp_path):
    trainer = GanTrainer(tiny_config(toy16, tmp_path / "run", kimg=0.048), progress=False)
    trainer.run()
    state = load_checkpoint(tmp_path / "run" / "latest.pt")
    G, _ = build_networks(state["model_args"])
    G.load_state_dict(state["G_ema"])
    G.eval().to(memory_format=torch.channels_last)  # as trained: the kernels, so the bits, follow the layout
    z, c = torch.randn(6, 16), torch.arange(6) % 7
    with torch.no_grad():
        assert torch.equal(G(z, c), trainer.G_ema(z, c))
    assert state["class_names"] == list(load_prepared(toy16).class_names)
    assert state["image_size"] == 16 and state["data"]["split"] == "train"


def test_one_class_mode_sees_only_that_class_of_the_train_split(toy16, tmp_path):
    prepared = load_prepared(toy16)
    mel = prepared.class_names.index("mel")
    trainer = GanTrainer(tiny_config(toy16, tmp_path / "run", kimg=0.016, classes=("mel",)), progress=False)
    expected = prepared.images[(prepared.split == "train") & (prepared.labels == mel)]
    assert torch.equal(trainer.train_images.images.permute(0, 2, 3, 1).cpu(), torch.from_numpy(expected))
    trainer.run()
    state = load_checkpoint(tmp_path / "run")
    assert state["class_names"] == ["mel"] and state["model_args"]["n_classes"] == 1
    assert state["data"]["n_images"] == len(expected)
    assert state["data"]["fingerprint"] == prepared.fingerprint


def test_run_directory_contents(toy16, tmp_path, run_cli):
    run = tmp_path / "run"
    result = run_cli("train-gan", "--data", toy16, "--out", run, "--kimg", 0.064, "--classes", "mel,nv,df",
                     *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), []))
    assert result.exit_code == 0, result.output
    assert "tensorboard --logdir" in result.output
    assert (run / "config.yaml").is_file() and (run / "latest.pt").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step0000004.pt"]
    grids = sorted((run / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step0000000.png", "step0000002.png", "step0000004.png"]
    from PIL import Image
    assert Image.open(grids[-1]).size == (3 * 16, 3 * 16)  # 3 columns x 3 class rows
    assert list((run / "tb").glob("events.out.tfevents.*"))
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"Loss/D", "Loss/G", "Aug/p", "Speed/img_per_s"} <= set(rows[0])


def test_standing_stats_leave_training_rng_alone(toy16, tmp_path):
    trainer = GanTrainer(tiny_config(toy16, tmp_path / "run"), progress=False)
    before = torch.get_rng_state()
    refresh_standing_stats(trainer.G_ema, 7, 16, trainer.device)
    assert torch.equal(before, torch.get_rng_state())


def test_conditioning_ramp():
    config = GanConfig(data="d", out="o", cond_start_kimg=10, cond_end_kimg=20)
    assert [conditioning_weight(config, k) for k in (0, 10, 15, 20, 30)] == [0, 0, 0.5, 1, 1]
    assert conditioning_weight(GanConfig(data="d", out="o"), 0) == 1.0


def error_line(result):
    assert result.exit_code != 0
    lines = [l.split("\r")[-1] for l in result.output.split("\n") if l.split("\r")[-1].strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def gan_args(data, out, *extra):
    sets = sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])
    return ("train-gan", "--data", data, "--out", out, "--kimg", 0.016, *sets, *extra)


def test_bad_inputs(toy16, tmp_path, run_cli):
    run = tmp_path / "run"
    assert "unknown class(es) xyz" in error_line(run_cli(*gan_args(toy16, run, "--class", "xyz")))
    line = error_line(run_cli(*gan_args(toy16, run, "--class", "df", "--set", "batch_size=64")))
    assert "class df has" in line and "fewer than the batch size 64" in line and "batch_size=" in line
    assert "nothing to resume" in error_line(run_cli(*gan_args(toy16, run, "--resume")))
    assert "unknown arch" in error_line(run_cli(*gan_args(toy16, run, "--arch", "biggan")))
    assert "divide batch_size 16" in error_line(run_cli(*gan_args(toy16, run, "--set", "mbstd_group=3")))
    assert "prepared set not found" in error_line(run_cli(*gan_args(tmp_path / "none.npz", run)))

    odd = tmp_path / "odd.npz"
    prepare(PrepareConfig(out=str(odd), source="toy", size=24, toy_count=60, workers=1), progress=False)
    assert "supports 16, 32, 64, 128, 256 px" in error_line(run_cli(*gan_args(odd, run)))


def test_run_directory_guards(toy16, tmp_path, run_cli):
    run = tmp_path / "run"
    assert run_cli(*gan_args(toy16, run)).exit_code == 0
    assert "holds another run" in error_line(run_cli(*gan_args(toy16, run)))
    other = tmp_path / "other.npz"
    prepare(PrepareConfig(out=str(other), source="toy", size=16, toy_count=200, seed=5, workers=1), progress=False)
    assert "different prepared set" in error_line(run_cli(*gan_args(other, run, "--resume")))
    assert "architecture differs" in error_line(run_cli(*gan_args(toy16, run, "--resume", "--set", "g_channels=4")))
    assert run_cli(*gan_args(toy16, run, "--resume", "--kimg", 0.032, "--set", "lr_d=0.00123")).exit_code == 0
    assert load_checkpoint(run)["step"] == 2
    assert load_checkpoint(run)["opt_D"]["param_groups"][0]["lr"] == 0.00123  # the resumed run's setting wins
    assert run_cli(*gan_args(toy16, run, "--force")).exit_code == 0
    assert load_checkpoint(run)["step"] == 1
    # a run started with --force resumes from its saved settings without "--resume and --force contradict"
    result = run_cli("train-gan", "--out", run, "--resume", "--kimg", 0.032)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run)["step"] == 2
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert "is not empty" in error_line(run_cli(*gan_args(toy16, busy)))


def test_dry_run_prints_resolved_config(toy16, tmp_path, run_cli):
    result = run_cli("train-gan", "--data", toy16, "--out", tmp_path / "r", "--config", "configs/presets/dcgan32.yaml",
                     "--class", "mel", "--dry-run")
    assert result.exit_code == 0
    assert "g_channels: 32" in result.output and "- mel" in result.output
    assert not (tmp_path / "r").exists()


def test_force_with_bad_input_keeps_the_old_run(toy16, tmp_path, run_cli):
    run = tmp_path / "run"
    assert run_cli(*gan_args(toy16, run)).exit_code == 0
    before = (run / "latest.pt").read_bytes()
    assert "unknown class(es) xyz" in error_line(run_cli(*gan_args(toy16, run, "--force", "--class", "xyz")))
    assert (run / "latest.pt").read_bytes() == before


def test_a_diverging_gan_is_reported_not_hidden(toy16, tmp_path, monkeypatch, capsys):
    """Non-finite losses are counted into stats.jsonl and warned about on the console, never dropped."""

    import torch

    from gan_aug.gan import train as gan_train

    collector = StatsCollector()
    for value in (1.0, float("nan"), 3.0, float("inf")):
        collector.report("Loss/D", value)
    assert collector.flush() == {"Loss/D": 2.0, "NonFinite/Loss/D": 2}
    assert collector.flush() == {}

    hinge_d, hinge_g = gan_train.LOSSES["hinge"]
    nan_d = lambda real, fake: hinge_d(real, fake) * torch.tensor(float("nan"))
    monkeypatch.setitem(gan_train.LOSSES, "hinge", (nan_d, hinge_g))
    run = tmp_path / "nan"
    train_gan(tiny_config(toy16, run, kimg=0.032), progress=False)
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert rows and all(row["NonFinite/Loss/D"] >= 1 for row in rows) and all("Loss/D" not in row for row in rows)
    assert "non-finite values in Loss/D" in capsys.readouterr().err


@pytest.mark.slow
def test_quality_is_tracked_while_training(toy16, tmp_path, run_cli):
    """FD/KID curves in stats.jsonl and TensorBoard, overall and per class; best.pt is the lowest-FD snapshot;
    one TensorBoard image tag per class."""

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    judge = tmp_path / "judge"
    assert run_cli("train-classifier", "--data", toy16, "--out", judge, "--epochs", 1).exit_code == 0
    run = tmp_path / "run"
    result = run_cli(*gan_args(toy16, run, "--kimg", 0.064, "--set", "metrics_every=0.016", "--set", "metrics_n=64",
                               "--set", f"metrics_features=lesion:{judge}/best.pt"))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    measured = [r for r in rows if "Metrics/fd" in r]
    assert len(measured) == 4 and all("Metrics/kid" in r and "Metrics/fd/df" in r for r in measured)
    best = min(measured, key=lambda r: r["Metrics/fd"])
    state = torch.load(run / "best.pt", weights_only=True)
    assert state["step"] == best["step"] and state["best_fd"] == pytest.approx(best["Metrics/fd"])
    events = EventAccumulator(str(run / "tb")).Reload()
    assert "Metrics/fd" in events.Tags()["scalars"] and "Metrics/fd/mel" in events.Tags()["scalars"]
    assert {"samples/all", "samples/df", "samples/nv"} <= set(events.Tags()["images"])
    no_space = run_cli(*gan_args(toy16, tmp_path / "r2", "--set", "metrics_every=0.016"))
    assert "metrics_every needs a feature space" in error_line(no_space)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dcgan", "stylegan_lite"])
def test_256_px_trains_a_few_steps(tmp_path, arch):
    data = tmp_path / "toy256.npz"
    prepare(PrepareConfig(out=str(data), source="toy", size=256, toy_count=60, workers=1), progress=False)
    run = tmp_path / "run"
    train_gan(tiny_config(data, run, arch=arch, batch_size=4, g_channels=2, d_channels=2, kimg=0.008,
                          snapshot_every=1, ckpt_every=1, amp=False), progress=False)
    state = load_checkpoint(run)
    assert state["image_size"] == 256 and state["step"] == 2
    G, _ = build_networks(state["model_args"])
    G.load_state_dict(state["G_ema"])
    assert G(torch.randn(1, 16), torch.tensor([0])).shape == (1, 3, 256, 256)


def test_standing_statistics_are_estimated_once_per_step(toy16, tmp_path, monkeypatch):
    """The snapshot and the checkpoint of one step share one re-estimate (each is 1,024 samples of G)."""
    import gan_aug.gan.train as loop

    steps = []
    real = loop.refresh_standing_stats
    monkeypatch.setattr(loop, "refresh_standing_stats", lambda G, *a, **k: (steps.append(trainer.step), real(G, *a, **k)))
    trainer = GanTrainer(tiny_config(toy16, tmp_path / "run", kimg=0.064, snapshot_every=0.032, ckpt_every=0.032),
                         progress=False)
    trainer.run()
    assert steps and len(steps) == len(set(steps)), steps
    assert len(list((tmp_path / "run" / "samples").glob("*.png"))) >= 2
