"""Config loading, shared by every stage: defaults < YAML file < command-line flags < --set key=value.

Each command's dataclass lives beside the code it configures (gan_aug/data/config.py, gan_aug/gan/config.py,
classifier/config.py, ...) and has a `validate()` method. `build_config` fills it from those layers, coerces
every value to the field's declared type, rejects unknown keys, and runs `validate()` once, so the rest of
the code can trust the object it is handed. Fields declared with `setting(...)` carry their help text, from
which the command line builds its flags: a flag's help and default cannot drift from the config.
"""

import dataclasses
import typing
from pathlib import Path

import yaml

from gan_aug.errors import UserError


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
            raise UserError(f"config key '{name}' must be a mapping of key: value, got {value!r}")
        return dict(value)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{name}' must be a list, got {value!r}")
        # A repeatable flag may also take comma-separated items: --class mel,df is --class mel --class df.
        items = [part.strip() for v in value for part in v.split(",") if part.strip()] \
            if all(isinstance(v, str) for v in value) else value
        return tuple(_coerce(name, v, args[0]) for v in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UserError(f"config key '{name}' must be true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise UserError(f"config key '{name}' must be a number, got {value!r}")
        try:
            number = annotation(value)
        except (TypeError, ValueError):
            raise UserError(f"config key '{name}' must be {annotation.__name__}, got {value!r}") from None
        if annotation is int and float(value) != number:
            raise UserError(f"config key '{name}' must be an integer, got {value!r}")
        return number
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"config key '{name}' must be a string, got {value!r}")
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
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def read_yaml(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value")
    return data


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
                raise UserError(f"unknown config key '{key}' (known: {known})")
            values[key] = _coerce(key, value, hints[key])
    try:
        config = cls(**values)
    except TypeError as err:  # a required field left unset
        missing = [n for n, f in fields.items() if n not in values and _is_required(f)]
        raise UserError(f"missing required setting(s): {', '.join(missing) or err}") from None
    config.validate()
    return config


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
