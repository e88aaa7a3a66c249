"""Colour constancy: each image's illuminant estimated and divided out, so images taken under different lights
(dermatoscopes, clinics, years) reach the models with a neutral-grey illuminant.

prepare records the method in the prepared set; a classifier records its set's method in its checkpoint, and
every stage that feeds it raw images (evaluate --source, compare's and rescore's external sets, serve, explain)
corrects them with that method, so the model never sees images coloured otherwise than it learned from.
"""

import numpy as np
from tqdm import tqdm

from gan_aug.config import check_choice

NONE = "none"
SHADES_OF_GRAY_P = 6  # the Minkowski norm ISIC 2018's leading entries used (Barata et al.; Finlayson & Trezzi 2004)


def shades_of_gray(image, p=SHADES_OF_GRAY_P):
    """One (H, W, 3) uint8 image under a neutral illuminant: e_c = mean(I_c^p)^(1/p) on [0, 1] pixels, scaled
    to length sqrt(3) (a grey illuminant is (1, 1, 1): grey images are left as they are), each channel divided
    by its e_c, clipped to [0, 1]. A black image has no illuminant to estimate: it is returned unchanged."""
    pixels = image.astype(np.float64) / 255.0
    estimate = np.mean(pixels.reshape(-1, 3) ** p, axis=0) ** (1.0 / p)
    length = np.linalg.norm(estimate)
    if length == 0:
        return image.copy()
    # A channel whose estimate is 0 is all black: any divisor keeps it 0.
    illuminant = np.maximum(estimate * (np.sqrt(3.0) / length), 1e-12)
    return np.rint(np.clip(pixels / illuminant, 0.0, 1.0) * 255.0).astype(np.uint8)


# Method name -> correction of one (H, W, 3) uint8 image. Each image is corrected on its own (its own pixels
# only), so a set corrected whole, in chunks or one upload at a time gets the same pixels.
METHODS = {
    NONE: None,
    "shades-of-gray": shades_of_gray,
}


def check_method(method, what="color_constancy"):
    check_choice(what, method, METHODS)
    return method


def correct_colors(images, method, progress=False):
    """`images` ((N, H, W, 3) or one (H, W, 3) uint8) with colour constancy `method` applied to each image; the
    array itself for "none"."""
    correct = METHODS[check_method(method)]
    if correct is None:
        return images
    if images.ndim == 3:
        return correct(images)
    out = np.empty_like(images)
    for i in tqdm(range(len(images)), desc=method, unit="img", disable=not progress, leave=False):
        out[i] = correct(images[i])
    return out


def method_of(model_args):
    """The colour constancy a classifier learned under, recorded in its model_args (gan_aug.legacy gives
    checkpoints from before the key "none")."""
    return model_args["color_constancy"]
