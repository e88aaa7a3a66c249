"""Networks, losses and augmentation of the GAN: shapes, conditioning, invariants."""

import pytest
import torch

from gan_aug.gan.augment import AUGMENTS, AdaptiveProbability, augment
from gan_aug.gan.layers import MinibatchStd
from gan_aug.gan.losses import LOSSES, r1_penalty
from gan_aug.gan.networks import NETWORKS, build_networks, model_args

CASES = [(arch, size) for arch, spec in NETWORKS.items() for size in spec.sizes]


@pytest.mark.parametrize("arch, size", CASES)
def test_output_shapes(arch, size):
    torch.manual_seed(0)
    G, D = build_networks(model_args(arch, size, n_classes=3, z_dim=16, g_channels=4, d_channels=4))
    z, c = torch.randn(2, 16), torch.tensor([0, 2])
    images = G(z, c)
    assert images.shape == (2, 3, size, size)
    assert D(images, c).shape == (2,)


@pytest.mark.parametrize("arch", sorted(NETWORKS))
def test_class_label_changes_output(arch):
    torch.manual_seed(0)
    G, D = build_networks(model_args(arch, 16, n_classes=3, z_dim=16, g_channels=8, d_channels=8))
    for module in (G, D):  # embeddings start near neutral; give them a visible effect
        for name, p in module.named_parameters():
            if "embed" in name or "gamma" in name or "beta" in name or "project" in name:
                torch.nn.init.normal_(p, std=0.5)
    G.eval()
    z = torch.randn(1, 16).repeat(2, 1)
    c = torch.tensor([0, 1])
    with torch.no_grad():
        images = G(z, c)
        assert (images[0] - images[1]).abs().mean() > 1e-3
        logits = D(images[:1].repeat(2, 1, 1, 1), c)
        assert (logits[0] - logits[1]).abs() > 1e-4
        # With the class signal switched off (transitional conditioning at 0) the label does nothing.
        unconditional = G(z, c, cond_weight=0.0)
        assert torch.allclose(unconditional[0], unconditional[1], atol=1e-5)


def test_losses_prefer_the_right_side():
    confident = torch.full((8,), 3.0)
    for name, (d_loss, g_loss) in LOSSES.items():
        assert d_loss(confident, -confident) < d_loss(-confident, confident), name
        assert g_loss(confident) < g_loss(-confident), name


def test_r1_is_squared_input_gradient():
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    logits = (x * 2).sum(dim=(1, 2, 3))  # gradient 2 everywhere
    assert torch.isclose(r1_penalty(logits, x), torch.tensor(4.0 * 3 * 8 * 8))


def test_augment_identity_at_p0_and_changes_at_p1():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    assert torch.equal(augment(x, tuple(AUGMENTS), p=0.0), x)
    for name in AUGMENTS:
        out = augment(x, (name,), p=1.0)
        assert out.shape == x.shape and not torch.equal(out, x), name


def test_cutout_zeroes_a_quarter_and_translation_keeps_content():
    torch.manual_seed(0)
    x = torch.ones(64, 3, 16, 16)
    holes = (augment(x, ("cutout",), 1.0) == 0).float().mean()
    assert 0.15 < holes < 0.3  # a half-side square is a quarter of the image, minus edge clipping
    shifted = augment(x, ("translation",), 1.0)
    assert (shifted == 1).float().mean() > 0.7 and (shifted == 0).any()


def test_augment_is_differentiable():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    augment(x, tuple(AUGMENTS), 1.0).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_adaptive_probability_follows_overfitting():
    ada = AdaptiveProbability(target=0.6, interval=1, speed_kimg=0.1)
    for _ in range(5):
        ada.observe(32.0, 32, 32)  # D certain on reals: overfitting, raise p
    assert ada.p > 0.5
    high = ada.p
    for _ in range(3):
        ada.observe(-32.0, 32, 32)
    assert ada.p < high
    restored = AdaptiveProbability(target=0.6)
    restored.load_state_dict(ada.state_dict())
    assert restored.p == ada.p


def test_minibatch_std_sees_a_collapsed_group_and_keeps_groups_apart():
    varied, same = torch.randn(4, 3, 4, 4), torch.randn(1, 3, 4, 4).repeat(4, 1, 1, 1)
    spread = MinibatchStd(4)(torch.cat([same, varied]))[:, 3]  # a concatenated D batch: reals, then fakes
    assert spread.shape == (8, 4, 4)
    assert spread[:4].max() < 1e-3 and spread[4:].min() > 0.5  # the collapsed half has no spread of its own
    assert torch.allclose(MinibatchStd(4)(varied)[:, :3], varied)  # the input passes through unchanged


@pytest.mark.parametrize("arch", sorted(NETWORKS))
def test_minibatch_std_is_an_option_that_leaves_old_weights_alone(arch):
    plain = model_args(arch, 16, n_classes=3, z_dim=16, g_channels=4, d_channels=4)
    assert "mbstd_group" not in plain  # runs from before the option compare equal on resume
    _, D_plain = build_networks(plain)
    _, D = build_networks(model_args(arch, 16, n_classes=3, z_dim=16, g_channels=4, d_channels=4, mbstd_group=2))
    D_plain.eval(), D.eval()  # spectral norm's power iteration would move between the calls
    images, c = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    same = images[:1].repeat(4, 1, 1, 1)
    # D's verdict on an image now depends on the others in its group: a collapsed batch reads differently.
    assert not torch.allclose(D(same, c)[0], D(torch.cat([same[:1], images[1:]]), c)[0])
    assert torch.allclose(D_plain(same, c)[0], D_plain(torch.cat([same[:1], images[1:]]), c)[0], atol=1e-6)
