"""The fixed pixel embedding of the candidate search: a descriptor that a re-imaged copy barely changes, and a
metric on it learned from copies planted in the audited images themselves.

The descriptor looks at the lesion, not the frame: it is sampled on rings around the lesion's centre (the
centroid of the darker-than-average pixels, found by a few windowed iterations), so a crop that moves the frame
moves the rings with the lesion. On each ring the magnitudes of the lowest angular frequencies, and the real
part of each frequency against the next ring's, do not change when the image is turned or mirrored; ring means
of each colour, rotation-invariant local binary patterns (texture) and colour histograms complete it. Every
image is z-scored per channel first, so exposure and white balance drop out. A query is also described at
other ring scales (a zoom), and its distance to a reference is that of its nearest scale.

Which parts of the descriptor survive re-imaging depends on the images: a linear discriminant (LDA) is fitted
on copies planted in the reference images (gan_aug.data.near_duplicates.planting), keeping the directions along which images
differ much and their own copies little.
"""

import numpy as np
import torch
import torch.nn.functional as F

from gan_aug.data.near_duplicates.planting import reimage

SIZE = 48  # px the descriptor is computed at
RINGS, ANGLES, FREQS, RMAX = 12, 32, 8, 0.7  # RMAX: the outer ring's radius, as a fraction of the half side
ZOOMS = (0.8, 0.9, 1.0, 1.12, 1.25)  # ring scales a query is described at (a crop of 80% is a zoom of 1.25)
LBP_RADII, LBP_POINTS = (1, 2, 4), 8
COLOUR_BINS = 8
COMPONENTS = 40  # LDA directions kept
PLANTED = 800  # copies the LDA is fitted on
BATCH = 1024


def _resized(images):
    x = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return F.interpolate(x, size=(SIZE, SIZE), mode="area")


def _standardize(x):
    return (x - x.mean((2, 3), keepdim=True)) / (x.std((2, 3), keepdim=True) + 1e-3)


def _chroma(x):
    """(N, 2, H, W) log red/green and blue/green: hue, which exposure leaves alone and white balance shifts
    only a little (where z-scoring each channel would lose it)."""
    logs = torch.log(x + 8.0)
    return torch.stack([logs[:, 0] - logs[:, 1], logs[:, 2] - logs[:, 1]], 1)


def _luminance(x):
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def lesion_centre(x, iterations=6, sigma=0.35):
    """(cx, cy) in [-1, 1] of each standardized image's darker-than-average mass, each iteration weighting the
    pixels by a Gaussian window around the last estimate so a dark corner does not pull the centre away."""
    dark = torch.relu(-F.avg_pool2d(_luminance(x), 5, 1, 2)[:, 0])
    lin = (torch.arange(SIZE) + 0.5) / SIZE * 2 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    cx, cy = torch.zeros(len(x)), torch.zeros(len(x))
    for _ in range(iterations):
        window = torch.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / (2 * sigma ** 2))
        w = dark * window + 1e-6
        total = w.sum((1, 2))
        cx, cy = (w * xx).sum((1, 2)) / total, (w * yy).sum((1, 2)) / total
    return cx, cy


def _ring_features(x, chroma, centre, zoom):
    """Rotation- and mirror-invariant features of rings around `centre`, their radii multiplied by `zoom`: of
    the standardized image `x` and of its `chroma`."""
    radii = torch.linspace(0.04, RMAX, RINGS) * zoom
    theta = torch.arange(ANGLES) * (2 * np.pi / ANGLES)
    offsets = torch.stack([radii[:, None] * torch.cos(theta), radii[:, None] * torch.sin(theta)], -1)
    grid = offsets[None] + torch.stack(centre, -1)[:, None, None]
    rings = F.grid_sample(x, grid, align_corners=False, padding_mode="reflection")  # (N, 3, RINGS, ANGLES)
    hue = F.grid_sample(chroma, grid, align_corners=False, padding_mode="reflection").mean(-1)  # (N, 2, RINGS)
    spectrum = torch.fft.rfft(_luminance(rings)[:, 0], dim=-1)[..., :FREQS] / ANGLES
    magnitude = spectrum.abs()
    # A turn multiplies frequency k of every ring by one phase, a mirror conjugates them all: the real part of
    # one ring's coefficient times the next's conjugate survives both, and keeps how the rings line up.
    cross = (spectrum[:, 1:] * spectrum[:, :-1].conj()).real / (magnitude[:, 1:] * magnitude[:, :-1] + 1e-3).sqrt()
    n = len(x)
    return torch.cat([magnitude.reshape(n, -1), cross.reshape(n, -1), rings.mean(-1).reshape(n, -1),
                      hue.reshape(n, -1) * 4], 1)


def _texture_features(x):
    """Histograms of rotation-invariant uniform local binary patterns at a few radii (8 neighbours on a square
    of that radius: integer shifts, no interpolation), and of each colour."""
    grey = F.avg_pool2d(_luminance(x), 3, 1, 1)[:, 0]
    margin = max(LBP_RADII)
    padded = F.pad(grey[:, None], (margin,) * 4, mode="replicate")[:, 0]
    centre = grey[:, margin:-margin, margin:-margin]
    out = []
    for r in LBP_RADII:
        pattern = torch.zeros(centre.shape, dtype=torch.uint8)
        for bit, (dy, dx) in enumerate(((0, r), (r, r), (r, 0), (r, -r), (0, -r), (-r, -r), (-r, 0), (-r, r))):
            neighbour = padded[:, margin + dy:margin + dy + SIZE, margin + dx:margin + dx + SIZE]
            pattern |= (neighbour[:, margin:-margin, margin:-margin] >= centre).to(torch.uint8) << bit
        out.append(_histogram(_UNIFORM[pattern.long()].reshape(len(x), -1), LBP_POINTS + 2))
    z = x.reshape(len(x), 3, -1).clamp(-2.5, 2.5)
    bins = ((z + 2.5) / 5 * COLOUR_BINS).long().clamp(0, COLOUR_BINS - 1)
    out += [_histogram(bins[:, c], COLOUR_BINS) for c in range(3)]
    return torch.cat(out, 1).sqrt() * 4  # square roots: a histogram's noise is about even across bins then


def _uniform_codes():
    """The rotation-invariant uniform code of each 8-bit pattern: its number of ones when it has at most two
    0/1 transitions round the circle, else LBP_POINTS + 1 (one bin for every non-uniform pattern)."""
    codes = []
    for pattern in range(256):
        bits = [(pattern >> i) & 1 for i in range(LBP_POINTS)]
        transitions = sum(bits[i] != bits[i - 1] for i in range(LBP_POINTS))
        codes.append(sum(bits) if transitions <= 2 else LBP_POINTS + 1)
    return torch.tensor(codes)


_UNIFORM = _uniform_codes()


def _histogram(codes, bins):
    """(N, bins) normalized histograms of (N, M) integer codes."""
    rows = torch.arange(len(codes))[:, None] * bins
    counts = torch.bincount((codes + rows).reshape(-1), minlength=len(codes) * bins).reshape(len(codes), bins)
    return counts.float() / codes.shape[1]


def describe(images, zooms=(1.0,), centre="lesion"):
    """(len(zooms), N, D) float32 descriptors of (N, H, W, 3) uint8 images, one per ring zoom; the rings are
    around the lesion's centre, or with centre="frame" the image's (where the lesion's is misjudged)."""
    views = [[] for _ in zooms]
    for start in range(0, len(images), BATCH):
        raw = _resized(images[start:start + BATCH])
        x, chroma = _standardize(raw), _chroma(raw)
        middle = lesion_centre(x) if centre == "lesion" else (torch.zeros(len(x)), torch.zeros(len(x)))
        texture = _texture_features(x)
        for view, zoom in zip(views, zooms):
            view.append(torch.cat([_ring_features(x, chroma, middle, zoom), texture], 1))
    return torch.stack([torch.cat(v) for v in views]) if len(images) else torch.zeros(len(zooms), 0, 1)


class Embedding:
    """The descriptor projected on the LDA directions fitted on copies planted in `reference` (uint8 images)."""

    def __init__(self, reference, seed=0, centre="lesion"):
        self.centre = centre
        rng = np.random.default_rng(seed)
        base = describe(reference, centre=centre)[0].double()
        self.mean = base.mean(0)
        count = min(PLANTED, max(len(reference), 1) * 8)
        sources = rng.integers(0, len(reference), count)
        copies = np.stack([reimage(reference[i], rng, reference.shape[1]) for i in sources])
        views = describe(copies, ZOOMS, centre).double()
        diff = views - base[sources][None]
        best = diff.norm(dim=2).argmin(0)  # each copy at the zoom that undoes its crop best
        within = diff[best, torch.arange(count)]
        dim = base.shape[1]
        cw = _shrunk(torch.cov(within.T), dim)
        cb = _shrunk(torch.cov((base - self.mean).T), dim) if len(base) > 1 else torch.eye(dim, dtype=torch.double)
        inverse_root = torch.linalg.inv(torch.linalg.cholesky(cw))
        _, vectors = torch.linalg.eigh(inverse_root @ cb @ inverse_root.T)
        self.projection = (inverse_root.T @ vectors)[:, -COMPONENTS:].float()
        self.mean = self.mean.float()

    def __call__(self, images, zooms=(1.0,)):
        """(len(zooms), N, COMPONENTS) embeddings."""
        return (describe(images, zooms, self.centre) - self.mean) @ self.projection


def _shrunk(cov, dim):
    """A covariance pulled 5% towards its mean variance: invertible however few images it was estimated on."""
    cov = torch.nan_to_num(cov.reshape(dim, dim))
    scale = cov.diagonal().mean().clamp_min(1e-6)
    return 0.95 * cov + 0.05 * scale * torch.eye(dim, dtype=cov.dtype)


def nearest(query_views, reference, k, exclude_self=False, batch=512):
    """(distances, indices), each (Nq, k): the k references nearest each query, a query's distance to a reference
    being that of its nearest view. With exclude_self query and reference are one set (row i is image i)."""
    k = min(k, len(reference) - (1 if exclude_self else 0))
    nq = query_views.shape[1]
    dists, idxs = np.zeros((nq, max(k, 0)), np.float32), np.zeros((nq, max(k, 0)), np.int64)
    if k <= 0:
        return dists, idxs
    for start in range(0, nq, batch):
        q = query_views[:, start:start + batch]
        d = torch.stack([torch.cdist(v, reference) for v in q]).amin(0)
        if exclude_self:
            rows = torch.arange(d.shape[0])
            d[rows, rows + start] = float("inf")
        best = d.topk(k, dim=1, largest=False)
        dists[start:start + len(best.values)] = best.values.numpy()
        idxs[start:start + len(best.values)] = best.indices.numpy()
    return dists, idxs
