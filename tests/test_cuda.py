"""GPU checks (marked cuda; they skip without a CUDA device): run by tools/gpu_check.sh on a GPU machine."""

import pytest
import torch

from conftest import tiny_gan

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("arch", ["dcgan", "stylegan_lite"])
def test_gan_trains_on_the_gpu_with_bf16_compile_and_r1(toy16, tmp_path, arch):
    from gan_aug.gan.checkpoint import load_checkpoint

    run = tiny_gan(toy16, tmp_path / "run", arch=arch, device="cuda", amp=True, compile=True, r1_gamma=1.0,
                   r1_every=2, kimg=0.064)
    state = load_checkpoint(run)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())


def test_synthesize_on_the_gpu_is_reproducible(toy16, tmp_path, run_cli):
    run = tiny_gan(toy16, tmp_path / "gan", arch="stylegan_lite", device="cuda")
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert run_cli("synthesize", "--checkpoint", run, "-n", 14, "--out", out, "--device", "cuda").exit_code == 0
    files = [{p.relative_to(o): p.read_bytes() for p in sorted(o.rglob("*.png"))} for o in outs]
    assert files[0] == files[1]


def test_classifier_score_explain_evaluate_on_the_gpu(toy16, toy_gan, tmp_path, run_cli):
    clf = tmp_path / "clf"
    result = run_cli("train-classifier", "--data", toy16, "--out", clf, "--epochs", 1, "--set", "device=cuda")
    assert result.exit_code == 0, result.output
    assert run_cli("evaluate", "--checkpoint", clf, "--data", toy16, "--device", "cuda",
                   "--out", tmp_path / "m.json").exit_code == 0
    syn = tmp_path / "syn"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 40, "--out", syn).exit_code == 0
    result = run_cli("score", "--data", toy16, "--synthetic", syn, "--features", f"lesion:{clf}/best.pt",
                     "--out", tmp_path / "s.json", "--set", "cas_epochs=1", "--set", "device=cuda")
    assert result.exit_code == 0, result.output
