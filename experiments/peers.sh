#!/usr/bin/env bash
# Experiment: c10m against the servers a user would pick instead, side by side, same client.
# Servers: c10m-server with its default engine (c10m-default: no --engine flag, so `auto`:
# uring where the kernel allows it, else epoll), --engine epoll, --engine thread and --engine
# uring (io_uring; its connections are direct descriptors, so its idle phase counts
# established sockets instead of fds), optionally an older c10m-server binary (c10m-before:
# BEFORE=<binary>, run with --engine epoll), and every peer of bench/peers
# (echo_peer, Asio, libuv, Go, Tokio: raw byte echoes, valid for ECHO loads). Each gets the
# same thread count (SERVER_THREADS, default 1) and is pinned to CPU 0; the load client
# (CLIENT_THREADS loops, default 1) is pinned to CPU 1, so on this 2-core box neither side
# takes the other's core and CPU per frame is not blurred by the scheduler.
#
# Phases (each bounded; run them one at a time with PHASES or as arguments):
#   build    set up, build the server, the client and every peer whose toolchain exists
#   peak     ROUNDS interleaved rounds: closed loop 100 conns x 8 in flight x 64 B ECHO,
#            then 10,000 conns x 1 in flight (4 source IPs); frames/s, CPU/frame both sides
#            (PEAKS="100x8" or "10k": only one of the two)
#   latency  ROUNDS rounds, open model, 100 conns, 64 B ECHO at half the slowest server's
#            median 10,000 x 1 peak from the peak phase (LAT_BASIS): p50/p99/p99.9
#   idle     ROUNDS rounds: 19,000 idle connections (--active-frac 0, 4 source IPs);
#            server RSS per connection
#   profile  once per server, 100x8: syscalls and context switches per frame (perf stat,
#            tracepoints) in one run, then `perf record -e cpu-clock -g` of the server (the
#            thread engine: of CPU 0, which it has to itself when pinned)
#   report   the table (median and min-max of the rounds), results/peers.json, results/peers.png
#
#   bash experiments/peers.sh                      # everything (~13 minutes after the build)
#   bash experiments/peers.sh peak                 # one phase
#   ROUNDS=3 SECS=4 SERVERS="c10m-epoll asio" bash experiments/peers.sh peak latency report
# Env: ROUNDS (3), SECS measured seconds per run (4), SERVER_THREADS (1), CLIENT_THREADS (1),
#      PIN (1: taskset server to CPU 0, client to CPU 1; 0: no pinning), HOLD idle seconds (3),
#      IDLE_CONNS (19000), SERVERS (every server but c10m-before), RATE (latency phase
#      total rate; default: derived),
#      CLIENT (load client binary; default build/release/apps/c10m-loadclient),
#      LAT_BASIS (peak10k: which peak the latency rate is half of; or peak100x8),
#      PEAKS ("100x8 10k"), BEFORE (c10m-before's binary), RATIOS (per-round ratios the
#      report prints, "a/b ..."; default: every pair of interest whose servers ran).
# Raw results: results/peers/<phase>/<server>-r<round>.json (client JSON with --server-pid),
# merged: results/peers.json (with the host record and git commit), results/peers.md, .png.
# Ports 18000-18099 (this experiment's range); PORT_BASE (18001) and OUT (results/peers: raw
# rounds under OUT/, merged OUT.{json,md,png}) let a wrapper (uring_compare.sh) use its own.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
SERVER_THREADS=${SERVER_THREADS:-1}
CLIENT_THREADS=${CLIENT_THREADS:-1}
PIN=${PIN:-1}
HOLD=${HOLD:-3}
IDLE_CONNS=${IDLE_CONNS:-19000}
# Port order (appended to, never reordered); SERVERS' default is the table's order.
ALL_SERVERS="c10m-epoll c10m-thread echo_peer asio libuv go tokio c10m-uring c10m-default c10m-before"
SERVERS=${SERVERS:-"c10m-default c10m-epoll c10m-uring c10m-thread echo_peer asio libuv go tokio"}
PEAKS=${PEAKS:-"100x8 10k"}
BEFORE=${BEFORE:-}
SRCIPS=127.0.0.2-127.0.0.5
phases=("$@")
[ ${#phases[@]} -gt 0 ] || read -r -a phases <<<"${PHASES:-build peak latency idle profile report}"

rel=build/release
client=${CLIENT:-$rel/apps/c10m-loadclient}  # CLIENT: another load client binary (same flags)
out=${OUT:-results/peers}
port_base=${PORT_BASE:-18001}
tmp=$(mktemp -d /tmp/peers-exp.XXXXXX)
pids=()
starts=0
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

pin_server() { [ "$PIN" = 1 ] && echo "taskset -c 0" || true; }
pin_client() { [ "$PIN" = 1 ] && echo "taskset -c 1" || true; }

port_of() {  # a fixed port per server in this experiment's range
  local i=0
  for s in $ALL_SERVERS; do
    [ "$s" = "$1" ] && { echo $((port_base + i)); return; }
    i=$((i + 1))
  done
  echo "unknown server $1" >&2
  exit 2
}

server_argv() {  # the command line of server $1 on port $2
  local a="127.0.0.1:$2" t=$SERVER_THREADS
  case "$1" in
    # The default configuration: the same flags as the other c10m rows, but no --engine.
    c10m-default) echo "$rel/apps/c10m-server --threads $t --addr $a --metrics-addr off --idle-timeout 0" ;;
    c10m-before) echo "${BEFORE:-/nonexistent/c10m-server} --engine epoll --threads $t --addr $a --metrics-addr off --idle-timeout 0" ;;
    c10m-epoll) echo "$rel/apps/c10m-server --engine epoll --threads $t --addr $a --metrics-addr off --idle-timeout 0" ;;
    c10m-uring) echo "$rel/apps/c10m-server --engine uring --threads $t --addr $a --metrics-addr off --idle-timeout 0" ;;
    # --threads is the epoll engine's; the thread engine runs one thread per connection.
    c10m-thread) echo "$rel/apps/c10m-server --engine thread --addr $a --metrics-addr off --idle-timeout 0" ;;
    echo_peer) echo "$rel/bench/peers/echo_peer --threads $t --addr $a" ;;
    asio) echo "$rel/bench/peers/asio_echo_peer --threads $t --addr $a" ;;
    libuv) echo "$rel/bench/peers/uv_echo_peer --threads $t --addr $a" ;;
    go) echo "$rel/bench/peers/go_echo_peer --threads $t --addr $a" ;;
    tokio) echo "$rel/bench/peers/tokio_echo_peer --threads $t --addr $a" ;;
  esac
}

available() {  # the binary of server $1 exists
  local argv
  argv=$(server_argv "$1" 0)
  [ -x "${argv%% *}" ]
}

# Starts server $1; sets $spid. Fails loudly if it does not listen within 10 s.
start_server() {
  local name=$1 port log
  port=$(port_of "$name")
  starts=$((starts + 1))
  # A fresh log per start: the background job may open (truncate) it after the first grep,
  # so an old log's "listening on" must never be there to be read.
  log="$tmp/$name.$starts.log"
  # shellcheck disable=SC2046
  $(pin_server) $(server_argv "$name" "$port") >/dev/null 2>"$log" &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do
    grep -q 'listening on' "$log" 2>/dev/null && return 0
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
  done
  echo "peers: $name did not start:" >&2
  cat "$log" >&2
  exit 1
}

stop_server() {
  kill -TERM "$spid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
}

# run_load NAME JSON ARGS...: the load client against server NAME, bounded by `timeout`.
run_load() {
  local name=$1 json=$2
  shift 2
  # shellcheck disable=SC2046
  timeout 120 $(pin_client) "$client" --addr "127.0.0.1:$(port_of "$name")" --threads "$CLIENT_THREADS" \
    --server-pid "$spid" --quiet --json "$json" "$@" >"$tmp/client.out" 2>"$tmp/client.err" || {
    echo "peers: client run against $name failed:" >&2
    tail -n 5 "$tmp/client.err" >&2
    return 1
  }
}

summary_line() {  # NAME JSON: one line from a client JSON
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
name, path = sys.argv[1:]
s = json.load(open(path))["summary"]
cpu = s["cpu"]
lat = s["latency_us"]
srv = (cpu.get("server_ns_per_frame") or 0) / 1000
print(f"  {name:12} {s['rate']['completed_per_s']:>11,.0f}/s  server {srv:6.2f} us/frame  "
      f"client {cpu['client_ns_per_frame']/1000:6.2f} us/frame  p99 {lat['p99']:>9.1f} us  "
      f"errors {s['errors']} mismatches {s['mismatches']}{'  CLIENT BEHIND' if s['client_behind'] else ''}")
PY
}

rotated() {  # the server list rotated by $1, so no server always runs first
  local -a list
  read -r -a list <<<"$SERVERS"
  local n=${#list[@]} k=$(($1 % ${#list[@]}))
  for ((i = 0; i < n; i++)); do echo "${list[$(((i + k) % n))]}"; done
}

present_servers() {
  local s
  for s in $SERVERS; do
    if available "$s"; then echo "$s"; else echo "peers: $s not built, skipped (see the build phase)" >&2; fi
  done
}

phase_build() {
  bash scripts/setup.sh
  cmake --preset release >/dev/null
  cmake --build --preset release -j "$(nproc)"
  for s in $SERVERS; do available "$s" || echo "peers: $s could not be built (toolchain missing?)" >&2; done
}

phase_peak() {
  local w
  for w in $PEAKS; do
    mkdir -p "$out/peak$w"
    rm -f "$out/peak$w"/*.json
  done
  SERVERS=$(present_servers | tr '\n' ' ')
  for r in $(seq 1 "$ROUNDS"); do
    echo "== peak, round $r/$ROUNDS"
    for s in $(rotated "$r"); do
      start_server "$s"
      if [[ " $PEAKS " == *" 100x8 "* ]]; then
        run_load "$s" "$out/peak100x8/$s-r$r.json" --conns 100 --inflight 8 --op echo --payload 64 \
          --warmup 1s --duration "${SECS}s"
        summary_line "$s 100x8" "$out/peak100x8/$s-r$r.json"
      fi
      if [[ " $PEAKS " == *" 10k "* ]]; then
        run_load "$s" "$out/peak10k/$s-r$r.json" --conns 10000 --inflight 1 --op echo --payload 64 \
          --srcips "$SRCIPS" --connect-timeout 30s --warmup 3s --duration "${SECS}s"
        summary_line "$s 10kx1" "$out/peak10k/$s-r$r.json"
      fi
      stop_server
    done
  done
}

phase_latency() {
  mkdir -p "$out/latency"
  rm -f "$out"/latency/*.json
  SERVERS=$(present_servers | tr '\n' ' ')
  local rate=${RATE:-}
  if [ -z "$rate" ]; then
    # Half of the slowest server's median peak measured in the peak phase, in the 10,000 x 1
    # workload (LAT_BASIS=peak100x8 for the other): there, as in an open model, every request
    # travels alone (one wake-up, one read, one write each). Half the 100 x 8 peak is not
    # half of anyone's open-model capacity: unbatched frames cost ~4x more CPU each.
    rate=$(/usr/bin/python3 - "$out/${LAT_BASIS:-peak10k}" $SERVERS <<'PY'
import json, statistics, sys, glob
d, servers = sys.argv[1], sys.argv[2:]
meds = []
for s in servers:
    v = [json.load(open(f))["summary"]["rate"]["completed_per_s"] for f in glob.glob(f"{d}/{s}-r*.json")]
    if v: meds.append(statistics.median(v))
if not meds: sys.exit("no peak results: run the peak phase first")
print(int(min(meds) / 2 // 100 * 100))
PY
)
  fi
  echo "$rate" >"$out/latency/rate.txt"
  echo "${RATE:+given}${RATE:-${LAT_BASIS:-peak10k}}" >"$out/latency/basis.txt"
  local per_conn
  per_conn=$(/usr/bin/python3 -c "print($rate / 100)")
  for r in $(seq 1 "$ROUNDS"); do
    echo "== latency at $rate/s (open model, 100 conns x $per_conn/s), round $r/$ROUNDS"
    for s in $(rotated "$r"); do
      start_server "$s"
      run_load "$s" "$out/latency/$s-r$r.json" --conns 100 --rate "$per_conn" --op echo --payload 64 \
        --warmup 1s --duration "${SECS}s"
      summary_line "$s" "$out/latency/$s-r$r.json"
      stop_server
    done
  done
}

phase_idle() {
  mkdir -p "$out/idle"
  rm -f "$out"/idle/*.json
  SERVERS=$(present_servers | tr '\n' ' ')
  rss_of() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
  fds_of() { ls "/proc/$1/fd" | wc -l; }
  # Connections held: the process's fds, except for c10m-uring (and c10m-default, which may
  # be uring), whose connections are direct descriptors in its rings (no fd): there, the
  # established sockets on its port.
  held_of() {
    if [ "$1" = c10m-uring ] || [ "$1" = c10m-default ]; then
      ss -Htn state established "( sport = :$(port_of "$1") )" | wc -l
    else
      fds_of "$2"
    fi
  }
  for r in $(seq 1 "$ROUNDS"); do
    echo "== idle, $IDLE_CONNS connections, round $r/$ROUNDS"
    for s in $(rotated "$r"); do
      start_server "$s"
      sleep 0.3
      local rss0 t0 t1 held rss1 threads
      rss0=$(rss_of "$spid")
      t0=$(date +%s.%N)
      # shellcheck disable=SC2046
      timeout 120 $(pin_client) "$client" --addr "127.0.0.1:$(port_of "$s")" --conns "$IDLE_CONNS" \
        --active-frac 0 --ramp 20000 --srcips "$SRCIPS" --duration 60s --quiet \
        >/dev/null 2>"$tmp/idle-client.err" &
      local cpid=$!
      pids+=("$cpid")
      for _ in $(seq 600); do [ "$(held_of "$s" "$spid")" -ge "$IDLE_CONNS" ] && break; sleep 0.1; done
      t1=$(date +%s.%N)
      sleep "$HOLD"
      held=$(held_of "$s" "$spid")
      rss1=$(rss_of "$spid")
      threads=$(awk '/Threads/ {print $2}' "/proc/$spid/status")
      kill -TERM "$cpid" 2>/dev/null || true
      wait "$cpid" 2>/dev/null || true
      stop_server
      /usr/bin/python3 - "$out/idle/$s-r$r.json" "$s" "$IDLE_CONNS" "$held" "$rss0" "$rss1" "$threads" "$t0" "$t1" <<'PY'
import json, sys
path, s, n, held, r0, r1, th, t0, t1 = sys.argv[1:]
row = {"server": s, "conns_target": int(n), "server_fds_held": int(held),
       "rss_before_bytes": int(r0), "rss_held_bytes": int(r1),
       "rss_bytes_per_conn": (int(r1) - int(r0)) / int(n), "server_threads": int(th),
       "connect_seconds": float(t1) - float(t0)}
json.dump(row, open(path, "w"), indent=1)
print(f"  {s:12} fds {row['server_fds_held']:>6}  RSS {row['rss_before_bytes']/2**20:6.1f} -> "
      f"{row['rss_held_bytes']/2**20:7.1f} MiB  {row['rss_bytes_per_conn']:>8.0f} B/conn  "
      f"threads {row['server_threads']}  connect {row['connect_seconds']:.1f} s")
PY
    done
  done
}

phase_profile() {
  mkdir -p "$out/profile"
  rm -f "$out"/profile/*
  SERVERS=$(present_servers | tr '\n' ' ')
  local args=(--conns 100 --inflight 8 --op echo --payload 64 --warmup 1s --duration "${SECS}s")
  # every syscall, and the ones an echo loop makes, by name (the server's; the client's total)
  local server_events=raw_syscalls:sys_enter,context-switches,cpu-migrations
  local sc
  for sc in epoll_wait epoll_pwait epoll_ctl read recvfrom recvmsg write writev sendto sendmsg futex \
    io_uring_enter setsockopt; do
    server_events+=",syscalls:sys_enter_$sc"
  done
  for s in $SERVERS; do
    echo "== profile $s (100 x 8 x 64 B)"
    # 1. syscalls and context switches per frame, server and client (tracepoints, no samples)
    start_server "$s"
    perf stat -x, -e "$server_events" -p "$spid" \
      -o "$out/profile/$s-server.stat" -- sleep $((SECS + 2)) 2>/dev/null &
    local pstat=$!
    # shellcheck disable=SC2046
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -o "$out/profile/$s-client.stat" -- \
      $(pin_client) "$client" --addr "127.0.0.1:$(port_of "$s")" --threads "$CLIENT_THREADS" \
      --server-pid "$spid" --quiet --json "$out/profile/$s-stat.json" "${args[@]}" >/dev/null 2>&1
    wait "$pstat" || true
    stop_server
    # 2. where the server's CPU goes
    start_server "$s"
    # The server's threads; for the thread engine, pinned, all of CPU 0 instead (perf record
    # -p cannot follow the threads it creates after perf attached; "swapper" is idle time).
    local target=(-p "$spid")
    [ "$PIN" = 1 ] && [ "$s" = c10m-thread ] && target=(-a -C 0)
    perf record -q -e cpu-clock -g "${target[@]}" -o "$out/profile/$s.perf" -- sleep $((SECS + 2)) \
      2>/dev/null &
    local prec=$!
    run_load "$s" "$out/profile/$s-perf.json" "${args[@]}"
    wait "$prec" || true
    stop_server
    {
      echo "# $s: share of server CPU by DSO (perf record ${target[*]})"
      if [ "${target[0]}" = -a ]; then
        perf report -i "$out/profile/$s.perf" --no-children --stdio --sort comm -g none \
          2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 4 || true
      fi
      perf report -i "$out/profile/$s.perf" --no-children --stdio --sort dso 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 8 || true
      echo "# $s: top symbols (self)"
      perf report -i "$out/profile/$s.perf" --no-children --stdio --sort sym -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 25 || true
      echo "# $s: inclusive (children) for the syscall entry points"
      perf report -i "$out/profile/$s.perf" --children --stdio --sort sym -g none 2>/dev/null |
        grep -E '^ +[0-9.]+% +[0-9.]+%' | grep -E 'sys_(read|write|recvfrom|sendto|epoll_wait|writev|readv|sendmsg|recvmsg|futex)|do_epoll_wait|__x64_sys' | head -n 12 || true
    } >"$out/profile/$s.txt"
    summary_line "$s (stat)" "$out/profile/$s-stat.json"
  done
}

phase_report() {
  RATIOS=${RATIOS:-} /usr/bin/python3 experiments/peers_report.py "$out" "$SERVERS" "$SERVER_THREADS" \
    "$CLIENT_THREADS" "$PIN" "$SECS" "$out"
}

for p in "${phases[@]}"; do
  case "$p" in
    build | peak | latency | idle | profile | report)
      t0=$SECONDS
      "phase_$p"
      echo "(phase $p: $((SECONDS - t0)) s)"
      ;;
    *) echo "peers: unknown phase '$p' (build peak latency idle profile report)" >&2; exit 2 ;;
  esac
done
