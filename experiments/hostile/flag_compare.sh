#!/usr/bin/env bash
# One server flag set against another under the same attack: interleaved rounds of
# hostile.py at 100,000 connections (FINDINGS 11.1's command), the order reversed every
# other round, and the kernel's TCP memory-pressure counters (nstat) around every run.
# Prints one line per run; JSON and PNG per run in $OUT/{a,b}-rROUND/, nstat in $OUT/*.nstat.
#   ROUNDS=2 ATTACKS=slow-readers A_FLAGS="" B_FLAGS="--sndbuf 16KiB" \
#     bash experiments/hostile/flag_compare.sh
# Bounded by: ROUNDS x attacks x 2 runs of ~100 s. Root (hostile.py's sysctls); the box to itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-2}
ATTACKS=${ATTACKS:-slow-readers}
A_FLAGS=${A_FLAGS:-}
B_FLAGS=${B_FLAGS:---sndbuf 16KiB}
OUT=${OUT:-results/hostile-flags}
mkdir -p "$OUT"
run() {  # attack, a|b, round
  local flags=$A_FLAGS
  [ "$2" = b ] && flags=$B_FLAGS
  nstat -n >/dev/null
  experiments/hostile/hostile.py "$1" --conns 100000 --attack 30 --fleet-rate 25000 \
    --server-flags "$flags" --out "$OUT/$2-r$3" >"$OUT/$2-r$3-$1.log" 2>&1 ||
    echo "hostile.py $1 ($2) failed" >&2
  nstat 2>/dev/null | grep -E "TCPMemoryPressures|PruneCalled|RcvPruned|TCPRcvQDrop|RetransSegs" \
    >"$OUT/$2-r$3-$1.nstat" || true
  echo "$1 [$flags] round $3: $(tail -n 1 "$OUT/$2-r$3-$1.log" | sed 's/.*good p99/good p99/')" \
    "| $(tr -s ' ' <"$OUT/$2-r$3-$1.nstat" | cut -d' ' -f1,2 | tr '\n' ' ')"
}
for r in $(seq "$ROUNDS"); do
  for a in $ATTACKS; do
    if [ $((r % 2)) = 1 ]; then run "$a" a "$r"; run "$a" b "$r"
    else run "$a" b "$r"; run "$a" a "$r"; fi
  done
done
