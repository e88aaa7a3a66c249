"""Pretrained backbones: torchvision's weights API (its cache, its download, a one-line refusal offline), the
weights' own input normalisation carried by the checkpoint, inception_v3 and vgg16, and the transfer recipe."""

import json

import pytest
import torch
import torchvision
from conftest import write_prepared

from classifier.checkpoint import load_classifier
from classifier.config import ClassifierConfig
from classifier.models import LesionClassifier, imagenet_weights
from classifier.train import ClassifierTrainer
from gan_aug.config import build_config
from gan_aug.errors import UserError

IMAGENET_MEAN = [0.485, 0.456, 0.406]


def cache_imagenet_file(torch_home, name, model):
    """Put `model`'s state dict where torch's cache keeps torchvision's ImageNet weights of `name`."""
    path = torch_home / "hub" / "checkpoints" / imagenet_weights(name).url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.slow
def test_resnet50_at_224_px_transfers_from_cached_imagenet_weights(torch_home, tmp_path, run_cli):
    """The recipe: head only while frozen (backbone and its BatchNorm statistics untouched), then everything at
    a tenth of the head's lr; the checkpoint carries ImageNet's normalisation, and evaluate uses it."""
    reference = torchvision.models.resnet50(weights=None)
    cache_imagenet_file(torch_home, "resnet50", reference)
    data = write_prepared(tmp_path / "tiny224.npz", 224, per_split=(3, 2, 2))
    flags = {"data": str(data), "out": str(tmp_path / "run"), "model": "resnet50", "pretrained": "imagenet",
             "freeze_epochs": 1, "backbone_lr_mult": 0.1, "epochs": 2, "batch_size": 3, "threads": 2}
    trainer = ClassifierTrainer(build_config(ClassifierConfig, None, flags), progress=False)
    backbone = trainer.model.backbone
    assert torch.equal(backbone.conv1.weight, reference.conv1.weight)
    assert trainer.model_args["input_norm"] == {"mean": IMAGENET_MEAN, "std": [0.229, 0.224, 0.225]}
    head_lr, backbone_lr = (g["lr"] for g in trainer.optimizer.param_groups)
    assert backbone_lr == pytest.approx(0.1 * head_lr)

    head = trainer.model.heads["class"].weight.detach().clone()
    trainer.train_one_epoch()  # epoch 0: frozen
    assert torch.equal(backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(backbone.bn1.running_mean, reference.bn1.running_mean)
    assert not torch.equal(trainer.model.heads["class"].weight, head)
    trainer.epoch = 1
    trainer.fit()  # epoch 1: the backbone learns
    assert not torch.equal(backbone.conv1.weight, reference.conv1.weight)
    model, _, state = load_classifier(tmp_path / "run")
    assert state["model_args"]["input_norm"]["mean"] == IMAGENET_MEAN
    assert torch.equal(model.norm_mean.flatten(), torch.tensor(IMAGENET_MEAN))
    result = run_cli("evaluate", "--checkpoint", tmp_path / "run", "--data", data, "--out", tmp_path / "m.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 2


def test_imagenet_offline_fails_in_one_line(torch_home, tmp_path, run_cli, no_network, toy16):
    result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "run", "--model", "resnet18",
                     "--pretrained", "imagenet", "--epochs", 1)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output
    for part in ("resnet18-f37072fd.pth", "https://download.pytorch.org/models/", "--pretrained PATH",
                 str(torch_home / "hub" / "checkpoints")):
        assert part in result.output, result.output


def test_a_damaged_cache_file_is_named(torch_home, tmp_path, toy16):
    path = cache_imagenet_file(torch_home, "resnet18", torchvision.models.resnet18(weights=None))
    path.write_bytes(b"not a state dict")
    with pytest.raises(UserError, match="delete it to download it again"):
        LesionClassifier("resnet18", {"class": 3}, pretrained="imagenet")


def test_inception_v3_takes_the_imagenet_file_without_its_auxiliary_head(torch_home):
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    cache_imagenet_file(torch_home, "inception_v3", reference)  # as torchvision ships it: with AuxLogits
    model = LesionClassifier("inception_v3", {"class": 3}, pretrained="imagenet",
                             input_norm={"mean": [0.5] * 3, "std": [0.5] * 3})
    assert torch.equal(model.backbone.Conv2d_1a_3x3.conv.weight, reference.Conv2d_1a_3x3.conv.weight)
    assert model.backbone.AuxLogits is None and model.backbone.out_dim == 2048
    model.train()
    logits = model(torch.rand(2, 3, 75, 75) * 2 - 1)["class"]  # a tensor in training mode: no aux output
    assert logits.shape == (2, 3)


@pytest.mark.slow  # a statistical or whole-model check: the quick tier stays under 2 minutes
def test_vgg16_keeps_its_fc_layers_and_trains_at_32_px():
    model = LesionClassifier("vgg16", {"class": 3})
    assert model.backbone.out_dim == 4096 and isinstance(model.backbone.classifier[6], torch.nn.Identity)
    loss = model(torch.rand(2, 3, 32, 32) * 2 - 1)["class"].logsumexp(1).mean()
    loss.backward()
    assert model.backbone.features[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("args, message", [
    (["--model", "small_cnn", "--pretrained", "imagenet"], "small_cnn has no pretrained weights"),
    (["--model", "resnet18", "--freeze-epochs", 1], "add --pretrained"),
    (["--model", "resnet18", "--pretrained", "imagenet", "--backbone-lr-mult", 0], "backbone_lr_mult must be > 0"),
    (["--model", "inception_v3", "--pretrained", "x.pth"], "inception_v3 needs images of at least 75 px"),
    (["--model", "resnet18", "--pretrained", "imagenet", "--freeze-epochs", 3, "--epochs", 2],
     "freeze_epochs (3) must be fewer than epochs (2)"),
])
def test_recipe_errors(args, message, toy16, tmp_path, run_cli):
    result = run_cli("train-classifier", "--data", toy16, "--out", tmp_path / "run", *args)
    assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1


def test_presets_are_valid_configs(tmp_path):
    for name, model in (("resnet50_224", "resnet50"), ("efficientnet_b0_224", "efficientnet_b0")):
        config = build_config(ClassifierConfig, f"configs/presets/{name}.yaml", {"data": "d.npz", "out": str(tmp_path)})
        assert config.model == model and config.pretrained == "imagenet" and config.freeze_epochs > 0
        assert 0 < config.backbone_lr_mult < 1


@pytest.mark.slow
def test_head_only_epochs_under_torchrun_follow_one_process(toy16, tmp_path):
    """DistributedDataParallel is rebuilt when the backbone thaws: 2 processes still follow 1 through it."""
    from test_distributed import CLASSIFIER, assert_same_gradients, checkpoint, launch

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    recipe = ["--data", toy16, "--model", "resnet18", "--pretrained", weights, "--freeze-epochs", 1,
              "--backbone-lr-mult", 0.5, "--epochs", 2, *CLASSIFIER]
    launch(1, "train-classifier", "--out", tmp_path / "one", *recipe)
    launch(2, "train-classifier", "--out", tmp_path / "two", *recipe)
    a, b = checkpoint(tmp_path / "one"), checkpoint(tmp_path / "two")
    assert b["config"]["world_size"] == 2 and len(a["optimizer"]["param_groups"]) == 2
    # The backbone's gradient comes after the head's first Adam step, which turns float noise in near-zero
    # gradients into +-lr: ~1% apart measured, where a backbone left out of the averaging is tens of % apart.
    assert_same_gradients(a["optimizer"], b["optimizer"], tolerance=2e-2)


@pytest.mark.slow
def test_inception_v3_trains_at_75_px_and_explains(tmp_path, run_cli):
    """Grad-CAM looks at its last mixed block (the registry's cam_layer) through the recorded normalisation."""
    from PIL import Image

    data = write_prepared(tmp_path / "tiny75.npz", 75, per_split=(3, 2, 0))
    weights = tmp_path / "inception.pth"
    torch.save(torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), weights)
    run = tmp_path / "inc"
    result = run_cli("train-classifier", "--data", data, "--out", run, "--model", "inception_v3", "--pretrained",
                     weights, "--freeze-epochs", 1, "--epochs", 2, "--set", "batch_size=3")
    assert result.exit_code == 0, result.output
    assert load_classifier(run)[2]["model_args"]["input_norm"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    Image.new("RGB", (90, 80), (150, 90, 60)).save(tmp_path / "lesion.png")
    result = run_cli("explain", "--checkpoint", run, tmp_path / "lesion.png", "--out", tmp_path / "cams")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cams" / "lesion_gradcam.png").is_file()
