#!/usr/bin/env bash
# Issue #24's 64 px pilot in one device call (about 9 minutes on one H200): prepare HAM10000 at 64 px, train the
# judge (the classifier whose features pick each GAN's snapshot) and five distillation teachers, train the
# generators of configs/experiments/pilot_ham64_gpu.yaml side by side for at most GAN_BOX seconds each, check them
# (`gan-aug analyze generator-checks`: judge acceptance, spread), synthesize their sets, score the sets (gan-aug score)
# and run the compare config, all under one deadline so that what finished always comes back.
# Usage, from the repository root:  bash tools/gpu_pilot64.sh [OUT_DIR]     (default: $OUT, else gpu_pilot_out)
# Results: OUT_DIR/timeline.log, OUT_DIR/report.md and OUT_DIR/pilot.tgz (reports, results.csv, predictions, FD
# histories, checks, scores, logs, each GAN's last grid; no weights and no image sets). The rest stays in WORK.
# On the lent GPU machine, which has torch but not torch-fidelity and cannot see ../shared: first, here,
#   pip download --no-deps --only-binary=:all: -d .whl torch-fidelity==0.4.0
#   mkdir .gpu_data && (cd ../shared/data && zip -0 -qr ../../main/.gpu_data/ham10000.zip ham10000 \
#       && zip -0 -qr ../../main/.gpu_data/isic2018_test_dev.zip isic2018_test_dev)      # both in .git/info/exclude
# then run, carrying [".whl", ".gpu_data"], with timeout_s 600:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site &&
#   for z in .gpu_data/*.zip; do python3 -m zipfile -e $z .gpu_work/data; done && HAM_ROOT=.gpu_work/data/ham10000
#   ISIC_ROOT=.gpu_work/data/isic2018_test_dev FINGERPRINT=f7c544810d6b1d61e1a7507aa35b13a66ae1d08a25070f6bd9c5ccb9321d2081
#   bash tools/gpu_pilot64.sh $OUT
# Knobs (environment), defaults for the GPU run; a CPU dry run shrinks them (SIZE=32 GAN_BOX=240 KIMG_DCGAN=1
# KIMG_STYLEGAN=0.2 METRICS_KIMG=0.1 SYN_PER_CLASS=200 EPOCHS=1 SEEDS="[70]" SHARDS=2 THREADS=1 DEADLINE=2400):
#   HAM_ROOT, ISIC_ROOT    the JPEG datasets (default ../shared/data/...)
#   FINGERPRINT            stop unless the prepared set has this fingerprint (the CPU machine's, so that runs
#                          made here and there share one split)
#   SIZE, GAN_BOX, KIMG_DCGAN, KIMG_STYLEGAN, METRICS_KIMG, SYN_PER_CLASS, EPOCHS, SEEDS, SHARDS, THREADS,
#   DEADLINE (seconds from the start by which everything, the archive included, is done), PY, WORK
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_pilot_out}}"
WORK="${WORK:-.gpu_work}"
HAM_ROOT="${HAM_ROOT:-../shared/data/ham10000}"
ISIC_ROOT="${ISIC_ROOT:-../shared/data/isic2018_test_dev}"
SIZE="${SIZE:-64}"
GAN_BOX="${GAN_BOX:-200}"
KIMG_DCGAN="${KIMG_DCGAN:-400}"
KIMG_STYLEGAN="${KIMG_STYLEGAN:-300}"
METRICS_KIMG="${METRICS_KIMG:-20}"
SYN_PER_CLASS="${SYN_PER_CLASS:-5000}"
EPOCHS="${EPOCHS:-10}"
SHARDS="${SHARDS:-7}"
# CPU threads of each process: a dozen processes share the cores, and torch's default (all of them, each)
# oversubscribes them many times over (on 2 cores, 6 classifiers at 2 threads each ran 30x slower per batch)
THREADS="${THREADS:-2}"
DEADLINE="${DEADLINE:-560}"
PER_CLASS=(akiec df vasc)
TEACHER_SEEDS=(100 101 102 103 104)
export PYTHONUNBUFFERED=1
GA=("${PY:-python3}" -m gan_aug)
mkdir -p "$OUT_DIR" "$WORK/logs"
# shellcheck source=tools/gpu_lib.sh
source tools/gpu_lib.sh

archive() {  # reports, tables, predictions, logs, FD histories and each GAN's last grid; no weights, no image sets
  cp "$WORK/pilot/report.md" "$OUT_DIR/report.md" 2>/dev/null
  (cd "$WORK" && { find . -type f -not -path '*/tb/*' \( -name '*.md' -o -name '*.csv' -o -name '*.json' \
      -o -name '*.jsonl' -o -name '*.yaml' -o -name '*.log' -o -name '*_predictions.npz' \) -print
    find pilot scores_* -maxdepth 1 -name '*.png' 2>/dev/null
    for run in gan_*; do ls "$run"/samples/*.png 2>/dev/null | tail -n 1; done; } | tar czf - -T -) > "$OUT_DIR/pilot.tgz"
  log "archive: $(du -h "$OUT_DIR/pilot.tgz" | cut -f1)"
}
trap archive EXIT

prepare_checked "$SIZE"

log "judge and teachers"
for seed in "${TEACHER_SEEDS[@]}"; do classifier "teachers/t$seed" "$seed" & done
classifier judge 0 || { log "judge failed"; tail -5 "$WORK/logs/judge.log"; exit 1; }
log "judge done: $(grep -io 'best val bma[^,]*' "$WORK/logs/judge.log" | tail -1)"

gan() {  # NAME CONFIG KIMG [ARGS]: one generator, best.pt = lowest FD to the train split in the judge's features
  local name=$1 config=$2 kimg=$3
  shift 3
  timeout -s KILL "$GAN_BOX" "${GA[@]}" train-gan --data "$WORK/ham.npz" --out "$WORK/gan_$name" --config "$config" \
    --set kimg="$kimg" --set metrics_every="$METRICS_KIMG" --set ckpt_every="$METRICS_KIMG" --set snapshot_every="$METRICS_KIMG" \
    --set metrics_features="lesion:$WORK/judge/best.pt" --set threads="$THREADS" --force "$@" > "$WORK/logs/gan_$name.log" 2>&1
  log "gan_$name: exit $? ($(ls "$WORK/gan_$name"/best.pt 2>/dev/null || echo 'no best.pt'))"
}
log "generators, at most ${GAN_BOX}s each"
gan cond configs/presets/stylegan_lite64.yaml "$KIMG_STYLEGAN" --set balanced_classes=true &
for c in "${PER_CLASS[@]}"; do
  gan "pcdc_$c" configs/presets/dcgan32.yaml "$KIMG_DCGAN" --class "$c" --set mbstd_group=4 &
  gan "pcsg_$c" configs/presets/stylegan_lite64.yaml "$KIMG_STYLEGAN" --class "$c" --set mbstd_group=4 &
done
wait
log "generators done"

per_class() {  # PREFIX: the --checkpoint and --distribution arguments of one per-class set
  local dist=""
  for c in "${PER_CLASS[@]}"; do
    echo "--checkpoint" "$WORK/gan_$1_$c/best.pt"
    dist="$dist,$c=$SYN_PER_CLASS"
  done
  echo "--distribution" "${dist#,}"
}
synth() {  # SET ARGS: one synthetic set (npz)
  local name=$1
  shift
  "${GA[@]}" synthesize "$@" --threads "$THREADS" --format npz --out "$WORK/syn_$name.npz" --force > "$WORK/logs/syn_$name.log" 2>&1
  log "syn_$name: exit $?"
}
log "sets and checks"
synth cond --checkpoint "$WORK/gan_cond/best.pt" -n $((SYN_PER_CLASS * 7)) &
# shellcheck disable=SC2046
synth pcdc $(per_class pcdc) -n $((SYN_PER_CLASS * ${#PER_CLASS[@]})) &
# shellcheck disable=SC2046
synth pcsg $(per_class pcsg) -n $((SYN_PER_CLASS * ${#PER_CLASS[@]})) &
"${GA[@]}" analyze generator-checks --judge "$WORK/judge" --data "$WORK/ham.npz" --out "$WORK/checks.json" \
  "$WORK"/gan_*/best.pt > "$WORK/checks.md" 2> "$WORK/logs/checks.log"
log "checks: exit $?"
wait

log "compare in $SHARDS shards and scores, $(left)s left"
sets="[cond=$WORK/syn_cond.npz, pcdc=$WORK/syn_pcdc.npz, pcsg=$WORK/syn_pcsg.npz]"
teachers="[$(for s in "${TEACHER_SEEDS[@]}"; do printf '%s/teachers/t%s, ' "$WORK" "$s"; done | sed 's/, $//')]"
# An arm whose set could not be made (its GAN left no best.pt in the box) is dropped, not the whole compare.
arms=$("${PY:-python3}" - "$WORK" <<'EOF'
import pathlib, sys, yaml
arms = yaml.safe_load(open("configs/experiments/pilot_ham64_gpu.yaml"))["arms"]
from gan_aug.compare.arms import synthetic_set_name
made = [a for a in arms if not (name := synthetic_set_name(a)) or (pathlib.Path(sys.argv[1]) / f"syn_{name}.npz").exists()]
print("[" + ", ".join(made) + "]")
EOF
)
log "arms: $arms"
compare=("${GA[@]}" compare --config configs/experiments/pilot_ham64_gpu.yaml --data "$WORK/ham.npz" --out "$WORK/pilot"
  --set "arms=$arms" --set "synthetic_sets=$sets" --set "teachers=$teachers"
  --set "external=[isic2018dev=isic-csv:$ISIC_ROOT]" --set epochs="$EPOCHS" --set threads="$THREADS")
[ -n "${SEEDS:-}" ] && compare+=(--set "seeds=$SEEDS")
for k in $(seq 1 "$SHARDS"); do
  timeout -s KILL $(($(left) - 25)) "${compare[@]}" --shard "$k/$SHARDS" > "$WORK/logs/compare_$k.log" 2>&1 &
done
for name in cond pcdc pcsg; do
  [ -f "$WORK/syn_$name.npz" ] || continue
  mkdir -p "$WORK/scores_$name"
  timeout -s KILL $(($(left) - 25)) "${GA[@]}" score --data "$WORK/ham.npz" --synthetic "$WORK/syn_$name.npz" \
    --features "lesion:$WORK/judge/best.pt" --cas-epochs 1 --embed-per-source 0 --threads "$THREADS" --out "$WORK/scores_$name/scores.json" \
    --force > "$WORK/logs/score_$name.log" 2>&1 &
done
wait
log "compare and scores done: $(grep -c . "$WORK/pilot/results.csv" 2>/dev/null) lines in results.csv"
