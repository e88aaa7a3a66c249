"""The config of `gan-aug train-diffusion`: one class-conditional diffusion model on a prepared set's train split."""

import dataclasses
import typing

from gan_aug.config import (DEVICE_HELP, FOLD_HELP, FOLDS_HELP, StageConfig, check_choice, check_folds,
                            check_positive, check_run_settings, setting)
from gan_aug.errors import UserError
from gan_aug.gan.config import check_quality_tracking


@dataclasses.dataclass
class DiffusionConfig(StageConfig):
    """`gan-aug train-diffusion`: a class-conditional diffusion model (diffusers' UNet2DModel) on the train split
    of a prepared set, trained with classifier-free guidance's label dropout."""

    data: str = setting(help="Prepared set (.npz); the model sees its train split only.")
    out: str = setting(help="Run directory (checkpoints, samples, TensorBoard).")
    classes: typing.Tuple[str, ...] = setting((), flag=("--class", "--classes"),
                                              help="Train on these classes (repeatable or comma-separated) [all].")
    kimg: float = setting(100.0, help="Training length in thousands of real images shown.")
    batch_size: int = setting(32, help="Images per step.")
    channels: typing.Tuple[int, ...] = setting((64, 128, 128), help="UNet widths, one resolution level each "
                                               "(comma-separated).")
    layers_per_block: int = setting(2, help="Residual blocks per UNet level.")
    attention: bool = setting(True, help="Self-attention at the lowest resolution.")
    prediction: str = setting("v", help="What the UNet predicts: eps (the noise) or v (the velocity).")
    schedule: str = setting("squaredcos_cap_v2", help="Noise schedule: squaredcos_cap_v2 (cosine) or linear.")
    timesteps: int = setting(1000, help="Diffusion steps of training.")
    label_dropout: float = setting(0.1, help="Share of images shown without their class, which teaches the "
                                             "unconditional model classifier-free guidance needs.")
    lr: float = setting(2e-4, help="AdamW learning rate.")
    weight_decay: float = setting(0.0, help="AdamW weight decay.")
    grad_clip: float = setting(1.0, help="Gradient norm clip (0: none).")
    ema_kimg: float = setting(10.0, help="Half-life of the weight average that samples, in kimg.")
    flips: bool = setting(True, help="Show each image in one of its 8 symmetries (a lesion has no up or left).")
    balanced_classes: bool = setting(False, help="Draw real images class-balanced instead of by frequency.")
    folds: int = setting(0, help=FOLDS_HELP.replace("one run per fold", "one model per fold, on its train part,"))
    fold: typing.Optional[int] = setting(None, help=FOLD_HELP)
    sample_steps: int = setting(25, help="Sampler steps of the snapshot grids and the FD measurements.")
    guidance: float = setting(1.0, help="Classifier-free guidance of the grids and measurements (1: none).")
    ckpt_every: float = setting(10.0, help="kimg between checkpoints.")
    snapshot_every: float = setting(5.0, help="kimg between sample grids and TensorBoard flushes.")
    grid_columns: int = setting(8, help="Columns of the snapshot grid (one row per class).")
    metrics_every: float = setting(0.0, help="kimg between FD/KID measurements against the train split, overall "
                                             "and per class (0: off); best.pt keeps the lowest FD.")
    metrics_n: int = setting(1000, help="Generated images per measurement (split like the train classes).")
    metrics_features: str = setting("auto", help="Feature space of the measurements: inception, "
                                                 "lesion:CLASSIFIER_CKPT, or auto.")
    fid_weights: typing.Optional[str] = setting(None, help="Local Inception weights for metrics_features "
                                                           "inception.")
    seed: int = setting(0, help="Seed of the run.")
    device: str = setting("auto", help=DEVICE_HELP)
    amp: bool = setting(True, help="bf16 autocast on CUDA and on CPUs with native bf16 kernels.")
    compile: bool = setting(False, help="torch.compile the UNet on CUDA.")
    threads: int = setting(0, help="CPU threads, 0: torch's default.")
    deterministic: bool = setting(False, help="Deterministic algorithms (CPU runs are deterministic anyway).")
    data_on_device: bool = setting(True, help="Keep the train images on the GPU when they fit.")
    world_size: int = setting(1, flag=False, help="Processes of the run (torchrun's WORLD_SIZE), recorded.")
    resume: bool = setting(False, help="Continue the run in --out where it stopped.")
    force: bool = setting(False, help="Replace a run already in --out.")

    def validate(self):
        from gan_aug.diffusion.model import PREDICTIONS, SCHEDULES

        check_choice("prediction", self.prediction, PREDICTIONS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_positive(self, "kimg", "batch_size", "layers_per_block", "timesteps", "lr", "ckpt_every",
                       "snapshot_every", "grid_columns", "sample_steps")
        if not self.channels or any(c < 1 for c in self.channels):
            raise UserError(f"channels must be one or more positive widths, got {self.channels}")
        if not 0 <= self.label_dropout < 1:
            raise UserError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.guidance < 1:
            raise UserError(f"guidance must be >= 1 (1: the conditional model alone), got {self.guidance}")
        if self.guidance > 1 and self.label_dropout == 0:
            raise UserError("guidance > 1 needs label_dropout > 0: the model learns no unconditional prediction")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.ema_kimg < 0:
            raise UserError("weight_decay, grad_clip and ema_kimg must be >= 0")
        if self.sample_steps > self.timesteps:
            raise UserError(f"sample_steps ({self.sample_steps}) cannot exceed timesteps ({self.timesteps})")
        check_quality_tracking(self)
        check_folds(self)
        check_run_settings(self)
