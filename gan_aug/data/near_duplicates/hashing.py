"""Perceptual hashes invariant to flips and rotations by 90 degrees: the cheapest candidate search, which finds
exact and near-exact copies (a file saved twice, a generator's memorized training image) however they are
turned by a multiple of 90 degrees or mirrored.

The hash is the DCT pHash: the 8x8 lowest frequencies (less the mean) of the 32x32 grey image, one bit each for
above or below their median. The eight turns and mirrors of an image only transpose and change the signs of
these coefficients, so all eight hashes come from one DCT; two images are as far apart as the nearest pair of
their hashes (Hamming distance over 63 bits).
"""

import numpy as np
import torch
import torch.nn.functional as F

SIDE, LOW = 32, 8
BITS = LOW * LOW - 1


def _dct_matrix(n):
    k, i = np.arange(n)[:, None], np.arange(n)[None]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return torch.from_numpy(m).float()


def dihedral_hashes(images, batch=2048):
    """(N, 8) uint64 pHashes of (N, H, W, 3) uint8 images: one per turn by 90 degrees and mirror."""
    dct = _dct_matrix(SIDE)
    signs = torch.tensor([(-1.0) ** i for i in range(LOW)])
    out = []
    for start in range(0, len(images), batch):
        x = torch.as_tensor(np.ascontiguousarray(images[start:start + batch])).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(SIDE, SIDE), mode="area")
        grey = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
        coeffs = (dct @ grey @ dct.T)[:, :LOW, :LOW]
        variants = []
        for c in (coeffs, coeffs.transpose(1, 2)):  # a transpose is a mirror on the diagonal
            for mirror_x in (False, True):  # a mirror flips the sign of the odd frequencies along its axis
                for mirror_y in (False, True):
                    v = c * (signs[None, :] if mirror_x else 1) * (signs[:, None] if mirror_y else 1)
                    variants.append(v.reshape(len(c), -1)[:, 1:])
        v = torch.stack(variants, 1)  # (n, 8, 63)
        bits = (v > v.median(dim=2, keepdim=True).values).numpy().astype(np.uint64)
        out.append((bits << np.arange(BITS, dtype=np.uint64)).sum(-1, dtype=np.uint64))
    return np.concatenate(out) if out else np.zeros((0, 8), np.uint64)


_BYTE_COUNTS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount(x):
    """Set bits of each uint64 (numpy 2's bitwise_count; a byte table on numpy 1.x)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_COUNTS[x[..., None].view(np.uint8)].sum(-1)


def nearest_hashes(query, reference, k, exclude_self=False, batch=256):
    """(distances, indices), each (Nq, k): the k reference images nearest each query image, by the Hamming
    distance of the query's nearest turn or mirror to the reference's hash as it is. With exclude_self the
    query and reference are one set and an image is not its own neighbour."""
    k = min(k, len(reference) - (1 if exclude_self else 0))
    dists = np.zeros((len(query), max(k, 0)), np.int64)
    idxs = np.zeros((len(query), max(k, 0)), np.int64)
    if k <= 0:
        return dists, idxs
    ref = reference[:, 0]
    for start in range(0, len(query), batch):
        q = query[start:start + batch]
        d = popcount(q[:, :, None] ^ ref[None, None, :]).min(1).astype(np.int64)
        if exclude_self:
            d[np.arange(len(q)), np.arange(start, start + len(q))] = BITS + 1
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(d, part, 1).argsort(1, kind="stable")
        idxs[start:start + len(q)] = np.take_along_axis(part, order, 1)
        dists[start:start + len(q)] = np.take_along_axis(d, idxs[start:start + len(q)], 1)
    return dists, idxs
