#!/usr/bin/env bash
# Which loads make CPU 0's timer samples go missing without any network (FINDINGS 11.1.3)?
# Each control runs `probes.py load KIND` for 17 s: on both CPUs (busy, duty, syscalls),
# across them (pingpong: CPU 0 <-> CPU 1), or on CPU 0 alone (touch); perf samples CPU 0
# (cpu-clock, idle included, and page faults) for 15 s of it and probes.py `starved`
# prints the missing windows. Raw files in $OUT.
#   bash experiments/hostile/starved_controls.sh
# Bounded by: ~90 s. Root (perf); the box to itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-results/hostile-starved-controls}
mkdir -p "$OUT"
probes=experiments/hostile/probes.py
for kind in busy duty syscalls pingpong touch; do
  echo "== $kind"
  taskset -c 0 $probes load "$kind" 17 &
  case $kind in busy | duty | syscalls) taskset -c 1 $probes load "$kind" 17 >/dev/null & ;; esac
  sleep 1
  perf record -q -e cpu-clock/period=250000/,page-faults/period=1/ -C 0 -k CLOCK_MONOTONIC \
    -o "$OUT/$kind.data" -- sleep 15 >/dev/null 2>&1
  wait
  perf script -i "$OUT/$kind.data" -F comm,pid,time,event >"$OUT/$kind.txt" 2>/dev/null
  $probes starved "$OUT/$kind.txt"
done
