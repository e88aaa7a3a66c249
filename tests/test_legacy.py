"""gan_aug.legacy: checkpoints from before a key was recorded load, evaluate and resume as their code behaved
(issue #42: one module migrates each old format)."""

import torch

from gan_aug.legacy import CLASSIFIER_MODEL_ARGS, GAN_STATE


def strip(path, keys, inner=None):
    """Rewrite the checkpoint at `path` without `keys` (of state[inner] when given), as an older version wrote it."""
    state = torch.load(path, weights_only=True)
    target = state[inner] if inner else state
    for key in keys:
        target.pop(key)
    torch.save(state, path)


def test_an_old_classifier_checkpoint_evaluates_and_resumes(toy16, tmp_path, run_cli):
    from classifier.checkpoint import load_classifier

    run = tmp_path / "run"
    assert run_cli("train-classifier", "--data", toy16, "--out", run, "--epochs", 1, "--set", "threads=1").exit_code == 0
    for name in ("best.pt", "latest.pt"):
        strip(run / name, CLASSIFIER_MODEL_ARGS, inner="model_args")
    model, _, state = load_classifier(run)
    assert {k: state["model_args"][k] for k in CLASSIFIER_MODEL_ARGS} == CLASSIFIER_MODEL_ARGS
    assert abs(model.dropout.p - CLASSIFIER_MODEL_ARGS["dropout"]) < 1e-9
    result = run_cli("evaluate", "--checkpoint", run, "--data", toy16, "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    result = run_cli("train-classifier", "--data", toy16, "--out", run, "--epochs", 2, "--resume", "--set",
                     "threads=1")
    assert result.exit_code == 0, result.output


def test_an_old_gan_checkpoint_resumes(toy16, tmp_path, run_cli):
    run = tmp_path / "gan"
    sets = ["--set", "batch_size=16", "--set", "z_dim=16", "--set", "g_channels=8", "--set", "d_channels=8"]
    assert run_cli("train-gan", "--data", toy16, "--out", run, "--kimg", 0.016, *sets).exit_code == 0
    strip(run / "latest.pt", GAN_STATE)
    result = run_cli("train-gan", "--data", toy16, "--out", run, "--kimg", 0.032, "--resume", *sets)
    assert result.exit_code == 0, result.output
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 2
