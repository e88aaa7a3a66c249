"""tools/gpu_check.sh hands its flags to tools/gpu_check.py: `bash tools/gpu_check.sh --smoke`, as the script's
own help says, checks the script on the CPU (it once took --smoke for the output folder)."""

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
