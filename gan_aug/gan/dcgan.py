"""Conditional DCGAN: conditional-batch-norm generator, spectral-norm discriminator with a projection head.

Both take `cond_weight` in [0, 1], the strength of the class signal, so training can start
unconditional and ramp conditioning in (transitional conditioning, Shahbazi et al. 2022).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_aug.gan.layers import MinibatchStd


def _widths(base, n_blocks, cap=8):
    """Channel widths from the 4x4 stage outwards: base*8, base*4, ... never above base*cap."""
    return [base * min(cap, 2 ** (n_blocks - i)) for i in range(n_blocks + 1)]


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain and bias depend on the class: gain = 1 + w*gamma[c], bias = w*beta[c]."""

    def __init__(self, channels, n_classes):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(n_classes, channels)
        self.beta = nn.Embedding(n_classes, channels)
        nn.init.zeros_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x, c, cond_weight):
        x = self.norm(x)
        # In x's dtype: fp32 embeddings would promote bf16 activations, and every later op would pay for it.
        gain = (1 + cond_weight * self.gamma(c)[:, :, None, None]).to(x.dtype)  # (B, C, 1, 1)
        bias = (cond_weight * self.beta(c)[:, :, None, None]).to(x.dtype)
        return x * gain + bias


class UpBlock(nn.Module):
    def __init__(self, in_ch, out_ch, n_classes):
        super().__init__()
        self.norm = ConditionalBatchNorm(in_ch, n_classes)
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x, c, cond_weight):
        # Nearest upsampling + 3x3 conv rather than a strided transposed conv: no checkerboard artefacts.
        x = F.interpolate(torch.relu(self.norm(x, c, cond_weight)), scale_factor=2, mode="nearest")
        return self.conv(x)


class Generator(nn.Module):
    def __init__(self, img_size=32, n_classes=1, z_dim=128, channels=64, embed_dim=64):
        super().__init__()
        n_blocks = int(math.log2(img_size)) - 2
        widths = _widths(channels, n_blocks)
        self.z_dim = z_dim
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.stem = nn.Linear(z_dim + embed_dim, widths[0] * 16)
        self.blocks = nn.ModuleList(UpBlock(a, b, n_classes) for a, b in zip(widths, widths[1:]))
        self.out_norm = ConditionalBatchNorm(widths[-1], n_classes)
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, z, c, cond_weight=1.0, truncation=1.0):
        # Truncation shrinks z towards 0: fewer, more typical samples (the simple form of BigGAN's trick).
        h = torch.cat([z * truncation, cond_weight * self.embed(c)], dim=1)
        x = self.stem(h).view(len(z), -1, 4, 4)  # (B, C0, 4, 4)
        if self.to_rgb.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # match the weights: no layout switch later
        for block in self.blocks:
            x = block(x, c, cond_weight)
        x = torch.relu(self.out_norm(x, c, cond_weight))
        return torch.tanh(self.to_rgb(x))  # (B, 3, H, W) in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, img_size=32, n_classes=1, channels=64, mbstd_group=0):
        super().__init__()
        n_blocks = int(math.log2(img_size)) - 2
        widths = list(reversed(_widths(channels, n_blocks)))  # small -> large going down
        layers = [spectral_norm(nn.Conv2d(3, widths[0], 3, padding=1)), nn.LeakyReLU(0.1, inplace=True)]
        for a, b in zip(widths, widths[1:]):
            layers += [spectral_norm(nn.Conv2d(a, b, 4, stride=2, padding=1)), nn.LeakyReLU(0.1, inplace=True),
                       spectral_norm(nn.Conv2d(b, b, 3, padding=1)), nn.LeakyReLU(0.1, inplace=True)]
        if mbstd_group:  # appended at 4x4, so the weights of runs without it keep their names
            layers += [MinibatchStd(mbstd_group), spectral_norm(nn.Conv2d(widths[-1] + 1, widths[-1], 3, padding=1)),
                       nn.LeakyReLU(0.1, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        self.project = spectral_norm(nn.Embedding(n_classes, widths[-1]))

    def forward(self, x, c, cond_weight=1.0):
        h = self.features(x).sum(dim=(2, 3))  # (B, C) global sum pooling
        projection = (self.project(c) * h).sum(dim=1)  # Miyato & Koyama 2018
        return self.linear(h).squeeze(1) + cond_weight * projection  # (B,)
