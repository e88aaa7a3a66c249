"""A full disk or a kill never costs more than the work since the last checkpoint: the error is one line, the
last checkpoint stays whole, and the same command with --resume continues from it to what an uninterrupted run
ends with, from any working directory, leaving no temp files or repeated stats rows (issue #21)."""

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch



def one_line_error(result, *fragments):
    """A failed run ends in one 'Error: ' line and no traceback (its progress bar may show above it)."""
    lines = [line.split("\r")[-1] for line in result.output.split("\n") if line.split("\r")[-1].strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert [line for line in lines if line.startswith("Error: ")] == lines[-1:], result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]

GAN_SETS = {"batch_size": 16, "z_dim": 16, "g_channels": 8, "d_channels": 8, "ckpt_every": 0.016,
            "snapshot_every": 0.016, "grid_columns": 2, "threads": 1}


def gan_args(data, out, kimg, *extra):
    sets = sum((["--set", f"{k}={v}"] for k, v in GAN_SETS.items()), [])
    return ("train-gan", "--data", data, "--out", out, "--kimg", kimg, *sets, *extra)


def clf_args(data, out, epochs, *extra):
    return ("train-classifier", "--data", data, "--out", out, "--epochs", epochs, "--set", "threads=1", *extra)


def disk_full_at(monkeypatch, should_fail):
    """torch.save raises ENOSPC, as a full disk does, for the saves where should_fail(state, handle) holds."""
    save = torch.save

    def full(state, handle, *args, **kwargs):
        if should_fail(state, handle):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(state, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)


def temp_files(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*.tmp"))


def steps(jsonl):
    return [json.loads(line)["step"] for line in Path(jsonl).read_text().splitlines()]


def weights(path, keys):
    state = torch.load(path, weights_only=True)
    return {k: state[k] for k in keys}


def assert_same_tensors(a, b):
    flat_a, flat_b = torch.utils._pytree.tree_flatten(a), torch.utils._pytree.tree_flatten(b)
    assert flat_a[1] == flat_b[1]
    for x, y in zip(flat_a[0], flat_b[0]):
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y or (x != x and y != y)  # nan: nan


# command -> (its arguments, the checkpoint counter, {file: what in it must match an uninterrupted run}, the stats file)
RUNS = {
    "train-gan": (lambda data, out, *extra: gan_args(data, out, 0.048, *extra), "step",
                  {"latest.pt": ("G", "D", "G_ema", "opt_G", "opt_D", "step", "rng")}, "stats.jsonl"),
    "train-classifier": (lambda data, out, *extra: clf_args(data, out, 3, *extra), "epoch",
                         {"latest.pt": ("model", "optimizer", "scheduler", "sampler_rng", "epoch", "best", "history"),
                          "best.pt": ("model", "model_args", "epoch")}, "history.jsonl"),
}


@pytest.mark.parametrize("command", RUNS)
def test_a_full_disk_at_a_checkpoint_keeps_the_last_one_and_resume_ends_as_an_uninterrupted_run(
        command, toy16, tmp_path, run_cli, monkeypatch):
    args, counter, files, stats = RUNS[command]
    assert run_cli(*args(toy16, tmp_path / "whole")).exit_code == 0
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        disk_full_at(patch, lambda saved, handle: saved[counter] == 2)
        one_line_error(run_cli(*args(toy16, run)), "No space left on device", ".pt)", "--resume")
    assert torch.load(run / "latest.pt", weights_only=True)[counter] == 1 and temp_files(run) == []
    result = run_cli(*args(toy16, run, "--resume"))
    assert result.exit_code == 0, result.output
    for name, keys in files.items():
        assert_same_tensors(weights(run / name, keys), weights(tmp_path / "whole" / name, keys))
    assert steps(run / stats) == steps(tmp_path / "whole" / stats) == [1, 2, 3]


def killed_before_its_first_checkpoint(run_cli, data, run):
    """A run folder as a kill before the first checkpoint leaves it: config.yaml, a sample grid, a stats row and
    the temp files of writes under way."""
    assert run_cli(*gan_args(data, run, 0.016)).exit_code == 0
    for name in ("latest.pt", "best.pt", "checkpoints"):
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink(missing_ok=True)
    (run / "checkpoints").mkdir()
    for stray in (run / ".latest.pt.tmp", run / "checkpoints" / ".step0000001.pt.k2j4.tmp",
                  run / ".config.yaml.x8a1.tmp"):
        stray.write_bytes(b"half a file")
    return run


@pytest.mark.parametrize("again", [(), ("--resume",)], ids=["re-run", "resume"])
def test_a_run_killed_before_its_first_checkpoint_starts_over_without_force(again, toy16, tmp_path, run_cli):
    run = killed_before_its_first_checkpoint(run_cli, toy16, tmp_path / "run")
    result = run_cli(*gan_args(toy16, run, 0.032, *again))
    assert result.exit_code == 0, result.output
    assert ("starts from the beginning" in result.output) == bool(again)
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 2
    assert temp_files(run) == [] and steps(run / "stats.jsonl") == [1, 2]


def test_resume_removes_the_temp_files_of_a_killed_run_and_prefers_its_newest_checkpoint(toy16, tmp_path, run_cli):
    run = tmp_path / "run"
    assert run_cli(*gan_args(toy16, run, 0.032)).exit_code == 0
    (run / "latest.pt").unlink()  # killed between writing checkpoints/step0000002.pt and pointing latest.pt at it
    (run / "checkpoints" / ".step0000003.pt.9f3k.tmp").write_bytes(b"half a checkpoint")
    (run / "samples" / ".step0000003.png.a1b2.tmp").write_bytes(b"half a grid")
    with open(run / "stats.jsonl", "a") as handle:
        handle.write('{"step": 3, "Loss/D": 0.')  # a row the kill cut short
    result = run_cli(*gan_args(toy16, run, 0.048, "--resume"))
    assert result.exit_code == 0, result.output
    assert temp_files(run) == [] and steps(run / "stats.jsonl") == [1, 2, 3]
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 3


def test_runs_store_absolute_paths_and_resume_from_another_folder(toy16, toy_gan, tmp_path, run_cli, monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir(), elsewhere.mkdir()
    shutil.copy(toy16, here / "toy.npz")
    monkeypatch.chdir(here)
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--out", "syn").exit_code == 0
    assert run_cli(*gan_args("toy.npz", "gan", 0.016)).exit_code == 0
    assert run_cli(*clf_args("toy.npz", "clf", 1, "--synthetic", "syn", "--mix", 0.2)).exit_code == 0
    for run in ("gan", "clf"):
        saved = torch.load(here / run / "latest.pt", weights_only=True)
        assert saved["config"]["data"] == str(here / "toy.npz") and saved["data"]["path"] == str(here / "toy.npz")
    assert saved["config"]["synthetic"] == str(here / "syn")
    monkeypatch.chdir(elsewhere)
    for args in (("train-gan", "--out", "../here/gan", "--resume", "--kimg", 0.032),
                 ("train-classifier", "--out", "../here/clf", "--resume", "--epochs", 2)):
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
    assert torch.load(here / "gan" / "latest.pt", weights_only=True)["step"] == 2
    assert torch.load(here / "clf" / "latest.pt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_compare_run_again_after_a_kill_removes_the_temp_files_it_left(toy16, tmp_path, run_cli):
    config = tmp_path / "compare.yaml"
    config.write_text(json.dumps({"data": str(toy16), "arms": ["none"], "seeds": [0], "epochs": 1, "threads": 1,
                                  "bootstrap": 100, "device": "cpu"}))
    out = tmp_path / "cmp"
    assert run_cli("compare", "--config", config, "--out", out).exit_code == 0
    run = out / "runs" / "none_seed0"
    (run / "done.json").unlink()  # killed while writing its predictions, before done.json
    for stray in (run / ".val_predictions.npz.k2j4.tmp", out / ".config.yaml.x8a1.tmp", out / ".results.csv.p0q1.tmp"):
        stray.write_bytes(b"half a file")
    result = run_cli("compare", "--config", config, "--out", out)
    assert result.exit_code == 0, result.output
    assert temp_files(out) == [] and (run / "done.json").is_file()
