"""Training images where the loop can reach them fast: on the device when they fit, else in pinned host
memory, copied over batch by batch without blocking; the rows of a memory-mapped prepared set (larger than
memory, gan_aug.data.rows) stay on disk and are read batch by batch. Every mode hands out the same batch for
the same indices, so a run does not change with where its images live."""

import numpy as np
import torch

from gan_aug.data.rows import is_mapped

# Keep at most this share of the free GPU memory for the images: the networks and activations need the rest.
DEVICE_SHARE = 0.4


def fits_on_device(nbytes, device):
    if device.type != "cuda":
        return True  # the CPU's "device" memory is the host memory the images are already in
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


class StagedImages:
    """uint8 images (N, 3, H, W) and labels (N,), on `device` when allowed and they fit, else pinned on
    the host; `batch(idx)` returns them on the device."""

    def __init__(self, images_nhwc, labels, device, on_device=True):
        labels = torch.from_numpy(labels)
        self.device, self.on_disk = device, is_mapped(images_nhwc)
        if self.on_disk:
            self.on_device, self.images, self.labels = False, images_nhwc, labels
            return
        images = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W) uint8
        self.on_device = on_device and fits_on_device(images.numel(), device)
        if self.on_device:
            images, labels = images.to(device), labels.to(device)
        elif device.type == "cuda":
            images, labels = images.pin_memory(), labels.pin_memory()
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def batch(self, idx):
        """(images (B, 3, H, W) uint8, labels (B,)) for indices idx (a CPU or device tensor), on the device."""
        if self.on_disk:
            idx = idx.cpu()
            images = torch.from_numpy(self.images[np.asarray(idx)]).permute(0, 3, 1, 2).contiguous()
            return images.to(self.device), self.labels[idx].to(self.device)
        idx = idx.to(self.images.device)
        images, labels = self.images[idx], self.labels[idx]
        if not self.on_device:  # non_blocking from pinned memory: the copy overlaps the GPU's work
            images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        return images, labels
