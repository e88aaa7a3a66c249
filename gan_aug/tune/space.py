"""tune's search space: YAML entries over ClassifierConfig keys, checked without Optuna and sampled through
whatever trial object is handed in (its suggest_* methods), so this module never imports Optuna.

    lr: {low: 3.0e-4, high: 1.0e-2, log: true}    # a float key: a float range (log-uniform here)
    epochs: {low: 10, high: 30, step: 5}           # an int key: an int range
    model: [small_cnn, resnet18]                   # a list (or {choices: [...]}): categorical
"""

import dataclasses
import math
import typing

from classifier.config import ClassifierConfig
from gan_aug.errors import UserError

# Not searched: where the run reads and writes, how it runs, and the seed (a search over seeds finds a lucky one).
NOT_TUNABLE = ("data", "out", "seed", "device", "threads", "deterministic", "amp", "world_size", "resume", "force",
               "folds", "fold", "teachers")
HINTS = typing.get_type_hints(ClassifierConfig)
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    kind: str  # float, int or categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: typing.Optional[float] = None
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        suggest = trial.suggest_int if self.kind == "int" else trial.suggest_float
        kwargs = {"log": self.log} if self.step is None else {"step": self.step}
        return suggest(self.name, self.low, self.high, **kwargs)

    def examples(self):
        """Values that stand for the whole range in the up-front check: the ends, or every choice."""
        return self.choices if self.kind == "categorical" else (self.low, self.high)


def tunable_keys():
    return [f.name for f in dataclasses.fields(ClassifierConfig) if f.name not in NOT_TUNABLE]


def _number(name, what, value, kind):
    try:
        number = float(value)  # YAML reads 1e-4 (no dot) as a string: accept it
    except (TypeError, ValueError):
        raise UserError(f"search space key '{name}': {what} must be a number, got {value!r}") from None
    if not math.isfinite(number):  # an infinite end or step fails deep in Optuna, after the study has stored it
        raise UserError(f"search space key '{name}': {what} must be a finite number, got {value!r}")
    if kind == "int":
        if number != int(number):
            raise UserError(f"search space key '{name}' is an integer setting: {what} must be whole, got {value!r}")
        return int(number)
    return number


def parse_param(name, spec):
    """One Param from a YAML entry, or a one-line UserError that names the key."""
    if name not in tunable_keys():
        raise UserError(f"search space key '{name}' is not a tunable classifier setting (tunable: "
                        f"{', '.join(tunable_keys())})")
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        spec = spec["choices"]
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise UserError(f"search space key '{name}': give at least one choice")
        return Param(name, "categorical", choices=tuple(spec))
    if not isinstance(spec, dict) or not {"low", "high"} <= set(spec) <= RANGE_KEYS:
        raise UserError(f"search space key '{name}' takes {{low: A, high: B[, log: true][, step: S]}} or a list "
                        f"of choices, got {spec!r}")
    kind = {int: "int", float: "float"}.get(HINTS[name])
    if kind is None:
        raise UserError(f"search space key '{name}' is not numeric: give a list of choices")
    low, high = (_number(name, key, spec[key], kind) for key in ("low", "high"))
    step = None if spec.get("step") is None else _number(name, "step", spec["step"], kind)
    log = spec.get("log", False)
    if not isinstance(log, bool) or not low < high or (log and low <= 0) or (log and step) or (step is not None
                                                                                             and step <= 0):
        raise UserError(f"search space key '{name}': need low < high, log true/false (low > 0, no step with "
                        f"log) and step > 0, got {spec!r}")
    return Param(name, kind, low, high, log, step)


def parse_space(space):
    if not space:
        raise UserError("give a search space: `space:` in the YAML, e.g. lr: {low: 3.0e-4, high: 1.0e-2, log: true}")
    return tuple(parse_param(name, spec) for name, spec in space.items())
