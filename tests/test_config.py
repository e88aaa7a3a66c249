"""Config layering and validation: defaults < YAML < flags < --set, unknown keys and bad types refused."""

import dataclasses
import typing

import pytest

from gan_aug.config import build_config, parse_set_options, to_yaml
from gan_aug.errors import UserError


@dataclasses.dataclass
class Example:
    name: str
    steps: int = 10
    rate: float = 0.5
    flag: bool = False
    classes: typing.Tuple[str, ...] = ()
    path: typing.Optional[str] = None

    def validate(self):
        if self.steps < 1:
            raise UserError("steps must be >= 1")


def test_layers_override_in_order(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: yaml\nsteps: 20\nrate: 0.1\n")
    config = build_config(Example, cfg, {"steps": 30, "flag": False}, ["rate=0.25", "classes=mel,df"])
    assert config == Example(name="yaml", steps=30, rate=0.25, flag=False, classes=("mel", "df"))


def test_types_are_coerced_and_checked():
    assert build_config(Example, None, {"name": "x"}, ["flag=yes", "steps=4.0"]).steps == 4
    for bad, message in (("steps=4.5", "integer"), ("flag=maybe", "true or false"), ("rate=fast", "finite number")):
        with pytest.raises(UserError, match=message):
            build_config(Example, None, {"name": "x"}, [bad])


def test_non_finite_and_huge_numbers_are_one_line_errors(tmp_path):
    for bad, message in (("steps=.inf", "integer"), ("rate=.nan", "finite number"), ("rate=-.inf", "finite number"),
                         (f"steps={2 ** 64 + 1}", "must be within"), ("steps=1e400", "integer")):
        with pytest.raises(UserError, match=message):
            build_config(Example, None, {"name": "x"}, [bad])


def test_a_yaml_alias_bomb_is_refused_in_one_short_line(tmp_path):
    bomb = tmp_path / "bomb.yaml"  # the classic: nine levels of ten aliases each, 10^9 strings once expanded
    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f'{chr(98 + i)}: &{chr(98 + i)} [{", ".join(["*" + chr(97 + i)] * 10)}]' for i in range(8)]
    bomb.write_text("\n".join(levels) + "\nclasses: *i\n")
    assert bomb.stat().st_size < 500
    with pytest.raises(UserError, match="expands to over 100,000 values") as refused:
        build_config(Example, bomb, {"name": "x"})
    assert len(str(refused.value)) < 200
    few = tmp_path / "few.yaml"
    few.write_text('a: &a "mel"\nname: *a\n')  # a handful of aliases stays legal YAML
    with pytest.raises(UserError, match="unknown config key 'a'"):
        build_config(Example, few)
    huge = [str(i) for i in range(5000)]  # a message that quoted the value would run to 25 KB
    with pytest.raises(UserError, match="must be a string") as refused:
        build_config(Example, None, {"name": "x"}, ["path=" + "[" + ",".join(huge) + "]"])
    assert len(str(refused.value)) < 200


def test_unknown_and_missing_keys():
    with pytest.raises(UserError, match="unknown config key 'stpes'"):
        build_config(Example, None, {"name": "x"}, ["stpes=3"])
    with pytest.raises(UserError, match="missing required setting"):
        build_config(Example, None, {}, [])


def test_validate_runs_and_yaml_round_trips(tmp_path):
    with pytest.raises(UserError, match="steps must be"):
        build_config(Example, None, {"name": "x", "steps": 0})
    config = build_config(Example, None, {"name": "x", "classes": "a,b"})
    path = tmp_path / "resolved.yaml"
    path.write_text(to_yaml(config))
    assert build_config(Example, path) == config


def test_set_values_parse_as_yaml_scalars():
    assert parse_set_options(["a=1", "b=0.5", "c=true", "d=text", "e="]) == {
        "a": 1, "b": 0.5, "c": True, "d": "text", "e": None}


STAGE_CONFIG_MODULES = ("gan_aug.data.config", "gan_aug.gan.config", "classifier.config", "gan_aug.synth.config",
                        "gan_aug.metrics.config", "gan_aug.compare.config", "gan_aug.tune.config",
                        "gan_aug.audit.config", "gan_aug.app.config")


def test_every_stage_config_is_frozen_once_validated():
    import importlib

    from gan_aug.config import StageConfig

    stage_configs = [value for name in STAGE_CONFIG_MODULES for value in vars(importlib.import_module(name)).values()
                     if dataclasses.is_dataclass(value) and isinstance(value, type) and hasattr(value, "validate")]
    assert len(stage_configs) >= 11
    assert [c.__name__ for c in stage_configs if not issubclass(c, StageConfig)] == []


def test_a_validated_config_cannot_be_assigned_and_replaced_makes_a_new_validated_one(tmp_path):
    from classifier.config import ClassifierConfig
    from gan_aug.config import replaced

    config = build_config(ClassifierConfig, None, {"data": "d.npz", "out": str(tmp_path), "epochs": 3})
    with pytest.raises(dataclasses.FrozenInstanceError, match="replaced"):
        config.epochs = 0  # would skip validate's epochs >= 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, "world_size", 4)
    longer = replaced(config, epochs=5)
    assert (config.epochs, longer.epochs) == (3, 5) and longer.data == config.data
    with pytest.raises(dataclasses.FrozenInstanceError):
        longer.epochs = 6
    with pytest.raises(UserError):
        replaced(config, epochs=0)  # a new config is validated like a built one
