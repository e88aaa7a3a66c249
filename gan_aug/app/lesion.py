"""The Classify tab's model side: class probabilities, the malignant-vs-benign risk, the two-stage result, the
Grad-CAM overlay and the nearest training images, for one uploaded image. No gradio here."""

import dataclasses
from typing import Optional

import numpy as np
import torch
from PIL import Image

from classifier.checkpoint import load_classifier
from classifier.data import encode_metadata, rows_metadata, to_float
from classifier.gradcam import DISPLAY, grad_cam
from gan_aug.data.color import correct_colors, method_of
from gan_aug.data.domain import BY_NAME, MALIGNANT
from gan_aug.data.folds import view
from gan_aug.data.images import square_resize
from gan_aug.data.prepared import load_prepared
from gan_aug.data.records import parse_age
from gan_aug.errors import UserError

UNKNOWN = "unknown"


def read_age(value):
    """An age in years from the page (text; a number from a script), nan when not given: parsed as a metadata
    CSV's age cell is, so the model sees "unknown" (not a newborn) for an empty field, and an age it could never
    have trained on (negative, past 120, infinite, 1e308) is refused rather than fed to it."""
    if value is None or isinstance(value, str) and not value.strip():
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UserError(f"the age must be a number of years, got {type(value).__name__}")
    return parse_age(str(value).strip())


@dataclasses.dataclass
class Result:
    probabilities: dict  # output name -> probability, highest first
    predicted: str
    malignant_risk: Optional[float]  # P(malignant): summed over the malignant classes, or the binary head's
    two_stage: Optional[dict]  # a two-stage model's two factors of the predicted class's probability
    image: np.ndarray  # (S, S, 3) uint8: the input as the model sees it, enlarged for display
    overlay: np.ndarray  # (S, S, 3) uint8: Grad-CAM of the predicted class
    neighbours: list  # (image (H, W, 3) uint8, caption) of the nearest training images


def enlarge(image):
    return np.asarray(Image.fromarray(image).resize((DISPLAY, DISPLAY), Image.Resampling.NEAREST))


class LesionModel:
    """A classifier checkpoint loaded once, with its training images' features for the nearest-image search."""

    def __init__(self, checkpoint, device, neighbours=6):
        self.model, self.task, state = load_classifier(checkpoint, device)
        self.args, self.device, self.k = state["model_args"], device, neighbours
        self.vocab = self.args["metadata_vocab"]
        self.train, self.notice = None, ""
        if neighbours:
            try:
                self.train = self._training_images(state)
            except UserError as err:  # the app still classifies without them
                self.notice = f"Nearest training images unavailable: {err}"

    @property
    def sites(self):
        return [UNKNOWN] + (self.vocab["sites"] if self.vocab else [])

    def _training_images(self, state):
        """(images, captions, unit features) of the train split the model learned from (a fold's, for fold models)."""
        config = state.get("config", {})
        prepared = view(load_prepared(state["data"]["path"]), config.get("folds", 0), config.get("fold"))
        if prepared.fingerprint != state["data"]["fingerprint"]:
            raise UserError(f"{prepared.path} has changed since the model was trained")
        idx = prepared.indices("train")
        meta = None if self.vocab is None else rows_metadata(prepared, idx, self.vocab)
        captions = [f"{prepared.class_names[label]} · {group}" for label, group in
                    zip(prepared.labels[idx], prepared.group[idx])]
        return prepared.images[idx], captions, self._features(prepared.images[idx], meta)

    @torch.no_grad()
    def _features(self, images, meta=None, batch=512):
        """(N, F) unit-length penultimate features (the image part: the metadata branch is left out)."""
        out = []
        width = self.model.backbone.out_dim
        for i in range(0, len(images), batch):
            x = to_float(torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2)).to(self.device)
            m = None if self.vocab is None else torch.from_numpy(
                encode_metadata(self.vocab, len(x)) if meta is None else meta[i:i + batch]).to(self.device)
            out.append(torch.nn.functional.normalize(self.model.features(x, m)[:, :width].float(), dim=1).cpu())
        return torch.cat(out)

    def _meta(self, age, sex, site):
        """(1, M) encoded metadata; `age` as read_age gives it (nan: unknown, encoded as the training set's
        missing ages are)."""
        if self.vocab is None:
            return None
        unknown = lambda value: "" if value in (None, UNKNOWN) else value
        return torch.from_numpy(encode_metadata(self.vocab, 1, [age], [unknown(sex)], [unknown(site)]))

    def classify(self, image, age=None, sex=None, site=None):
        """The Result for one RGB PIL image of any size (centre-cropped, resized and colour-corrected as prepare
        does); `age`: years (a number or text), None or empty for unknown; UserError for a value that is no age."""
        meta = self._meta(read_age(age), sex, site)
        pixels = np.array(square_resize(image, self.args["image_size"]))
        # the colour constancy of the set the model learned from, as evaluate applies it to external sets
        pixels = np.array(correct_colors(pixels, method_of(self.args)))[None]  # (1, S, S, 3), writable for torch
        probs, predicted, overlays = grad_cam(self.model, self.task, self.args, pixels, meta)
        names = self.task.output_names
        order = np.argsort(probs[0])[::-1]
        result = Result({names[i]: float(probs[0][i]) for i in order}, names[predicted[0]], self._risk(probs[0]),
                        None, enlarge(pixels[0]), enlarge(overlays[0]), [])
        if self.task.name == "two-stage":
            result.two_stage = two_stage_factors(probs[0], names, predicted[0])
        if self.train is not None:
            result.neighbours = self._neighbours(pixels, meta)
        return result

    def _risk(self, probs):
        names = self.task.output_names
        if getattr(self.task, "multilabel", False):  # independent labels: no share of one unit to sum
            return None
        if self.task.name == "binary":
            return float(probs[names.index("malignant")])
        malignant = [i for i, name in enumerate(names) if name in MALIGNANT]
        return float(probs[malignant].sum()) if malignant and len(malignant) < len(names) else None

    def _neighbours(self, pixels, meta):
        images, captions, features = self.train
        query = self._features(pixels, None if meta is None else meta.numpy())
        similarity, idx = (features @ query[0]).topk(min(self.k, len(features)))
        return [(images[i], f"{captions[i]} · similarity {s:.2f}") for s, i in zip(similarity.tolist(), idx.tolist())]


def two_stage_factors(probs, names, predicted):
    """The predicted class's probability as the two-stage model makes it: P(its group) from the screen times
    P(it | its group). Both come from the same probabilities as the prediction (P(group) is its classes' sum),
    so the page tells one story; a separate "screen at 0.5, then the best class of that group" answer could name
    another class than the prediction (e.g. bcc at P(malignant) 0.48 beside "benign, then df")."""
    malignant = names[predicted] in MALIGNANT
    group = [i for i, name in enumerate(names) if (name in MALIGNANT) == malignant]
    p_group = float(probs[group].sum())
    return {"group": "malignant" if malignant else "benign", "p_group": p_group, "class": names[predicted],
            "p_class_in_group": float(probs[predicted]) / p_group if p_group > 0 else 0.0}


def long_name(name):
    return BY_NAME[name].long_name if name in BY_NAME else name
