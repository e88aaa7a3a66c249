"""The generator's exponential moving average, and BatchNorm 'standing statistics' for sampling."""

import copy

import torch
from torch import nn


def make_ema(G):
    G_ema = copy.deepcopy(G).eval()
    G_ema.requires_grad_(False)
    return G_ema


@torch.no_grad()
def update_ema(G, G_ema, beta):
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers are copied (BatchNorm statistics are
    re-estimated for G_ema itself by refresh_standing_stats)."""
    torch._foreach_lerp_(list(G_ema.parameters()), [p.detach() for p in G.parameters()], 1 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def ema_beta(batch_size, half_life_kimg):
    """Per-step decay such that the average's weight halves every half_life_kimg thousand images."""
    return 0.5 ** (batch_size / max(half_life_kimg * 1000, 1e-8))


@torch.no_grad()
def refresh_standing_stats(G, n_classes, z_dim, device, batches=16, batch_size=64, seed=12345):
    """Recompute G's BatchNorm running statistics as a plain average over fresh samples of G itself.

    The copied running stats belong to the training generator, not its average; re-estimating them
    from G_ema's own activations (BigGAN's 'standing stats') gives cleaner samples. A private RNG keeps
    the training RNG untouched, so resumed runs stay exact.
    """
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(batches):
        z = torch.randn(batch_size, z_dim, generator=gen).to(device)
        c = torch.randint(0, n_classes, (batch_size,), generator=gen).to(device)
        G(z, c)
    for m, (momentum, training) in zip(norms, saved):
        m.momentum = momentum
        m.train(training)
