"""The config of `gan-aug train-classifier`: one lesion classifier on a prepared set (+ synthetic images)."""

import dataclasses
import typing

from gan_aug.config import (DEVICE_HELP, FOLD_HELP, FOLDS_HELP, check_choice, check_folds, check_non_negative,
                            StageConfig, check_run_settings, setting)
from gan_aug.errors import UserError

BALANCES = ("none", "oversample", "class-weight", "focal")
# ce: cross-entropy; the other two add tau * log(train prior) to the logits inside the loss only (prediction uses
# the raw logits), so a rare class must win by a larger margin in training: balanced softmax (Ren et al. 2020) is
# tau 1, the logit-adjusted loss (Menon et al. 2021) any tau.
LOSSES = ("ce", "balanced-softmax", "logit-adjust")
# Batch mixing of images and their (soft) labels, torchvision.transforms.v2's MixUp / CutMix.
MIXINGS = ("none", "mixup", "cutmix")
KEEP_RULES = ("best-val", "last")


@dataclasses.dataclass
class ClassifierConfig(StageConfig):
    """`gan-aug train-classifier`: one lesion classifier on a prepared set (+ synthetic images)."""

    data: str = setting(help="Prepared set (.npz).")
    out: str = setting(help="Run directory (best.pt, latest.pt, TensorBoard).")
    model: str = setting("small_cnn", help="small_cnn, resnet18, resnet50, densenet121, efficientnet_b0, "
                                           "inception_v3 or vgg16.")
    task: str = setting("multiclass", help="multiclass, binary, two-stage or multilabel (a sigmoid per class but nv: "
                                           "ISIC 2017's two labels).")
    balance: str = setting("none", help="none, oversample, class-weight or focal.")
    synthetic: typing.Optional[str] = setting(None, help="Synthetic set (folder or .npz) to mix in.")
    mix: float = setting(0.0, help="Probability that a balanced draw is synthetic (when its class has synthetic "
                                   "images), 0-1.")
    mix_policy: str = setting("balanced", help="balanced or topup (synthetic images only fill a class up to the "
                                               "largest).")
    mix_until: float = setting(1.0, help="Draw synthetic images only in this first share of the epochs.")
    epochs: int = setting(20, help="Training epochs.")
    batch_size: int = setting(128, help="Images per step.")
    lr: float = setting(2e-3, help="AdamW learning rate (cosine schedule, half-epoch warm-up).")
    weight_decay: float = setting(1e-4, help="AdamW weight decay.")
    patience: int = setting(0, help="Early stopping: epochs without a better val BMA; 0 = train all epochs.")
    # A small val split can make the best-val choice a lottery between near-equal epochs: `last` makes none.
    keep: str = setting("best-val", help="Which epoch best.pt holds: best-val (best val BMA) or last.")
    # The average moves smoothly, so the best-val-epoch choice is less at the mercy of one lucky epoch.
    ema_half_life: float = setting(0.0, help="Evaluate, select and save a moving average of the weights with this "
                                             "half-life in epochs; 0 = the raw weights.")
    folds: int = setting(0, help=FOLDS_HELP)
    fold: typing.Optional[int] = setting(None, help=FOLD_HELP)
    focal_gamma: float = setting(2.0, help="Focal loss gamma (balance focal).")
    loss: str = setting("ce", help="ce, balanced-softmax or logit-adjust (logits + logit_tau * log(train prior) in "
                                   "the loss only; multiclass).")
    logit_tau: float = setting(1.0, help="logit-adjust's tau (balanced-softmax is tau 1).")
    mixing: str = setting("none", help="none, mixup or cutmix: mix pairs of images and their labels in each batch "
                                       "(multiclass).")
    mixing_alpha: float = setting(1.0, help="Beta(alpha, alpha) of the mixing share.")
    dropout: float = setting(0.2, help="Dropout before the classification heads.")
    # A GAN sample's intended class is only what G was asked for: teachers relabel real and synthetic alike.
    teachers: typing.Tuple[str, ...] = setting((), flag="--teacher", help=(
        "Distil: train on the mean class probabilities of these classifiers of the same prepared set "
        "(repeatable)."))
    use_metadata: bool = setting(False, help="Fuse age, sex and site with the image features.")
    pretrained: typing.Optional[str] = setting(None, help="A torchvision backbone's starting weights: imagenet "
                                                          "(torchvision's, kept in torch's cache) or a local "
                                                          "state-dict file.")
    # Transfer learning: a new head on pretrained features first learns alone, so its first, large and random
    # gradients do not wreck those features; then the backbone moves, in smaller steps than the head.
    freeze_epochs: int = setting(0, help="Train only the heads for this many first epochs (needs --pretrained).")
    backbone_lr_mult: float = setting(1.0, help="The backbone's learning rate as a share of lr (needs --pretrained).")
    seed: int = setting(0, help="Seed of the run.")
    device: str = setting("auto", help=DEVICE_HELP)
    amp: bool = setting(True, help="bf16 autocast on CUDA and on CPUs with native bf16 kernels.")
    threads: int = setting(0, help="CPU threads, 0: torch's default.")
    deterministic: bool = setting(False, help="Deterministic algorithms.")
    world_size: int = setting(1, flag=False, help="Processes of the run (torchrun's WORLD_SIZE), recorded.")
    resume: bool = setting(False, help="Continue the run in --out where it stopped.")
    force: bool = setting(False, help="Replace a run already in --out.")

    def validate(self):
        # The registries import torch; importing them here keeps `gan-aug --help` instant.
        from classifier.models import BACKBONES, check_pretrained
        from classifier.sampling import POLICIES
        from classifier.tasks import TASKS

        check_choice("model", self.model, BACKBONES)
        check_choice("task", self.task, TASKS)
        check_choice("balance", self.balance, BALANCES)
        check_choice("mix policy", self.mix_policy, POLICIES)
        check_choice("keep rule", self.keep, KEEP_RULES)
        check_choice("loss", self.loss, LOSSES)
        check_choice("mixing", self.mixing, MIXINGS)
        if (self.loss != "ce" or self.mixing != "none") and self.task != "multiclass":
            raise UserError(f"--loss {self.loss} and --mixing {self.mixing} are for --task multiclass")
        if self.loss != "ce" and self.balance in ("class-weight", "focal"):
            raise UserError(f"--loss {self.loss} already re-weights the classes: use --balance none or oversample")
        if self.mixing != "none" and self.balance == "focal":
            raise UserError("mixed (soft) labels and focal loss do not go together: use another --balance")
        if not (0 <= self.logit_tau <= 10 and self.mixing_alpha > 0):
            raise UserError(f"logit_tau must be in [0, 10] and mixing_alpha > 0, got {self.logit_tau} and "
                            f"{self.mixing_alpha}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.mix <= 1:
            raise UserError(f"--mix must be in [0, 1], got {self.mix}")
        if not 0 < self.mix_until <= 1:
            raise UserError(f"--mix-until must be in (0, 1], got {self.mix_until}")
        check_folds(self)
        if self.mix > 0 and not self.synthetic:
            raise UserError("--mix needs --synthetic SYN")
        if self.synthetic and self.balance not in ("none", "oversample"):
            raise UserError("mixing uses the class-balanced stream: drop --balance (or use oversample)")
        if self.task == "multilabel" and self.balance in ("class-weight", "focal"):
            raise UserError("--task multilabel takes --balance none or oversample (its loss is per label)")
        if self.teachers and (self.task != "multiclass" or self.balance == "focal"):
            raise UserError("--teacher (distillation) needs --task multiclass and a balance other than focal")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1")
        if self.lr <= 0:
            raise UserError(f"lr must be > 0, got {self.lr}")
        check_non_negative(self, "weight_decay", "patience", "ema_half_life", "freeze_epochs")
        if self.freeze_epochs >= self.epochs and self.freeze_epochs:  # the backbone would never train
            raise UserError(f"freeze_epochs ({self.freeze_epochs}) must be fewer than epochs ({self.epochs}): the "
                            "backbone trains in the epochs after them")
        check_pretrained(self.model, self.pretrained)
        if (self.freeze_epochs or self.backbone_lr_mult != 1) and not self.pretrained:
            raise UserError("freeze_epochs and backbone_lr_mult tune a pretrained backbone: add --pretrained")
        if self.backbone_lr_mult <= 0:
            raise UserError(f"backbone_lr_mult must be > 0, got {self.backbone_lr_mult} (freeze_epochs freezes)")
        if self.keep == "last" and self.patience:
            raise UserError("early stopping (patience) picks the epoch by val BMA: it needs keep best-val")
        check_run_settings(self)

    @property
    def balanced_stream(self):
        return self.balance == "oversample" or bool(self.synthetic)
