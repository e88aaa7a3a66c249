"""The config of `gan-aug synthesize`: which GANs, how many images of which classes, how they are judged."""

import dataclasses
import typing

from gan_aug.config import DEVICE_HELP, StageConfig, check_device_name, check_non_negative, check_positive, setting
from gan_aug.data.names import check_class_names
from gan_aug.errors import UserError

DEFAULT_COUNT = 1000
# 10 million 64 px PNGs are about 100 GB and days of CPU: past that a count is a typo (and planning it alone
# would busy-loop before the first image).
MAX_COUNT = 10_000_000
FORMATS = ("png", "npz")
# A class's latents are seeded seed * SEED_STRIDE + class (sample.class_generator), its noise that plus a batch
# offset; torch takes seeds below 2^64 and turns a negative one into one just under 2^64, where an offset then
# overflows. So seeds run 0..MAX_SEED, where every derived seed fits (past it torch failed with a raw
# "Overflow when unpacking long long").
SEED_STRIDE = 1_000_003
DEFAULT_SAMPLING = ("ddim", 50, 1.0)  # a diffusion checkpoint's sampler, steps and guidance unless given
MAX_SEED = 2 ** 63 // SEED_STRIDE


@dataclasses.dataclass
class SynthConfig(StageConfig):
    """`gan-aug synthesize`: sample a labelled synthetic set from one or more GAN checkpoints."""

    checkpoints: typing.Tuple[str, ...] = setting(flag="--checkpoint", help="GAN run directory (its latest.pt) or "
                                                  ".pt file such as RUN/best.pt (repeatable: e.g. one per-class "
                                                  "GAN each).")
    out: str = setting(help="Output folder (png) or .npz file (npz).")
    n: typing.Optional[int] = setting(None, flag="-n", help=f"Number of images in all [{DEFAULT_COUNT}; with "
                                      "name=count entries, their sum].")
    classes: typing.Tuple[str, ...] = setting((), flag="--class", help="Only these classes (repeatable or "
                                              "comma-separated) [every class the checkpoints know].")
    distribution: str = setting("balance", help="balance (fill the rarest classes first), uniform, or counts "
                                "such as mel=1000,df=500.")
    truncation: float = setting(1.0, help="Truncation psi, 1 = none (GANs).")
    sampler: str = setting(DEFAULT_SAMPLING[0], help="Diffusion checkpoints: ddim or dpm-solver (both "
                                                     "deterministic).")
    steps: int = setting(DEFAULT_SAMPLING[1], help="Diffusion checkpoints: sampler steps.")
    guidance: float = setting(DEFAULT_SAMPLING[2], help="Diffusion checkpoints: classifier-free guidance scale (1: "
                              "the conditional model alone; higher: more typical of the class, less varied).")
    seed: int = setting(0, help="Sampling seed; the same arguments give byte-identical files.")
    format: str = setting("png", help="png (ImageFolder + manifest) or npz.")
    filter_checkpoints: typing.Tuple[str, ...] = setting((), flag="--filter-checkpoint", help=(
        "Classifier (run dir or .pt) trained on the GAN's prepared set: keep only samples it puts in their "
        "class ... (repeatable: an ensemble, judged by its mean probability)."))
    min_confidence: typing.Optional[float] = setting(None, help="... with at least this probability [0.5].")
    max_draws: int = setting(20, help="Give up on a class after this many candidates per image asked for.")
    batch_size: int = setting(256, help="Images per generator call.")
    device: str = setting("auto", help=DEVICE_HELP)
    threads: int = setting(0, help="CPU threads, 0: torch's default.")
    force: bool = setting(False, help="Replace an existing synthetic set.")

    def validate(self):
        if not self.checkpoints:
            raise UserError("give at least one --checkpoint (a run directory or a .pt file)")
        explicit = self.explicit_counts()
        if self.n is not None and explicit and self.n != sum(explicit.values()):
            raise UserError(f"-n {self.n} disagrees with --distribution {self.distribution} "
                            f"({sum(explicit.values())} images): give one of them")
        if self.n is None:
            self.n = sum(explicit.values()) if explicit else DEFAULT_COUNT
        if not 1 <= self.n <= MAX_COUNT:
            raise UserError(f"-n must be in 1..{MAX_COUNT:,} images, got {self.n:,}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed must be in 0..{MAX_SEED:,}, got {self.seed:,}")
        if not 0 < self.truncation <= 2:
            raise UserError(f"--truncation must be in (0, 2], got {self.truncation}")
        if self.format not in FORMATS:
            raise UserError(f"--format must be png or npz, got {self.format}")
        if self.min_confidence is not None and not self.filter_checkpoints:
            raise UserError("--min-confidence needs --filter-checkpoint (the classifier that judges the samples)")
        if self.filter_checkpoints and self.min_confidence is None:
            self.min_confidence = 0.5
        if self.min_confidence is not None and not 0 < self.min_confidence < 1:
            raise UserError(f"--min-confidence must be in (0, 1), got {self.min_confidence}")
        from gan_aug.diffusion.model import SAMPLERS

        if self.sampler not in SAMPLERS:
            raise UserError(f"--sampler must be {' or '.join(SAMPLERS)}, got {self.sampler}")
        if self.guidance < 1:
            raise UserError(f"--guidance must be >= 1 (1: no guidance), got {self.guidance}")
        check_positive(self, "max_draws", "batch_size", "steps")
        check_non_negative(self, "threads")
        check_device_name(self.device)
        if (self.format == "npz") != self.out.endswith(".npz"):
            raise UserError("--format npz writes a .npz file: name --out FILE.npz (and a folder for png)")

    def explicit_counts(self):
        """{class: count} of a 'name=count,...' distribution; {} for balance and uniform."""
        if self.distribution in ("balance", "uniform"):
            return {}
        pairs = []
        for part in self.distribution.split(","):
            name, sep, value = part.partition("=")
            if not sep or not name.strip() or not value.strip().isdigit():
                raise UserError(f"bad --distribution entry '{part}': use balance, uniform or name=count,...")
            pairs.append((name.strip(), int(value)))
        check_class_names([name for name, _ in pairs], "--distribution")  # a dict would drop a repeated name
        return dict(pairs)
