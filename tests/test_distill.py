"""Distillation (train-classifier --teacher, compare +kd arms): targets are the teachers' mean
probabilities, the student follows them, and teachers of another prepared set are refused."""

import numpy as np
import pytest
import torch

from classifier.checkpoint import load_classifier
from classifier.inference import predict
from classifier.train import ClassifierTrainer
from classifier.config import ClassifierConfig
from gan_aug.compare.config import CompareConfig
from gan_aug.config import build_config
from gan_aug.errors import UserError
from gan_aug.compare.arms import is_generative, parse_arm, synthetic_set_name


def classifier_config(data, out, **changes):
    return build_config(ClassifierConfig, None, {"data": str(data), "out": str(out), "epochs": 1, "batch_size": 16,
                                                 "balance": "oversample", **changes})


@pytest.fixture(scope="module")
def teachers(toy16, tmp_path_factory):
    """Two one-epoch classifiers of toy16 (different seeds)."""
    root = tmp_path_factory.mktemp("teachers")
    for seed in (0, 1):
        ClassifierTrainer(classifier_config(toy16, root / f"t{seed}", seed=seed), progress=False).fit()
    return [root / "t0", root / "t1"]


def test_targets_are_the_teachers_mean_probabilities(toy16, teachers, tmp_path):
    trainer = ClassifierTrainer(classifier_config(toy16, tmp_path / "s", teachers=tuple(map(str, teachers))),
                                progress=False)
    expected = torch.stack([predict(load_classifier(t)[0], load_classifier(t)[1], trainer.pool_images, None)
                            for t in teachers]).mean(0)
    assert trainer.pool_targets.shape == (len(trainer.pool_images), 7)
    assert torch.allclose(trainer.pool_targets, expected, atol=0.02)  # bf16 autocast vs fp32
    assert torch.allclose(trainer.pool_targets.sum(1), torch.ones(len(expected)), atol=1e-4)


def test_the_student_follows_its_teacher(toy16, teachers, tmp_path):
    """A teacher that says 'class 2' of every image makes a student that says it too; hard labels do not."""
    state = torch.load(teachers[0] / "best.pt", weights_only=True)
    state["model"]["heads.class.weight"].zero_()
    state["model"]["heads.class.bias"].copy_(torch.tensor([0, 0, 8.0, 0, 0, 0, 0]))
    constant = tmp_path / "constant.pt"
    torch.save(state, constant)

    def val_predictions(**changes):
        trainer = ClassifierTrainer(classifier_config(toy16, tmp_path / str(len(changes)), epochs=3, lr=0.01,
                                                      **changes), progress=False)
        trainer.fit()
        return predict(trainer.model, trainer.task, trainer.val.images, None).argmax(1).numpy()

    assert np.mean(val_predictions(teachers=(str(constant),)) == 2) > 0.9
    assert np.mean(val_predictions() == 2) < 0.6


def test_an_ensemble_takes_a_device_name(toy16, teachers):
    from classifier.teachers import TeacherEnsemble
    fingerprint = torch.load(teachers[0] / "best.pt", weights_only=True)["data"]["fingerprint"]
    ensemble = TeacherEnsemble(teachers, fingerprint, 16, "cpu")
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    probabilities = ensemble.probabilities(images)
    assert probabilities.shape == (5, 7)
    assert torch.allclose(probabilities, TeacherEnsemble(teachers, fingerprint, 16, torch.device("cpu"))
                          .probabilities(images))


def test_teachers_are_checked(toy16, teachers, tmp_path):
    from gan_aug.data.config import PrepareConfig
    from gan_aug.data.prepare import prepare
    from gan_aug.compare.runner import compare

    other = tmp_path / "other16.npz"
    prepare(PrepareConfig(out=str(other), source="toy", size=16, toy_count=150, workers=1), progress=False)
    with pytest.raises(UserError, match="trained on another prepared set"):
        ClassifierTrainer(classifier_config(other, tmp_path / "s", teachers=(str(teachers[0]),)), progress=False)
    assert not (tmp_path / "s" / "best.pt").exists()
    # compare refuses a foreign teacher before its first run, not when it reaches the +kd arms
    config = build_config(CompareConfig, None, {"data": str(other), "out": str(tmp_path / "cmp"), "epochs": 1,
                                                "arms": ("oversample", "oversample+kd"), "seeds": (0,),
                                                "teachers": (str(teachers[0]),)})
    with pytest.raises(UserError, match="trained on another prepared set"):
        compare(config, progress=False)
    assert not (tmp_path / "cmp" / "runs").exists()
    with pytest.raises(UserError, match="other than focal"):
        classifier_config(toy16, tmp_path / "s", balance="focal", teachers=(str(teachers[0]),))
    with pytest.raises(UserError, match="not found"):
        ClassifierTrainer(classifier_config(toy16, tmp_path / "s", teachers=(str(tmp_path / "missing"),)),
                          progress=False)


def test_kd_arms():
    assert parse_arm("oversample+kd") == {"balance": "oversample", "distil": True}
    assert parse_arm("mix:0.2@raw+kd") == {**parse_arm("mix:0.2@raw"), "distil": True}
    assert not is_generative("oversample+kd") and is_generative("mix:0.2@raw+kd")
    assert synthetic_set_name("mix:0.2@raw+kd") == "raw"
    for bad in ("focal+kd", "oversample+kd+kd", "+kd"):
        with pytest.raises(UserError):
            parse_arm(bad)
    with pytest.raises(UserError, match="teachers"):
        build_config(CompareConfig, None, {"data": "d.npz", "out": "o", "arms": ("oversample", "oversample+kd")})


def test_evaluate_an_ensemble(toy16, teachers, tmp_path, run_cli):
    """`evaluate --checkpoint A --checkpoint B` scores the mean of their probabilities."""
    import json

    from classifier.evaluate import evaluate_checkpoint
    from gan_aug.data.config import PrepareConfig
    from gan_aug.data.prepare import prepare
    from gan_aug.data.prepared import load_prepared

    result = run_cli("evaluate", "--checkpoint", teachers[0], "--checkpoint", teachers[1], "--data", toy16,
                     "--split", "val", "--out", tmp_path / "ens.json")
    assert result.exit_code == 0, result.output
    # the files scored: a run folder stands for its best.pt (a --folds folder for its folds' best.pt files)
    assert json.loads((tmp_path / "ens.json").read_text())["checkpoint"] == [str(t / "best.pt") for t in teachers]
    prepared = load_prepared(toy16)
    images = torch.from_numpy(prepared.images[prepared.indices("val")]).permute(0, 3, 1, 2)
    members = [predict(*load_classifier(t)[:2], images, None).numpy() for t in teachers]
    assert np.abs(members[0] - members[1]).max() > 0.05  # different members: a wrong mean would show
    _, _, probs = evaluate_checkpoint(teachers, prepared, "val", tmp_path / "e.json", amp=False)
    assert np.allclose(probs, np.mean(members, axis=0), atol=1e-5)

    toy32 = tmp_path / "toy32.npz"
    prepare(PrepareConfig(out=str(toy32), source="toy", size=32, toy_count=120, workers=1), progress=False)
    ClassifierTrainer(classifier_config(toy32, tmp_path / "t32"), progress=False).fit()
    result = run_cli("evaluate", "--checkpoint", teachers[0], "--checkpoint", tmp_path / "t32", "--data", toy16,
                     "--out", tmp_path / "bad.json")
    assert result.exit_code != 0 and "px" in result.output and not (tmp_path / "bad.json").exists()


@pytest.mark.slow
def test_compare_labels_each_pool_once(toy16, teachers, tmp_path, monkeypatch):
    """Every seed of a +kd arm trains on the same pool: one compare asks its teachers about it once."""
    from classifier.teachers import TeacherEnsemble
    from gan_aug.compare.runner import compare

    calls = []
    probabilities = TeacherEnsemble.probabilities
    monkeypatch.setattr(TeacherEnsemble, "probabilities", lambda self, images: calls.append(len(images))
                        or probabilities(self, images))
    config = build_config(CompareConfig, None, {"data": str(toy16), "out": str(tmp_path / "cmp"), "epochs": 1,
                                                "batch_size": 32, "bootstrap": 100, "arms": ("oversample+kd",),
                                                "seeds": (0, 1), "teachers": tuple(map(str, teachers))})
    compare(config, progress=False)
    assert len(calls) == 1
    trainer = ClassifierTrainer(classifier_config(toy16, tmp_path / "s", teachers=tuple(map(str, teachers))),
                                progress=False)  # a fresh ensemble: labels the pool itself, the same way
    assert calls[1] == calls[0]
    state = torch.load(tmp_path / "cmp" / "runs" / "oversample+kd_seed0" / "best.pt", weights_only=True)
    assert state["config"]["teachers"] == [str(t) for t in teachers]
    assert trainer.pool_targets.shape == (calls[0], 7)
