"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) applied per sample with probability p,
and an ADA-style controller (Karras et al. 2020) that tunes p from how sure D is about real images.

Images are (B, 3, H, W) in [-1, 1]. All randomness comes from torch's global generators, so a
checkpoint's saved RNG state makes resumed training repeat exactly.
"""

import torch
import torch.nn.functional as F


def _chosen(x, p):
    """(B,) bool: which samples this op touches."""
    return torch.rand(len(x), device=x.device) < p


def color(x, p):
    B = len(x)
    on = _chosen(x, p)[:, None, None, None].to(x.dtype)
    brightness = (torch.rand(B, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5) * on
    x = x + brightness
    saturation = 1 + (torch.rand(B, 1, 1, 1, device=x.device, dtype=x.dtype) * 2 - 1) * on
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * saturation + mean
    contrast = 1 + (torch.rand(B, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5) * on
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def translation(x, p, ratio=0.125):
    """Shift each image by up to ratio * size pixels, filling with zeros (mid-grey in [-1, 1])."""
    B, C, H, W = x.shape
    shift = int(H * ratio + 0.5)
    on = _chosen(x, p).long()
    tx = torch.randint(-shift, shift + 1, (B, 1, 1), device=x.device) * on[:, None, None]
    ty = torch.randint(-shift, shift + 1, (B, 1, 1), device=x.device) * on[:, None, None]
    gy = (torch.arange(H, device=x.device)[None, :, None] + ty + 1).clamp(0, H + 1)  # (B, H, 1)
    gx = (torch.arange(W, device=x.device)[None, None, :] + tx + 1).clamp(0, W + 1)  # (B, 1, W)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (B, H+2, W+2, C)
    batch = torch.arange(B, device=x.device)[:, None, None]
    return padded[batch, gy, gx].permute(0, 3, 1, 2)


def cutout(x, p, ratio=0.5):
    """Zero a random square of side ratio * size in each chosen image."""
    B, C, H, W = x.shape
    side = int(H * ratio + 0.5)
    on = _chosen(x, p)[:, None, None]
    top = torch.randint(0, H + 1 - side % 2, (B, 1, 1), device=x.device) - side // 2
    left = torch.randint(0, W + 1 - side % 2, (B, 1, 1), device=x.device) - side // 2
    ys = torch.arange(H, device=x.device)[None, :, None]
    xs = torch.arange(W, device=x.device)[None, None, :]
    hole = (ys >= top) & (ys < top + side) & (xs >= left) & (xs < left + side) & on  # (B, H, W)
    return x * (~hole)[:, None].to(x.dtype)


AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}


def augment(x, policy, p=1.0):
    """Apply the ops named in `policy` (in order), each to a random fraction p of the batch."""
    if p <= 0:  # ADA starts at p = 0: skip the work (and the RNG draws) entirely
        return x
    for name in policy:
        x = AUGMENTS[name](x, p)
    return x


class AdaptiveProbability:
    """ADA's heuristic: raise p while E[sign(D(real))] exceeds `target`, lower it otherwise.

    p moves by at most batch * interval / (speed_kimg * 1000) per adjustment, i.e. it can go
    from 0 to 1 in `speed_kimg` thousand images.
    """

    def __init__(self, target, interval=4, speed_kimg=20.0, p=0.0):
        self.target, self.interval, self.speed_kimg = target, interval, speed_kimg
        self.p, self.sign_sum, self.count, self.steps = p, 0.0, 0, 0

    def observe(self, sign_sum, count, batch_size):
        """Take one step's sum of sign(D(real)) over `count` real images (the global batch's)."""
        self.sign_sum += sign_sum
        self.count += count
        self.steps += 1
        if self.steps % self.interval == 0:
            rt = self.sign_sum / max(self.count, 1)
            adjust = batch_size * self.interval / (self.speed_kimg * 1000)
            self.p = float(min(max(self.p + (adjust if rt > self.target else -adjust), 0.0), 1.0))
            self.sign_sum, self.count = 0.0, 0

    def state_dict(self):
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count, "steps": self.steps}

    def load_state_dict(self, state):
        self.p, self.sign_sum = float(state["p"]), float(state["sign_sum"])
        self.count, self.steps = int(state["count"]), int(state["steps"])
