"""The config of `gan-aug serve`: the web app's classifier, optional GAN, port and upload limits."""

import dataclasses
import typing

from gan_aug.config import DEVICE_HELP, StageConfig, check_device_name, check_non_negative, check_positive, setting
from gan_aug.errors import UserError

HOST = "127.0.0.1"  # the app serves this machine only: no flag opens it wider


@dataclasses.dataclass
class ServeConfig(StageConfig):
    """`gan-aug serve`: classify uploaded lesion images (and, with --gan, generate synthetic ones) in a browser."""

    checkpoint: str = setting(help="Classifier best.pt or its run directory.")
    gan: typing.Optional[str] = setting(None, help="GAN run directory or .pt: adds the Generate tab.")
    port: int = setting(7860, help=f"Port on {HOST} (the app listens on this machine only).")
    max_megapixels: float = setting(30.0, help="Refuse uploads with more pixels than this (millions).")
    neighbours: int = setting(6, help="Nearest training images shown beside a prediction (0: none).")
    max_images: int = setting(64, help="Most images one Generate request may ask for.")
    device: str = setting("auto", help=DEVICE_HELP)
    threads: int = setting(0, help="CPU threads, 0: torch's default.")

    def validate(self):
        if not 1 <= self.port <= 65535:
            raise UserError(f"port must be in 1..65535, got {self.port}")
        check_positive(self, "max_megapixels", "max_images")
        check_non_negative(self, "neighbours", "threads")
        check_device_name(self.device)
