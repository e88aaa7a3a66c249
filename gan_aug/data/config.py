"""The configs of the data stage: `gan-aug prepare` (which source to read, at what size, how to split it by lesion),
`gan-aug export` and `gan-aug import-synthetic` (another generator's training data in, its images back)."""

import dataclasses
import typing

from gan_aug.config import StageConfig, check_choice, check_non_negative, setting
from gan_aug.errors import UserError

MIN_SIZE, MAX_SIZE = 8, 512


@dataclasses.dataclass
class PrepareConfig(StageConfig):
    """`gan-aug prepare`: read a source, decode, resize, split by lesion, write one .npz."""

    out: str = setting(help="Output .npz file.")
    source: str = setting("toy", help="Reader: ham10000, isic-csv, medmnist-npz, imagefolder, fitzpatrick17k, "
                                                  "ddi, pad-ufes-20 or toy.")
    root: typing.Optional[str] = setting(None, help="Folder holding the source (the .npz file for medmnist-npz).")
    size: int = setting(64, help=f"Output image side in pixels, {MIN_SIZE}-{MAX_SIZE}.")
    csv: typing.Optional[str] = setting(None, help="Labels/metadata CSV when it is not under --root.")
    metadata_csv: typing.Optional[str] = setting(None, help="Per-image CSV by image id: age, sex, site and lesion or "
                                                            "patient ids (ISIC's metadata of any year, or your own).")
    groups_csv: typing.Optional[str] = setting(None, help="Per-image CSV of lesion or patient ids (image, lesion_id | "
                                                          "patient_id | group): a group's images share a split.")
    val_frac: float = setting(0.1, help="Validation fraction.")
    test_frac: float = setting(0.2, help="Test fraction.")
    seed: int = setting(0, help="Seed of the grouped split.")
    skip_missing: bool = setting(False, help="Go on without image ids that have no file.")
    skip_bad: bool = setting(False, help="Go on without unreadable or corrupt images.")
    force: bool = setting(False, help="Overwrite an existing output file.")
    group_near_duplicates: bool = setting(False, help="Join the groups of near-duplicate images (the same lesion "
                                                      "under another id, found as gan-aug audit does) so that "
                                                      "they share a split; slow: minutes for 10k images.")
    workers: int = setting(0, help="Decoding processes, 0 = one per core.")
    toy_count: int = setting(2000, help="toy: number of images.")
    color_constancy: str = setting("none", help="Colour constancy per image: none or shades-of-gray (p = 6: a "
                                                "neutral-grey illuminant); recorded, and applied alike to external "
                                                "sets a model of this set is evaluated or served on.")
    hair_removal: bool = setting(False, help="Inpaint dark hairs in each image (morphological black-hat + "
                                             "Telea inpainting), before colour constancy; recorded and applied "
                                             "alike, as colour constancy is.")

    def validate(self):
        from gan_aug.data.color import check_method
        from gan_aug.data.readers import READERS  # the readers import PIL/sklearn: not needed for --help

        check_choice("source", self.source, READERS)
        check_method(self.color_constancy)
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


EXPORT_FORMATS = ("stylegan2-ada", "imagefolder")


@dataclasses.dataclass
class ExportConfig(StageConfig):
    """`gan-aug export`: one split of a prepared set in another generator's dataset format, and a receipt."""

    data: str = setting(help="Prepared set (.npz).")
    out: str = setting(help="stylegan2-ada: the dataset .zip; imagefolder: a folder. The receipt goes beside it.")
    split: str = setting("train", help="The split to export: train (all a generator may learn from), val or test.")
    format: str = setting("stylegan2-ada", help="stylegan2-ada (PNGs + dataset.json class labels, for its train.py "
                                                "--cond=1) or imagefolder (class folders + labels.csv).")
    force: bool = setting(False, help="Replace an existing export and its receipt.")

    def validate(self):
        check_choice("format", self.format, EXPORT_FORMATS)
        check_choice("split", self.split, ("train", "val", "test"))
        if self.format == "stylegan2-ada" and not self.out.endswith(".zip"):
            raise UserError(f"--format stylegan2-ada writes a dataset zip: --out must end in .zip, got {self.out}")


@dataclasses.dataclass
class ImportConfig(StageConfig):
    """`gan-aug import-synthetic`: another generator's labelled images as a gan-aug synthetic set."""

    images: str = setting(flag=False, help="Folder of the generator's images: one subfolder per class, or any "
                                           "layout with --labels.")
    data: str = setting(help="The prepared set whose train split the generator learned from.")
    receipt: str = setting(help="The receipt `gan-aug export` wrote beside the generator's training data.")
    generator: str = setting(help="What made the images, for the provenance (e.g. 'stylegan2-ada-pytorch, "
                                  "network-snapshot-005000.pkl').")
    out: str = setting(help="The synthetic set (a folder) to write.")
    labels: typing.Optional[str] = setting(None, help="CSV of file (relative to IMAGES) and class (a name) or "
                                                      "class_index (the generator's label), instead of class folders.")
    resize: bool = setting(False, help="Centre-crop and resize images of another size to the prepared set's "
                                       "(else they are refused).")
    force: bool = setting(False, help="Replace a synthetic set already in --out.")

    def validate(self):
        if not self.generator.strip():
            raise UserError("--generator must name what made the images")
