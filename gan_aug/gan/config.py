"""The config of `gan-aug train-gan`: one class-conditional GAN on a prepared set's train split."""

import dataclasses
import typing

from gan_aug.config import (DEVICE_HELP, FOLD_HELP, FOLDS_HELP, check_choice, check_folds, check_positive,
                            StageConfig, check_run_settings, setting)
from gan_aug.errors import UserError


@dataclasses.dataclass
class GanConfig(StageConfig):
    """`gan-aug train-gan`: one class-conditional GAN on the train split of a prepared set."""

    data: str = setting(help="Prepared set (.npz); the GAN sees its train split only.")
    out: str = setting(help="Run directory (checkpoints, samples, TensorBoard).")
    classes: typing.Tuple[str, ...] = setting((), flag=("--class", "--classes"),
                                              help="Train on these classes (repeatable or comma-separated) [all].")
    arch: str = setting("dcgan", help="Network: dcgan or stylegan_lite.")
    kimg: float = setting(100.0, help="Training length in thousands of real images shown to D.")
    batch_size: int = setting(32, help="Images per step.")
    z_dim: int = setting(128, help="Latent size.")
    g_channels: int = setting(32, help="Generator width.")
    d_channels: int = setting(32, help="Discriminator width.")
    loss: str = setting("hinge", help="GAN loss: hinge or nonsat.")
    lr_g: float = setting(1e-4, help="Generator learning rate.")
    lr_d: float = setting(4e-4, help="Discriminator learning rate.")
    beta1: float = setting(0.5, help="Adam beta1.")
    beta2: float = setting(0.999, help="Adam beta2.")
    r1_gamma: float = setting(0.0, help="R1 penalty weight; 0 disables R1.")
    r1_every: int = setting(16, help="Lazy R1: every this many D steps, scaled up to match.")
    diffaugment: typing.Tuple[str, ...] = setting(("color", "translation", "cutout"),
                                                  help="DiffAugment ops applied to reals and fakes.")
    ada_target: float = setting(0.0, help="> 0: adapt the augmentation probability towards this E[sign(D(real))].")
    ada_speed_kimg: float = setting(20.0, help="ADA: kimg for the probability to move from 0 to 1.")
    mbstd_group: int = setting(0, help="Minibatch-stddev group size in D (0: off): lets D see a generator "
                                       "that draws the same image for every latent. Must divide the batch.")
    ema_kimg: float = setting(2.0, help="Half-life of the generator average, in kimg.")
    cond_start_kimg: float = setting(0.0, help="Transitional conditioning: class signal off before this kimg ...")
    cond_end_kimg: float = setting(0.0, help="... ramping linearly to full strength here (equal: off).")
    balanced_classes: bool = setting(False, help="Draw real images class-balanced instead of by frequency.")
    folds: int = setting(0, help=FOLDS_HELP.replace("one run per fold", "one GAN per fold, on its train part,"))
    fold: typing.Optional[int] = setting(None, help=FOLD_HELP)
    ckpt_every: float = setting(10.0, help="kimg between checkpoints.")
    snapshot_every: float = setting(5.0, help="kimg between sample grids and TensorBoard flushes.")
    grid_columns: int = setting(8, help="Columns of the snapshot grid (one row per class).")
    metrics_every: float = setting(0.0, help="kimg between FD/KID measurements against the train split, overall "
                                             "and per class (0: off); best.pt keeps the lowest FD.")
    metrics_n: int = setting(1000, help="Generated images per measurement (split like the train classes).")
    metrics_features: str = setting("auto", help="Feature space of the measurements: inception, "
                                                 "lesion:CLASSIFIER_CKPT, or auto (inception when its weights are "
                                                 "here, else say what to give).")
    fid_weights: typing.Optional[str] = setting(None, help="Local Inception weights for metrics_features "
                                                           "inception.")
    seed: int = setting(0, help="Seed of the run.")
    device: str = setting("auto", help=DEVICE_HELP)
    amp: bool = setting(True, help="bf16 autocast on CUDA and on CPUs with native bf16 kernels.")
    compile: bool = setting(False, help="torch.compile the networks on CUDA.")
    threads: int = setting(0, help="CPU threads, 0: torch's default.")
    deterministic: bool = setting(False, help="Deterministic algorithms (CPU runs are deterministic anyway).")
    data_on_device: bool = setting(True, help="Keep the train images on the GPU when they fit (else they stream "
                                              "from pinned host memory).")
    world_size: int = setting(1, flag=False, help="Processes of the run (torchrun's WORLD_SIZE), recorded.")
    resume: bool = setting(False, help="Continue the run in --out where it stopped.")
    force: bool = setting(False, help="Replace a run already in --out.")

    def validate(self):
        # The registries import torch; importing them here keeps `gan-aug --help` instant.
        from gan_aug.gan.augment import AUGMENTS
        from gan_aug.gan.losses import LOSSES
        from gan_aug.gan.networks import NETWORKS

        check_choice("arch", self.arch, NETWORKS)
        check_choice("loss", self.loss, LOSSES)
        for op in self.diffaugment:
            check_choice("diffaugment op", op, AUGMENTS)
        check_positive(self, "kimg", "batch_size", "z_dim", "g_channels", "d_channels", "lr_g", "lr_d", "r1_every",
                       "ckpt_every", "snapshot_every", "grid_columns", "ada_speed_kimg")
        if self.mbstd_group < 0 or (self.mbstd_group and self.batch_size % self.mbstd_group):
            raise UserError(f"mbstd_group must be 0 (off) or divide batch_size {self.batch_size}, "
                            f"got {self.mbstd_group}")
        if self.r1_gamma < 0 or self.ema_kimg < 0:
            raise UserError("r1_gamma and ema_kimg must be >= 0")
        if not 0 <= self.ada_target < 1:
            raise UserError("ada_target must be in [0, 1)")
        check_quality_tracking(self)
        check_folds(self)
        if self.cond_end_kimg < self.cond_start_kimg:
            raise UserError("cond_end_kimg must be >= cond_start_kimg")
        check_run_settings(self)


def check_quality_tracking(config):
    """The settings of FD/KID while training, shared by the generator trainers (train-gan, train-diffusion)."""
    if config.metrics_every < 0 or config.metrics_n < 16:
        raise UserError("metrics_every must be >= 0 and metrics_n >= 16")
    if not (config.metrics_features in ("auto", "inception") or config.metrics_features.startswith("lesion:")):
        raise UserError(f"metrics_features must be auto, inception or lesion:CLASSIFIER_CKPT, "
                        f"got {config.metrics_features}")
