"""The config of `gan-aug score`: how good, how diverse and how private a synthetic set is, per class."""

import dataclasses
import typing

from gan_aug.config import DEVICE_HELP, StageConfig, check_device_name, setting
from gan_aug.errors import UserError


@dataclasses.dataclass
class ScoreConfig(StageConfig):
    """`gan-aug score`: how good, how diverse and how private a synthetic set is, per class."""

    data: str = setting(help="Prepared set (.npz); its train split is the reference.")
    synthetic: str = setting(help="Synthetic set (folder or .npz).")
    features: str = setting("inception", help="inception (torch-fidelity's FID network) or lesion:CLASSIFIER_CKPT.")
    fid_weights: typing.Optional[str] = setting(None, help="Inception-v3 weights file for --features inception "
                                                           "(default: torch's cache, downloaded there if missing).")
    out: str = setting("scores.json", help="scores.json path; PNG and TensorBoard go beside it.")
    kid_subset_size: int = setting(1000, help="KID subset size.")
    cas: bool = setting(True, help="CAS: train on synthetic only, test on real val.")
    cas_epochs: int = setting(10, help="Epochs of the CAS classifier.")
    memorization: bool = setting(True, help="The memorization audit (nearest training image of each sample).")
    embed_per_source: int = setting(500, help="Images per source in the TensorBoard projector (0: none).")
    batch_size: int = setting(64, help="Images per feature-extraction batch.")
    seed: int = setting(0, help="Seed of CAS and the projector's choice of images.")
    device: str = setting("auto", help=DEVICE_HELP + " (feature extraction and CAS)")
    threads: int = setting(0, help="CPU threads, 0: torch's default.")
    force: bool = setting(False, help="Overwrite the scores JSON and the PNG and TensorBoard folder beside it.")

    def validate(self):
        if not (self.features == "inception" or self.features.startswith("lesion:")):
            raise UserError(f"--features must be inception or lesion:CLASSIFIER_CKPT, got {self.features}")
        if (self.kid_subset_size < 2 or self.cas_epochs < 1 or self.batch_size < 1 or self.embed_per_source < 0
                or self.threads < 0):
            raise UserError("need kid_subset_size >= 2, cas_epochs >= 1, batch_size >= 1, embed_per_source >= 0 "
                            "and threads >= 0")
        check_device_name(self.device)
