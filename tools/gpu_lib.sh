# Shared by the one-call GPU experiments (tools/gpu_pilot64.sh, tools/gpu_round10.sh), sourced after they set
# OUT_DIR, WORK, HAM_ROOT, DEADLINE, EPOCHS, THREADS and GA (the gan-aug command, as an array): the timeline,
# the deadline, the prepared set with its fingerprint check, and the compare recipe's oversample classifier.
log() { echo "[$(date +%T) +${SECONDS}s] $*" | tee -a "$OUT_DIR/timeline.log"; }
left() { echo $((DEADLINE - SECONDS)); }

prepare_checked() {  # SIZE: HAM10000 into $WORK/ham.npz; stop unless its fingerprint is $FINGERPRINT (when set),
  # so that runs made here and on the CPU machine share one split
  log "prepare $1 px"
  "${GA[@]}" prepare --source ham10000 --root "$HAM_ROOT" --size "$1" --out "$WORK/ham.npz" --force \
    > "$WORK/logs/prepare.log" 2>&1 || { log "prepare failed"; tail -5 "$WORK/logs/prepare.log"; exit 1; }
  local got
  got=$(grep -o 'fingerprint *[0-9a-f]*' "$WORK/logs/prepare.log" | awk '{print $2}')
  log "fingerprint $got"
  if [ -n "${FINGERPRINT:-}" ] && [ "$got" != "$FINGERPRINT" ]; then log "fingerprint is not $FINGERPRINT: stop"; exit 1; fi
}

classifier() {  # NAME SEED: an oversample classifier of the compare recipe, selected on val
  "${GA[@]}" train-classifier --data "$WORK/ham.npz" --out "$WORK/$1" --balance oversample --epochs "$EPOCHS" \
    --seed "$2" --set ema_half_life=1 --threads "$THREADS" --force > "$WORK/logs/$(basename "$1").log" 2>&1
}
