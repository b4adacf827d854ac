#!/usr/bin/env bash
# Every hostile fleet in turn (FINDINGS §11): about 40 s each with the defaults.
#   usage: experiments/hostile/all.sh [--conns N] ...   (arguments go to every attack)
set -euo pipefail
cd "$(dirname "$0")/../.."
for a in slowloris slow-readers rst flood garbage; do
  /usr/bin/python3 experiments/hostile/hostile.py "$a" "$@"
done
