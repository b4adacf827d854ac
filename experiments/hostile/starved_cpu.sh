#!/usr/bin/env bash
# Does the server's CPU stop running when the good clients' round trips spike? (FINDINGS
# 11.1.3) cpu-clock samples of the server's CPU (idle included; CPU 0 unless SERVER_CPU=1)
# against a 5 ms PING probe:
#   1. control: a busy loop on each CPU, no network; the server's CPU sampled for 15 s;
#   2. ATTACK (default slowloris) as in 11.1.3, with the probe on the other CPU
#      (SCHED_FIFO, as the good clients); the server's CPU sampled for 8 s of hostile.py's
#      baseline phase and for 25 s of the attack, with its page faults, context switches,
#      timer interrupts, IPIs and softirqs as they happen; TCP retransmissions (all CPUs),
#      /proc/softirqs and the guest's free page reporting alongside.
# Prints probes.py's `starved` for both and `align` for the attack; raw files in $OUT.
# SLEEPER=1: also a SCHED_FIFO 1 ms sleeper (probes.py sleep) on the server's CPU during
#   the attack.
# SERVER_CPU=1: the server on CPU 1; the fleet, the good clients and the probe on CPU 0.
# DAMON_OFF=1: stops the VM's running DAMON monitors (kdamond, sysfs) for the run; each is
#   turned on again at exit, and both changes are printed.
#   bash experiments/hostile/starved_cpu.sh
# Bounded by: ~2 minutes. Root (perf, chrt, hostile.py's sysctls); the box to itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
ATTACK=${ATTACK:-slowloris}
FLAGS=${FLAGS:---accept-rate 2000 --notsent-lowat 16KiB}
OUT=${OUT:-results/hostile-starved}
mkdir -p "$OUT"
probes=experiments/hostile/probes.py
S=${SERVER_CPU:-0}  # the server's CPU; C: everything else's
C=$((1 - S))
# cpu-clock at perf's default 4 kHz; and, recorded as they happen (so they show what the
# CPU does while its timer samples are missing): page faults, context switches, timer
# interrupts, wakeup IPIs, softirqs.
EVENTS="-e cpu-clock/period=250000/,page-faults/period=1/ -e sched:sched_switch
  -e irq_vectors:local_timer_entry -e irq_vectors:reschedule_entry
  -e irq_vectors:call_function_single_entry -e irq:softirq_entry"
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
if [ "${DAMON_OFF:-0}" = 1 ]; then
  stopped=()
  for k in /sys/kernel/mm/damon/admin/kdamonds/[0-9]*; do
    if [ "$(cat "$k/state")" = on ]; then
      echo off >"$k/state" && stopped+=("$k") && echo "damon: $k off (turned on again at exit)"
    fi
  done
  trap 'for k in "${stopped[@]}"; do echo on >"$k/state" && echo "damon: $k on"; done' EXIT
fi

echo "== control: both CPUs busy, no network"
taskset -c 0 timeout 18 sh -c 'while :; do :; done' &
taskset -c 1 timeout 18 sh -c 'while :; do :; done' &
sleep 1
perf record -q -C "$S" -k CLOCK_MONOTONIC -o "$OUT/control.data" -- sleep 15 >/dev/null 2>&1
wait
perf script -i "$OUT/control.data" -F comm,pid,time >"$OUT/control.txt" 2>/dev/null
$probes starved "$OUT/control.txt"

echo "== $ATTACK [$FLAGS]"
experiments/hostile/hostile.py "$ATTACK" --conns 100000 --attack 30 --fleet-rate 25000 \
  --server-flags "$FLAGS" --server-cpu "$S" --out "$OUT" >"$OUT/hostile.log" 2>&1 &
$probes softirq 58 "$OUT/softirq.txt" &
taskset -c $C $probes reporting 58 "$OUT/reporting.txt" &
record() {  # record PHASE SECONDS: the server's CPU
  perf record -q -m 1024 $EVENTS -C "$S" -k CLOCK_MONOTONIC -o "$OUT/$1.data" -- sleep "$2" \
    >/dev/null 2>&1
}
(sleep 3 && record baseline 8 && sleep 5 && record attack 25) &
(sleep 16 && perf record -q -e tcp:tcp_retransmit_skb -a -k CLOCK_MONOTONIC \
  -o "$OUT/retrans.data" -- sleep 25 >/dev/null 2>&1) &
if [ "${SLEEPER:-0}" = 1 ]; then
  (sleep 16 && taskset -c "$S" chrt -f 50 $probes sleep 25 >"$OUT/sleeper.txt") &
fi
taskset -c "$C" chrt -f 10 $probes ping 23000 56 "$OUT/ping.txt"
wait
tail -n 1 "$OUT/hostile.log"
perf script -i "$OUT/retrans.data" -F time,trace >"$OUT/retrans.txt" 2>/dev/null
for phase in baseline attack; do
  echo "-- $phase"
  perf script -i "$OUT/$phase.data" -F comm,pid,time,event >"$OUT/$phase.txt" 2>/dev/null
  $probes starved "$OUT/$phase.txt" "$OUT/ping.txt" "$OUT/reporting.txt" \
    "$([ $phase = attack ] && echo "$OUT/retrans.txt")"
done
$probes align "$OUT/ping.txt" "$OUT/softirq.txt"
if [ "${SLEEPER:-0}" = 1 ]; then echo "-- the sleeper on CPU $S"; cat "$OUT/sleeper.txt"; fi
