#!/usr/bin/env bash
# Experiment: the io_uring engine against the epoll engine and the strongest peers of the
# peer harness, in the same interleaved rounds, with the same client, pinning and phases:
# this is experiments/peers.sh with SERVERS narrowed to c10m-epoll, c10m-uring and the peers
# that tie for first place at 100 x 8 (docs/FINDINGS.md section 6): Tokio, echo_peer,
# libuv, Asio. Phases and knobs are peers.sh's (peak, latency, idle, profile, report; ROUNDS,
# SECS, RATE, CLIENT, ...); run one or two phases per call, with the box to itself:
#   bash experiments/uring_compare.sh peak                 # ~5 minutes with the defaults
#   bash experiments/uring_compare.sh latency idle         # ~5 minutes
#   bash experiments/uring_compare.sh profile report       # ~2 minutes
#   SERVERS="c10m-epoll c10m-uring tokio" bash experiments/uring_compare.sh peak report
# The profile phase counts io_uring_enter next to epoll_wait/read/write (perf stat
# tracepoints) and records `perf record -e cpu-clock -g` per server. Results (its own, apart
# from peers.sh's): results/uring_compare/<phase>/, results/uring_compare.{json,md,png} (the
# "c10m uring vs best peer" line included). Ports 21001-21008 (this experiment's range).
set -euo pipefail
cd "$(dirname "$0")/.."
export SERVERS=${SERVERS:-"c10m-epoll c10m-uring tokio echo_peer libuv asio"}
export OUT=${OUT:-results/uring_compare} PORT_BASE=${PORT_BASE:-21001}
exec bash experiments/peers.sh "$@"
