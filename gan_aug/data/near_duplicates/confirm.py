"""The confirmation score of a candidate pair: how well one image, turned, mirrored, scaled and shifted as another
camera session would show it, matches the other, by normalized cross-correlation (NCC) after the best alignment.

Two lesions that merely look alike fit in outline but not in their pattern and the skin's texture around them;
a re-imaged copy fits in both. The score is the NCC of that detail (luminance less a 1 px blur) at the best
alignment; the alignment is searched on the whole image (luminance and colour), where its outline and colours
decide it.

The search: a template, the central 62.5% of image A sampled turned by an angle, mirrored or not and shrunk by
a scale, slides over image B (every shift, one matrix product); the best hypotheses are refined. Both
directions are tried (A in B, B in A): the template comes from the image showing the wider field, so it always
lies inside its image. Coarse at 16 px (every 15 degrees, four scales), then the two best hypotheses of each
direction refined at 32 px (+-5 degrees, +-6% scale, shifts within 2 px of the coarse one). Every channel is
z-scored, so exposure, contrast and white balance drop out.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

COARSE, FINE = 16, 32  # px of the two levels
DETAIL_SIGMA = 1.0  # px (at FINE) of the blur whose difference keeps the detail the fine level compares
TEMPLATE = 0.625  # the template's side as a fraction of its image (10 of 16 px, 20 of 32): shifts of up to
# 18.75% of a side are searched
ANGLES = 24  # coarse angles over the full turn (15 degrees apart)
# Relative scales: the template's image shows up to 1/0.56 = 1.8x the field of the other (a crop of 80% with a
# further zoom of 1.1 is 1.4x; a second image of a lesion can be taken at up to twice the magnification).
SCALES = (1.0, 0.82, 0.68, 0.56)
REFINE_TOP = 2  # coarse hypotheses per direction refined at the fine level
REFINE_ANGLES = (-5.0, 0.0, 5.0)  # degrees around a coarse angle
REFINE_SCALES = (0.94, 1.0, 1.06)  # factors on a coarse scale
REFINE_SHIFT = 2  # fine px searched either side of the coarse shift (one coarse px is two fine ones)
BATCH = 128  # pairs per step


def _zscore(x):
    return (x - x.mean((2, 3), keepdim=True)) / (x.std((2, 3), keepdim=True) + 1e-3)


def prepare(images, size, detail=False):
    """The channels a level compares, (N, C, size, size) float32, each z-scored, of (N, H, W, 3) uint8 images.
    Coarse: luminance and two colour opponents (red-green, blue-green of the z-scored channels): colour finds
    the alignment of a plain mole where its outline alone fits many. Fine (`detail`): only the luminance a blur
    of DETAIL_SIGMA px takes away, the lesion's pattern and the skin's texture, not its overall shape."""
    x = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="area")
    g = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    if not detail:
        z = _zscore(x)
        return torch.cat([_zscore(g), _zscore(z[:, :1] - z[:, 1:2]), _zscore(z[:, 2:] - z[:, 1:2])], 1)
    radius = int(3 * DETAIL_SIGMA)
    taps = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * DETAIL_SIGMA ** 2))
    taps = taps / taps.sum()
    blurred = F.conv2d(F.pad(g, (radius,) * 4, mode="reflect"), taps.view(1, 1, 1, -1))
    return _zscore(g - F.conv2d(blurred, taps.view(1, 1, -1, 1)))


def _thetas(angles, flips, scales):
    """(..., 2, 3) affine matrices sampling the template: turned by `angles` (radians), mirrored where `flips`,
    shrunk by `scales`, all about the image's centre."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    mirror = torch.where(flips, -1.0, 1.0)
    rows = torch.stack([torch.stack([cos * mirror, -sin], -1), torch.stack([sin * mirror, cos], -1)], -2)
    theta = torch.zeros(*angles.shape, 2, 3)
    theta[..., :2] = rows * (scales * TEMPLATE)[..., None, None]
    return theta


def _grid(thetas, t):
    """The sampling points of t x t templates for `thetas` (..., 2, 3): affine_grid's, by one product."""
    lin = (torch.arange(t) + 0.5) / t * 2 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    base = torch.stack([xx, yy, torch.ones_like(xx)], -1).reshape(-1, 3)
    return torch.einsum("qc,...dc->...qd", base, thetas)  # (..., t*t, 2)


def _windows(b, t):
    """Every t x t window of each b[p], centred per channel: (P, C*t*t, shifts), and their norms (P, 1, shifts)
    (F.unfold's im2col is many times slower on the CPU)."""
    p, c = b.shape[:2]
    w = b.unfold(2, t, 1).unfold(3, t, 1).reshape(p, c, -1, t * t)
    w = (w - w.mean(3, keepdim=True)).transpose(2, 3).reshape(p, c * t * t, -1)
    return w, w.norm(dim=1, keepdim=True).clamp_min(1e-3)


def _templates(a, grid):
    """(P, K, C*t*t) templates of a (P, C, n, n) at `grid` (P, K, t*t, 2), each channel centred, unit norm."""
    p, k, tt = grid.shape[:3]
    c, t = a.shape[1], round(tt ** 0.5)
    x = F.grid_sample(a, grid.reshape(p, k * t, t, 2), align_corners=False, padding_mode="border")
    x = x.reshape(p, c, k, tt).transpose(1, 2)
    x = (x - x.mean(3, keepdim=True)).reshape(p, k, c * tt)
    return x / (x.norm(dim=2, keepdim=True) + 1e-6)


def _coarse_hypotheses():
    """(angles, flips, scales) of every coarse hypothesis, and their template grid at COARSE px."""
    angles = torch.arange(ANGLES) * (2 * math.pi / ANGLES)
    a, f, s = torch.meshgrid(angles, torch.tensor([0.0, 1.0]), torch.tensor(SCALES), indexing="ij")
    a, f, s = a.reshape(-1), f.reshape(-1) > 0.5, s.reshape(-1)
    return a, f, s, _grid(_thetas(a, f, s), round(TEMPLATE * COARSE))


def _directed(a_coarse, b_coarse, a_fine, b_fine, hypotheses):
    """(P,) best fine NCC of templates of a in b. Coarse: every hypothesis at every shift. Fine:
    the best coarse hypotheses, each turned and scaled a little either way, at the shifts within REFINE_SHIFT
    fine px of its coarse shift."""
    angles, flips, scales, grid = hypotheses
    p, tc = len(a_coarse), round(TEMPLATE * COARSE)
    windows, norms = _windows(b_coarse, tc)
    coarse = torch.bmm(_templates(a_coarse, grid[None].expand(p, -1, -1, -1)), windows) / norms  # (P, K, shifts)
    best_shift = coarse.max(2)
    top = best_shift.values.topk(REFINE_TOP, dim=1).indices  # (P, R)
    shift = best_shift.indices.gather(1, top)  # (P, R): where each top hypothesis fitted best
    side = COARSE - tc + 1
    da, ds = torch.tensor(REFINE_ANGLES) * (math.pi / 180), torch.tensor(REFINE_SCALES)
    shape = (-1, -1, len(da), len(ds))
    ra = (angles[top][..., None, None] + da[:, None]).expand(*shape).reshape(p * REFINE_TOP, -1)
    rs = (scales[top][..., None, None] * ds).expand(*shape).reshape(p * REFINE_TOP, -1)
    rf = flips[top][..., None, None].expand(*shape).reshape(p * REFINE_TOP, -1)
    tf, r = round(TEMPLATE * FINE), REFINE_SHIFT
    rows = torch.arange(p).repeat_interleave(REFINE_TOP)
    templates = _templates(a_fine[rows], _grid(_thetas(ra, rf, rs), tf))  # (P*R, 9, C*tf*tf)
    # The part of b around each coarse shift (in fine px, padded by r so a shift at the border stays inside).
    padded = F.pad(b_fine, (r,) * 4, mode="replicate")
    y0 = (shift // side).reshape(-1) * (FINE // COARSE)
    x0 = (shift % side).reshape(-1) * (FINE // COARSE)
    span = torch.arange(tf + 2 * r)
    patches = padded[rows[:, None, None], :, (y0[:, None] + span)[:, :, None], (x0[:, None] + span)[:, None, :]]
    windows, norms = _windows(patches.permute(0, 3, 1, 2), tf)
    fine = (torch.bmm(templates, windows) / norms).amax((1, 2)).reshape(p, REFINE_TOP)
    return fine.amax(1)


def confirm_scores(images_a, images_b, pairs, bar=None):
    """(len(pairs),) confirmation scores (NCC of the detail in [-1, 1]; 1: the same picture) of rows
    pairs[:, 0] of images_a with rows pairs[:, 1] of images_b, both (N, H, W, 3) uint8 of any size."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(len(pairs), np.float32)
    if len(pairs):
        hypotheses = _coarse_hypotheses()
        levels = {}
        for name, images, rows in (("a", images_a, pairs[:, 0]), ("b", images_b, pairs[:, 1])):
            needed = np.unique(rows)
            levels[name] = (needed, prepare(images[needed], COARSE), prepare(images[needed], FINE, detail=True))
        with torch.no_grad():
            for start in range(0, len(pairs), BATCH):
                chunk = pairs[start:start + BATCH]
                ia = np.searchsorted(levels["a"][0], chunk[:, 0])
                ib = np.searchsorted(levels["b"][0], chunk[:, 1])
                a = (levels["a"][1][ia], levels["a"][2][ia])
                b = (levels["b"][1][ib], levels["b"][2][ib])
                forward = _directed(a[0], b[0], a[1], b[1], hypotheses)
                backward = _directed(b[0], a[0], b[1], a[1], hypotheses)
                out[start:start + len(chunk)] = torch.maximum(forward, backward).numpy()
                if bar is not None:
                    bar.update(len(chunk))
    return out
