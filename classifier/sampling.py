"""The training stream: which images each epoch shows, for every imbalance arm.

Images live in one pool: the real train images first, then the synthetic ones. Semantics:
- unbalanced (balance none / class-weight / focal): a permutation of the real train images.
- balanced (oversample, and every mix arm): each draw picks a class uniformly, then, if that class has
  synthetic images, a synthetic one with probability r_c, else a real one, uniformly within the pool.
  policy 'balanced': r_c = mix.  policy 'topup': r_c = min(mix, (n_max - n_c) / n_max), so synthetic
  images only fill a class up to the largest class, and mix caps their share.
The coin flips are drawn in every balanced arm, so with the same seed `--mix 0` produces exactly the
index stream of random oversampling: a mix arm differs from oversampling only by the synthetic images.
`mix_until` < 1 draws synthetic images only in the first epochs; the rest train on the real images alone
(the oversampling stream), so the last epochs fit real texture rather than a blend with the GAN's.
Every arm draws as many images per epoch as the real train split holds (same budget).
"""

import torch

POLICIES = ("balanced", "topup")


def synthetic_share(real_counts, synthetic_counts, mix, policy):
    """(C,) probability that a draw of class c is synthetic."""
    real = torch.as_tensor(real_counts, dtype=torch.float64)
    has_synthetic = torch.as_tensor(synthetic_counts) > 0
    share = torch.full_like(real, float(mix))
    if policy == "topup":
        share = torch.minimum(share, (real.max() - real).clamp(min=0) / real.max())
    return torch.where(has_synthetic, share, torch.zeros_like(share))


class EpochSampler:
    def __init__(self, real_labels, synthetic_labels, n_classes, balanced, mix=0.0, policy="balanced"):
        assert policy in POLICIES, policy
        self.n_real, self.balanced = len(real_labels), balanced
        real_labels = torch.as_tensor(real_labels)
        synthetic_labels = torch.as_tensor(synthetic_labels, dtype=torch.long)
        self.real_pools = [torch.nonzero(real_labels == c).flatten() for c in range(n_classes)]
        self.synthetic_pools = [torch.nonzero(synthetic_labels == c).flatten() + self.n_real
                                for c in range(n_classes)]
        self.present = torch.tensor([len(p) > 0 for p in self.real_pools])
        self.share = synthetic_share([len(p) for p in self.real_pools], [len(p) for p in self.synthetic_pools],
                                     mix, policy)

    def epoch(self, generator, with_synthetic=True):
        """(n_real,) indices into the pool [real; synthetic] for one epoch; with_synthetic=False draws the
        same random numbers but keeps every draw real (the oversampling stream of that epoch)."""
        if not self.balanced:
            return torch.randperm(self.n_real, generator=generator)
        classes = torch.nonzero(self.present).flatten()
        drawn = classes[torch.randint(len(classes), (self.n_real,), generator=generator)]
        share = self.share if with_synthetic else torch.zeros_like(self.share)
        synthetic = torch.rand(self.n_real, generator=generator, dtype=torch.float64) < share[drawn]
        position = torch.rand(self.n_real, generator=generator, dtype=torch.float64)
        out = torch.empty(self.n_real, dtype=torch.long)
        for c in classes.tolist():
            for pool, chosen in ((self.real_pools[c], ~synthetic), (self.synthetic_pools[c], synthetic)):
                mask = (drawn == c) & chosen
                if mask.any():
                    out[mask] = pool[(position[mask] * len(pool)).long().clamp(max=len(pool) - 1)]
        return out
