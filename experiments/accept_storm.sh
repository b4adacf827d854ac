#!/usr/bin/env bash
# Experiment 9 (accept strategies under a connect-and-close storm): experiments/accept_storm.py
# on the harness; this name stays for the commands in docs/FINDINGS.md. Same variables:
#   ROUNDS=3 DURATION=5 ACCEPTORS=2 bash experiments/accept_storm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/release/apps/c10m-server ] && [ -x build/release/bench/accept_storm ] || {
  cmake --preset release >/dev/null && cmake --build --preset release -j2 \
    --target c10m-server accept_storm >/dev/null; }
exec /usr/bin/python3 experiments/accept_storm.py
