"""The demo pipeline end to end, shrunk to seconds (the real `make demo` is timed in BENCHMARKS.md)."""

import csv

import pytest

from gan_aug.demo import run_demo
from gan_aug.errors import UserError

pytestmark = pytest.mark.slow  # the whole demo pipeline


def test_demo_pipeline_writes_a_report(tmp_path):
    out = tmp_path / "demo"
    report = run_demo(out, gan_kimg=0.064, epochs=1, seeds=(0, 1), toy_count=300, n_synthetic=60, cas_epochs=1)
    text = report.read_text()
    for arm in ("none", "oversample", "class-weight", "focal", "mix:0.3", "topup:0.5"):
        assert f"| {arm} |" in text
    assert "## Headline" in text and "## Synthetic-set quality (demo)" in text and "CAS" in text
    with open(out / "compare" / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 6 * 2 * 2
    assert (out / "gan" / "latest.pt").is_file() and (out / "scores" / "scores.json").is_file()
    with pytest.raises(UserError, match="is not empty"):
        run_demo(out)


def test_a_bad_data_set_is_refused_before_the_demo_writes_anything(tmp_path, run_cli):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    result = run_cli("demo", "--data", bad, "--out", tmp_path / "demo_out")
    assert result.exit_code == 1 and "is not a readable prepared set" in result.output
    assert not (tmp_path / "demo_out").exists()
