#!/usr/bin/env bash
# Where the CPU per frame goes, client and server side by side: runs the demo's small-
# message load (2,000 connections, 500 sending 64 B ECHO at 50/s, 8 s) with both processes
# under `perf record -e cpu-clock -g` (the only perf event this VM offers), then prints for
# each: kernel vs user share, the share spent in epoll_wait (sleeping and waking), and the
# top symbols. Bounded by the load's duration. Needs linux-perf (scripts/setup.sh has it).
#   SECONDS_=8 CONNS=2000 ACTIVE=0.25 RATE=50 bash experiments/cpu_profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_:-8}
conns=${CONNS:-2000}
active=${ACTIVE:-0.25}
rate=${RATE:-50}
bin=build/release/apps
[ -x $bin/c10m-server ] && [ -x $bin/c10m-loadclient ] || make build >/dev/null
out=results/cpu_profile
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

$bin/c10m-server --engine epoll --threads 1 --addr 127.0.0.1:0 --metrics-addr off 2>"$tmp/server.log" &
spid=$!
for _ in $(seq 100); do grep -q 'listening on' "$tmp/server.log" && break; sleep 0.1; done
port=$(sed -n 's/^listening on [0-9.]*:\([0-9]*\)$/\1/p' "$tmp/server.log" | head -n1)
perf record -q -e cpu-clock -g -p "$spid" -o "$out/server.perf" -- sleep $((secs + 3)) 2>/dev/null &
ppid=$!
perf record -q -e cpu-clock -g -o "$out/client.perf" -- \
  $bin/c10m-loadclient --addr "127.0.0.1:$port" --conns "$conns" --active-frac "$active" \
  --rate "$rate" --op echo --payload 64 --warmup 1s --duration "${secs}s" --threads 1 \
  --srcips 127.0.0.2-127.0.0.3 --server-pid "$spid" --quiet --json "$out/load.json" \
  >"$out/load.txt" 2>/dev/null
wait $ppid || true
kill -TERM "$spid"; wait "$spid" || true
grep -E 'rate|CPU per frame' "$out/load.txt"

for side in client server; do
  echo "== $side"
  perf report -i "$out/$side.perf" --no-children --stdio --sort dso 2>/dev/null |
    awk '/^ +[0-9.]+%/ && ($2 ~ /kernel/ || $2 ~ /libc/ || $2 ~ /c10m/) {print "   " $1, $2}' || true
  perf report -i "$out/$side.perf" --children --stdio --sort sym 2>/dev/null |
    awk '/^ +[0-9.]+% +[0-9.]+%/ && /epoll_wait|epoll_pwait/ && !done {print "   in epoll wait (children):", $1; done = 1}' || true
  perf report -i "$out/$side.perf" --no-children --stdio --sort sym 2>/dev/null |
    awk '/^ +[0-9.]+%/ && n++ < 6 {print "   " $0}' || true
done
echo "(perf data: $out/{client,server}.perf)"
