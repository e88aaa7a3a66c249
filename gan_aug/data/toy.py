"""A procedural lesion-like dataset: the embedded default for the demo and the tests (no files shipped).

Seven classes named after HAM10000's, in HAM-like proportions. Classes differ in what dermatologists
look at: shape irregularity, colour palette, texture and border sharpness, plus a few class-specific
structures (a pale scar centre for df, red vessels for bcc, lobules for vasc, dark globules for mel).
Every image sits on a varied skin-toned background, often crossed by hair-like strokes that carry no
class information. Image i depends only on (seed, i), so the set is identical on every machine.
"""

import dataclasses

import numpy as np

from gan_aug.data.domain import HAM_CLASSES, HAM_COUNTS
from gan_aug.data.records import SourceRecords

MIN_PER_CLASS = 8
FEATURE_RATE = 0.6  # how often a lesion shows its class-specific structure


@dataclasses.dataclass(frozen=True)
class LesionStyle:
    radius: tuple  # (low, high) mean radius, image half-width = 1
    irregularity: float  # amplitude of the boundary's harmonics
    softness: float  # border blur width
    palette: tuple  # RGB colours in [0, 1] mixed by a smooth random field
    texture: float  # amplitude of fine-grained noise inside the lesion
    feature: str = ""  # class-specific structure drawn on top


STYLES = {
    "akiec": LesionStyle((0.35, 0.55), 0.10, 0.14, ((0.78, 0.36, 0.33), (0.86, 0.55, 0.48)), 0.16, "scale"),
    "bcc": LesionStyle((0.30, 0.50), 0.07, 0.06, ((0.90, 0.66, 0.66), (0.80, 0.52, 0.55)), 0.05, "vessels"),
    "bkl": LesionStyle((0.35, 0.60), 0.09, 0.05, ((0.66, 0.50, 0.32), (0.55, 0.40, 0.24)), 0.20, ""),
    "df": LesionStyle((0.28, 0.42), 0.03, 0.08, ((0.52, 0.34, 0.24), (0.58, 0.40, 0.28)), 0.04, "scar"),
    "mel": LesionStyle((0.40, 0.65), 0.22, 0.04, ((0.22, 0.12, 0.08), (0.45, 0.28, 0.18), (0.32, 0.34, 0.45)),
                       0.08, "globules"),
    "nv": LesionStyle((0.28, 0.48), 0.03, 0.04, ((0.45, 0.30, 0.20), (0.50, 0.34, 0.22)), 0.03, ""),
    "vasc": LesionStyle((0.20, 0.38), 0.04, 0.03, ((0.62, 0.12, 0.22), (0.45, 0.10, 0.32)), 0.04, "lobules"),
}


def class_counts(total):
    """Per-class image counts in HAM10000's proportions, at least MIN_PER_CLASS each, summing to total."""
    ham_total = sum(HAM_COUNTS.values())
    counts = {c: max(MIN_PER_CLASS, round(total * n / ham_total)) for c, n in HAM_COUNTS.items()}
    counts["nv"] += total - sum(counts.values())  # absorb rounding in the largest class
    return counts


def render(style, size, rng):
    """One (size, size, 3) uint8 image of a lesion drawn in `style`."""
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords, coords)  # (S, S) each
    skin = np.array([0.92, 0.74, 0.62]) - rng.uniform(0, 0.18) * np.array([0.9, 1.1, 1.2])
    shade = 1 + 0.08 * (x * rng.normal() + y * rng.normal())
    image = skin * shade[..., None] + 0.015 * rng.normal(size=(size, size, 3))

    # Lesion mask: an ellipse whose radius wobbles with a few boundary harmonics.
    cx, cy = rng.uniform(-0.12, 0.12, 2)
    angle = rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = ((y - cy) * np.cos(angle) - (x - cx) * np.sin(angle)) * rng.uniform(1.0, 1.4)
    dist, theta = np.hypot(u, v), np.arctan2(v, u)
    radius = rng.uniform(*style.radius) * np.ones_like(theta)
    irregularity = style.irregularity * rng.uniform(0.3, 1.2)  # classes overlap, as real lesions do
    for k in range(2, 7):
        radius *= 1 + irregularity * rng.normal() / k ** 0.5 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    mask = 1 / (1 + np.exp(-(radius - dist) / style.softness))  # (S, S) in (0, 1)

    # Lesion colour: palette colours blended by a smooth random field, plus fine texture.
    # Each lesion's colours drift towards a generic brown by a random amount: colour alone is not enough.
    palette = np.array(style.palette) * rng.uniform(0.85, 1.15)
    palette = palette + rng.uniform(0, 0.45) * (np.array([0.45, 0.32, 0.24]) - palette)
    field = _smooth_field(x, y, rng)
    weights = np.stack([np.exp(3 * field * np.cos(i * 2.1 + 0.5)) for i in range(len(palette))], -1)
    colour = weights @ palette / weights.sum(-1, keepdims=True)
    colour += style.texture * rng.normal(size=(size, size, 1)) * np.array([1.0, 0.9, 0.8])
    if rng.uniform() < FEATURE_RATE:  # the telltale structure is often absent, as in real dermoscopy
        _FEATURES.get(style.feature, lambda *a: None)(colour, x - cx, y - cy, dist / radius, rng)
    image = image * (1 - mask[..., None]) + colour * mask[..., None]
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        _draw_hair(image, x, y, rng)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _smooth_field(x, y, rng):
    waves = [np.cos(rng.uniform(1.5, 5) * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0, 2 * np.pi))
             for a in rng.uniform(0, np.pi, 3)]
    return sum(waves) / 3


def _scar(colour, x, y, rel, rng):  # df: pale, almost white centre fading into a brown ring
    centre = np.exp(-(rel / 0.35) ** 2)[..., None]
    colour[:] = colour * (1 - centre) + np.array([0.93, 0.86, 0.80]) * centre


def _vessels(colour, x, y, rel, rng):  # bcc: thin branching red lines
    for _ in range(rng.integers(3, 6)):
        a, b = rng.uniform(0, np.pi), rng.uniform(-0.2, 0.2)
        line = np.abs(x * np.sin(a) - y * np.cos(a) - b + 0.08 * np.sin(6 * (x + y)))
        colour[line < 0.025] = np.array([0.72, 0.10, 0.12])


def _lobules(colour, x, y, rel, rng):  # vasc: a few darker round lobules
    for _ in range(rng.integers(3, 7)):
        px, py = rng.uniform(-0.25, 0.25, 2)
        blob = np.exp(-((x - px) ** 2 + (y - py) ** 2) / 0.006)[..., None]
        colour[:] = colour * (1 - 0.6 * blob) + np.array([0.30, 0.02, 0.15]) * 0.6 * blob


def _globules(colour, x, y, rel, rng):  # mel: dark dots scattered unevenly
    for _ in range(rng.integers(5, 12)):
        px, py = rng.uniform(-0.4, 0.4, 2)
        dot = np.exp(-((x - px) ** 2 + (y - py) ** 2) / 0.002)[..., None]
        colour[:] = colour * (1 - dot) + np.array([0.08, 0.05, 0.05]) * dot


def _scale(colour, x, y, rel, rng):  # akiec: whitish scale patches
    patch = (_smooth_field(x * 3, y * 3, rng) > 0.35)[..., None]
    colour[:] = np.where(patch, colour * 0.5 + np.array([0.92, 0.88, 0.84]) * 0.5, colour)


_FEATURES = {"scar": _scar, "vessels": _vessels, "lobules": _lobules, "globules": _globules, "scale": _scale}


def _draw_hair(image, x, y, rng):
    """A dark, slightly curved stroke across the image, like a hair in a dermoscopy photo."""
    start, heading = rng.uniform(-1, 1, 2), rng.uniform(0, 2 * np.pi)
    bend, width = rng.normal(0, 0.8), rng.uniform(0.012, 0.022)
    t = np.linspace(0, 2.2, 200)  # spaced closer than the stroke width, so the stroke is solid
    px = start[0] + t * np.cos(heading + bend * t * 0.3)
    py = start[1] + t * np.sin(heading + bend * t * 0.3)
    near = np.full(x.shape, np.inf)
    for qx, qy in zip(px, py):
        near = np.minimum(near, (x - qx) ** 2 + (y - qy) ** 2)
    alpha = np.exp(-near / width ** 2)[..., None] * 0.85
    image[:] = image * (1 - alpha) + np.array([0.12, 0.09, 0.08]) * alpha


def read(config):
    """The toy set at `config.size` pixels with `config.toy_count` images, drawn from `config.seed`."""
    counts = class_counts(config.toy_count)
    labels = np.concatenate([np.full(counts[c], i, dtype=np.int64) for i, c in enumerate(HAM_CLASSES)])
    images = np.stack([render(STYLES[HAM_CLASSES[label]], config.size, np.random.default_rng([config.seed, i]))
                       for i, label in enumerate(labels)])
    image_ids = np.array([f"toy_{i:05d}" for i in range(len(labels))])
    # Pairs of images share a "lesion" id so the toy set exercises grouped splitting like HAM10000.
    groups = np.array([f"lesion_{i // 2:05d}_{labels[i]}" for i in range(len(labels))])
    return SourceRecords(class_names=HAM_CLASSES, labels=labels, image_ids=image_ids, groups=groups,
                         arrays=images)
