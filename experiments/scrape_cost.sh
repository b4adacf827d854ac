#!/usr/bin/env bash
# Scrape cost with 10 vs 19,000 open connections, against the real server.
# Starts c10m-server (--metrics-addr 127.0.0.1:0), holds N idle TCP connections from a
# Python client, and times 30 curls of /metrics for each N. The scrape sums per-thread
# counter blocks, so the time should not grow with N.
#   usage: experiments/scrape_cost.sh [BUILD_DIR]   (default build/release: `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
[ -x "$BUILD/apps/c10m-server" ] || BUILD=build
SERVER="$BUILD/apps/c10m-server"
[ -x "$SERVER" ] || { echo "no $SERVER: build c10m-server first" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

ERR=$(mktemp)
"$SERVER" --engine "${ENGINE:-epoll}" --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --idle-timeout 0 2>"$ERR" &
SPID=$!
trap 'kill $SPID 2>/dev/null || true; wait $SPID 2>/dev/null || true; rm -f "$ERR"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$ERR" && break; sleep 0.05; done
PORT=$(grep -o 'listening on [0-9.]*:[0-9]*' "$ERR" | sed 's/.*://')
MPORT=$(grep -o 'metrics on [0-9.]*:[0-9]*' "$ERR" | sed 's/.*://')

metric() { curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

time_scrapes() {
  # "ttfb": time to first byte after the request was sent (starttransfer - pretransfer),
  # i.e. the scrape without curl's start-up and connect. On a loaded host the median
  # carries scheduling delay; the 10th percentile is closer to the cost itself.
  for _ in $(seq 40); do
    curl -s -o /dev/null -w '%{time_pretransfer} %{time_starttransfer}\n' \
      "http://127.0.0.1:$MPORT/metrics"
  done | awk '{ print ($2 - $1) * 1e6 }' | sort -g |
    awk '{ s[NR] = $1 } END { printf "ttfb p10 %.0f us, median %.0f us", s[int(NR/10)], s[int((NR+1)/2)] }'
  # CPU the server spent per scrape, from its own process_cpu_seconds_total (load-proof;
  # 10 ms tick resolution, hence 400 scrapes).
  local before after
  before=$(metric process_cpu_seconds_total)
  for _ in $(seq 400); do curl -s -o /dev/null "http://127.0.0.1:$MPORT/metrics"; done
  after=$(metric process_cpu_seconds_total)
  awk -v a="$before" -v b="$after" 'BEGIN { printf ", server CPU per scrape %.0f us\n", (b - a) / 400 * 1e6 }'
}

for N in 10 19000; do
  FIFO=$(mktemp -u); mkfifo "$FIFO"
  python3 - "$PORT" "$N" "$FIFO" <<'PY' &
import socket, sys, time
port, n, fifo = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    socks.append(socket.create_connection(("127.0.0.1", port)))
open(fifo, "w").write("ready\n")
time.sleep(600)
PY
  CPID=$!
  read -r _ < "$FIFO"; rm -f "$FIFO"
  for _ in $(seq 200); do   # wait until the server counts them all
    OPEN=$(metric c10m_conns_open)
    [ "$OPEN" = "$N" ] && break; sleep 0.05
  done
  FDS=$(metric process_open_fds)
  echo "conns_open=$OPEN process_open_fds=$FDS scrape: $(time_scrapes)"
  kill $CPID; wait $CPID 2>/dev/null || true
  sleep 0.5
done
