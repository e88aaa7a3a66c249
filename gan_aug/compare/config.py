"""The config of `gan-aug compare`: arms x seeds of one classifier recipe on one prepared set."""

import dataclasses
import re
import typing
from pathlib import Path

from classifier.config import ClassifierConfig
from gan_aug.compare.arms import draws_synthetic, parse_arm, placebo_of, split_distill, synthetic_set_name, twin
from gan_aug.config import DEVICE_HELP, StageConfig, brief, check_folds, setting
from gan_aug.errors import UserError

# The ClassifierConfig settings every arm shares (the recipe); the arms change only balance/mix/teachers.
RECIPE_KEYS = ("model", "task", "epochs", "batch_size", "lr", "weight_decay", "patience", "keep", "ema_half_life",
               "use_metadata", "pretrained", "freeze_epochs", "backbone_lr_mult", "threads", "device")


@dataclasses.dataclass
class CompareConfig(StageConfig):
    """`gan-aug compare`: arms x seeds of one classifier recipe on one prepared set, and the report."""

    data: str = setting(help="Prepared set (.npz).")
    out: str = setting(help="Output folder: runs/, results.csv, report.md, plots.")
    arms: typing.Tuple[str, ...] = setting(("none", "oversample", "class-weight", "focal", "mix:0.1", "mix:0.3",
                                            "mix:0.5"), flag=False, help="Arms: none, oversample, class-weight, "
                                           "focal, mix:R[:U][@SET], topup:R[:U][@SET], any but focal +kd.")
    seeds: typing.Tuple[int, ...] = setting((0, 1, 2, 3, 4), flag=False, help="Seeds of every arm.")
    synthetic: typing.Optional[str] = setting(None, flag=False, help="A synthetic set for the mix arms ...")
    gan_run: typing.Optional[str] = setting(None, flag=False, help="... or a GAN run to synthesize one from "
                                                                   "(into OUT/synthetic).")
    synthetic_sets: typing.Tuple[str, ...] = setting((), flag=False, help="More sets, NAME=PATH, for arms like "
                                                                          "mix:0.3@NAME.")
    synth_n: int = setting(5000, flag=False, help="Images synthesized from gan_run.")
    synth_truncation: float = setting(1.0, flag=False, help="Truncation of the gan_run synthesis.")
    synth_distribution: str = setting("balance", flag=False, help="Distribution of the gan_run synthesis.")
    external: typing.Tuple[str, ...] = setting((), flag=False, help="External test sets, name=source:root, e.g. "
                                                                    "isic2018=isic-csv:/data/ISIC2018_Test.")
    teachers: typing.Tuple[str, ...] = setting((), flag=False, help="Classifier checkpoints that +kd arms distil "
                                                                    "from.")
    folds: int = setting(0, flag=False, help="Grouped k-fold CV: each arm x seed trains one model per fold of "
                                             "train+val; val out of fold, test by their ensemble. GAN arms need "
                                             "one GAN per fold: {fold} in the set's or gan_run's path.")
    # The classifier recipe, identical for every arm (RECIPE_KEYS; their help is ClassifierConfig's):
    model: str = setting("small_cnn", flag=False)
    task: str = setting("multiclass", flag=False)
    epochs: int = setting(20, flag=False)
    batch_size: int = setting(128, flag=False)
    lr: float = setting(2e-3, flag=False)
    weight_decay: float = setting(1e-4, flag=False)
    patience: int = setting(0, flag=False)
    keep: str = setting("best-val", flag=False)
    ema_half_life: float = setting(0.0, flag=False)
    use_metadata: bool = setting(False, flag=False)
    pretrained: typing.Optional[str] = setting(None, flag=False)
    freeze_epochs: int = setting(0, flag=False)
    backbone_lr_mult: float = setting(1.0, flag=False)
    threads: int = setting(0, flag=False)
    device: str = setting("auto", flag=False, help=DEVICE_HELP)
    bootstrap: int = setting(2000, flag=False, help="Bootstrap resamples of each CI.")
    twins: bool = setting(True, flag=False, help="Run each generative arm's twin too (the same arm without its "
                                                 "synthetic draws, e.g. oversample+kd for mix:0.3+kd) and report "
                                                 "the gain over it; twins added so never become the baseline.")
    reference_arm: typing.Optional[str] = setting(None, flag=False, help="Also report every other arm's paired gain "
                                                                           "over this arm, raw and after each "
                                                                           "correction (a table of recipes).")
    posthoc: typing.Tuple[str, ...] = setting((), flag=False, help="Post-hoc corrections reported beside the raw "
                                                                   "figures: bias (fitted on val), label-shift.")
    posthoc_per_class: int = setting(0, flag=False, help="bias: also a shift per class with at least this many val "
                                                         "images (0: tau only).")
    bundle: bool = setting(False, flag=False, help="When every run has finished, write OUT/bundle: the runs' "
                                                   "weights, configs and predictions (gan-aug bundle).")
    # A scheduler (a SLURM job array, several torchrun jobs or machines on one shared filesystem) starts one
    # process per shard; the per-run locks keep shards apart and each writes the report of what has finished.
    shard: str = setting("1/1", help="Run only share K of N of the arm x seed runs (K/N, e.g. "
                                     "$SLURM_ARRAY_TASK_ID/4).")
    force: bool = setting(False, help="Train again the finished runs that another recipe trained, synthesize "
                                      "again from a changed gan_run, and write over report.md, results.csv or "
                                      "config.yaml in a folder compare did not make.")

    def validate(self):
        for arm in self.arms:
            parse_arm(arm)
        if len(set(self.arms)) != len(self.arms) or len(set(self.seeds)) != len(self.seeds):
            raise UserError("arms and seeds must not repeat")
        for entry in self.synthetic_sets:
            name, sep, path = entry.partition("=")
            if not sep or not name or not path or not name.replace("_", "").replace("-", "").isalnum():
                raise UserError(f"synthetic_sets entries look like NAME=PATH (NAME: letters, digits, - or _), "
                                f"got '{entry}'")
        generative = {synthetic_set_name(a) for a in self.arms if draws_synthetic(a)}
        if "" in generative and not (self.synthetic or self.gan_run):
            raise UserError("mix/topup arms need `synthetic: SYN` or `gan_run: RUN` in the config")
        unknown = sorted(generative - {""} - set(self.synthetic_paths()))
        if unknown:
            raise UserError(f"arms name synthetic set(s) {', '.join(unknown)}, which synthetic_sets does not define")
        if not self.seeds:
            raise UserError("give at least one seed")
        if any(split_distill(a)[1] for a in self.arms) and not self.teachers:
            raise UserError("+kd arms distil from `teachers: [CLASSIFIER, ...]`, which the config does not give")
        for entry in self.external:
            parse_external(entry)
        if self.reference_arm is not None and self.reference_arm not in self.run_arms():
            raise UserError(f"reference_arm {self.reference_arm} is not one of the arms ({', '.join(self.run_arms())})")
        from classifier.posthoc import CORRECTIONS

        unknown = [p for p in self.posthoc if p not in CORRECTIONS]
        if unknown or self.posthoc_per_class < 0:
            raise UserError(f"posthoc takes {', '.join(CORRECTIONS)} (got {', '.join(unknown) or self.posthoc}) and "
                            "posthoc_per_class >= 0")
        self.shard_index()
        self._check_folds(generative)
        if self.synth_n < 1 or self.bootstrap < 100:
            raise UserError("synth_n >= 1 and bootstrap >= 100")
        if self.task == "multilabel":  # its gains would need per-label statistics, not BMA over classes
            raise UserError("compare reports BMA gains of single-label tasks: use multiclass, binary or two-stage")
        # The classifier recipe every arm shares, checked by its own rules here: a bad value fails before any run.
        ClassifierConfig(data=self.data, out=self.out, **self.classifier_flags()).validate()

    def _check_folds(self, generative):
        """With folds, refuse what would leak a fold's validation images into its training."""
        check_folds(self)
        if not self.folds:
            return
        if any(placebo_of(a) for a in self.arms):
            raise UserError("placebo arms cannot run with folds: their sets are built from the prepared train split")
        if any(split_distill(a)[1] for a in self.arms):
            raise UserError("+kd arms cannot run with folds: the teachers trained on every fold's validation images")
        paths = self.synthetic_paths()
        shared = sorted(name or "synthetic" for name in generative
                        if "{fold}" not in (self.gan_run if name == "" and not self.synthetic else paths[name]))
        if shared:
            raise UserError(f"with folds, fold k's synthetic images must come from a GAN trained without fold k's "
                            f"validation images: one GAN per fold (train-gan --folds {self.folds}), named with "
                            f"{{fold}}, e.g. gan_run: runs/gan_cv/fold_{{fold}} or synthetic: syn_fold{{fold}} "
                            f"(not so: {', '.join(shared)})")

    def run_arms(self):
        """The arms that train: the config's, then each generative arm's twin that the config does not list."""
        if not self.twins:
            return tuple(self.arms)
        extra = [twin(a) for a in self.arms if twin(a) not in self.arms]
        return tuple(self.arms) + tuple(dict.fromkeys(extra))

    def shard_index(self):
        """(k, n) of shard 'k/n', 1 <= k <= n."""
        # ASCII digits only: str.isdigit() also passes '²', which int() then refuses with a traceback
        match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", self.shard)
        if not (match and 1 <= int(match[1]) <= int(match[2])):
            raise UserError(f"--shard looks like K/N with 1 <= K <= N, got {brief(self.shard)}")
        return int(match[1]), int(match[2])

    def classifier_flags(self):
        """The ClassifierConfig settings every arm shares."""
        return {k: getattr(self, k) for k in RECIPE_KEYS}

    def synthetic_paths(self):
        """Synthetic set name -> path; '' is the default set (`synthetic`, or OUT/synthetic from `gan_run`)."""
        named = dict(entry.partition("=")[::2] for entry in self.synthetic_sets)
        default = "synthetic_fold{fold}" if self.folds else "synthetic"  # with folds, one set per fold
        return {"": self.synthetic or str(Path(self.out) / default), **named}


def parse_external(entry):
    """'isic2018=isic-csv:/data/ISIC2018' -> ('isic2018', 'isic-csv', '/data/ISIC2018')."""
    name, sep, rest = entry.partition("=")
    source, colon, root = rest.partition(":")
    if not (sep and colon and name and source and root):
        raise UserError(f"external entries look like name=source:root, got '{entry}'")
    if name in ("train", "val", "test") or not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"an external set's name is letters, digits, - or _, and not train, val or test: "
                        f"got '{name}'")
    return name, source, root
