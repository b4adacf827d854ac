#!/usr/bin/env bash
# Hostile fleet "slowloris" against the memory budget (experiments/hostile/hostile.py; FINDINGS §11).
#   usage: experiments/hostile/slowloris.sh [--conns N] [--attack S] [--memory-limit SIZE] ...
# Run it with the box to itself. Writes results/hostile/slowloris.{json,png}.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 experiments/hostile/hostile.py slowloris "$@"
