"""Lesion classifiers (registry): a small CNN for 28-64 px and torchvision backbones, from scratch or pretrained.

Every model maps (images (B, 3, H, W) in [-1, 1], metadata (B, M) or None) to logits, and exposes
`features(images)` (the penultimate activations) for the domain Fréchet distance and embeddings.
Pretrained weights come through torchvision's weights API (`imagenet`: downloaded once into torch's
cache) or from a local state-dict file; either way the model then normalises its [-1, 1] input the way
those weights were trained (model_args["input_norm"]), so every stage that rebuilds it feeds it alike.
"""

import dataclasses
import typing
from pathlib import Path

import torch
from torch import nn

from gan_aug.errors import UserError
from gan_aug.runtime import hub_download

IMAGENET = "imagenet"


class SmallCNN(nn.Module):
    """Three conv stages (two 3x3 conv-BN-ReLU each, then 2x2 max-pool), global average pool."""

    def __init__(self, width=32):
        super().__init__()
        layers, in_ch = [], 3
        for ch in (width, width * 2, width * 4):
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                       nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            in_ch = ch
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = in_ch

    def forward(self, x):
        return self.body(x)  # (B, out_dim)


def _torchvision(name, head_attr, ignored=(), **kwargs):
    """build(pretrained) of torchvision model `name`: its ImageNet head `head_attr` becomes the identity;
    `ignored`: key prefixes of the pretrained state dict that this build leaves out (inception's auxiliary head)."""
    def build(pretrained=None):
        import torchvision

        net = getattr(torchvision.models, name)(weights=None, **kwargs)
        if pretrained:
            state = imagenet_state(name) if pretrained == IMAGENET else _load_state(pretrained)
            state = {k: v for k, v in state.items() if not k.startswith(ignored)}
            try:
                missing, unexpected = net.load_state_dict(state, strict=False)
            except RuntimeError as err:  # shape mismatches
                raise UserError(f"{pretrained} does not fit {name}: {str(err).splitlines()[-1].strip()}") from None
            if [k for k in missing if not k.startswith(head_attr)] or unexpected:
                raise UserError(f"{pretrained} does not fit {name} (missing {missing[:3]}, unexpected {unexpected[:3]})")
        head = _get_attr(net, head_attr)
        last = head if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
        out_dim = last.in_features
        _set_attr(net, head_attr, nn.Identity())  # the classifier's own head replaces ImageNet's
        net.out_dim = out_dim
        return net
    return build


def imagenet_weights(name):
    """torchvision's default ImageNet weights of model `name` (an enum entry: url, transforms)."""
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


def imagenet_state(name):
    """The ImageNet state dict of torchvision model `name`, through torchvision's weights API: from torch's
    cache, else downloaded into it (hash-checked); offline, one line that says how to get it."""
    weights = imagenet_weights(name)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    with hub_download(f"the ImageNet weights of {name}", weights.url, cached, "pass --pretrained PATH"):
        return weights.get_state_dict(progress=True, check_hash=True, map_location="cpu", weights_only=True)


def _get_attr(obj, dotted):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _set_attr(obj, dotted, value):
    *parents, last = dotted.split(".")
    setattr(_get_attr(obj, ".".join(parents)) if parents else obj, last, value)


def _load_state(path):
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"pretrained weights not found: {path}") from None
    except Exception as err:
        raise UserError(f"{path} is not a readable state dict: {str(err).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict")
    return state


@dataclasses.dataclass(frozen=True)
class Backbone:
    build: typing.Callable  # build(pretrained=None) -> module with .out_dim
    min_size: int  # the smallest image side its pooling stages survive
    cam_layer: typing.Callable  # backbone -> its last convolutional stage (where Grad-CAM looks)
    weights: typing.Optional[str] = None  # the torchvision model whose ImageNet weights --pretrained takes
    # The input normalisation of its pretrained weights, when not the one their transforms() names.
    norm: typing.Optional[dict] = None


BACKBONES = {}
DEFAULT_DROPOUT = 0.2  # before the heads


def register(name, backbone):
    assert name not in BACKBONES, f"model {name} registered twice"
    BACKBONES[name] = backbone


def check_image_size(name, size):
    """A one-line refusal instead of a RuntimeError deep inside the first forward pass."""
    if size < BACKBONES[name].min_size:
        raise UserError(f"{name} needs images of at least {BACKBONES[name].min_size} px, these are {size} px "
                        f"(prepare the set with a larger --size, or use a smaller-input model such as small_cnn)")


def check_pretrained(name, pretrained):
    if pretrained and BACKBONES[name].weights is None:
        raise UserError(f"{name} has no pretrained weights: drop --pretrained, or use a torchvision model "
                        f"({', '.join(n for n, b in BACKBONES.items() if b.weights)})")


def input_norm(name, pretrained):
    """The per-channel mean/std on [0, 1] pixels that pretrained weights expect (recorded in model_args), or None:
    a model trained from scratch takes [-1, 1]. A local file is taken to be the same torchvision model's
    ImageNet weights saved offline, the usual source of one, so it gets their normalisation too."""
    if not pretrained:
        return None
    check_pretrained(name, pretrained)
    backbone = BACKBONES[name]
    if backbone.norm:
        return dict(backbone.norm)
    transforms = imagenet_weights(backbone.weights).transforms()  # no download: the weights' metadata
    return {"mean": [float(v) for v in transforms.mean], "std": [float(v) for v in transforms.std]}


register("small_cnn", Backbone(lambda pretrained=None: SmallCNN(), 8, lambda b: b.body[-4]))  # last ReLU before pool
register("resnet18", Backbone(_torchvision("resnet18", "fc"), 8, lambda b: b.layer4[-1], "resnet18"))
register("resnet50", Backbone(_torchvision("resnet50", "fc"), 8, lambda b: b.layer4[-1], "resnet50"))
# DenseNet's four 2x2 average pools after a stride-4 stem leave nothing of an image under 32 px.
register("densenet121", Backbone(_torchvision("densenet121", "classifier"), 32, lambda b: b.features[-1],
                                 "densenet121"))
register("efficientnet_b0", Backbone(_torchvision("efficientnet_b0", "classifier"), 8, lambda b: b.features[-1],
                                     "efficientnet_b0"))
# Inception's unpadded stride-2 stem and reductions need 75 px. Its auxiliary head only helps training from
# scratch at 299 px. The ImageNet weights came from TensorFlow and take [-1, 1] pixels: torchvision's
# transform_input turns ImageNet-normalised input back into that, so with it off they get [-1, 1] directly.
register("inception_v3", Backbone(_torchvision("inception_v3", "fc", ignored=("AuxLogits.",), aux_logits=False,
                                               transform_input=False, init_weights=True),
                                  75, lambda b: b.Mixed_7c, "inception_v3", {"mean": [0.5] * 3, "std": [0.5] * 3}))
# VGG's five 2x2 max-pools need 32 px. Only its last layer is replaced: fc6/fc7 keep their ImageNet weights.
register("vgg16", Backbone(_torchvision("vgg16", "classifier.6"), 32, lambda b: b.features[-2], "vgg16"))


class LesionClassifier(nn.Module):
    """Backbone + optional metadata branch + one head per output (multiclass, binary, or both)."""

    def __init__(self, backbone, heads, meta_dim=0, pretrained=None, dropout=DEFAULT_DROPOUT, input_norm=None):
        super().__init__()
        if backbone not in BACKBONES:
            raise UserError(f"unknown model '{backbone}' (choose from {', '.join(BACKBONES)})")
        self.backbone = BACKBONES[backbone].build(pretrained)
        # Not saved in the state dict (model_args holds them), so checkpoints of earlier runs still load.
        for key in ("mean", "std"):
            value = None if input_norm is None else torch.tensor(input_norm[key]).view(1, 3, 1, 1)
            self.register_buffer(f"norm_{key}", value, persistent=False)
        feat = self.backbone.out_dim
        self.meta = None
        if meta_dim:
            self.meta = nn.Sequential(nn.Linear(meta_dim, 32), nn.ReLU(inplace=True), nn.Linear(32, 32), nn.ReLU())
            feat += 32
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(feat, n) for name, n in heads.items()})

    def features(self, images, meta=None):
        if self.norm_mean is not None:  # [-1, 1] -> what the pretrained weights were trained on
            images = ((images + 1) / 2 - self.norm_mean) / self.norm_std
        h = self.backbone(images)  # (B, F)
        if self.meta is not None:
            h = torch.cat([h, self.meta(meta)], dim=1)
        return h

    def forward(self, images, meta=None):
        h = self.dropout(self.features(images, meta))
        return {name: head(h) for name, head in self.heads.items()}
