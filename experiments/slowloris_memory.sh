#!/usr/bin/env bash
# Memory a slowloris fleet pins in the real server: N connections that each send the first
# bytes of a frame and then stall. Starts c10m-server (timeouts off, so nothing is freed),
# reads its VmRSS / VmData from /proc/PID/status, opens N connections from a Python client
# (source addresses 127.0.0.2 and 127.0.0.3 in turn; loopback only), each sending PREFIX,
# waits until the server's memory is steady, reads it again and prints the growth per
# connection. Run it once with PREFIX "" (idle connections) for the per-connection floor.
#   usage: experiments/slowloris_memory.sh [N=5000] [ENGINE=epoll] [PREFIX_HEX=02] [SERVER]
#   PREFIX_HEX: 02 = first header byte of an ECHO; 0600 0c00 0000 0000 0000 0a00 0000
#   (14 bytes of a FETCH); "echo100" = the first 100 bytes of a 1000-byte ECHO.
#   SERVER defaults to build/release/apps/c10m-server (`make build`).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
ENGINE=${2:-epoll}
PREFIX=${3-02}
SERVER=${4:-}
if [ -z "$SERVER" ]; then
  for b in build/release build; do
    [ -x "$b/apps/c10m-server" ] && { SERVER="$b/apps/c10m-server"; break; }
  done
fi
[ -x "${SERVER:-}" ] || { echo "no c10m-server found: build it or pass its path" >&2; exit 1; }
[ "$N" -ge 1 ] && [ "$N" -le 18000 ] || { echo "N must be 1..18000 (fd limit)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

ERR=$(mktemp)
FIFO=$(mktemp -u)
CPID=
timeout 300 "$SERVER" --engine "$ENGINE" --threads 1 --addr 127.0.0.1:0 --idle-timeout 0 \
  --frame-timeout 0 --metrics-addr off 2>"$ERR" &
TPID=$!   # timeout(1); it forwards SIGTERM to the server
cleanup() {
  [ -n "$CPID" ] && kill "$CPID" 2>/dev/null || true
  kill "$TPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$ERR" "$FIFO"
}
trap cleanup EXIT
for _ in $(seq 200); do grep -q "listening on" "$ERR" && break; sleep 0.05; done
PORT=$(grep -o 'listening on [0-9.]*:[0-9]*' "$ERR" | sed 's/.*://')
[ -n "$PORT" ] || { echo "server did not start:" >&2; cat "$ERR" >&2; exit 1; }
SPID=$(pgrep -P "$TPID")   # the server itself: its /proc/PID/status is what is read

# VmRSS and VmData of the server in KiB, once two samples 300 ms apart agree.
mem() {
  local prev="" cur
  for _ in $(seq 50); do
    cur=$(awk '/^VmRSS:|^VmData:/ { printf "%s ", $2 }' "/proc/$SPID/status")
    [ "$cur" = "$prev" ] && break
    prev=$cur; sleep 0.3
  done
  echo "$cur"
}

read -r RSS0 DATA0 <<<"$(mem)"
mkfifo "$FIFO"
timeout 300 /usr/bin/python3 - "$PORT" "$N" "$PREFIX" "$FIFO" <<'PY' &
import socket, sys, time
port, n, prefix, fifo = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if prefix == "echo100":
    payload = bytes([0x02, 1000 >> 8, 1000 & 0xFF]) + bytes(i % 251 for i in range(1000))
    data = payload[:100]
else:
    data = bytes.fromhex(prefix)
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.%d" % (2 + i % 2), 0))
    s.connect(("127.0.0.1", port))
    if data:
        s.sendall(data)
    socks.append(s)
open(fifo, "w").write("ready\n")
time.sleep(300)
PY
CPID=$!
read -r _ <"$FIFO"
sleep 0.5
read -r RSS1 DATA1 <<<"$(mem)"
kill -0 "$SPID" 2>/dev/null || { echo "server died" >&2; exit 1; }
awk -v n="$N" -v e="$ENGINE" -v p="${PREFIX:-(idle)}" -v r0="$RSS0" -v r1="$RSS1" -v d0="$DATA0" -v d1="$DATA1" \
  'BEGIN { printf "engine %s, %d conns sending %s: VmRSS %d -> %d KiB = %.0f B/conn; VmData %d -> %d KiB = %.0f B/conn\n",
           e, n, p, r0, r1, (r1 - r0) * 1024 / n, d0, d1, (d1 - d0) * 1024 / n }'
