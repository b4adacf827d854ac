#!/usr/bin/env bash
# Does a shorter scheduler slice for the server shorten the good clients' p99 under attack?
# Interleaved rounds of hostile.py at 100,000 connections (FINDINGS 11.1's command), each
# attack once with the kernel's default EEVDF slice and once with SLICE_NS on every server
# thread (sched_slice.py), the order reversed every other round. Prints hostile.py's summary
# line per run; JSON and PNG per run in $OUT-{default,slice}-rROUND/.
#   ROUNDS=2 ATTACKS="rst garbage" SLICE_NS=100000 bash experiments/hostile/slice_compare.sh
# Bounded by: ROUNDS x attacks x 2 runs of ~100 s. Root (hostile.py's sysctls); the box to itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-2}
ATTACKS=${ATTACKS:-"rst garbage"}
SLICE_NS=${SLICE_NS:-100000}
OUT=${OUT:-results/hostile-slice}
run() {  # attack, default|slice, round
  local sp=
  if [ "$2" = slice ]; then
    experiments/hostile/sched_slice.py "$SLICE_NS" 200 &
    sp=$!
  fi
  experiments/hostile/hostile.py "$1" --conns 100000 --attack 30 --fleet-rate 25000 \
    --out "$OUT-$2-r$3" >"$OUT-$2-r$3-$1.log" 2>&1 || echo "hostile.py $1 failed" >&2
  [ -n "$sp" ] && { kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null || true; }
  echo "$1 $2 round $3: $(tail -n 1 "$OUT-$2-r$3-$1.log" | sed 's/.*good p99/good p99/')"
}
mkdir -p "$(dirname "$OUT")"
for r in $(seq "$ROUNDS"); do
  for a in $ATTACKS; do
    if [ $((r % 2)) = 1 ]; then run "$a" default "$r"; run "$a" slice "$r"
    else run "$a" slice "$r"; run "$a" default "$r"; fi
  done
done
