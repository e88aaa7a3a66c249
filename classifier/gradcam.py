"""`gan-aug explain`: Grad-CAM overlays (pytorch-grad-cam) with the predicted class and probabilities."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from classifier.checkpoint import load_classifier
from classifier.data import encode_metadata, to_float
from classifier.models import BACKBONES
from gan_aug.data.color import correct_colors, method_of
from gan_aug.data.images import load_image
from gan_aug.errors import UserError
from gan_aug.fileio import atomic_write, check_new_outputs
from gan_aug.runtime import resolve_device

DISPLAY = 256  # overlays are upscaled to this side so a 32 px lesion is visible
EXPLANATIONS = "explanations.json"


class LogProbabilities(nn.Module):
    """The task's class log-probabilities as a plain tensor, the output Grad-CAM differentiates."""

    def __init__(self, model, task, metadata_vocab=None, meta=None):
        super().__init__()
        self.model, self.task, self.metadata_vocab, self.meta = model, task, metadata_vocab, meta

    def forward(self, x):
        return torch.log(self.task.probabilities(self.model(x, self._meta(x))).clamp(min=1e-12))

    def _meta(self, x):
        """A metadata model sees the metadata it was given (the app's age, sex and site), else 'unknown'."""
        if self.metadata_vocab is None:
            return None
        if self.meta is not None:
            return self.meta.to(x.device)
        return torch.from_numpy(encode_metadata(self.metadata_vocab, len(x))).to(x.device)


def grad_cam(model, task, model_args, images, meta=None):
    """(probabilities (B, K), predicted (B,), overlays (B, H, W, 3) uint8) for uint8 images (B, H, W, 3): each
    image's Grad-CAM of its predicted class over it. `meta`: (B, M) encoded metadata of a metadata model."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = to_float(torch.from_numpy(images).permute(0, 3, 1, 2)).to(next(model.parameters()).device)
    wrapped = LogProbabilities(model, task, model_args["metadata_vocab"], meta).eval()
    with torch.no_grad():
        probs = wrapped(x).exp().cpu().numpy()
    predicted = probs.argmax(1)
    with GradCAM(model=wrapped, target_layers=[BACKBONES[model_args["model"]].cam_layer(model.backbone)]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(p)) for p in predicted])  # (B, H, W)
    overlays = [show_cam_on_image(image.astype(np.float32) / 255, heat, use_rgb=True)
                for image, heat in zip(images, maps)]
    return probs, predicted, np.stack(overlays)


def overlay_names(image_paths):
    """`<stem>_gradcam.png` per input, and `<stem>_gradcam_<index>.png` for inputs that share a stem (ignoring
    case, for case-blind file systems): no two inputs get the same name, as no name of one form has the other's."""
    stems = [Path(path).stem for path in image_paths]
    uses = Counter(stem.lower() for stem in stems)
    return [f"{stem}_gradcam_{i}.png" if uses[stem.lower()] > 1 else f"{stem}_gradcam.png"
            for i, stem in enumerate(stems)]


def explain(checkpoint, image_paths, out, force=False, device="auto"):
    if not image_paths:
        raise UserError("give at least one IMAGE to explain")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: choose another --out")
    targets = [out / name for name in overlay_names(image_paths)]
    check_new_outputs([*targets, out / EXPLANATIONS], force)
    device = resolve_device(device)
    model, task, state = load_classifier(checkpoint, device)
    args = state["model_args"]
    # Decoded and colour-corrected as prepare does (every image mode, JPEG draft scaling), so the model sees what
    # it trained on.
    images = correct_colors(np.stack([load_image(path, args["image_size"]) for path in image_paths]),
                            method_of(args))
    probs, predicted, overlays = grad_cam(model, task, args, images)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for path, target, image, overlay, p, row in zip(image_paths, targets, images, overlays, predicted, probs):
        panel = np.concatenate([image, overlay], axis=1)
        picture = Image.fromarray(panel).resize((2 * DISPLAY, DISPLAY), Image.Resampling.NEAREST)
        canvas = Image.new("RGB", (2 * DISPLAY, DISPLAY + 18 * min(len(row), 4) + 8), "white")
        canvas.paste(picture, (0, 0))
        draw = ImageDraw.Draw(canvas)
        top = np.argsort(row)[::-1][:4]
        for line, k in enumerate(top):
            draw.text((6, DISPLAY + 4 + 18 * line), f"{'>' if k == p else ' '} {task.output_names[k]}: {row[k]:.3f}",
                      fill="black")
        with atomic_write(target) as handle:
            canvas.save(handle, format="PNG")
        summary.append({"image": str(path), "overlay": str(target), "predicted": task.output_names[p],
                        "probabilities": {n: float(v) for n, v in zip(task.output_names, row)}})
    with atomic_write(out / EXPLANATIONS, "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary
