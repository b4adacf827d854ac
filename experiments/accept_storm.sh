#!/usr/bin/env bash
# Experiment 9 of the brief: accept strategies under a connect-and-close storm.
# For each strategy, c10m-server (epoll engine) takes a storm from bench/accept_storm
# (STORM_THREADS threads x STORM_INFLIGHT connections each cycling connect -> half-close
# -> wait for the server's close), for DURATION seconds, in ROUNDS interleaved rounds
# (the order rotates each round). Per run: connect+close cycles/s, the server's CPU split
# (user, sys; all its processes), the box's softirq time (/proc/stat), the storm client's
# CPU, and the per-acceptor balance (c10m_loop_accept_total per loop / worker).
#   strategies (N = ACCEPTORS, default 2 = the cores of this box):
#     single      --threads 1                 one loop, one listener
#     shared      --threads N                 N loops, one listener, EPOLLEXCLUSIVE
#     reuseport   --threads N --reuseport     N loops, N SO_REUSEPORT listeners
#     workers     --workers N                 N processes, one inherited listener
#     workers_rp  --workers N --reuseport     N processes, a SO_REUSEPORT listener each
# Then the edge: 2 workers whose total capacity (--max-conns) is EDGE_CAP, EDGE_CONNS
# connections held open (each sends a PING): how many are served / refused / unanswered
# with the shared listener and with per-worker SO_REUSEPORT listeners.
# Writes results/accept_storm.json (with the host record) and results/accept_storm.png.
# Run it with the box to itself: ~2 minutes with the defaults.
#   ROUNDS=3 DURATION=5 ACCEPTORS=2 bash experiments/accept_storm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
ACCEPTORS=${ACCEPTORS:-2}
STORM_THREADS=${STORM_THREADS:-2}
STORM_INFLIGHT=${STORM_INFLIGHT:-64}
PORT=${PORT:-19000}
MPORT=${MPORT:-19100}
EDGE_CAP=${EDGE_CAP:-2000}
EDGE_CONNS=${EDGE_CONNS:-2000}
STRATEGIES=${STRATEGIES:-"single shared reuseport workers workers_rp"}
bin=build/release
[ -x $bin/apps/c10m-server ] && [ -x $bin/bench/accept_storm ] || {
  cmake --preset release >/dev/null && cmake --build --preset release -j2 \
    --target c10m-server accept_storm >/dev/null; }
mkdir -p results
tmp=$(mktemp -d /tmp/workers-accept.XXXXXX)
spid=
cleanup() { [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

flags_of() {
  case $1 in
    single) echo "--threads 1" ;;
    shared) echo "--threads $ACCEPTORS" ;;
    reuseport) echo "--threads $ACCEPTORS --reuseport" ;;
    workers) echo "--workers $ACCEPTORS" ;;
    workers_rp) echo "--workers $ACCEPTORS --reuseport" ;;
  esac
}

start_server() {  # flags...; sets spid
  $bin/apps/c10m-server --engine epoll --addr 127.0.0.1:$PORT --metrics-addr 127.0.0.1:$MPORT \
    "$@" 2>"$tmp/server.log" &
  spid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$tmp/server.log" && return 0; sleep 0.05; done
  cat "$tmp/server.log"; exit 1
}
stop_server() { kill -TERM "$spid"; wait "$spid" || true; spid=; }
pids_of_server() { echo "$spid $(cat /proc/$spid/task/$spid/children 2>/dev/null)"; }
# utime stime (clock ticks) summed over the server's processes (all their threads)
server_ticks() {
  local u=0 s=0
  for p in $(pids_of_server); do
    read -r pu ps < <(awk '{print $14, $15}' /proc/$p/stat)
    u=$((u + pu)); s=$((s + ps))
  done
  echo "$u $s"
}
# user+nice, system, softirq, irq+steal, total (ticks) of the whole box
stat_cpu() { awk '/^cpu / {print $2+$3, $4, $8, $7+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

runs=()
read -r -a strats <<<"$STRATEGIES"
for round in $(seq 1 "$ROUNDS"); do
  for k in $(seq 0 $(( ${#strats[@]} - 1 ))); do
    strat=${strats[$(( (k + round - 1) % ${#strats[@]} ))]}  # rotate the order each round
    start_server $(flags_of "$strat")
    sleep 0.5
    read -r su0 ss0 < <(server_ticks)
    read -r cu0 cs0 si0 st0 tot0 < <(stat_cpu)
    $bin/bench/accept_storm --addr 127.0.0.1:$PORT --threads "$STORM_THREADS" \
      --inflight "$STORM_INFLIGHT" --duration "${DURATION}s" --srcips 127.0.0.2-127.0.0.9 \
      >"$tmp/storm.json"
    read -r su1 ss1 < <(server_ticks)
    read -r cu1 cs1 si1 st1 tot1 < <(stat_cpu)
    curl -s "127.0.0.1:$MPORT/metrics" >"$tmp/metrics.txt"
    stop_server
    runs+=("$(/usr/bin/python3 - "$strat" "$round" "$tmp" "$su0" "$ss0" "$su1" "$ss1" "$cu0" "$cs0" \
      "$si0" "$tot0" "$cu1" "$cs1" "$si1" "$tot1" "$(getconf CLK_TCK)" <<'PY'
import json, re, sys
strat, rnd, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
su0, ss0, su1, ss1, cu0, cs0, si0, t0, cu1, cs1, si1, t1, hz = map(int, sys.argv[4:17])
storm = json.load(open(f"{tmp}/storm.json"))
secs = storm["seconds"]
loops = [int(m.group(3)) for m in re.finditer(
    r'^c10m_loop_accept_total\{worker="(\d+)",loop="(\d+)"\} (\d+)', open(f"{tmp}/metrics.txt").read(), re.M)]
accept = re.search(r'^c10m_accept_total (\d+)', open(f"{tmp}/metrics.txt").read(), re.M)
total_ticks = t1 - t0
print(json.dumps({
  "strategy": strat, "round": rnd,
  "cycles_per_second": storm["cycles_per_second"], "errors": storm["errors"],
  "cycle_us": storm["cycle_us"],
  "server_user_cores": (su1 - su0) / hz / secs, "server_sys_cores": (ss1 - ss0) / hz / secs,
  "client_user_cores": storm["user_seconds"] / secs, "client_sys_cores": storm["sys_seconds"] / secs,
  "box_softirq_share": (si1 - si0) / total_ticks if total_ticks else 0,
  "box_busy_share": ((cu1 - cu0) + (cs1 - cs0) + (si1 - si0)) / total_ticks if total_ticks else 0,
  "server_accepts": int(accept.group(1)) if accept else None,
  "per_acceptor_accepts": loops or None,
}))
PY
)")
    echo "round $round $strat: $(echo "${runs[-1]}" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["cycles_per_second"]), "/s, accepts per acceptor", r["per_acceptor_accepts"])')" >&2
  done
done

# The edge: capacity EDGE_CAP split over 2 workers, EDGE_CONNS connections held at once.
edge=()
for strat in workers workers_rp; do
  start_server $( [ $strat = workers_rp ] && echo --reuseport ) --workers 2 --max-conns "$EDGE_CAP"
  sleep 0.3
  edge+=("$(/usr/bin/python3 - "$PORT" "$EDGE_CONNS" "$strat" "$MPORT" "$EDGE_CAP" <<'PY'
import json, re, socket, sys, urllib.request
port, n, strat, mport, cap = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
socks, res = [], {"served": 0, "overloaded": 0, "unanswered": 0, "other": 0}
for i in range(n):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((f"127.0.0.{2 + i % 8}", 0)); s.connect(("127.0.0.1", port)); s.settimeout(5)
    s.sendall(b"\x01\x00\x00"); socks.append(s)
for s in socks:
    try:
        d = s.recv(64)
        if d[:3] == b"\x01\x00\x00": res["served"] += 1
        elif d[:1] == b"\xff" and len(d) > 3 and d[3] == 6: res["overloaded"] += 1
        else: res["other"] += 1
    except socket.timeout:
        res["unanswered"] += 1
m = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics").read().decode()
per = [int(v) for v in re.findall(r'^c10m_worker_conns_open\{worker="\d+"\} (\d+)', m, re.M)]
print(json.dumps({"strategy": strat, "conns": n, "capacity": cap, "per_worker_open": per, **res}))
PY
)")
  stop_server
done

/usr/bin/python3 - "${#runs[@]}" "${runs[@]}" "${edge[@]}" <<'PY'
import json, statistics, subprocess, sys
n = int(sys.argv[1]); runs = [json.loads(r) for r in sys.argv[2:2 + n]]
edge = [json.loads(r) for r in sys.argv[2 + n:]]
host = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True, text=True).stdout)
strategies = list(dict.fromkeys(r["strategy"] for r in runs))
summary = {}
for s in strategies:
    rs = [r for r in runs if r["strategy"] == s]
    med = lambda k: statistics.median(r[k] for r in rs)
    bal = []
    for r in rs:
        a = r["per_acceptor_accepts"]
        if a and len(a) > 1: bal.append(max(a) / (sum(a) / len(a)))
    summary[s] = {
        "cycles_per_second_median": med("cycles_per_second"),
        "cycles_per_second_min": min(r["cycles_per_second"] for r in rs),
        "cycles_per_second_max": max(r["cycles_per_second"] for r in rs),
        "server_user_cores": med("server_user_cores"), "server_sys_cores": med("server_sys_cores"),
        "client_cores": statistics.median(r["client_user_cores"] + r["client_sys_cores"] for r in rs),
        "box_softirq_share": med("box_softirq_share"), "box_busy_share": med("box_busy_share"),
        "busiest_acceptor_vs_mean": statistics.median(bal) if bal else None,
    }
base = summary.get("single", {}).get("cycles_per_second_median")
for s in summary:
    summary[s]["ratio_to_single"] = summary[s]["cycles_per_second_median"] / base if base else None
json.dump({"experiment": "accept_storm", "host": host, "runs": runs, "summary": summary, "edge": edge},
          open("results/accept_storm.json", "w"), indent=2)
print(f"{'strategy':11} {'conn+close/s':>12} {'min..max':>15} {'x single':>8} {'srv user':>8} "
      f"{'srv sys':>7} {'client':>6} {'softirq':>7} {'box busy':>8} {'busiest/mean':>12}")
for s, v in summary.items():
    b = v["busiest_acceptor_vs_mean"]
    print(f"{s:11} {v['cycles_per_second_median']:>12.0f} {v['cycles_per_second_min']:>7.0f}..{v['cycles_per_second_max']:<7.0f}"
          f" {v['ratio_to_single'] or 0:>8.2f} {v['server_user_cores']:>8.2f} {v['server_sys_cores']:>7.2f}"
          f" {v['client_cores']:>6.2f} {v['box_softirq_share']*host['cores']:>7.2f} {v['box_busy_share']*host['cores']:>8.2f}"
          f" {('%.2f' % b) if b else '-':>12}")
print("(CPU in cores = CPU seconds per second. Process times include softirq work the kernel did\n"
      " in their context, so they overlap the box's softirq column; box busy: all non-idle time.\n"
      " busiest/mean: accepts of the busiest acceptor over the mean)")
for e in edge:
    print(f"edge {e['strategy']:10}: {e['conns']} conns, capacity {e['capacity']}: served {e['served']}, "
          f"OVERLOADED {e['overloaded']}, unanswered {e['unanswered']}; open per worker {e['per_worker_open']}")
try:
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = list(summary)
    med = [summary[s]["cycles_per_second_median"] for s in xs]
    lo = [m - summary[s]["cycles_per_second_min"] for s, m in zip(xs, med)]
    hi = [summary[s]["cycles_per_second_max"] - m for s, m in zip(xs, med)]
    a1.bar(xs, med, yerr=[lo, hi], capsize=4, color="tab:blue")
    a1.set_ylabel("connect+close cycles/s (median, min-max)")
    a1.set_title(f"accept strategies, {host['cores']} cores, loopback")
    u = [summary[s]["server_user_cores"] for s in xs]; sy = [summary[s]["server_sys_cores"] for s in xs]
    c = [summary[s]["client_cores"] for s in xs]
    a2.bar(xs, u, label="server user"); a2.bar(xs, sy, bottom=u, label="server sys")
    a2.bar(xs, c, bottom=[a + b for a, b in zip(u, sy)], label="storm client")
    a2.set_ylabel("cores"); a2.set_title("CPU split (medians)"); a2.legend(fontsize=8)
    for a in (a1, a2): a.tick_params(axis="x", rotation=20)
    fig.tight_layout(); fig.savefig("results/accept_storm.png", dpi=110)
    print("wrote results/accept_storm.json and results/accept_storm.png")
except ImportError:
    print("wrote results/accept_storm.json (no matplotlib: no plot)")
PY
