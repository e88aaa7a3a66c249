#!/usr/bin/env bash
# Round 10 re-run from its committed config (configs/experiments/compare_ham64_round10.yaml) in one device call,
# for its bundle (issue #38) and its missing twin (issue #40): prepare HAM10000 at 64 px (stop unless the
# fingerprint is round 10's), train the judge (oversample, seed 0) and the teachers t100-t102; then the GAN (the
# config's recipe: stylegan_lite64 half width, class-balanced, seed 25, 300 kimg, best.pt = lowest FD to the train
# split in the judge's features every 20 kimg) beside the control runs (oversample+kd and the twin oversample,
# seeds 110-119); then the set (5,000 each of akiec, df, vasc, truncation 1), the mix:0.3 runs, the report, the
# set's scores and generator checks, and the bundle. Everything resumes: a second call with the same WORK, while
# the machine is still warm, goes on where a first one ran out of time.
# Usage, from the repository root:  bash tools/gpu_round10.sh [OUT_DIR]     (default: $OUT, else gpu_round10_out)
# Results in OUT_DIR: timeline.log, report.md, round10.tgz (report, results.csv, the GAN's FD history, scores,
# checks, logs; no weights, no images) and bundle.tar.part-* (the bundle, external predictions left out, in
# parts of 15 MiB; `cat bundle.tar.part-* | tar xf -` rebuilds it).
# On the lent GPU machine, which lacks torch-fidelity and cannot see ../shared, carry what tools/gpu_pilot64.sh's
# header says (.whl and .gpu_data) and run, with timeout_s 600:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site &&
#   for z in .gpu_data/*.zip; do python3 -m zipfile -e $z .gpu_work/data; done && HAM_ROOT=.gpu_work/data/ham10000
#   ISIC_ROOT=.gpu_work/data/isic2018_test_dev FINGERPRINT=f7c544810d6b1d61e1a7507aa35b13a66ae1d08a25070f6bd9c5ccb9321d2081
#   bash tools/gpu_round10.sh $OUT
# Knobs (environment), the config's values by default; a CPU dry run shrinks them (SIZE=32 KIMG=0.2
# METRICS_KIMG=0.1 SYN_PER_CLASS=100 EPOCHS=1 SEEDS="[110]" SHARDS=2 THREADS=1):
#   HAM_ROOT, ISIC_ROOT, FINGERPRINT, SIZE, KIMG, METRICS_KIMG, SYN_PER_CLASS, EPOCHS, SEEDS, SHARDS, THREADS,
#   DEADLINE (seconds from the start by which everything, the archive included, is done), PY, WORK
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_round10_out}}"
WORK="${WORK:-.gpu_work}"
HAM_ROOT="${HAM_ROOT:-../shared/data/ham10000}"
ISIC_ROOT="${ISIC_ROOT:-../shared/data/isic2018_test_dev}"
SIZE="${SIZE:-64}"
KIMG="${KIMG:-300}"
METRICS_KIMG="${METRICS_KIMG:-20}"
SYN_PER_CLASS="${SYN_PER_CLASS:-5000}"
EPOCHS="${EPOCHS:-10}"
SHARDS="${SHARDS:-6}"
THREADS="${THREADS:-2}"
DEADLINE="${DEADLINE:-570}"
CONFIG=configs/experiments/compare_ham64_round10.yaml
export PYTHONUNBUFFERED=1
GA=("${PY:-python3}" -m gan_aug)
R10="$WORK/round10"
mkdir -p "$OUT_DIR" "$WORK/logs"
# shellcheck source=tools/gpu_lib.sh
source tools/gpu_lib.sh

archive() {  # what came of the round, small: no weights, no images; the bundle in parts the device can return
  cp "$R10/report.md" "$OUT_DIR/report.md" 2>/dev/null
  (cd "$WORK" && find . -type f -not -path './data/*' -not -path '*/tb/*' -not -path './bundle/*' \
      \( -name '*.md' -o -name '*.csv' -o -name '*.json' -o -name '*.jsonl' -o -name '*.yaml' -o -name '*.log' \) \
      | tar czf - -T -) > "$OUT_DIR/round10.tgz"
  if [ -f "$WORK/bundle/MANIFEST.json" ]; then
    tar cf - -C "$WORK" bundle | split -b 15M -d - "$OUT_DIR/bundle.tar.part-"
  fi
  log "archive: $(du -ch "$OUT_DIR"/round10.tgz "$OUT_DIR"/bundle.tar.part-* 2>/dev/null | tail -1 | cut -f1)"
}
trap archive EXIT

done_mark() { [ -e "$WORK/$1.done" ]; }
once() {  # NAME COMMAND...: a step that finished in an earlier call is not run again
  local name=$1
  shift
  done_mark "$name" || { "$@" && touch "$WORK/$name.done"; }
}

once prepare prepare_checked "$SIZE"

log "judge and teachers"
for seed in 100 101 102; do
  once "t$seed" classifier "teachers/t$seed" "$seed" &
done
once judge classifier judge_oversample 0 || { log "judge failed"; exit 1; }
wait
for seed in 100 101 102; do done_mark "t$seed" || { log "teacher t$seed failed"; exit 1; }; done

compare() {  # NAME [--set ...]: the config's compare in $SHARDS processes side by side (each resumes its runs)
  local name=$1
  shift
  local args=("${GA[@]}" compare --config "$CONFIG" --data "$WORK/ham.npz" --out "$R10"
    --set "teachers=[$WORK/teachers/t100, $WORK/teachers/t101, $WORK/teachers/t102]"
    --set "external=[isic2018dev=isic-csv:$ISIC_ROOT]" --set epochs="$EPOCHS" --set threads="$THREADS" "$@")
  [ -n "${SEEDS:-}" ] && args+=(--set "seeds=$SEEDS")
  for k in $(seq 1 "$SHARDS"); do
    timeout -s KILL $(($(left) - 30)) "${args[@]}" --shard "$k/$SHARDS" > "$WORK/logs/compare_${name}_$k.log" 2>&1 &
  done
  wait
}

log "GAN (seed 25, $KIMG kimg) beside the controls and the twins, $(left)s left"
gan() {  # the config's recipe; a run an earlier call's deadline cut resumes from its last checkpoint
  local resume=()
  [ -f "$WORK/gan/latest.pt" ] && resume=(--resume)
  timeout -s TERM $(($(left) - 60)) "${GA[@]}" train-gan --data "$WORK/ham.npz" --out "$WORK/gan" \
    --config configs/presets/stylegan_lite64.yaml --set balanced_classes=true --set g_channels=32 --set d_channels=32 \
    --set kimg="$KIMG" --set metrics_every="$METRICS_KIMG" --set ckpt_every="$METRICS_KIMG" \
    --set snapshot_every="$METRICS_KIMG" --set metrics_features="lesion:$WORK/judge_oversample/best.pt" \
    --set threads="$THREADS" --seed 25 "${resume[@]}" > "$WORK/logs/gan.log" 2>&1
  local status=$?
  log "GAN: exit $status ($(tail -c 300 "$WORK/logs/gan.log" | tr '\r' '\n' | grep . | tail -1))"
  return $status
}
once gan gan &
compare controls --set "arms=[oversample+kd, oversample]"
wait
done_mark gan || { log "the GAN has not finished: call again with the same WORK"; exit 1; }

SYN="$WORK/syn_round10.npz"
synthesize() {
  "${GA[@]}" synthesize --checkpoint "$WORK/gan/best.pt" --class akiec,df,vasc \
    --distribution "akiec=$SYN_PER_CLASS,df=$SYN_PER_CLASS,vasc=$SYN_PER_CLASS" -n $((SYN_PER_CLASS * 3)) \
    --truncation 1 --threads "$THREADS" --format npz --out "$SYN" --force > "$WORK/logs/synthesize.log" 2>&1
}
once synthesize synthesize || { log "synthesize failed"; exit 1; }

log "mix:0.3 runs, the set's scores and checks, $(left)s left"
mkdir -p "$WORK/scores"
score() {
  "${GA[@]}" score --data "$WORK/ham.npz" --synthetic "$SYN" --features "lesion:$WORK/judge_oversample/best.pt" \
    --cas-epochs 1 --embed-per-source 0 --threads "$THREADS" --out "$WORK/scores/scores.json" --force \
    > "$WORK/logs/score.log" 2>&1
}
checks() {
  "${GA[@]}" analyze generator-checks "$WORK/gan/best.pt" --judge "$WORK/judge_oversample" --data "$WORK/ham.npz" \
    --out "$WORK/checks.json" > "$WORK/checks.md" 2> "$WORK/logs/checks.log"
}
once scores score &
once checks checks &
compare round --set "synthetic=$SYN"
wait
log "round: $(grep -c . "$R10/results.csv" 2>/dev/null) lines in results.csv"

"${GA[@]}" bundle "$R10" --out "$WORK/bundle" --no-external-predictions --force > "$WORK/logs/bundle.log" 2>&1 \
  && log "bundle: $(du -sh "$WORK/bundle" | cut -f1)" || log "bundle failed: $(tail -1 "$WORK/logs/bundle.log")"
