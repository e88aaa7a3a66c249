"""How the command line meets the configs: click options generated from a config dataclass's fields (name,
type, default, help), so a flag cannot drift from its key, and the validated config built back from them."""

import dataclasses
import typing
from pathlib import Path

import click

from gan_aug.config import build_config, read_yaml, to_yaml


def config_options(func):
    """--config, --set and --dry-run, shared by every command that builds a config."""
    func = click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")(func)
    func = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                        help="Override any config key (repeatable).")(func)
    func = click.option("--config", "config_path", type=click.Path(), help="YAML file of config keys.")(func)
    return func


CLICK_TYPES = {int: int, float: float, str: str}


def _option(field, annotation):
    """One click option from a config field: its flag, type and help come from the field itself."""
    flag, help_text = field.metadata.get("flag"), field.metadata["help"]
    decls = list(flag) if isinstance(flag, tuple) else [flag or "--" + field.name.replace("_", "-")]
    if annotation is bool:
        if field.default:  # on by default: the flag turns it off
            return click.option(f"--no-{field.name.replace('_', '-')}", field.name, flag_value=False, default=None,
                                help=f"Turn off: {help_text}")
        return click.option(*decls, field.name, flag_value=True, default=None, help=help_text)
    if typing.get_origin(annotation) is tuple:
        return click.option(*decls, field.name, multiple=True, help=help_text)
    if typing.get_origin(annotation) is typing.Union:  # Optional[X]
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    default = field.default
    shown = "" if default in (dataclasses.MISSING, None) or help_text.endswith("]") else f" [{default}]"
    return click.option(*decls, field.name, type=CLICK_TYPES[annotation], help=help_text + shown)


def options_from(cls):
    """Click options for every field of the config dataclass `cls` except those declared flag=False."""
    hints = typing.get_type_hints(cls)

    def decorate(func):
        for field in reversed(dataclasses.fields(cls)):
            if field.metadata.get("flag") is not False:
                func = _option(field, hints[field.name])(func)
        return config_options(func)
    return decorate


def build_or_print(cls, config_path, flags, sets, dry_run):
    """The command's validated config, or None after printing it for --dry-run.

    A resumed run starts from the config.yaml saved in its --out, so only what changes need be given;
    the saved `force` was that earlier invocation's action, not a setting, so it is not carried over.
    """
    saved = {}
    if flags.get("resume") and not config_path and flags.get("out"):
        saved_path = Path(flags["out"]) / "config.yaml"
        if saved_path.is_file():
            saved = {k: v for k, v in read_yaml(saved_path).items() if k != "force"}
    config = build_config(cls, config_path, flags, sets, base=saved)
    if dry_run:
        click.echo(to_yaml(config), nl=False)
        return None
    return config


def echo_notes(notices):
    """What the user should hear about but that does not stop the command, on stderr."""
    for notice in notices:
        click.echo(f"note: {notice}", err=True)


def train_generator_runs(config, train):
    """train-gan's and train-diffusion's runs: one, or with --folds K and no --fold one per fold into OUT/fold_k,
    each with its FD tracker when metrics_every is set; a line per finished run (rank 0's)."""
    from gan_aug.config import fold_runs
    from gan_aug.metrics.tracking import TrainingQuality
    from gan_aug.runtime import resolve_device

    for run in fold_runs(config):
        quality = TrainingQuality(run, resolve_device(run.device)) if run.metrics_every else None
        summary = train(run, quality=quality)
        if summary is not None:  # None: a torchrun rank other than 0
            click.echo(f"trained {summary['kimg']:.1f} kimg ({summary['step']} steps, {summary['img_per_s']:.0f} "
                       f"img/s); checkpoint {summary['checkpoint']}; browse: tensorboard --logdir "
                       f"{Path(run.out) / 'tb'}")
