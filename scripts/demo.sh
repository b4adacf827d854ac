#!/usr/bin/env bash
# The main job: a ~20 s live demo. Builds (installing what is missing), starts c10m-server
# (epoll, one event loop) and c10m-loadclient (open model, one loop) on loopback, prints the
# client's result table (rates, latency percentiles, errors, server RSS and bytes per
# connection, client and server CPU per frame), then drains the server and prints its
# drain report. Everything is bounded: the client stops by itself, the server is signalled.
#   DEMO_CONNS=2000 DEMO_ACTIVE=0.25 DEMO_RATE=50 DEMO_SECONDS=18 DEMO_ENGINE=epoll
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${DEMO_CONNS:-2000}
active=${DEMO_ACTIVE:-0.25}
rate=${DEMO_RATE:-50}
seconds=${DEMO_SECONDS:-18}
engine=${DEMO_ENGINE:-epoll}

bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target c10m-server c10m-loadclient | grep -v '^\[' || true
bin=build/release/apps
mkdir -p results
log=$(mktemp)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -f "$log"' EXIT

server_args=(--engine "$engine" --threads 1 --addr 127.0.0.1:0)
if $bin/c10m-server --help | grep -q -- --metrics-addr; then server_args+=(--metrics-addr 127.0.0.1:0); fi
$bin/c10m-server "${server_args[@]}" 2>"$log" &
spid=$!
for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
port=$(sed -n 's/^listening on [0-9.]*:\([0-9]*\)$/\1/p' "$log" | head -n1)
[ -n "$port" ] || { cat "$log"; exit 1; }
sed 's/^/server: /' "$log"

echo "load: $conns connections ($active active at $rate frames/s each, 64 B ECHO), 2 s warm-up + ${seconds} s measured"
$bin/c10m-loadclient --addr "127.0.0.1:$port" --conns "$conns" --active-frac "$active" \
  --rate "$rate" --op echo --payload 64 --warmup 2s --duration "${seconds}s" --ramp 4000 \
  --threads 1 --srcips 127.0.0.2-127.0.0.3 --server-pid "$spid" --json results/demo.json 2>/dev/null \
  || { echo "load client failed"; exit 1; }

kill -TERM "$spid"
wait "$spid"
grep '^drain:' "$log" | sed 's/^/server: /'
echo "(full result: results/demo.json)"
