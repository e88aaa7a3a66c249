#!/usr/bin/env bash
# The prepared GPU check (issues #22, #45): on one H100/H200 it writes to OUT_DIR
#   nvidia-smi.txt, tests_cuda.log (the test suite's GPU tests), results.json / results.md (img/s of dcgan64,
#   stylegan_lite128, stylegan_lite256, the 64 px diffusion UNet and stylegan_lite64; resnet50 at 224 px; a 1-GPU
#   torchrun smoke run; the HAM10000 64 px pipeline's wall time; a 64 px diffusion model and StyleGAN-lite trained
#   side by side for --minutes (4) and scored per class) and commands.log. About 15 minutes in all (estimated:
#   the side-by-side part has not run on a GPU yet).
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
