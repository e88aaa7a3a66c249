"""GAN losses (registry) and the R1 penalty. Pure functions of logits: they return tensors, never log."""

import torch
import torch.nn.functional as F


def hinge_d(real_logits, fake_logits):
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g(fake_logits):
    return -fake_logits.mean()


def nonsat_d(real_logits, fake_logits):
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def nonsat_g(fake_logits):
    return F.softplus(-fake_logits).mean()


LOSSES = {}


def register(name, d_loss, g_loss):
    assert name not in LOSSES, f"loss {name} registered twice"
    LOSSES[name] = (d_loss, g_loss)


def r1_penalty(real_logits, real_images):
    """Mean squared gradient norm of D at the real images (Mescheder et al. 2018). Needs requires_grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).sum(dim=(1, 2, 3)).mean()


register("hinge", hinge_d, hinge_g)
register("nonsat", nonsat_d, nonsat_g)
