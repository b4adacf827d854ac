#!/usr/bin/env bash
# Experiment (FINDINGS 6.2): does `--engine epoll` cost more server CPU per frame than libuv
# at the same syscall count, and why. experiments/peers.sh narrowed to c10m-epoll (this
# tree), c10m-before (BEFORE=<an older c10m-server binary>, run with --engine epoll; left out
# when BEFORE is unset) and libuv, at 100 conns x 8 in flight x 64 B only, in many
# interleaved rounds (the order rotated each round); its report prints the per-round ratios
# c10m-epoll/libuv, c10m-before/libuv and c10m-epoll/c10m-before. The profile phase counts
# each server's syscalls per frame (read, write/sendto/sendmsg, epoll_wait, epoll_ctl,
# setsockopt) and records `perf record -e cpu-clock -g` of it; the diff phase prints each pair's
# symbols side by side in ns of server CPU per frame (experiments/perf_diff.py).
#   BEFORE=build/before/c10m-server bash experiments/epoll_gap.sh   # ~5 minutes: every phase
#   bash experiments/epoll_gap.sh peak report                       # one phase or two
# Env: ROUNDS (12), SECS (3), SERVERS, BEFORE, and peers.sh's. Results: results/epoll_gap/
# (raw rounds, profile/*.perf, *.stat, diff-*.txt), results/epoll_gap.{json,md,png}.
# Ports 22001-22010 (this experiment's range).
set -euo pipefail
cd "$(dirname "$0")/.."
default_servers="c10m-epoll libuv"
[ -n "${BEFORE:-}" ] && default_servers="c10m-epoll c10m-before libuv"
export SERVERS=${SERVERS:-$default_servers} BEFORE=${BEFORE:-}
export OUT=${OUT:-results/epoll_gap} PORT_BASE=${PORT_BASE:-22001} PEAKS=${PEAKS:-100x8}
export ROUNDS=${ROUNDS:-12} SECS=${SECS:-3}
phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(peak profile report diff)
for p in "${phases[@]}"; do
  if [ "$p" = diff ]; then
    read -r -a list <<<"$SERVERS"
    for ((i = 0; i < ${#list[@]}; i++)); do
      for ((j = i + 1; j < ${#list[@]}; j++)); do
        a=${list[$i]} b=${list[$j]}
        [ -f "$OUT/profile/$a.perf" ] && [ -f "$OUT/profile/$b.perf" ] || continue
        /usr/bin/python3 experiments/perf_diff.py "$OUT/profile" "$a" "$b" | tee "$OUT/profile/diff-$a-$b.txt"
        /usr/bin/python3 experiments/perf_diff.py "$OUT/profile" "$a" "$b" --sort dso --top 8 |
          tee -a "$OUT/profile/diff-$a-$b.txt"
      done
    done
  else
    bash experiments/peers.sh "$p"
  fi
done
