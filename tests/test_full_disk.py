"""A real full disk (a tmpfs of a few dozen kB), not a faked write error: torch's zip writer reports ENOSPC as
"RuntimeError: ... unexpected pos", which the fake never showed (issue #39). Each trainer ends with one line,
exit status 1, and no torn file. Skips where no tmpfs can be mounted (not root, or no mount permission)."""

import json
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """A 48 kB filesystem: a config fits, a checkpoint does not."""
    mount = tmp_path / f"disk_{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)  # lazy: a SQLite handle may still be open


def full_disk_error(result, says="No space left on device"):
    lines = [line.split("\r")[-1] for line in result.output.splitlines() if line.split("\r")[-1].strip()]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert lines[-1].startswith("Error: ") and says in lines[-1], result.output


def no_torn_files(folder):
    """Nothing half-written: no temp files, and every .pt present loads."""
    import torch

    assert not list(folder.rglob(".*.tmp"))
    for path in folder.rglob("*.pt"):
        torch.load(path, weights_only=True)


def test_train_classifier_on_a_full_disk(toy16, small_disk, run_cli):
    out = small_disk / "clf"
    full_disk_error(run_cli("train-classifier", "--data", toy16, "--out", out, "--epochs", 1, "--set", "threads=1"))
    no_torn_files(small_disk)


def test_train_gan_on_a_full_disk(toy16, small_disk, run_cli):
    out = small_disk / "gan"
    full_disk_error(run_cli("train-gan", "--data", toy16, "--out", out, "--kimg", 0.016, "--set", "batch_size=16",
                            "--set", "g_channels=16", "--set", "d_channels=16", "--set", "threads=1"))
    no_torn_files(small_disk)


def test_compare_on_a_full_disk(toy16, small_disk, tmp_path, run_cli):
    config = tmp_path / "compare.yaml"
    config.write_text(json.dumps({"data": str(toy16), "arms": ["none"], "seeds": [0], "epochs": 1, "threads": 1,
                                  "bootstrap": 100}))
    full_disk_error(run_cli("compare", "--config", config, "--out", small_disk / "cmp"))
    no_torn_files(small_disk)


def test_outputs_follow_the_umask_not_mkstemps_private_mode(tmp_path):
    import os

    from gan_aug.fileio import write_text

    previous = os.umask(0o022)
    try:
        write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644


def test_tune_on_a_full_disk(toy16, small_disk, tmp_path, run_cli):
    """SQLite says "database or disk is full" where torch said "unexpected pos": one line too."""
    import yaml

    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump({"data": str(toy16), "startup_trials": 1, "warmup_epochs": 1,
                                      "space": {"lr": {"low": 1e-3, "high": 1e-2, "log": True}},
                                      "recipe": {"epochs": 1, "batch_size": 32, "threads": 1}}))
    full_disk_error(run_cli("tune", "--config", config, "--out", small_disk / "tune", "--trials", 2),
                    says="database or disk is full")
    no_torn_files(small_disk)
