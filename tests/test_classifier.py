"""Classifier: models and tasks train, the mixing sampler's semantics, leak refusal, metrics, evaluate."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from classifier.metrics import ClassMetrics, Metrics, compute_metrics
from classifier.sampling import EpochSampler
from classifier.train import ClassifierTrainer
from classifier.config import ClassifierConfig
from gan_aug.config import build_config
from gan_aug.data.config import PrepareConfig
from gan_aug.data.prepare import prepare
from gan_aug.errors import UserError


@pytest.fixture(scope="module")
def toy32(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy32") / "toy32.npz"
    prepare(PrepareConfig(out=str(out), source="toy", size=32, toy_count=120, workers=1), progress=False)
    return out


def config(data, out, **changes):
    return build_config(ClassifierConfig, None, {"data": str(data), "out": str(out), "epochs": 1,
                                                 "batch_size": 16, **changes})


def few_steps(trainer, steps=2):
    """Train `steps` batches; returns the losses."""
    losses = []
    order = trainer.sampler.epoch(trainer.generator)[: steps * trainer.config.batch_size]
    trainer.sampler.epoch = lambda generator, with_synthetic=True: order
    losses.append(trainer.train_one_epoch())
    return losses


@pytest.mark.parametrize("model", ["small_cnn", "resnet18", pytest.param("resnet50", marks=pytest.mark.slow),
                                   "densenet121", "efficientnet_b0"])
def test_every_model_trains(toy32, tmp_path, model):
    trainer = ClassifierTrainer(config(toy32, tmp_path / "run", model=model), progress=False)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss = few_steps(trainer)[0]
    assert np.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


@pytest.mark.parametrize("task, n_outputs", [("multiclass", 7), ("binary", 2), ("two-stage", 7)])
def test_every_task_trains_and_gives_distributions(toy16, tmp_path, task, n_outputs):
    trainer = ClassifierTrainer(config(toy16, tmp_path / "run", task=task), progress=False)
    few_steps(trainer)
    from classifier.inference import predict
    probs = predict(trainer.model, trainer.task, trainer.val.images, None)
    assert probs.shape == (len(trainer.val.labels), n_outputs)
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)), atol=1e-5)


def test_pretrained_weights_are_loaded(toy32, tmp_path):
    import torchvision
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    trainer = ClassifierTrainer(config(toy32, tmp_path / "run", model="resnet18", pretrained=str(tmp_path / "r18.pth")),
                                progress=False)
    assert torch.equal(trainer.model.backbone.conv1.weight, reference.conv1.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="does not fit resnet18|not a readable"):
        ClassifierTrainer(config(toy32, tmp_path / "run2", model="resnet18", pretrained=str(tmp_path / "bad.pth")),
                          progress=False)


def test_metadata_branch(ham_root, tmp_path, toy16):
    data = tmp_path / "ham.npz"
    prepare(PrepareConfig(out=str(data), source="ham10000", root=str(ham_root), size=16, workers=1), progress=False)
    trainer = ClassifierTrainer(config(data, tmp_path / "run", use_metadata=True), progress=False)
    assert trainer.pool_meta.shape == (len(trainer.pool_images), trainer.model_args["meta_dim"])
    assert np.isfinite(few_steps(trainer)[0])
    with pytest.raises(UserError, match="has no metadata"):
        ClassifierTrainer(config(toy16, tmp_path / "run2", use_metadata=True), progress=False)


def test_a_metadata_classifier_round_trips(ham_root, tmp_path, run_cli):
    """Its checkpoint loads everywhere: evaluate, explain, resume; as a teacher it gets the teacher rule's
    own refusal, not an unreadable-checkpoint error (the site vocabulary once held numpy strings)."""
    from PIL import Image

    data = tmp_path / "ham.npz"
    prepare(PrepareConfig(out=str(data), source="ham10000", root=str(ham_root), size=16, workers=1), progress=False)
    run = tmp_path / "meta"
    common = ["--data", data, "--set", "batch_size=16"]
    assert run_cli("train-classifier", *common, "--out", run, "--epochs", 1, "--use-metadata").exit_code == 0
    result = run_cli("evaluate", "--checkpoint", run, "--data", data, "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    image = tmp_path / "lesion.png"
    Image.fromarray(np.full((20, 20, 3), 120, np.uint8)).save(image)
    result = run_cli("explain", "--checkpoint", run, image, "--out", tmp_path / "cams")
    assert result.exit_code == 0, result.output
    result = run_cli("train-classifier", "--out", run, "--resume", "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert torch.load(run / "latest.pt", weights_only=True)["epoch"] == 2
    result = run_cli("train-classifier", *common, "--out", tmp_path / "student", "--teacher", run)
    assert result.exit_code == 1 and "must be image-only" in result.output


def test_a_model_too_deep_for_the_image_size_is_refused(toy16, tmp_path, run_cli):
    result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "r", "--model", "densenet121")
    assert result.exit_code == 1 and "densenet121 needs images of at least 32 px, these are 16 px" in result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", ["train-classifier", "synthesize", "train-gan", "evaluate"])
def test_every_command_refuses_an_unknown_device(command, toy16, toy_gan, tmp_path, run_cli):
    args = {"train-classifier": ["--data", toy16, "--out", tmp_path / "r", "--set", "device=foo"],
            "train-gan": ["--data", toy16, "--out", tmp_path / "r", "--set", "device=foo"],
            "synthesize": ["--checkpoint", toy_gan, "--out", tmp_path / "r", "--set", "device=foo"],
            "evaluate": ["--checkpoint", tmp_path / "c.pt", "--data", toy16, "--device", "foo"]}[command]
    result = run_cli(command, *args)
    assert result.exit_code == 1 and result.output.startswith("Error: device must be auto, cpu, cuda or cuda:N, got foo")
    assert not (tmp_path / "r").exists()


def stream_stats(sampler, n_epochs=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    idx = torch.cat([sampler.epoch(gen) for _ in range(n_epochs)])
    return idx


def test_mixing_sampler_balance_and_synthetic_share():
    real = torch.tensor([0] * 500 + [1] * 50 + [2] * 10)
    synthetic = torch.tensor([1] * 100 + [2] * 100)  # class 0 has no synthetic images
    labels = torch.cat([real, synthetic])
    sampler = EpochSampler(real, synthetic, 3, balanced=True, mix=0.3)
    idx = stream_stats(sampler)
    n = len(idx)
    counts = torch.bincount(labels[idx], minlength=3).float() / n
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=4 * (1 / 3 * 2 / 3 / n) ** 0.5)
    is_syn = idx >= len(real)
    for c, expected in ((0, 0.0), (1, 0.3), (2, 0.3)):
        share = is_syn[labels[idx] == c].float().mean().item()
        se = (max(expected * (1 - expected), 1e-9) / (n / 3)) ** 0.5
        assert abs(share - expected) <= 4 * se + 1e-9, (c, share)


def test_mix_zero_is_exactly_oversampling():
    real = torch.tensor([0] * 300 + [1] * 30)
    oversample = EpochSampler(real, torch.zeros(0, dtype=torch.long), 2, balanced=True)
    mix0 = EpochSampler(real, torch.tensor([1] * 40), 2, balanced=True, mix=0.0)
    assert torch.equal(stream_stats(oversample, 3), stream_stats(mix0, 3))
    plain = EpochSampler(real, torch.zeros(0, dtype=torch.long), 2, balanced=False)
    first = plain.epoch(torch.Generator().manual_seed(0))
    assert sorted(first.tolist()) == list(range(330))  # unbalanced: a permutation of the real images


def test_real_only_epochs_follow_the_oversampling_stream():
    real = torch.tensor([0] * 300 + [1] * 30)
    oversample = EpochSampler(real, torch.zeros(0, dtype=torch.long), 2, balanced=True)
    mix = EpochSampler(real, torch.tensor([1] * 40), 2, balanced=True, mix=0.5)
    gen_a, gen_b = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert (mix.epoch(gen_a) >= len(real)).any()  # a synthetic epoch draws synthetic images ...
    oversample.epoch(gen_b)
    assert torch.equal(mix.epoch(gen_a, with_synthetic=False), oversample.epoch(gen_b))  # ... a real one does not


def test_topup_fills_only_up_to_the_largest_class():
    real = torch.tensor([0] * 100 + [1] * 75 + [2] * 10)
    synthetic = torch.tensor([0] * 50 + [1] * 50 + [2] * 50)
    sampler = EpochSampler(real, synthetic, 3, balanced=True, mix=0.5, policy="topup")
    assert torch.allclose(sampler.share, torch.tensor([0.0, 0.25, 0.5], dtype=torch.float64))


def test_leaking_synthetic_sets_are_refused(toy16, toy_gan, tmp_path, run_cli):
    syn = tmp_path / "syn"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--out", syn).exit_code == 0
    provenance = json.loads((syn / "synthetic.json").read_text())
    for change, message in ((("split", "test"), "trained on the 'test' split"),
                            (("fingerprint", "0" * 64), "different prepared set")):
        leaked = dict(provenance, gan_data=dict(provenance["gan_data"], **dict([change])))
        (syn / "synthetic.json").write_text(json.dumps(leaked))
        result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "clf", "--synthetic", syn,
                         "--mix", 0.3, "--force")
        assert result.exit_code != 0 and message in result.output
    (syn / "synthetic.json").write_text(json.dumps(provenance))
    result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "clf", "--synthetic", syn, "--mix",
                     0.3, "--epochs", 1, "--force")
    assert result.exit_code == 0, result.output


def test_mix_until_keeps_the_last_epochs_real(toy16, toy_gan, tmp_path, run_cli, monkeypatch):
    syn = tmp_path / "syn"
    assert run_cli("synthesize", "--checkpoint", toy_gan, "-n", 14, "--out", syn).exit_code == 0
    calls, real_epoch = [], EpochSampler.epoch
    monkeypatch.setattr(EpochSampler, "epoch",
                        lambda self, gen, with_synthetic=True: calls.append(with_synthetic) or real_epoch(self, gen, with_synthetic))
    result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "clf", "--synthetic", syn, "--mix",
                     0.5, "--mix-until", 0.5, "--epochs", 4, "--set", "batch_size=64")
    assert result.exit_code == 0, result.output
    assert calls == [True, True, False, False]
    result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "bad", "--synthetic", syn, "--mix",
                     0.5, "--mix-until", 0)
    assert result.exit_code != 0 and "--mix-until must be in (0, 1]" in result.output


def test_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + np.eye(4)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    names = ("akiec", "df", "mel", "nv")
    m = compute_metrics(y, probs, names)
    assert set(Metrics.__annotations__) <= set(m) and set(m["per_class"]["mel"]) == set(ClassMetrics.__annotations__)
    pred = probs.argmax(1)
    assert m["bma"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["per_class"]["mel"]["auc"] == pytest.approx(roc_auc_score(y == 2, probs[:, 2]))
    assert m["auc_macro"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    # Sensitivity at 90% specificity by its definition: the best recall of mel over every threshold that
    # keeps at least 90% of the other images below it.
    score, positive = probs[:, 2], y == 2
    best = max(((score >= t) & positive).sum() / positive.sum() for t in np.unique(score)
               if ((score >= t) & ~positive).sum() <= 0.1 * (~positive).sum())
    assert m["mel_sensitivity_at_spec90"] == pytest.approx(best)
    assert m["mel_sensitivity_at_spec90"] < m["mel_sensitivity_at_spec80"]


def test_evaluate_on_prepared_and_external_isic(ham_root, isic2018_root, isic2019_root, tmp_path, run_cli):
    data = tmp_path / "ham.npz"
    assert run_cli("prepare", "--source", "ham10000", "--root", ham_root, "--size", 16, "--out", data).exit_code == 0
    run = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", data, "--out", run, "--epochs", 1).exit_code == 0
    result = run_cli("evaluate", "--checkpoint", run / "best.pt", "--data", data, "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] > 0 and (tmp_path / "m_confusion.png").is_file()
    assert (tmp_path / "m_roc.png").is_file()
    result = run_cli("evaluate", "--checkpoint", run / "best.pt", "--source", "isic-csv", "--root", isic2018_root,
                     "--out", tmp_path / "isic.json")
    assert result.exit_code == 0, result.output
    isic = json.loads((tmp_path / "isic.json").read_text())
    assert isic["n"] == 84 and isic["class_names"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert isic["per_class"]["mel"]["support"] == 12  # MEL column mapped to the model's 'mel'
    result = run_cli("evaluate", "--checkpoint", run / "best.pt", "--source", "isic-csv", "--root", isic2019_root,
                     "--out", tmp_path / "x.json")
    assert result.exit_code != 0 and "class(es) scc of the evaluation set are unknown to the model" in result.output


def test_evaluate_bad_inputs(toy16, toy32, tmp_path, run_cli):
    run = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", toy16, "--out", run, "--epochs", 1).exit_code == 0
    cases = [
        (["--checkpoint", tmp_path / "none.pt", "--data", toy16], "checkpoint not found"),
        (["--checkpoint", run / "best.pt", "--data", toy32], "takes 16 px images"),
        (["--checkpoint", run / "best.pt"], "give --data"),
    ]
    for args, message in cases:
        result = run_cli("evaluate", *args, "--out", tmp_path / "m.json")
        assert result.exit_code != 0 and message in result.output, result.output
        assert len([l for l in result.output.splitlines() if l.strip()]) == 1


def test_bad_training_options(toy16, tmp_path, run_cli):
    for args, message in ((["--mix", 0.3], "--mix needs --synthetic"), (["--balance", "smote"], "unknown balance"),
                          (["--model", "vit"], "unknown model"), (["--task", "ordinal"], "unknown task")):
        result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "r", *args)
        assert result.exit_code != 0 and message in result.output


def test_explain_writes_overlays(toy16, tmp_path, run_cli):
    from PIL import Image
    run = tmp_path / "clf"
    assert run_cli("train-classifier", "--data", toy16, "--out", run, "--epochs", 1).exit_code == 0
    from gan_aug.data.prepared import load_prepared
    images = load_prepared(toy16).images[:2]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"lesion{i}.png")
        Image.fromarray(image).resize((40, 30)).save(paths[-1])
    result = run_cli("explain", "--checkpoint", run / "best.pt", *paths, "--out", tmp_path / "cams")
    assert result.exit_code == 0, result.output
    overlay = Image.open(tmp_path / "cams" / "lesion0_gradcam.png")
    assert overlay.size[0] == 512
    explanations = json.loads((tmp_path / "cams" / "explanations.json").read_text())
    assert len(explanations) == 2 and abs(sum(explanations[0]["probabilities"].values()) - 1) < 1e-4
    result = run_cli("explain", "--checkpoint", run / "best.pt", tmp_path / "missing.jpg", "--out", tmp_path / "c2")
    assert result.exit_code != 0 and "image not found" in result.output


@pytest.mark.parametrize("average", [[], ["--set", "ema_half_life=0.5"]], ids=["raw", "weight-average"])
def test_resume_continues_exactly(toy16, tmp_path, run_cli, monkeypatch, average):
    common = ["--data", toy16, "--balance", "oversample", "--epochs", 2, "--set", "batch_size=32", *average]
    assert run_cli("train-classifier", *common, "--out", tmp_path / "full").exit_code == 0
    calls = []
    original = ClassifierTrainer.train_one_epoch

    def crash_in_second_epoch(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(ClassifierTrainer, "train_one_epoch", crash_in_second_epoch)
    assert run_cli("train-classifier", *common, "--out", tmp_path / "part").exit_code != 0  # Ctrl-C: "Aborted!"
    assert len(calls) == 2
    monkeypatch.undo()
    result = run_cli("train-classifier", "--out", tmp_path / "part", "--resume")  # settings from its config.yaml
    assert result.exit_code == 0, result.output
    full = torch.load(tmp_path / "full" / "latest.pt", weights_only=True)
    part = torch.load(tmp_path / "part" / "latest.pt", weights_only=True)
    assert part["epoch"] == 2 and [h["val_bma"] for h in part["history"]] == [h["val_bma"] for h in full["history"]]
    for weights in ("model", "training_model") if average else ("model",):
        for key, value in full[weights].items():
            assert torch.equal(value, part[weights][key]), (weights, key)


def test_resume_uses_the_given_lr(toy16, tmp_path, run_cli):
    run = tmp_path / "run"
    common = ["--data", toy16, "--out", run, "--set", "batch_size=32"]
    assert run_cli("train-classifier", *common, "--epochs", 1).exit_code == 0
    result = run_cli("train-classifier", "--out", run, "--resume", "--epochs", 2, "--set", "lr=0.0123",
                     "--set", "weight_decay=0.0456")
    assert result.exit_code == 0, result.output
    state = torch.load(run / "latest.pt", weights_only=True)
    assert state["epoch"] == 2
    assert state["scheduler"]["base_lrs"] == [0.0123]  # not the first run's lr, restored with the optimizer
    group = state["optimizer"]["param_groups"][0]
    assert group["initial_lr"] == 0.0123 and group["weight_decay"] == 0.0456
    assert state["history"][1]["lr"] < 0.0123 * 0.5  # the cosine of the new settings, in its second half


def test_weight_average_averages_batchnorm_statistics_too():
    from classifier.train import weight_average

    net = torch.nn.BatchNorm1d(3)
    average = weight_average(net, half_life_steps=1e9)  # decay ~1: only the warm-up ramp limits it
    average.update_parameters(net)  # the first update copies
    net.running_mean.fill_(4.0), net.weight.data.fill_(2.0), net.num_batches_tracked.fill_(7)
    average.update_parameters(net)  # second update: step 2, decay (1 + 2) / (10 + 2) = 0.25
    assert torch.allclose(average.module.running_mean, torch.full((3,), 3.0))  # 0.25 * 0 + 0.75 * 4
    assert torch.allclose(average.module.weight, torch.full((3,), 1.75))  # 0.25 * 1 + 0.75 * 2
    assert int(average.module.num_batches_tracked) == 7  # counts follow the model, not averaged


def test_the_weight_average_is_what_is_evaluated_and_saved(toy32, tmp_path):
    from classifier.checkpoint import load_classifier
    from classifier.inference import split_metrics

    trainer = ClassifierTrainer(config(toy32, tmp_path / "run", balance="oversample", ema_half_life=0.5, epochs=2))
    trainer.fit()
    latest = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    differs = [k for k, v in latest["model"].items() if v.is_floating_point()
               and not torch.equal(v, latest["training_model"][k])]
    assert differs  # the saved model is the average, not the training weights
    model, task, state = load_classifier(tmp_path / "run")
    metrics, _ = split_metrics(model, task, trainer.val, trainer.autocast)
    assert metrics["bma"] == pytest.approx(state["best"]["bma"])  # selection scored the weights that were saved


@pytest.mark.parametrize("keep, kept_epoch", [("best-val", 1), ("last", 3)])
def test_keep_rule_decides_which_epoch_best_pt_holds(toy16, tmp_path, monkeypatch, keep, kept_epoch):
    import classifier.train

    scores = iter([0.9, 0.5, 0.7])  # val BMA falls after epoch 1: best-val keeps it, last keeps epoch 3
    monkeypatch.setattr(classifier.train, "split_metrics", lambda *args: ({"bma": next(scores), "accuracy": 0.0}, None))
    ClassifierTrainer(config(toy16, tmp_path / "run", epochs=3, keep=keep)).fit()
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    latest = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert best["best"]["epoch"] == best["epoch"] == kept_epoch
    same_weights = all(torch.equal(v, latest["model"][k]) for k, v in best["model"].items())
    assert same_weights == (kept_epoch == 3)
    # best.pt is what evaluates the model; what resumes training (optimizer, scheduler) is latest.pt's alone
    assert "optimizer" in latest and not {"optimizer", "scheduler", "sampler_rng"} & set(best)


def test_keep_rule_errors(toy16, tmp_path):
    with pytest.raises(UserError, match="unknown keep rule 'first'"):
        config(toy16, tmp_path, keep="first")
    with pytest.raises(UserError, match="needs keep best-val"):
        config(toy16, tmp_path, keep="last", patience=2)


def test_a_gpu_without_bf16_computes_in_fp32_and_says_so_once(monkeypatch, capsys):
    from gan_aug import runtime

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "Tesla V100")
    monkeypatch.setattr(runtime, "_told_no_bf16", [])
    contexts = [runtime.autocast_for(torch.device("cuda"), True) for _ in range(3)]
    assert all(not isinstance(c, torch.autocast) for c in contexts)
    assert capsys.readouterr().err.count("Tesla V100 has no bf16: computing in fp32") == 1
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert isinstance(runtime.autocast_for(torch.device("cuda"), True), torch.autocast)
    assert not isinstance(runtime.autocast_for(torch.device("cuda"), False), torch.autocast)
