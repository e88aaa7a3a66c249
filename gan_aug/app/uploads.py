"""What the app accepts as an upload: one still JPEG or PNG of sane size, read into RGB; everything else gets a
one-line UserError the page shows (the server keeps serving). The header is checked before any pixel is
decoded, so a 50-megapixel or compressed-bomb file costs nothing."""

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from gan_aug.data.images import DECODE_ERRORS, to_rgb
from gan_aug.errors import UserError

FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "MPO": "JPEG"}  # MPO: a phone camera's JPEG with a second frame


def read_upload(path, max_megapixels):
    """The upload at `path` as an RGB PIL image (EXIF orientation applied), or a UserError that says why not."""
    if path is None:
        raise UserError("no image: upload a JPEG or PNG of the lesion")
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise UserError("the upload is empty (0 bytes): upload a JPEG or PNG of the lesion")
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
                raise UserError("animated images are not accepted: upload a single still JPEG or PNG")
            if image.format not in FORMATS:
                raise UserError(f"only JPEG and PNG images are accepted; this is {image.format or 'unknown'}")
            megapixels = image.width * image.height / 1e6
            if megapixels > max_megapixels:
                raise UserError(f"the image has {megapixels:.0f} megapixels ({image.width} x {image.height}); the "
                                f"limit is {max_megapixels:g}: downscale it first")
            image.load()
            return to_rgb(ImageOps.exif_transpose(image))
    except UserError:
        raise
    except UnidentifiedImageError:
        raise UserError("the upload is not an image: upload a JPEG or PNG of the lesion") from None
    except DECODE_ERRORS as err:  # truncated or corrupt pixel data, an unsupported mode
        raise UserError(f"the image could not be read: {str(err).splitlines()[0]}") from None
