#!/usr/bin/env bash
# The prepared GPU check (issue #22): on one H100/H200, in under 8 minutes, it writes to OUT_DIR
#   nvidia-smi.txt, tests_cuda.log (the test suite's GPU tests), results.json / results.md (GAN img/s of
#   dcgan64, stylegan_lite128, stylegan_lite256; resnet50 at 224 px; a 1-GPU torchrun smoke run; the
#   HAM10000 64 px pipeline's wall time) and commands.log.
# tests/test_cuda.py alone: collecting the other test files imports packages (gradio, optuna) a GPU image may lack.
# Usage, from the repository root:  bash tools/gpu_check.sh [OUT_DIR] [--smoke] [gpu_check.py flags]
#   (OUT_DIR default: $OUT, else gpu_check_out)
set -euo pipefail
cd "$(dirname "$0")/.."
# The first argument is OUT_DIR unless it is a flag: `bash tools/gpu_check.sh --smoke` checks the script itself.
OUT_DIR="${OUT:-gpu_check_out}"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUT_DIR="$1"; shift; fi
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
if ! "$PY" -c "import gan_aug, pytest" 2>/dev/null; then
  "$PY" -m pip install -q -e '.[test]'
fi
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$OUT_DIR/nvidia-smi.txt"
if [ -d ../shared/data/ham10000 ]; then export GAN_AUG_HAM10000="$(cd ../shared/data/ham10000 && pwd)"; fi
"$PY" -m pytest -q -m cuda tests/test_cuda.py 2>&1 | tee "$OUT_DIR/tests_cuda.log" || true
"$PY" tools/gpu_check.py --out "$OUT_DIR" "$@"
