"""Turning generator output into pixels: batched sampling and fixed-latent class grids."""

import numpy as np
import torch


def to_uint8(images):
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8 numpy."""
    images = (images.float().clamp(-1, 1) + 1) * 127.5
    return images.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def grid_latents(n_classes, columns, z_dim, seed=0):
    """Fixed latents for snapshot grids: the same `columns` z's for every class row."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(columns, z_dim, generator=gen)
    return z.repeat(n_classes, 1), torch.arange(n_classes).repeat_interleave(columns)


@torch.no_grad()
def class_grid(G, z, c, columns, device, batch_size=64):
    """One row per class, one column per latent: (rows * H, columns * W, 3) uint8."""
    chunks = [to_uint8(G(z[i:i + batch_size].to(device), c[i:i + batch_size].to(device)))
              for i in range(0, len(z), batch_size)]
    return tile(np.concatenate(chunks), columns)


def tile(images, columns):
    """(rows * columns, H, W, 3) images -> one (rows * H, columns * W, 3) grid, row by row."""
    rows = len(images) // columns
    H, W = images.shape[1:3]
    return images.reshape(rows, columns, H, W, 3).transpose(0, 2, 1, 3, 4).reshape(rows * H, columns * W, 3)


@torch.no_grad()
def generate(G, z, class_index, truncation, batch_size, device, noise_seed):
    """(N, H, W, 3) uint8 images of one class for latents z (N >= 1, z_dim). Generators that draw noise inside
    (stylegan_lite's per-pixel noise) draw it from torch's global RNG: it is forked and seeded per batch
    from `noise_seed`, so the images depend only on the arguments and the caller's RNG is left as it was."""
    out = []
    devices = [device] if device.type == "cuda" else []
    for i in range(0, len(z), batch_size):
        zb = z[i:i + batch_size].to(device)
        c = torch.full((len(zb),), class_index, dtype=torch.long, device=device)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(noise_seed + i)
            out.append(to_uint8(G(zb, c, truncation=truncation)))
    return np.concatenate(out)
