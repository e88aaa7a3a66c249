"""The config of `gan-aug prepare`: which source to read, at what size, and how to split it by lesion."""

import dataclasses
import typing

from gan_aug.config import check_choice, check_non_negative, setting
from gan_aug.errors import UserError

MIN_SIZE, MAX_SIZE = 8, 512


@dataclasses.dataclass
class PrepareConfig:
    """`gan-aug prepare`: read a source, decode, resize, split by lesion, write one .npz."""

    out: str = setting(help="Output .npz file.")
    source: str = setting("toy", help="Reader: ham10000, isic-csv, medmnist-npz, imagefolder or toy.")
    root: typing.Optional[str] = setting(None, help="Folder holding the source (the .npz file for medmnist-npz).")
    size: int = setting(64, help=f"Output image side in pixels, {MIN_SIZE}-{MAX_SIZE}.")
    csv: typing.Optional[str] = setting(None, help="Labels/metadata CSV when it is not under --root.")
    metadata_csv: typing.Optional[str] = setting(None, help="isic-csv: ISIC 2019 metadata CSV (age, site, sex, "
                                                            "lesion_id).")
    val_frac: float = setting(0.1, help="Validation fraction.")
    test_frac: float = setting(0.2, help="Test fraction.")
    seed: int = setting(0, help="Seed of the grouped split.")
    skip_missing: bool = setting(False, help="Go on without image ids that have no file.")
    skip_bad: bool = setting(False, help="Go on without unreadable or corrupt images.")
    force: bool = setting(False, help="Overwrite an existing output file.")
    workers: int = setting(0, help="Decoding processes, 0 = one per core.")
    toy_count: int = setting(2000, help="toy: number of images.")

    def validate(self):
        from gan_aug.data.readers import READERS  # the readers import PIL/sklearn: not needed for --help

        check_choice("source", self.source, READERS)
        if self.source != "toy" and not self.root:
            raise UserError(f"--root is required for source '{self.source}'")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise UserError(f"--size must be between {MIN_SIZE} and {MAX_SIZE}, got {self.size}")
        if not (0 <= self.val_frac < 1 and 0 <= self.test_frac < 1 and self.val_frac + self.test_frac < 1):
            raise UserError("split fractions must be in [0, 1) and leave some images for train")
        check_non_negative(self, "workers")
        if self.toy_count < 50:
            raise UserError("toy_count must be at least 50")
        if not self.out.endswith(".npz"):
            raise UserError(f"--out must name a .npz file, got {self.out}")
