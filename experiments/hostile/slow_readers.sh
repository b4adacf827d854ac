#!/usr/bin/env bash
# Hostile fleet "slow-readers" against the memory budget (experiments/hostile/hostile.py; FINDINGS §11).
#   usage: experiments/hostile/slow_readers.sh [--conns N] [--attack S] [--memory-limit SIZE] ...
# Run it with the box to itself. Writes results/hostile/slow-readers.{json,png}.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 experiments/hostile/hostile.py slow-readers "$@"
