"""Per-image corrections before any model sees an image: colour constancy (each image's illuminant estimated and
divided out, so images taken under different lights, dermatoscopes, clinics and years, reach the models with a
neutral-grey illuminant) and hair removal (dark hairs found by a morphological black-hat and inpainted).

What prepare applied is recorded in the prepared set as one method string, the steps joined by '+' in the order
they ran ("hair-removal+shades-of-gray"; the key is `color_constancy`, as the first step was). A classifier records
its set's string in its checkpoint, and every stage that feeds it raw images (evaluate --source, compare's and
rescore's external sets, serve, explain, audit) corrects them with it, so the model never sees images other than
those it learned from.
"""

import numpy as np
from tqdm import tqdm

from gan_aug.config import check_choice
from gan_aug.errors import UserError

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


HAIR_REMOVAL = "hair-removal"
HAIR_THRESHOLD = 10  # black-hat response (0-255) above which a pixel is hair: thin, darker than its surround


def remove_hair(image):
    """One (H, W, 3) uint8 image with dark hairs inpainted (the DullRazor idea, Lee et al. 1997, as ISIC entries
    ran it in OpenCV): the black-hat of the grey image with a cross about 1/16 of the image wide finds structures
    thinner and darker than their surround, and Telea's inpainting fills them from around. A lesion is wider than
    the cross, so it is left alone."""
    import cv2

    side = max(3, min(image.shape[:2]) // 16) | 1  # odd, at least 3 px
    kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (side, side))
    blackhat = cv2.morphologyEx(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.MORPH_BLACKHAT, kernel)
    mask = (blackhat > HAIR_THRESHOLD).astype(np.uint8)
    if not mask.any():
        return image.copy()
    return cv2.inpaint(np.ascontiguousarray(image), mask, max(1, side // 3), cv2.INPAINT_TELEA)


# Step name -> correction of one (H, W, 3) uint8 image, in the order a chain runs them (hair first: the illuminant
# is estimated on skin, not on hairs). Each image is corrected on its own (its own pixels only), so a set
# corrected whole, in chunks or one upload at a time gets the same pixels.
METHODS = {
    NONE: None,
    HAIR_REMOVAL: remove_hair,
    "shades-of-gray": shades_of_gray,
}


COLOUR_METHODS = [m for m in METHODS if m != HAIR_REMOVAL]  # what --color-constancy takes


def chain(color_constancy=NONE, hair_removal=False):
    """The method string prepare records: its steps, in METHODS' order, or "none"."""
    steps = ([HAIR_REMOVAL] if hair_removal else []) + ([color_constancy] if color_constancy != NONE else [])
    return "+".join(steps) or NONE


def step_names(method):
    return [] if method == NONE else str(method).split("+")


def steps_of(method):
    """The corrections of a method string, in order; a one-line error for an unknown or misordered one."""
    steps = step_names(method)
    known = [s for s in METHODS if s != NONE]
    for step in steps:
        check_choice("preprocessing step", step, known)
    if [known.index(s) for s in steps] != sorted({known.index(s) for s in steps}):
        raise UserError(f"preprocessing '{method}': each step once, in the order {'+'.join(known)}")
    return [METHODS[s] for s in steps]


def describe(method):
    """How images under `method` are: 'with hair removed, then shades-of-gray colour constancy', 'as captured'."""
    words = {HAIR_REMOVAL: "hair removed", "shades-of-gray": "shades-of-gray colour constancy"}
    steps = step_names(method)
    return "with " + ", then ".join(words[s] for s in steps) if steps else "as captured"


def prepare_flags(method):
    """The prepare flags that apply `method`: '--hair-removal --color-constancy shades-of-gray'."""
    steps = step_names(method)
    colour = [s for s in steps if s != HAIR_REMOVAL] or [NONE]
    return " ".join((["--hair-removal"] if HAIR_REMOVAL in steps else []) + [f"--color-constancy {colour[0]}"])


def check_method(method, what="color_constancy"):
    check_choice(what, method, COLOUR_METHODS)
    return method


def correct_colors(images, method, progress=False, in_place=False):
    """`images` ((N, H, W, 3) or one (H, W, 3) uint8) with the corrections of `method` (a method string) applied
    to each image; the array itself for "none". `in_place`: written over `images` (a set larger than memory)."""
    steps = steps_of(method)
    if not steps:
        return images

    def correct(image):
        for step in steps:
            image = step(image)
        return image

    if images.ndim == 3:
        return correct(images)
    out = images if in_place else np.empty_like(images)
    for i in tqdm(range(len(images)), desc=method, unit="img", disable=not progress, leave=False):
        out[i] = correct(images[i])
    return out


def method_of(model_args):
    """The colour constancy a classifier learned under, recorded in its model_args (gan_aug.legacy gives
    checkpoints from before the key "none")."""
    return model_args["color_constancy"]
