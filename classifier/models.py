"""Lesion classifiers (registry): a small CNN for 28-64 px and torchvision backbones with local weights.

Every model maps (images (B, 3, H, W) in [-1, 1], metadata (B, M) or None) to logits, and exposes
`features(images)` (the penultimate activations) for the domain Fréchet distance and embeddings.
Nothing here downloads: pretrained weights come from a local state-dict file.
"""

import dataclasses
import typing

import torch
from torch import nn

from gan_aug.errors import UserError


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


def _torchvision(name, head_attr):
    def build(pretrained=None):
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        if pretrained:
            state = _load_state(pretrained)
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


register("small_cnn", Backbone(lambda pretrained=None: SmallCNN(), 8, lambda b: b.body[-4]))  # last ReLU before pool
register("resnet18", Backbone(_torchvision("resnet18", "fc"), 8, lambda b: b.layer4[-1]))
register("resnet50", Backbone(_torchvision("resnet50", "fc"), 8, lambda b: b.layer4[-1]))
# DenseNet's four 2x2 average pools after a stride-4 stem leave nothing of an image under 32 px.
register("densenet121", Backbone(_torchvision("densenet121", "classifier"), 32, lambda b: b.features[-1]))
register("efficientnet_b0", Backbone(_torchvision("efficientnet_b0", "classifier"), 8, lambda b: b.features[-1]))


class LesionClassifier(nn.Module):
    """Backbone + optional metadata branch + one head per output (multiclass, binary, or both)."""

    def __init__(self, backbone, heads, meta_dim=0, pretrained=None, dropout=DEFAULT_DROPOUT):
        super().__init__()
        if backbone not in BACKBONES:
            raise UserError(f"unknown model '{backbone}' (choose from {', '.join(BACKBONES)})")
        self.backbone = BACKBONES[backbone].build(pretrained)
        feat = self.backbone.out_dim
        self.meta = None
        if meta_dim:
            self.meta = nn.Sequential(nn.Linear(meta_dim, 32), nn.ReLU(inplace=True), nn.Linear(32, 32), nn.ReLU())
            feat += 32
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(feat, n) for name, n in heads.items()})

    def features(self, images, meta=None):
        h = self.backbone(images)  # (B, F)
        if self.meta is not None:
            h = torch.cat([h, self.meta(meta)], dim=1)
        return h

    def forward(self, images, meta=None):
        h = self.dropout(self.features(images, meta))
        return {name: head(h) for name, head in self.heads.items()}
