"""On the real HAM10000 (path in GAN_AUG_HAM10000): the published class counts (Tschandl et al. 2018), no lesion in two splits."""

import os
from pathlib import Path

import numpy as np
import pytest

from gan_aug.data.prepared import load_prepared

HAM_ROOT = os.environ.get("GAN_AUG_HAM10000")
pytestmark = pytest.mark.skipif(not HAM_ROOT or not Path(HAM_ROOT).is_dir(),
                                reason="set GAN_AUG_HAM10000 to the HAM10000 folder to run")
SOURCE_COUNTS = {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142}


@pytest.mark.slow
def test_prepare_real_ham10000(run_cli, tmp_path):
    out = tmp_path / "ham16.npz"
    result = run_cli("prepare", "--source", "ham10000", "--root", HAM_ROOT, "--size", 16, "--out", out)
    assert result.exit_code == 0, result.output
    data = load_prepared(out)
    assert len(data.labels) == 10015 and data.images.shape[1:] == (16, 16, 3)
    assert dict(zip(data.class_names, data.class_counts().tolist())) == SOURCE_COUNTS
    assert len(np.unique(data.group)) == 7470
    split_of_group = {}
    for group, split in zip(data.group, data.split):
        assert split_of_group.setdefault(group, split) == split, f"lesion {group} in two splits"
    for split, share in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs((data.split == split).mean() - share) < 0.01
        assert (data.class_counts(split) > 0).all()  # every class, df included, in every split
