#!/usr/bin/env bash
# Experiment 8 of the brief: fd and port exhaustion, both sides, each with its fix.
#  A. server EMFILE: one c10m-server process (20,000 fds) and EMFILE_CONNS connections:
#     what it logs, whether it spins (its CPU while the surplus waits), what the client sees.
#     Fix: --workers.
#  B. client EADDRNOTAVAIL: PORT_CONNS connections from one source IP to one server address
#     with the default ephemeral port range: what the client prints; then the same with
#     --srcips (the fix), all connected.
#  C. TIME_WAIT under a connect/close storm (bench/accept_storm, one source IP, the client
#     closes first): TIME_WAIT sockets (ss -s) and errors; then --close rst (no TIME_WAIT).
# Writes results/port_exhaustion.json (with the host record) and prints a summary.
# Changes no sysctl. Run it with the box to itself: about 1.5 minutes.
#   EMFILE_CONNS=20500 PORT_CONNS=30000 STORM_S=8 bash experiments/port_exhaustion.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EMFILE_CONNS=${EMFILE_CONNS:-20500}
PORT_CONNS=${PORT_CONNS:-30000}
STORM_S=${STORM_S:-8}
PORT=${PORT:-19500}
bin=build/release
[ -x $bin/apps/c10m-server ] && [ -x $bin/apps/c10m-loadclient ] && [ -x $bin/bench/accept_storm ] || {
  cmake --preset release >/dev/null && cmake --build --preset release -j2 \
    --target c10m-server c10m-loadclient accept_storm >/dev/null; }
mkdir -p results
tmp=$(mktemp -d /tmp/workers-exh.XXXXXX)
spid=
cleanup() { [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
start_server() {  # log flags...
  local log=$1; shift
  $bin/apps/c10m-server --engine epoll --addr 127.0.0.1:$PORT --metrics-addr off --idle-timeout 0 \
    "$@" 2>"$log" &
  spid=$!
  for _ in $(seq 100); do grep -q 'listening on\|workers started' "$log" && return 0; sleep 0.1; done
  cat "$log"; exit 1
}
stop_server() { kill -TERM "$spid"; wait "$spid" || true; spid=; }
cpu_ticks() { local t=0; for p in $spid $(cat /proc/$spid/task/$spid/children 2>/dev/null); do
  t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }

# A. EMFILE on the server
start_server "$tmp/a.log" --threads 1
$bin/apps/c10m-loadclient --addr 127.0.0.1:$PORT --conns "$EMFILE_CONNS" --procs 2 \
  --srcips 127.0.0.2-127.0.0.3 --active-frac 0 --duration 12s --connect-timeout 3s --quiet \
  --json "$tmp/a.json" >"$tmp/a.out" 2>"$tmp/a.err" &
cpid=$!
sleep 6
c0=$(cpu_ticks); sleep 4; c1=$(cpu_ticks)
fds=$(ls /proc/$spid/fd | wc -l)
wait $cpid || true
stop_server

# B. EADDRNOTAVAIL with one source IP, then --srcips
start_server "$tmp/b.log" --workers 3
$bin/apps/c10m-loadclient --addr 127.0.0.1:$PORT --conns "$PORT_CONNS" --procs 2 --active-frac 0 \
  --duration 6s --quiet --json "$tmp/b1.json" >"$tmp/b1.out" 2>"$tmp/b1.err" || true
$bin/apps/c10m-loadclient --addr 127.0.0.1:$PORT --conns "$PORT_CONNS" --procs 2 --active-frac 0 \
  --srcips 127.0.0.2-127.0.0.3 --duration 6s --quiet --json "$tmp/b2.json" >"$tmp/b2.out" \
  2>"$tmp/b2.err" || true
stop_server

# C. TIME_WAIT under a storm from one source IP; then RST closes
sleep 2
start_server "$tmp/c.log" --threads 1
for mode in fin rst; do
  tw0=$(awk '/^TCP:/ {print $7}' /proc/net/sockstat)
  ( for _ in $(seq "$((STORM_S + 1))"); do awk '/^TCP:/ {print $7}' /proc/net/sockstat; sleep 1; done ) \
    >"$tmp/tw-$mode.txt" &
  twpid=$!
  $bin/bench/accept_storm --addr 127.0.0.1:$PORT --threads 1 --inflight 64 --duration "${STORM_S}s" \
    --srcips 127.0.0.2 --close $mode >"$tmp/storm-$mode.json"
  wait $twpid
  ss -s >"$tmp/ss-$mode.txt"
  echo "$tw0" >"$tmp/tw0-$mode.txt"
  sleep 2
done
stop_server

/usr/bin/python3 - "$tmp" "$c0" "$c1" "$fds" "$(getconf CLK_TCK)" "$EMFILE_CONNS" "$PORT_CONNS" <<'PY'
import json, subprocess, sys
tmp, c0, c1, fds, hz, emc, pc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
def j(n):
    try: return json.load(open(f"{tmp}/{n}.json"))
    except (OSError, ValueError): return None
def lines(n, pat):
    return [l.strip() for l in open(f"{tmp}/{n}").read().splitlines() if pat in l.lower()][:3]
a, b1, b2 = j("a"), j("b1"), j("b2")
host = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True, text=True).stdout)
res = {
  "experiment": "port_exhaustion", "host": host,
  "emfile": {"conns": emc, "server_fds": fds, "server_cpu_cores_while_full": (c1 - c0) / hz / 4,
             "server_log": lines("a.log", "fd") + lines("a.log", "emfile"),
             "client_open": a and a["summary"]["conns"]["open"],
             "client_connect_failures": a and a["totals"]["connect_failures"],
             "client_warnings": a and a.get("warnings")},
  "eaddrnotavail": {"conns": pc,
             "one_ip": {"open": b1 and b1["summary"]["conns"]["open"],
                        "connect_failures": b1 and b1["totals"]["connect_failures"],
                        "warnings": b1 and b1.get("warnings"), "stderr": lines("b1.err", "port")},
             "srcips_2": {"open": b2 and b2["summary"]["conns"]["open"],
                          "connect_failures": b2 and b2["totals"]["connect_failures"]}},
  "time_wait": {},
}
for m in ("fin", "rst"):
    st = json.load(open(f"{tmp}/storm-{m}.json"))
    tw = [int(x) for x in open(f"{tmp}/tw-{m}.txt").read().split()]
    res["time_wait"][m] = {"cycles_per_second": st["cycles_per_second"], "errors": st["errors"],
                           "tw_before": int(open(f"{tmp}/tw0-{m}.txt").read()), "tw_peak": max(tw), "tw_series": tw,
                           "ss_s": open(f"{tmp}/ss-{m}.txt").read().splitlines()[:3]}
json.dump(res, open("results/port_exhaustion.json", "w"), indent=2)
e = res["emfile"]
print(f"A. EMFILE: {emc} conns to one process: server holds {e['server_fds']} fds, CPU {e['server_cpu_cores_while_full']:.3f} cores while full; "
      f"client open {e['client_open']}, failures {e['client_connect_failures']}")
for l in e["server_log"]: print("   server:", l)
for w in e["client_warnings"] or []: print("   client:", w)
b = res["eaddrnotavail"]
print(f"B. one source IP: {b['one_ip']['open']} of {pc} open, failures {b['one_ip']['connect_failures']}")
for w in b["one_ip"]["warnings"] or []: print("   client:", w)
print(f"   --srcips 127.0.0.2-127.0.0.3: {b['srcips_2']['open']} of {pc} open, failures {b['srcips_2']['connect_failures']}")
for m, t in res["time_wait"].items():
    print(f"C. storm --close {m}: {t['cycles_per_second']:.0f} cycles/s, errors {t['errors']}, TIME_WAIT {t['tw_before']} -> peak {t['tw_peak']}")
    print("   ss -s:", " | ".join(t["ss_s"][1:3]))
print("wrote results/port_exhaustion.json")
PY
