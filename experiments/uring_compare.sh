#!/usr/bin/env bash
# Experiment: the io_uring engine against the epoll engine and a peer server, same load
# client, interleaved rounds (see experiments/uring_compare.py for every phase and knob).
# Run each phase under /work/tools/quiet on a shared box; each ends within a few minutes:
#   bash experiments/uring_compare.sh peak          # frames/s and CPU/frame, 100x8 and 10k x1
#   bash experiments/uring_compare.sh syscalls      # syscalls and context switches per frame
#   bash experiments/uring_compare.sh latency       # open model p50/p99/p99.9 at RATE
#   bash experiments/uring_compare.sh idle          # RSS per idle connection, 19,000 conns
#   bash experiments/uring_compare.sh profile       # perf record -e cpu-clock -g per server
#   bash experiments/uring_compare.sh report        # results/uring_compare.{json,md,png}
# Env: ROUNDS (3), SECS (4), SERVER_THREADS (1), CLIENT_THREADS (1), PIN (1), SERVERS
#      ("epoll uring peer"), PEER_CMD / PEER_NAME (default bench/peers/echo_peer), RATE
#      (20000), LAT_CONNS (1000), IDLE_CONNS (19000), CLIENT (load client binary).
# Raw JSON per run: results/uring_compare/<phase>/; no system setting is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
rel=build/release
if [ ! -x $rel/apps/c10m-server ] || [ ! -x $rel/apps/c10m-loadclient ] ||
  [ ! -x $rel/bench/peers/echo_peer ]; then
  bash scripts/setup.sh
  cmake --preset release >/dev/null
  cmake --build --preset release -j2 --target c10m-server c10m-loadclient echo_peer >/dev/null
fi
exec python3 experiments/uring_compare.py "$@"
