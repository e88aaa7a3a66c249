"""The prepared GPU scripts, checked on the CPU. tools/gpu_check.sh hands its flags to tools/gpu_check.py:
`bash tools/gpu_check.sh --smoke`, as the script's own help says, checks the script on the CPU (it once took
--smoke for the output folder). The one-call experiments (tools/gpu_round10.sh, tools/gpu_pilot64.sh) call only
what exists."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, passed", [
    (["--smoke"], ["--smoke"]),
    (["{tmp}/given", "--smoke", "--compile"], ["--smoke", "--compile"]),
    (["{tmp}/given"], []),
])
def test_the_script_passes_its_flags_on(args, passed, tmp_path):
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "python"  # records each call instead of running it
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "OUT": str(tmp_path / "from_env")}
    args = [a.format(tmp=tmp_path) for a in args]
    subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh"), *args], env=env, check=True, capture_output=True)
    out = args[0] if not args[0].startswith("--") else str(tmp_path / "from_env")
    assert calls.read_text().splitlines()[-1].split() == ["tools/gpu_check.py", "--out", out, *passed]
    assert (Path(out) / "nvidia-smi.txt").is_file()


@pytest.mark.parametrize("script", ["gpu_round10.sh", "gpu_pilot64.sh"])
def test_the_prepared_experiments_call_only_commands_and_options_that_exist(script, tmp_path):
    """The one-call GPU experiments run where a broken line costs the lease: every gan-aug call they make (recorded
    by a stand-in python that succeeds without running anything) must parse as a real command with real options
    (gpu_pilot64.sh once called a tools/generator_checks.py that had become `gan-aug analyze generator-checks`)."""
    from click.testing import CliRunner

    from gan_aug.cli import cli

    calls = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    # one write per call: the scripts run several processes at once, and a call's arguments must stay one line
    fake.write_text(f'#!/bin/sh\nline=""\nfor a in "$@"; do line="$line$a$(printf "\\037")"; done\n'
                    f'printf "%s\\n" "$line" >> {calls}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PY": str(fake), "WORK": str(tmp_path / "work"), "SEEDS": "[110]"}
    subprocess.run(["bash", str(ROOT / "tools" / script), str(tmp_path / "out")], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=120)
    calls = [line.split("\037")[:-1] for line in calls.read_text().splitlines()]
    scripts = [c[0] for c in calls if c[0].endswith(".py")]
    assert all((ROOT / path).is_file() for path in scripts), scripts
    commands = [c[2:] for c in calls if c[:2] == ["-m", "gan_aug"]]
    assert {c[0] for c in commands} >= {"prepare", "train-classifier", "train-gan", "synthesize", "compare"}
    for command in commands:
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, f"{script}: gan-aug {' '.join(command)}\n{result.output}"
