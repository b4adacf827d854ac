#!/usr/bin/env bash
# Does the server's CPU stop running when the good clients' round trips spike? (FINDINGS
# 11.1.3) cpu-clock samples of CPU 0 (idle included) against a 5 ms PING probe:
#   1. control: a busy loop on each CPU, no network; CPU 0 sampled for 15 s;
#   2. ATTACK (default slowloris) as in 11.1.3, with the probe on CPU 1 (SCHED_FIFO, as the
#      good clients); CPU 0 sampled for 8 s of hostile.py's baseline phase and for 25 s of
#      the attack; /proc/softirqs, the guest's free page reporting and
#      CPU 0's page faults alongside.
# Prints probes.py's `starved` for both and `align` for the attack; raw files in $OUT.
# SLEEPER=1: also a SCHED_FIFO 1 ms sleeper (probes.py sleep) on CPU 0 during the attack.
#   bash experiments/hostile/starved_cpu.sh
# Bounded by: ~2 minutes. Root (perf, chrt, hostile.py's sysctls); the box to itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ATTACK=${ATTACK:-slowloris}
FLAGS=${FLAGS:---accept-rate 2000 --notsent-lowat 16KiB}
OUT=${OUT:-results/hostile-starved}
mkdir -p "$OUT"
probes=experiments/hostile/probes.py
# cpu-clock at perf's default 4 kHz, and every page fault (recorded as it happens, so it
# shows whether the CPU runs while its timer samples are missing).
EVENTS="-e cpu-clock/period=250000/,page-faults/period=1/"

echo "== control: both CPUs busy, no network"
taskset -c 0 timeout 18 sh -c 'while :; do :; done' &
taskset -c 1 timeout 18 sh -c 'while :; do :; done' &
sleep 1
perf record -q -C 0 -k CLOCK_MONOTONIC -o "$OUT/control.data" -- sleep 15 >/dev/null 2>&1
wait
perf script -i "$OUT/control.data" -F comm,pid,time >"$OUT/control.txt" 2>/dev/null
$probes starved "$OUT/control.txt"

echo "== $ATTACK [$FLAGS]"
experiments/hostile/hostile.py "$ATTACK" --conns 100000 --attack 30 --fleet-rate 25000 \
  --server-flags "$FLAGS" --out "$OUT" >"$OUT/hostile.log" 2>&1 &
$probes softirq 58 "$OUT/softirq.txt" &
taskset -c 1 $probes reporting 58 "$OUT/reporting.txt" &
(sleep 3 && perf record -q $EVENTS -C 0 -k CLOCK_MONOTONIC -o "$OUT/baseline.data" -- sleep 8 \
  >/dev/null 2>&1 && sleep 5 &&
  perf record -q $EVENTS -C 0 -k CLOCK_MONOTONIC -o "$OUT/attack.data" -- sleep 25 >/dev/null 2>&1) &
if [ "${SLEEPER:-0}" = 1 ]; then
  (sleep 16 && taskset -c 0 chrt -f 50 $probes sleep 25 >"$OUT/sleeper.txt") &
fi
taskset -c 1 chrt -f 10 $probes ping 23000 56 "$OUT/ping.txt"
wait
tail -n 1 "$OUT/hostile.log"
for phase in baseline attack; do
  echo "-- $phase"
  perf script -i "$OUT/$phase.data" -F comm,pid,time,event >"$OUT/$phase.txt" 2>/dev/null
  $probes starved "$OUT/$phase.txt" "$OUT/ping.txt" "$OUT/reporting.txt"
done
$probes align "$OUT/ping.txt" "$OUT/softirq.txt"
if [ "${SLEEPER:-0}" = 1 ]; then echo "-- the sleeper on CPU 0"; cat "$OUT/sleeper.txt"; fi
