#!/usr/bin/env bash
# Memory per idle connection, per engine (make idle; FINDINGS 1): experiments/idle_conns.py
# on the harness; this name stays for the commands in the docs. Same variables:
#   N=19000 HOLD=5 ENGINES="epoll thread" bash experiments/idle_conns.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/release/apps/c10m-server ] && [ -x build/release/apps/c10m-loadclient ] || make build >/dev/null
exec /usr/bin/python3 experiments/idle_conns.py
