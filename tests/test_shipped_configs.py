"""Every config in configs/ builds and validates as the config of the stage it is for, so a shipped recipe
or a pre-registered round never fails on a typo'd key when someone finally runs it."""

from pathlib import Path

import pytest

from classifier.config import ClassifierConfig
from gan_aug.compare.config import CompareConfig
from gan_aug.config import build_config, read_yaml
from gan_aug.diffusion.config import DiffusionConfig
from gan_aug.gan.config import GanConfig
from gan_aug.tune.config import TuneConfig

CONFIGS = sorted((Path(__file__).parent.parent / "configs").rglob("*.yaml"))
# A key only that stage has says which one a file is for (a file's name may not: tune_ham32_untuned.yaml is
# the compare config of tune's baseline).
STAGE_BY_KEY = {"arch": GanConfig, "arms": CompareConfig, "space": TuneConfig, "label_dropout": DiffusionConfig}


def stage_of(path):
    keys = read_yaml(path)
    return next((cls for key, cls in STAGE_BY_KEY.items() if key in keys), ClassifierConfig)


def test_configs_folder_is_found():
    assert len(CONFIGS) > 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(path, tmp_path):
    # data/out are the paths a user gives on the command line; everything else comes from the file
    config = build_config(stage_of(path), path, {"data": "d.npz", "out": str(tmp_path)})
    assert config.out == str(tmp_path)
