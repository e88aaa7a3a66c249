"""StyleGAN-lite: a small StyleGAN2-like generator and a residual projection discriminator.

Generator: a mapping network from (z, class embedding) to w; a learned 4x4 constant; per resolution
two modulated/demodulated 3x3 convolutions with per-pixel noise, and a ToRGB whose output is added to
the upsampled RGB of the stage before (skip architecture). Kept small enough to train on CPU at 32 px.
The mapping network tracks the mean w of each class, for truncation towards the class centre.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_aug.gan.layers import MinibatchStd

W_AVG_BETA = 0.995  # how slowly the tracked mean w follows training


class ModulatedConv(nn.Module):
    """Conv whose input channels are scaled per sample by a style; optionally demodulated (Karras 2020)."""

    def __init__(self, in_ch, out_ch, kernel, w_dim, demodulate=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = nn.Linear(w_dim, in_ch)
        nn.init.ones_(self.affine.bias)  # styles start at 1: an ordinary convolution
        self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate = demodulate

    def forward(self, x, w):
        style = self.affine(w)  # (B, in)
        weight = self.weight * self.scale  # (out, in, k, k)
        # Scaling the input by the style, convolving with the shared weight and scaling the output by
        # the demodulation factor equals convolving with per-sample modulated weights (StyleGAN2's
        # non-fused path), and runs as one ordinary convolution instead of B grouped ones.
        x = F.conv2d(x * style[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            norm = (weight.pow(2).sum(dim=(2, 3))[None] * style.pow(2)[:, None, :]).sum(dim=2)  # (B, out)
            x = x * torch.rsqrt(norm + 1e-8)[:, :, None, None]
        return x + self.bias[None, :, None, None]


class StyleLayer(nn.Module):
    def __init__(self, in_ch, out_ch, w_dim):
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))

    def forward(self, x, w, noise):
        x = self.conv(x, w)
        if noise is None:
            noise = torch.randn(len(x), 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        return F.leaky_relu(x + self.noise_strength * noise, 0.2) * math.sqrt(2)


class Generator(nn.Module):
    def __init__(self, img_size=32, n_classes=1, z_dim=128, channels=64, w_dim=128, mapping_layers=4):
        super().__init__()
        self.z_dim, self.n_classes, self.w_dim = z_dim, n_classes, w_dim
        n_stages = int(math.log2(img_size)) - 1  # 4x4 up to img_size
        widths = [channels * min(8, 2 ** (n_stages - 1 - i)) for i in range(n_stages)]
        self.embed = nn.Embedding(n_classes, z_dim)
        layers, in_dim = [], 2 * z_dim
        for _ in range(mapping_layers):
            layers += [nn.Linear(in_dim, w_dim), nn.LeakyReLU(0.2)]
            in_dim = w_dim
        self.mapping = nn.Sequential(*layers)
        self.register_buffer("w_avg", torch.zeros(n_classes, w_dim))
        self.const = nn.Parameter(torch.randn(widths[0], 4, 4))
        self.layers = nn.ModuleList()
        self.to_rgb = nn.ModuleList()
        for i, width in enumerate(widths):
            first = StyleLayer(widths[max(i - 1, 0)], width, w_dim) if i else None
            self.layers.append(nn.ModuleList([m for m in (first, StyleLayer(width, width, w_dim)) if m]))
            self.to_rgb.append(ModulatedConv(width, 3, 1, w_dim, demodulate=False))

    def map(self, z, c, cond_weight=1.0):
        """w for latents z (B, z_dim) and classes c (B,)."""
        z = F.normalize(z, dim=1) * math.sqrt(self.z_dim)
        e = F.normalize(self.embed(c), dim=1) * math.sqrt(self.z_dim) * cond_weight
        return self.mapping(torch.cat([z, e], dim=1))  # (B, w_dim)

    def synthesize(self, w):
        x = self.const[None].expand(len(w), -1, -1, -1)
        rgb = None
        for stage, (layers, to_rgb) in enumerate(zip(self.layers, self.to_rgb)):
            if stage:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            for layer in layers:
                x = layer(x, w, None)
            y = to_rgb(x, w)
            rgb = y if rgb is None else y + F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
        return rgb  # (B, 3, H, W), roughly [-1, 1]

    def forward(self, z, c, cond_weight=1.0, truncation=1.0):
        w = self.map(z, c, cond_weight)
        if self.training:
            with torch.no_grad():  # running per-class mean of w, for truncation at sampling time
                sums = torch.zeros_like(self.w_avg).index_add_(0, c, w.detach().float())
                counts = torch.bincount(c, minlength=self.n_classes).to(w.dtype)[:, None]
                seen = counts > 0
                batch_mean = sums / counts.clamp(min=1)
                self.w_avg.copy_(torch.where(seen, torch.lerp(batch_mean, self.w_avg, W_AVG_BETA), self.w_avg))
        if truncation != 1.0:
            w = torch.lerp(self.w_avg[c], w, truncation)
        return self.synthesize(w)


class ResBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.avg_pool2d(F.leaky_relu(self.conv2(h), 0.2), 2)
        return (h + F.avg_pool2d(self.skip(x), 2)) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, img_size=32, n_classes=1, channels=64, mbstd_group=0):
        super().__init__()
        n_blocks = int(math.log2(img_size)) - 2  # down to 4x4
        widths = [channels * min(8, 2 ** i) for i in range(n_blocks + 1)]
        self.from_rgb = nn.Conv2d(3, widths[0], 1)
        self.blocks = nn.Sequential(*[ResBlock(a, b) for a, b in zip(widths, widths[1:])])
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group else nn.Identity()  # StyleGAN's place: before the head
        self.head = nn.Sequential(nn.Conv2d(widths[-1] + bool(mbstd_group), widths[-1], 3, padding=1),
                                  nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(widths[-1] * 16, widths[-1]),
                                  nn.LeakyReLU(0.2))
        self.linear = nn.Linear(widths[-1], 1)
        self.project = nn.Embedding(n_classes, widths[-1])
        nn.init.normal_(self.project.weight, std=1 / math.sqrt(widths[-1]))

    def forward(self, x, c, cond_weight=1.0):
        h = self.head(self.mbstd(self.blocks(F.leaky_relu(self.from_rgb(x), 0.2))))  # (B, C)
        projection = (self.project(c) * h).sum(dim=1)
        return self.linear(h).squeeze(1) + cond_weight * projection  # (B,)
