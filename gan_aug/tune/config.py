"""The config of `gan-aug tune`: a search space over the classifier recipe, a fixed rest of it, and the study."""

import dataclasses
import typing
from pathlib import Path

from classifier.config import ClassifierConfig
from gan_aug.config import StageConfig, build_config, check_positive, setting
from gan_aug.errors import UserError
from gan_aug.tune.space import NOT_TUNABLE, parse_space

STORAGE_FILE = "study.db"
RECIPE_ONLY = ("device", "threads", "amp", "deterministic", "teachers")  # fixed for every trial, never searched


@dataclasses.dataclass
class TuneConfig(StageConfig):
    """`gan-aug tune`: Optuna (TPE, median pruning on per-epoch val BMA) over train-classifier's settings."""

    data: str = setting(help="Prepared set (.npz): trials train on its train split and are scored on val.")
    out: str = setting(help="Output folder: the study database, trials/, best.yaml, best_compare.yaml, plots.")
    trials: int = setting(20, help="Trials the study should finish (complete or pruned), counting those already "
                                   "finished; processes sharing the study stop together.")
    storage: typing.Optional[str] = setting(None, help=f"Optuna storage URL [sqlite:///OUT/{STORAGE_FILE}]; a "
                                                       "PostgreSQL URL lets machines share one study.")
    study: str = setting("gan-aug-tune", help="Study name inside the storage.")
    startup_trials: int = setting(5, help="Random trials before TPE models the space, and before any pruning.")
    warmup_epochs: int = setting(3, help="Epochs a trial always runs before the median rule may prune it.")
    seed: int = setting(0, help="Seed of the sampler and of every trial's classifier.")
    space: typing.Optional[typing.Dict[str, typing.Any]] = setting(None, flag=False, help=(
        "Search space: KEY: {low, high[, log][, step]} or [choice, ...] over train-classifier's keys."))
    recipe: typing.Optional[typing.Dict[str, typing.Any]] = setting(None, flag=False, help=(
        "The fixed train-classifier settings of every trial (balance, epochs, threads, synthetic, ...)."))
    force: bool = setting(False, help="Write over best.yaml, best_compare.yaml, trials.csv and plots in --out that "
                                      "tune did not write.")

    def validate(self):
        check_positive(self, "trials", "startup_trials")
        if self.warmup_epochs < 0:
            raise UserError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        self.recipe = dict(self.recipe or {})
        fixed = sorted(set(self.recipe) & (set(NOT_TUNABLE) - set(RECIPE_ONLY)))
        if fixed:
            raise UserError(f"recipe key(s) {', '.join(fixed)} cannot be fixed for tune's trials (it sets data, out "
                            "and seed itself, and trains on the prepared split): drop them from `recipe`")
        for param in parse_space(self.space):
            if param.name in self.recipe:
                raise UserError(f"'{param.name}' is both searched (space) and fixed (recipe): keep one")
            for value in param.examples():  # every choice and both ends must make a valid classifier config
                try:
                    self.classifier_config(self.out, {param.name: value})
                except UserError as err:
                    raise UserError(f"search space {param.name}={value!r}: {err}") from None

    @property
    def storage_url(self):
        return self.storage or f"sqlite:///{(Path(self.out) / STORAGE_FILE).resolve()}"

    def settings(self, params):
        """The train-classifier keys of one trial (what best.yaml holds): the data, the recipe, the draws."""
        return {"data": self.data, **self.recipe, "seed": self.seed, **params}

    def classifier_config(self, out, params):
        return build_config(ClassifierConfig, None, {**self.settings(params), "out": str(out), "force": True})
