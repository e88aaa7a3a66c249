"""Classifier inputs: prepared-set splits and synthetic images as device tensors, metadata encoding,
the leak check on synthetic sets, and the on-device training augmentation."""

import dataclasses
from typing import Optional

import numpy as np
import torch

from gan_aug.data.rows import is_mapped
from gan_aug.data.synthetic import check_provenance
from gan_aug.errors import UserError

SEXES = ("male", "female")


def metadata_vocabulary(prepared):
    """What the metadata encoder needs to rebuild itself (stored in checkpoints)."""
    if prepared.age is None and prepared.sex is None and prepared.site is None:
        raise UserError(f"{prepared.path} has no metadata (age, sex, site): drop --use-metadata")
    # Plain str, not numpy's str_: checkpoints hold only what torch.load(weights_only=True) accepts.
    sites = sorted({str(s) for s in prepared.site if s}) if prepared.site is not None else []
    return {"sites": sites}


def metadata_width(vocab):
    return 2 + len(SEXES) + 1 + len(vocab["sites"]) + 1


def encode_metadata(vocab, n, age=None, sex=None, site=None):
    """(n, M) float32: age/100 and a missing flag, one-hot sex and site, each with an 'unknown' slot."""
    out = np.zeros((n, metadata_width(vocab)), dtype=np.float32)
    age = np.full(n, np.nan) if age is None else np.asarray(age, dtype=np.float64)
    out[:, 0] = np.nan_to_num(age / 100.0)
    out[:, 1] = np.isnan(age)
    sex = [""] * n if sex is None else list(sex)
    site = [""] * n if site is None else list(site)
    sex_base, site_base = 2, 2 + len(SEXES) + 1
    for i in range(n):
        out[i, sex_base + (SEXES.index(sex[i]) if sex[i] in SEXES else len(SEXES))] = 1
        j = vocab["sites"].index(site[i]) if site[i] in vocab["sites"] else len(vocab["sites"])
        out[i, site_base + j] = 1
    return out


def align_synthetic(synthetic, prepared):
    """Synthetic labels renumbered to the prepared set's classes (matched by name)."""
    images, labels, names, provenance = synthetic
    check_provenance(provenance, prepared)
    unknown = [n for n in names if n not in prepared.class_names]
    if unknown:
        raise UserError(f"synthetic class(es) {', '.join(unknown)} are not in {prepared.path}")
    if len(images) and images.shape[1] != prepared.image_size:
        raise UserError(f"synthetic images are {images.shape[1]} px, the prepared set {prepared.image_size} px")
    remap = np.array([prepared.class_names.index(n) for n in names], dtype=np.int64)
    return images, remap[labels] if len(labels) else labels


class DeviceRows:
    """The concatenated rows of (N, H, W, 3) uint8 image stacks that stay where they are (a memory-mapped
    prepared set's rows, gan_aug.data.rows, and synthetic images), indexed like the (N, 3, H, W) uint8 tensor
    on `device` they stand for: [slice] or [index tensor] reads those rows only, so a training split of a set
    larger than memory is read batch by batch. The same values as the tensor, so training does not change."""

    def __init__(self, parts, device):
        self.parts, self.device = [p for p in parts if len(p)], device
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.shape = (int(self.starts[-1]), 3) + tuple(parts[0].shape[1:3])

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        positions = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(torch.as_tensor(key).cpu())
        out = np.empty((len(positions),) + self.shape[2:] + (3,), dtype=np.uint8)
        for part, start, stop in zip(self.parts, self.starts, self.starts[1:]):
            inside = (positions >= start) & (positions < stop)
            if inside.any():
                out[inside] = part[positions[inside] - start]
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(self.device)


def device_images(images, device):
    """(N, H, W, 3) uint8 rows as the (N, 3, H, W) tensor on `device`, or as DeviceRows when they are a mapped
    set's (read when indexed)."""
    if is_mapped(images):
        return DeviceRows([images], device)
    return torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


def training_pool(train_images, synthetic_images, device):
    """The pool the sampler indexes: the real train images, then the synthetic ones."""
    if isinstance(train_images, DeviceRows):
        return DeviceRows(train_images.parts + [synthetic_images], device)
    return torch.cat([train_images, device_images(synthetic_images, device)])


@dataclasses.dataclass
class SplitTensors:
    images: object  # (N, 3, H, W) uint8: a tensor, or DeviceRows for a memory-mapped set
    labels: torch.Tensor  # (N,) int64
    meta: Optional[torch.Tensor]  # (N, M) float32 or None


def rows_metadata(prepared, idx, vocab):
    """(len(idx), M) encoded metadata of the prepared set's rows `idx`."""
    pick = lambda a: None if a is None else a[idx]
    return encode_metadata(vocab, len(idx), pick(prepared.age), pick(prepared.sex), pick(prepared.site))


def split_tensors(prepared, split, vocab, device):
    idx = prepared.indices(split)
    meta = None if vocab is None else torch.from_numpy(rows_metadata(prepared, idx, vocab)).to(device)
    return SplitTensors(device_images(prepared.rows(idx), device), torch.from_numpy(prepared.labels[idx]).to(device),
                        meta)


def to_float(images):
    """uint8 (B, 3, H, W) -> float in [-1, 1]."""
    return images.float() / 127.5 - 1


def augment_batch(x, generator=None, rows=None, global_batch=None):
    """Flips, 90-degree rotations and light brightness/contrast jitter, per sample, on the device.
    Lesions have no canonical orientation, so all eight symmetries of the square are fair.
    Under torchrun, x holds `rows` of a global batch of `global_batch` images: the draws are made for the
    whole global batch and this rank's rows kept, so N processes augment as one process does."""
    B = len(x)
    dev = x.device
    if rows is None:
        rand = lambda *shape: torch.rand(*shape, generator=generator).to(dev)
    else:
        rand = lambda *shape: torch.rand(global_batch, *shape[1:], generator=generator)[rows].to(dev)
    x = torch.where(rand(B, 1, 1, 1) < 0.5, x.flip(3), x)
    x = torch.where(rand(B, 1, 1, 1) < 0.5, x.flip(2), x)
    x = torch.where(rand(B, 1, 1, 1) < 0.5, x.transpose(2, 3), x)  # with the flips: all 8 symmetries
    brightness = (rand(B, 1, 1, 1) - 0.5) * 0.2
    contrast = 1 + (rand(B, 1, 1, 1) - 0.5) * 0.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean + brightness).clamp(-1, 1)
