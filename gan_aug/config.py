"""Config loading, shared by every stage: defaults < YAML file < command-line flags < --set key=value.

Each command's dataclass lives beside the code it configures (gan_aug/data/config.py, gan_aug/gan/config.py,
classifier/config.py, ...) and has a `validate()` method. `build_config` fills it from those layers, coerces
every value to the field's declared type, rejects unknown keys, and runs `validate()` once, so the rest of
the code can trust the object it is handed: the object is then frozen (StageConfig), and a stage that needs
other values (absolute paths, the run's world size) makes a new, validated one with `replaced`. Fields
declared with `setting(...)` carry their help text, from which the command line builds its flags: a flag's
help and default cannot drift from the config.
"""

import dataclasses
import math
import reprlib
import typing
from pathlib import Path

import yaml

from gan_aug.errors import UserError

INT_LIMIT = 2 ** 63
CONFIG_FILE_LIMIT = 1 << 20  # bytes: a config is a page of keys, never more
EXPANDED_LIMIT = 100_000  # values in a config once its YAML aliases are expanded; a real config has a few hundred
_brief = reprlib.Repr()  # attributes, not keywords: Python < 3.12 takes none
_brief.maxstring = _brief.maxother = 80
_brief.maxlist = _brief.maxtuple = _brief.maxdict = 6
_brief.maxlevel = 2


def brief(value):
    """A value as an error message shows it: short however large the value is."""
    return _brief.repr(value)


def _expanded_size(value, sizes):
    """How many values `value` holds once every shared (aliased) part is counted each time it appears; each
    distinct list or mapping is measured once, so a "billion laughs" bomb is measured in microseconds."""
    if not isinstance(value, (list, dict)):
        return 1
    if id(value) not in sizes:
        children = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
        sizes[id(value)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(value)]


def safe_load(text):
    """yaml.safe_load, refusing a document whose aliases expand it past EXPANDED_LIMIT values: 421 bytes of
    nested aliases are gigabytes to anything that walks them (coercion, an error message)."""
    try:
        data = yaml.safe_load(text)
        size = _expanded_size(data, {})
    except RecursionError:
        raise UserError("the YAML is nested too deeply to be a config") from None
    if size > EXPANDED_LIMIT:
        raise UserError(f"the YAML expands to over {EXPANDED_LIMIT:,} values through its aliases (*name): "
                        "not a config")
    return data


def _coerce(name, value, annotation):
    """Convert `value` (from YAML or a flag) to the type `annotation` names, or raise UserError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if value is None:
        raise UserError(f"config key '{name}' must not be empty")
    if origin is dict:  # a nested mapping (tune's search space), checked by its config's validate()
        if not isinstance(value, dict):
            raise UserError(f"config key '{name}' must be a mapping of key: value, got {brief(value)}")
        return dict(value)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{name}' must be a list, got {brief(value)}")
        # A repeatable flag may also take comma-separated items: --class mel,df is --class mel --class df.
        items = [part.strip() for v in value for part in v.split(",") if part.strip()] \
            if all(isinstance(v, str) for v in value) else value
        return tuple(_coerce(name, v, args[0]) for v in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"config key '{name}' must be true or false, got {brief(value)}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise UserError(f"config key '{name}' must be a number, got {brief(value)}")
        try:
            number = annotation(value)
            whole = annotation is float or isinstance(value, int) or float(value) == number
        except (TypeError, ValueError, OverflowError):  # int(inf) overflows; int('x') is a ValueError
            number, whole = None, False
        if number is None or not math.isfinite(number) or not whole:
            kind = "an integer" if annotation is int else "a finite number"
            raise UserError(f"config key '{name}' must be {kind}, got {brief(value)}")
        if annotation is int and not -INT_LIMIT <= number < INT_LIMIT:  # seeds and counts: torch takes 64 bits
            raise UserError(f"config key '{name}' must be within ±2^63, got {brief(value)}")
        return number
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"config key '{name}' must be a string, got {brief(value)}")
        return str(value)
    raise AssertionError(f"unsupported config type {annotation} for {name}")


def parse_set_options(pairs):
    """Turn ('a=1', 'b=x') into {'a': 1, 'b': 'x'}, values parsed as YAML scalars."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects key=value, got '{pair}'")
        try:
            out[key.strip()] = safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def read_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    if path.stat().st_size > CONFIG_FILE_LIMIT:
        raise UserError(f"config file {path} is over {CONFIG_FILE_LIMIT >> 20} MB: not a config")
    try:
        data = safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value")
    return data


class StageConfig:
    """The base of every stage's config dataclass: assignable while it is built and validated, frozen once
    build_config (or `replaced`) has validated it, so no later code can change what was checked, or record one
    setting and run with another."""

    def __setattr__(self, name, value):
        if self.__dict__.get("_validated"):
            raise dataclasses.FrozenInstanceError(f"cannot assign {name} of a validated {type(self).__name__}: make "
                                                  "a new one with gan_aug.config.replaced")
        object.__setattr__(self, name, value)


def _validated(config):
    config.validate()
    object.__setattr__(config, "_validated", True)
    return config


def replaced(config, **changes):
    """A new validated (and frozen) config: `config` with `changes` (dataclasses.replace, then validate)."""
    return _validated(dataclasses.replace(config, **changes))


def build_config(cls, config_path=None, flags=None, sets=(), base=None):
    """Build and validate a `cls` instance from its defaults, `base` (a dict of settings), a YAML file,
    flags and --set pairs, later layers winning.

    `flags` holds command-line values; None (or an empty tuple for repeatable flags) means "not given".
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    layers = [base or {}, read_yaml(config_path) if config_path else {}]
    layers.append({k: v for k, v in (flags or {}).items() if v is not None and v != ()})
    layers.append(parse_set_options(sets))
    values = {}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise UserError(f"unknown config key {brief(key)} (known: {known})")
            values[key] = _coerce(key, value, hints[key])
    try:
        config = cls(**values)
    except TypeError as err:  # a required field left unset
        missing = [n for n, f in fields.items() if n not in values and _is_required(f)]
        raise UserError(f"missing required setting(s): {', '.join(missing) or err}") from None
    return _validated(config)


def _is_required(field):
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def setting(default=dataclasses.MISSING, help="", flag=None):
    """A config field with its command-line help; `flag` overrides the flag's name(s) ('--class', or a
    tuple such as ('-n',)); flag=False keeps the field out of the command line (config and --set only)."""
    metadata = {"help": help, "flag": flag}
    return dataclasses.field(default=default, metadata=metadata)


def config_dict(config):
    """The config as plain YAML-able values (tuples as lists), for run directories and checkpoints."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def to_yaml(config):
    """The resolved config as YAML, for --dry-run and run directories."""
    return yaml.safe_dump(config_dict(config), sort_keys=False)


DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"


def check_device_name(device):
    """Refuse a device name torch would only reject later, deep in a run, with a traceback."""
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise UserError(f"device must be auto, cpu, cuda or cuda:N, got {device}")


def check_non_negative(config, *names):
    """One line naming the first of `names` that is negative."""
    for name in names:
        if getattr(config, name) < 0:
            raise UserError(f"{name} must be >= 0, got {getattr(config, name)}")


def check_positive(config, *names):
    for name in names:
        if not getattr(config, name) > 0:
            raise UserError(f"{name} must be > 0, got {getattr(config, name)}")


def check_choice(what, value, choices):
    if value not in choices:
        raise UserError(f"unknown {what} '{value}' (choose from {', '.join(choices)})")


FOLDS_HELP = ("Grouped k-fold CV: split train+val into K lesion-grouped, class-stratified folds (test untouched) "
              "and train one run per fold into OUT/fold_k; 0: the prepared split.")
FOLD_HELP = "With --folds: train this fold (0 to K-1) only, into --out itself."


def check_folds(config):
    """--folds K (0: off, else >= 2) and --fold k (where the config has it), which only means something with
    --folds."""
    if config.folds < 0 or config.folds == 1:
        raise UserError(f"folds must be 0 (the prepared split) or >= 2, got {config.folds}")
    fold = getattr(config, "fold", None)
    if fold is not None and not 0 <= fold < config.folds:
        raise UserError(f"--fold must be in 0..{config.folds - 1} (with --folds K), got {fold}"
                        if config.folds else "--fold needs --folds K")


def fold_runs(config):
    """The runs one command makes: itself, or with --folds K and no --fold one per fold into OUT/fold_k. Resuming
    a cross-validation resumes the folds that started (they have latest.pt) and starts the rest."""
    if not config.folds or config.fold is not None:
        return [config]
    runs = []
    for fold in range(config.folds):
        out = Path(config.out) / f"fold_{fold}"
        resume = config.resume and (out / "latest.pt").is_file()
        runs.append(dataclasses.replace(config, out=str(out), fold=fold, resume=resume))
    return runs


def check_run_settings(config):
    """What every training run's config shares: a device torch knows, a thread count, resume xor force."""
    check_device_name(config.device)
    check_non_negative(config, "threads")
    if config.resume and config.force:
        raise UserError("--resume and --force contradict each other: pick one")
