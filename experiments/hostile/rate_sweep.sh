#!/usr/bin/env bash
# Where does the server's core run out? hostile.py's ATTACK (default rst; FINDINGS 11.1's
# command, 100,000 connections) with the fleet capped at several connect rates (rst:
# --rst-rate, 0: as fast as it can, as 11.1 ran it; other attacks: --fleet-rate), with the
# server flags FLAGS (default none), interleaved rounds (the order of the rates reversed
# every other round), then rate_sweep.py: per rate, the good clients' p99 against their
# baseline, the server's cores and run-queue wait, and the connects the fleet completed
# (median and range of the rounds); JSON and PNG in $OUT/.
#   ROUNDS=2 RATES="500 1000 2500 5000 0" bash experiments/hostile/rate_sweep.sh
#   ATTACK=slowloris RATES="1000 2500 5000" FLAGS="--accept-rate 2000 --notsent-lowat 16KiB" \
#     OUT=results/hostile-rate-sweep-slowloris bash experiments/hostile/rate_sweep.sh
# Bounded by: ROUNDS x rates runs of ~60-100 s each. Root (hostile.py's sysctls); the box to
# itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-2}
ATTACK=${ATTACK:-rst}
FLAGS=${FLAGS:-}
RATE_FLAG=--fleet-rate
[ "$ATTACK" = rst ] && RATE_FLAG=--rst-rate
RATES=${RATES:-"500 1000 2500 5000 0"}
OUT=${OUT:-results/hostile-rate-sweep}
mkdir -p "$OUT"
for r in $(seq "$ROUNDS"); do
  rates=$RATES
  [ $((r % 2)) = 0 ] && rates=$(echo "$RATES" | tr ' ' '\n' | tac | tr '\n' ' ')
  for rate in $rates; do
    dir="$OUT/$ATTACK-rate$rate-r$r"
    experiments/hostile/hostile.py "$ATTACK" --conns 100000 --attack 30 "$RATE_FLAG" "$rate" \
      --server-flags "$FLAGS" --out "$dir" >"$dir.log" 2>&1 ||
      echo "hostile.py $ATTACK at $rate/s failed (see $dir.log)" >&2
    echo "$ATTACK at $rate/s (rst 0: uncapped) round $r:" \
      "$(tail -n 1 "$dir.log" | sed 's/.*good p99/good p99/')"
  done
done
/usr/bin/python3 experiments/hostile/rate_sweep.py "$OUT" "$ATTACK"
