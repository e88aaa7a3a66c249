"""torchrun on the CPU (gloo): 2 processes follow the recipe of 1 process with the same global batch, a
2-process run survives a kill and resumes, and a 2-process run resumes on 1 process."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan_aug.data.staging import StagedImages

pytestmark = pytest.mark.slow  # torchrun process groups, killed and resumed

# Augmentation and dropout draw per rank by design; with them off, 1 and 2 processes must agree.
GAN = ["--set", "batch_size=16", "--set", "z_dim=16", "--set", "g_channels=8", "--set", "d_channels=8",
       "--set", "grid_columns=2", "--set", "diffaugment=[]", "--set", "amp=false", "--set", "snapshot_every=1"]
CLASSIFIER = ["--set", "batch_size=512", "--set", "dropout=0", "--set", "amp=false"]


def launch(processes, *args, wait=True):
    """`gan-aug ARGS` under torchrun with `processes` CPU processes (1: a plain process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    prefix = [sys.executable, "-m", "gan_aug"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "gan_aug"]
    command = prefix + [str(a) for a in args]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def kill_tree(job):
    """SIGKILL a process and every descendant (torchrun starts its workers in sessions of their own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue
        children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
    family, queue = [], [job.pid]
    while queue:
        pid = queue.pop()
        family.append(pid)
        queue += children.get(pid, [])
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    job.wait()
    while any(alive(pid) for pid in family[1:]):
        time.sleep(0.05)


def alive(pid):
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def checkpoint(run):
    return torch.load(run / "latest.pt", weights_only=True)


def assert_same_gradients(optimizer_a, optimizer_b, tolerance=1e-3):
    """Adam's first moments after one step are (1 - beta1) x the gradient: equal up to float reduction
    order when the ranks' gradients average to the global batch's. (The weights after Adam's step are not
    a fair check: Adam divides by |g|, so a gradient element near 0 turns float noise into +-lr.)"""
    flat = lambda optimizer: torch.cat([s["exp_avg"].flatten() for _, s in sorted(optimizer["state"].items())])
    a, b = flat(optimizer_a), flat(optimizer_b)  # one scale for all: a conv bias before BatchNorm has g ~ 0
    assert (a - b).abs().max() <= tolerance * a.abs().max()


def assert_equal(a, b):
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_gan_two_processes_follow_one(toy16, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    launch(1, "train-gan", "--data", toy16, "--out", one, "--kimg", 0.016, *GAN)  # one step of 16 images
    launch(2, "train-gan", "--data", toy16, "--out", two, "--kimg", 0.016, *GAN)  # 8 + 8
    a, b = checkpoint(one), checkpoint(two)
    assert b["config"]["world_size"] == 2 and a["config"]["world_size"] == 1 and a["step"] == b["step"] == 1
    assert_same_gradients(a["opt_D"], b["opt_D"])
    # G's gradient comes through D after D's step, which Adam's sign-like first step can move by +-lr where
    # D's gradient was near 0: a looser bound (per-rank BatchNorm statistics miss it by far more).
    assert_same_gradients(a["opt_G"], b["opt_G"], tolerance=2e-2)  # dcgan: global-batch BatchNorm
    # The logged losses are the global batch's, reduced over both ranks, not rank 0's half of it.
    row = lambda run: json.loads((run / "stats.jsonl").read_text().splitlines()[0])
    assert row(one)["Loss/D"] == pytest.approx(row(two)["Loss/D"], abs=1e-4)


def test_diffusion_two_processes_follow_one(toy16, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    flags = ["--kimg", 0.016, "--set", "batch_size=16", "--set", "channels=16,32", "--set", "layers_per_block=1",
             "--set", "grid_columns=1", "--set", "sample_steps=2", "--set", "amp=false"]
    launch(1, "train-diffusion", "--data", toy16, "--out", one, *flags)  # one step of 16 images
    launch(2, "train-diffusion", "--data", toy16, "--out", two, *flags)  # 8 + 8
    a, b = checkpoint(one), checkpoint(two)
    assert b["config"]["world_size"] == 2 and a["step"] == b["step"] == 1
    assert_same_gradients(a["opt"], b["opt"])
    row = lambda run: json.loads((run / "stats.jsonl").read_text().splitlines()[0])
    assert row(one)["Loss/denoising"] == pytest.approx(row(two)["Loss/denoising"], abs=1e-5)


def test_gan_killed_on_two_processes_resumes_and_moves_to_one(toy16, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    common = ["--data", toy16, "--ckpt-every", 0.032, *GAN]
    job = launch(2, "train-gan", "--out", cut, "--kimg", 100, *common, wait=False)  # never finishes by itself
    deadline = time.time() + 300
    while not (cut / "checkpoints" / "step0000004.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    kill_tree(job)  # torchrun and both workers, mid-run
    reached = checkpoint(cut)["step"]
    kimg = (reached + 4) * 16 / 1000  # four steps past the last checkpoint the kill left
    launch(2, "train-gan", "--out", cut, "--resume", "--kimg", kimg)
    launch(2, "train-gan", "--out", full, "--kimg", kimg, *common)
    assert_equal(checkpoint(full)["G"], checkpoint(cut)["G"])  # bit for bit: the kill cost nothing
    launch(1, "train-gan", "--out", cut, "--resume", "--kimg", kimg + 0.016)  # one process takes the run over
    state = checkpoint(cut)
    assert state["step"] == reached + 5 and state["config"]["world_size"] == 1


def test_classifier_two_processes_follow_one_and_resume_on_one(toy16, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    # A batch larger than the train split: one step per epoch, so the optimizer state holds one gradient.
    launch(1, "train-classifier", "--data", toy16, "--out", one, "--epochs", 1, *CLASSIFIER)
    launch(2, "train-classifier", "--data", toy16, "--out", two, "--epochs", 1, *CLASSIFIER)
    a, b = checkpoint(one), checkpoint(two)
    assert b["config"]["world_size"] == 2 and a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 1
    assert_same_gradients(a["optimizer"], b["optimizer"])
    assert a["history"][0]["loss"] == pytest.approx(b["history"][0]["loss"], rel=1e-4)  # both ranks' rows
    launch(1, "train-classifier", "--out", two, "--resume", "--epochs", 2)
    state = checkpoint(two)
    assert state["epoch"] == 2 and state["config"]["world_size"] == 1 and len(state["history"]) == 2


def test_streamed_batches_equal_on_device_batches():
    images = torch.randint(0, 256, (20, 8, 8, 3), dtype=torch.uint8).numpy()
    labels = torch.arange(20).numpy()
    device = torch.device("cpu")
    resident, streamed = StagedImages(images, labels, device, True), StagedImages(images, labels, device, False)
    assert resident.on_device and not streamed.on_device
    idx = torch.tensor([3, 3, 17, 0])
    for a, b in zip(resident.batch(idx), streamed.batch(idx)):
        assert torch.equal(a, b)
