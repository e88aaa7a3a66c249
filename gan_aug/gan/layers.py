"""Layers both discriminators share."""

import math

import torch
from torch import nn


class MinibatchStd(nn.Module):
    """Appends one feature map: the spread of the features across a group of samples (Karras et al. 2018).

    A generator that draws the same lesion for every z gives D groups with no spread where real groups have
    plenty, so collapse becomes something D can see and punish; without it, per-class GANs on 81-228 images
    collapsed to one lesion while D's loss said it could not tell them apart (docs/experiments/round09-ham64.md, issue #24).
    Groups are runs of consecutive samples, so the real and fake halves of a concatenated D batch never share
    one when the group divides each half (the trainer checks that).
    """

    def __init__(self, group):
        super().__init__()
        self.group = group

    def forward(self, x):
        n, c, h, w = x.shape
        group = math.gcd(self.group, n)
        spread = x.float().reshape(n // group, group, c, h, w).var(dim=1, unbiased=False).add(1e-8).sqrt()
        per_group = spread.mean(dim=(1, 2, 3)).to(x.dtype)  # (n / group,)
        feature = per_group.repeat_interleave(group)[:, None, None, None].expand(n, 1, h, w)
        return torch.cat([x, feature], dim=1)
