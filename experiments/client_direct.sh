#!/usr/bin/env bash
# The load client's --io direct against its plain paths (docs/LOADCLIENT.md "Direct
# descriptors", FINDINGS 7.5). Two measurements, each in interleaved rounds:
#   cost:    CONNS connections in ONE client process (2 loops), open model, 64 B ECHO,
#            Poisson, at each of RATES frames/s, against a fresh `c10m-server --engine uring
#            --threads 2` per run; client CPU and context switches per frame (the client's
#            own counters: its loop threads' CPU time and getrusage switches over the
#            measured window), server CPU per frame (--server-pid), p50/p99; per --io mode.
#   connect: SCALE_CONNS idle connections in one client process with --io direct against
#            `c10m-server --engine epoll --workers SCALE_WORKERS`: connect rate and client
#            RSS per connection.
#   c1m:     (not in the default PHASES; once, not per round) C1M_CONNS connections in ONE
#            client process (--io direct, 2 loops, C1M_SRCIPS) against today's 1M server
#            (`c10m-server --engine epoll --workers C1M_WORKERS`), 5% active, mixed ECHO
#            at C1M_RATE frames/s, Poisson, sends after the ramp; raises net.core.somaxconn
#            and net.ipv4.tcp_max_syn_backlog to 65535 (printed, restored). ~3 minutes.
# Writes results/client_direct.json (raw runs, the host record) and prints the tables
# (median (min-max) of the rounds). Run it with the box to itself:
#   ROUNDS=3 bash experiments/client_direct.sh            # ~8 minutes; changes no sysctl
#   PHASES=connect bash experiments/client_direct.sh      # one phase
#   PHASES=c1m bash experiments/client_direct.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PHASES=${PHASES:-"cost connect"}
RATES=${RATES:-"20000 50000"}
MODES=${MODES:-"uring direct"}
CONNS=${CONNS:-19000}
SECS=${SECS:-10}
SCALE_CONNS=${SCALE_CONNS:-60000}
SCALE_WORKERS=${SCALE_WORKERS:-4}
C1M_CONNS=${C1M_CONNS:-1000000}
C1M_WORKERS=${C1M_WORKERS:-52}
C1M_SRCIPS=${C1M_SRCIPS:-127.0.0.2-127.0.0.130}  # ~7,750 connections per IP: under half the port range
C1M_RATE=${C1M_RATE:-5000}
C1M_RAMP=${C1M_RAMP:-20000}
PORT=${PORT:-19720}
OUT=${OUT:-results/client_direct}
bin=build/release/apps
[ -x $bin/c10m-server ] && [ -x $bin/c10m-loadclient ] || {
  cmake --preset release >/dev/null && cmake --build --preset release -j2 \
    --target c10m-server c10m-loadclient >/dev/null; }
mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp -d /tmp/client-direct.XXXXXX)
spid=
declare -A restore=()
cleanup() {
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
  for k in "${!restore[@]}"; do
    sysctl -qw "$k=${restore[$k]}" && echo "restored $k = ${restore[$k]}" >&2
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

start_server() {  # log flags...
  local log=$1; shift
  $bin/c10m-server --addr 127.0.0.1:$PORT --metrics-addr off --idle-timeout 0 "$@" 2>"$log" &
  spid=$!
  for _ in $(seq 100); do grep -q 'listening on\|workers started' "$log" && return 0; sleep 0.1; done
  cat "$log"; exit 1
}
stop_server() { kill -TERM "$spid"; wait "$spid" || true; spid=; }

runs=()
if [[ " $PHASES " == *" cost "* ]]; then
  for round in $(seq "$ROUNDS"); do
    for rate in $RATES; do
      order=($MODES); [ $((round % 2)) = 0 ] && order=($(printf '%s\n' $MODES | tac))
      for io in "${order[@]}"; do
        name="cost_${rate}_${io}_r${round}"
        start_server "$tmp/$name.log" --engine uring --threads 2
        per_conn=$(/usr/bin/python3 -c "print($rate / $CONNS)")
        $bin/c10m-loadclient --addr 127.0.0.1:$PORT --conns "$CONNS" --threads 2 --io "$io" \
          --srcips 127.0.0.2-127.0.0.5 --op echo --payload 64 --schedule poisson \
          --rate "$per_conn" --sends-from 3s --warmup 4s --duration "${SECS}s" \
          --server-pid "$spid" --quiet --json "$tmp/$name.json" >/dev/null 2>"$tmp/$name.err" || true
        stop_server
        runs+=("$name")
        echo "$name done" >&2
      done
    done
  done
fi
if [[ " $PHASES " == *" connect "* ]]; then
  for round in $(seq "$ROUNDS"); do
    name="connect_${SCALE_CONNS}_r${round}"
    start_server "$tmp/$name.log" --engine epoll --workers "$SCALE_WORKERS"
    $bin/c10m-loadclient --addr 127.0.0.1:$PORT --conns "$SCALE_CONNS" --threads 2 --io direct \
      --srcips 127.0.0.2-127.0.0.20 --active-frac 0 --duration 8s --quiet \
      --json "$tmp/$name.json" >/dev/null 2>"$tmp/$name.err" || true
    stop_server
    runs+=("$name")
    echo "$name done" >&2
  done
fi

if [[ " $PHASES " == *" c1m "* ]]; then
  for k in net.core.somaxconn net.ipv4.tcp_max_syn_backlog; do
    old=$(sysctl -n $k)
    if [ "$old" -lt 65535 ]; then
      restore[$k]=$old
      sysctl -qw $k=65535
      echo "sysctl $k: $old -> 65535 (restored at exit)" >&2
    fi
  done
  name="c1m_${C1M_CONNS}"
  ramp_s=$(( C1M_CONNS / C1M_RAMP ))
  start_server "$tmp/$name.log" --engine epoll --workers "$C1M_WORKERS" --threads 1
  per_conn=$(/usr/bin/python3 -c "print($C1M_RATE / ($C1M_CONNS * 0.05))")
  $bin/c10m-loadclient --addr 127.0.0.1:$PORT --conns "$C1M_CONNS" --procs 1 --threads 2 \
    --io direct --srcips "$C1M_SRCIPS" --ramp "$C1M_RAMP" --active-frac 0.05 --op echo \
    --payload 64:0.9,4096:0.08,65535:0.02 --schedule poisson --rate "$per_conn" \
    --sends-from $((ramp_s + 5))s --warmup $((ramp_s + 10))s --duration 20s --grace 15s --quiet \
    --json "$tmp/$name.json" >"$tmp/$name.out" 2>"$tmp/$name.err" || true
  cat "$tmp/$name.out" >&2
  stop_server
  tail -n 2 "$tmp/$name.log" >&2
  runs+=("$name")
fi

/usr/bin/python3 - "$tmp" "$OUT" "${runs[@]}" <<'PY'
import json, statistics, subprocess, sys
tmp, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = {}
for n in names:
    try: runs[n] = json.load(open(f"{tmp}/{n}.json"))
    except (OSError, ValueError): runs[n] = None
host = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True,
                                 text=True).stdout or "{}")
json.dump({"experiment": "client_direct", "host": host, "runs": runs}, open(out + ".json", "w"), indent=1)
def cell(vals, fmt="{:.2f}"):
    vals = [v for v in vals if v is not None]
    if not vals: return "-"
    return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"
cost = {}
for n, j in runs.items():
    if not n.startswith("cost_") or j is None: continue
    _, rate, io, _ = n.split("_")
    s = j["summary"]
    done = s["rate"]["completed_per_s"] * s["measured_s"]
    sysc = s["syscalls"]
    cost.setdefault((int(rate), io), []).append({
        "completed": s["rate"]["completed_per_s"],
        "client_us": s["cpu"]["client_ns_per_frame"] / 1e3,
        "server_us": (s["cpu"]["server_ns_per_frame"] or 0) / 1e3,
        "cs": s["client_loops"]["context_switches_per_frame"],
        "sys": sysc["measured_syscalls_per_frame"],
        "p50": s["latency_us"]["p50"], "p99": s["latency_us"]["p99"],
        "late": j["totals"]["late_sends"] / max(1, j["totals"]["sent_measured"]),
        "errors": s["errors"], "behind": s["behind_cause"]})
if cost:
    print("| target/s | --io | completed/s | client CPU us/frame | client context switches/frame | client syscalls/frame | server CPU us/frame | p50 us | p99 us | sends > 1 ms late | errors | fell behind |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (rate, io), rs in sorted(cost.items()):
        behind = [r["behind"] for r in rs if r["behind"]]
        print(f"| {rate:,} | {io} | {cell([r['completed'] for r in rs], '{:,.0f}')} | "
              f"{cell([r['client_us'] for r in rs])} | {cell([r['cs'] for r in rs], '{:.3f}')} | "
              f"{cell([r['sys'] for r in rs], '{:.3f}')} | {cell([r['server_us'] for r in rs])} | "
              f"{cell([r['p50'] for r in rs], '{:.0f}')} | {cell([r['p99'] for r in rs], '{:.0f}')} | "
              f"{cell([r['late'] for r in rs], '{:.3f}')} | {sum(r['errors'] for r in rs)} | "
              f"{len(behind)}/{len(rs)}{': ' + ', '.join(sorted(set(behind))) if behind else ''} |")
    modes = sorted({io for (_, io) in cost})
    if "direct" in modes:
        for base in [m for m in modes if m != "direct"]:
            for rate in sorted({r for (r, _) in cost}):
                a, b = cost.get((rate, base), []), cost.get((rate, "direct"), [])
                ratios = [y["client_us"] / x["client_us"] for x, y in zip(a, b) if x["client_us"]]
                print(f"client CPU per frame, direct / {base} at {rate:,}/s, per round: {cell(ratios, '{:.3f}')}")
conn = [j for n, j in runs.items() if (n.startswith("connect_") or n.startswith("c1m_")) and j]
if conn:
    print("\n| connections | open | connect failures | connect s | connects/s | client RSS B/conn | rings |")
    print("|---|---|---|---|---|---|---|")
    for j in conn:
        c, l = j["summary"]["conns"], j["summary"]["client_loops"]
        print(f"| {c['target']:,} | {c['open']:,} | {c['connect_failures']} | {c['connect_s'] or 0:.2f} | "
              f"{c['connects_per_s'] or 0:,.0f} | {l['rss_bytes_per_conn']:.0f} | {l['rings']} |")
PY
