#!/usr/bin/env bash
# Experiment 8 (fd and port exhaustion, both sides; make exhaustion; FINDINGS 8.4):
# experiments/port_exhaustion.py on the harness; this name stays for the commands in the docs.
#   EMFILE_CONNS=20500 PORT_CONNS=30000 STORM_S=8 bash experiments/port_exhaustion.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/release/apps/c10m-server ] && [ -x build/release/apps/c10m-loadclient ] && \
  [ -x build/release/bench/accept_storm ] || {
  cmake --preset release >/dev/null && cmake --build --preset release -j2 \
    --target c10m-server c10m-loadclient accept_storm >/dev/null; }
exec /usr/bin/python3 experiments/port_exhaustion.py
