#!/usr/bin/env bash
# Experiment: what the load client costs per frame next to the server it drives, before and
# after a change, in interleaved rounds (docs/FINDINGS.md, "Load client efficiency").
#
# Workloads (all 64-byte ECHO against `c10m-server --engine epoll`, one client thread;
# MODES picks them, default "closed open"):
#   closed  100 connections x 8 in flight, closed loop (peak frames/s)
#   open    1,000 connections x 100/s = 100,000 frames/s, open model (latency, CPU per frame)
#   demo    `make demo`'s load: 2,000 connections, 500 of them at 50/s = 25,000 frames/s
# Each round runs, for every server --threads value and every client binary, both
# workloads, each against a fresh server; the order of the clients alternates between
# rounds. Captured per run: frames/s, p50/p99/p99.9, client and server CPU per frame (the
# client's --server-pid), frames per write, whether the client fell behind.
#
#   ROUNDS=5 SERVER_THREADS="1 2" SECS=5 WARMUP=1 MODES="closed open" \
#   BASE_CLIENT=/tmp/client-base/build/release/apps/c10m-loadclient \
#   bash experiments/client_efficiency.sh
#
# BASE_CLIENT (optional): a second c10m-loadclient to compare against (e.g. built from an
# older commit in a scratch worktree); it is labelled "before", this build's "after".
# BASE_ARGS / AFTER_ARGS (optional): extra flags for each, e.g. this build twice:
# BASE_CLIENT=build/release/apps/c10m-loadclient BASE_ARGS="--io epoll" AFTER_ARGS="--io uring".
# MINIMAL=1 (default) adds build/release/bench/min_echo_client to the closed-loop runs,
# labelled "minimal": a client that only writes back what it reads (no checks, no
# latency), the yardstick for what a closed loop costs in syscalls alone.
# SLACKS="1ms" adds this build with --send-slack 1ms (open-model modes), labelled slack1ms.
# Writes $OUT.json (host record, every run, medians) and $OUT.png; prints a table.
# Bounded by: ROUNDS x |SERVER_THREADS| x clients x 2 runs of WARMUP+SECS (+~1.5 s each).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SERVER_THREADS=${SERVER_THREADS:-"1 2"}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
PORT=${PORT:-17100}  # this experiment's range: 17000-17999
OUT=${OUT:-results/client_efficiency}
MODES=${MODES:-"closed open"}
BASE_CLIENT=${BASE_CLIENT:-}
MINIMAL=${MINIMAL:-1}
bin=build/release/apps
minimal=build/release/bench/min_echo_client
[ -x $bin/c10m-server ] && [ -x $bin/c10m-loadclient ] && [ -x $minimal ] || make build >/dev/null
clients=("after=$bin/c10m-loadclient${AFTER_ARGS:+ $AFTER_ARGS}")
if [ -n "$BASE_CLIENT" ]; then
  [ -x "$BASE_CLIENT" ] || { echo "BASE_CLIENT $BASE_CLIENT is not executable" >&2; exit 2; }
  clients=("before=$BASE_CLIENT${BASE_ARGS:+ $BASE_ARGS}" "${clients[@]}")
fi
[ "$MINIMAL" = 1 ] && clients+=("minimal=$minimal")
# SLACKS (optional, e.g. "1ms"): this build again with a wider --send-slack, open-model
# modes only, labelled "slack<value>": what batching the wake-ups buys and what it costs.
for sl in ${SLACKS:-}; do clients+=("slack$sl=$bin/c10m-loadclient --send-slack $sl"); done
mkdir -p "$(dirname "$OUT")"
tmp=$(mktemp -d /tmp/client-efficiency.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT

start_server() {  # $1 = --threads
  $bin/c10m-server --engine epoll --threads "$1" --addr "127.0.0.1:$PORT" --metrics-addr off \
    2>"$tmp/server.log" &
  spid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$tmp/server.log" && return 0; sleep 0.05; done
  cat "$tmp/server.log" >&2
  exit 1
}
stop_server() {
  kill -TERM "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  spid=
}

runs=()
for round in $(seq "$ROUNDS"); do
  order=("${clients[@]}")
  if [ $((round % 2)) -eq 0 ]; then  # alternate the order between rounds
    order=()
    for ((k = ${#clients[@]} - 1; k >= 0; k--)); do order+=("${clients[k]}"); done
  fi
  for threads in $SERVER_THREADS; do
    for entry in "${order[@]}"; do
      label=${entry%%=*}
      client=${entry#*=}
      for mode in $MODES; do
        [ "$label" = minimal ] && [ "$mode" != closed ] && continue  # closed loop only
        [ "${label#slack}" != "$label" ] && [ "$mode" = closed ] && continue  # no timers there
        case $mode in
          closed) load=(--conns 100 --inflight 8) ;;
          open) load=(--conns 1000 --rate 100) ;;
          demo) load=(--conns 2000 --active-frac 0.25 --rate 50 --ramp 4000 --srcips 127.0.0.2-127.0.0.3) ;;
          *) echo "unknown mode $mode" >&2; exit 2 ;;
        esac
        start_server "$threads"
        json="$tmp/r$round-t$threads-$label-$mode.json"
        if [ "$label" = minimal ]; then
          "$client" --addr "127.0.0.1:$PORT" "${load[@]}" --payload 64 --duration "$SECS" \
            --warmup "$WARMUP" --server-pid "$spid" >"$json" 2>"$tmp/client.err" || true
        else
          $client --addr "127.0.0.1:$PORT" "${load[@]}" --op echo --payload 64 \
            --duration "${SECS}s" --warmup "${WARMUP}s" --threads 1 --server-pid "$spid" \
            --quiet --json "$json" >"$tmp/client.out" 2>"$tmp/client.err" || true
        fi
        stop_server
        if [ ! -s "$json" ]; then
          echo "run failed: round $round threads $threads $label $mode" >&2
          cat "$tmp/client.err" >&2
          continue
        fi
        runs+=("$(/usr/bin/python3 - "$json" "$round" "$threads" "$label" "$mode" "$SECS" <<'PY'
import json, sys
path, rnd, threads, label, mode, secs = sys.argv[1:]
j = json.load(open(path))
if j.get("tool") == "min_echo_client":
    print(json.dumps({
      "round": int(rnd), "server_threads": int(threads), "client": label, "mode": mode,
      "frames_per_s": j["frames_per_s"], "sent_per_s": j["frames_per_s"], "target_per_s": 0,
      "p50_us": None, "p99_us": None, "p99_9_us": None,
      "client_us_per_frame": j["client_us_per_frame"],
      "server_us_per_frame": j["server_us_per_frame"] or 0, "frames_per_write": None,
      "waits_per_frame": None, "syscalls_per_frame": None,
      "client_cpu_share": None, "client_run_queue_wait_share": None, "client_behind": False,
      "behind_cause": None, "late_sends": 0, "errors": 0, "mismatches": 0}))
    print(f"round {rnd}  server threads {threads}  {label:7} {mode:6}: {j['frames_per_s']:>9,.0f}/s"
          f"  client {j['client_us_per_frame']:.2f}us  server {j['server_us_per_frame'] or 0:.2f}us",
          file=sys.stderr)
    sys.exit(0)
s = j["summary"]
lat = s["latency_us"]
cpu = s["cpu"]
sysc = s.get("syscalls") or {}
loops = s.get("client_loops") or {}
print(json.dumps({
  "round": int(rnd), "server_threads": int(threads), "client": label, "mode": mode,
  "client_commit": j["host"]["git_commit"],
  "frames_per_s": s["rate"]["completed_per_s"], "sent_per_s": s["rate"]["achieved_per_s"],
  "target_per_s": s["rate"]["target_per_s"],
  "p50_us": lat["p50"], "p99_us": lat["p99"], "p99_9_us": lat["p99_9"],
  "client_us_per_frame": (cpu["client_ns_per_frame"] or 0) / 1e3,
  "server_us_per_frame": (cpu["server_ns_per_frame"] or 0) / 1e3,
  "frames_per_write": sysc.get("frames_per_write"),
  "waits_per_frame": sysc["wait_calls"] / sysc["frames_in"] if sysc.get("frames_in") else None,
  "syscalls_per_frame": sysc.get("syscalls_per_frame"),
  "client_cpu_share": loops.get("cpu_share"),
  "client_run_queue_wait_share": loops.get("run_queue_wait_share"),
  "client_behind": s["client_behind"], "behind_cause": s.get("behind_cause"),
  "late_sends": s["late_sends"], "sent_measured": round(s["rate"]["achieved_per_s"] * float(secs)),
  "errors": s["errors"], "mismatches": s["mismatches"]}))
print(f"round {rnd}  server threads {threads}  {label:6} {mode:6}: "
      f"{s['rate']['completed_per_s']:>9,.0f}/s  p50 {lat['p50']:8.0f}us  "
      f"client {(cpu['client_ns_per_frame'] or 0) / 1e3:.2f}us  "
      f"server {(cpu['server_ns_per_frame'] or 0) / 1e3:.2f}us"
      + ("  (client behind)" if s["client_behind"] else ""), file=sys.stderr)
PY
)")
      done
    done
  done
done

printf '%s\n' "${runs[@]}" >"$tmp/runs.jsonl"
bash scripts/host_record.sh >"$tmp/host.json"
/usr/bin/python3 - "$tmp/runs.jsonl" "$tmp/host.json" "$OUT" "$ROUNDS" "$SECS" "$WARMUP" <<'PY'
import json, statistics, sys
runs_path, host_path, out, rounds, secs, warmup = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
host = json.load(open(host_path))
keys = ["frames_per_s", "p50_us", "p99_us", "p99_9_us", "client_us_per_frame",
        "server_us_per_frame", "frames_per_write", "client_cpu_share",
        "client_run_queue_wait_share", "late_share", "waits_per_frame", "syscalls_per_frame"]
for r in runs:  # share of measured sends that left > 1 ms late (open model only)
    r["late_share"] = r["late_sends"] / r["sent_measured"] if r.get("sent_measured") else None
groups = {}
for r in runs:
    groups.setdefault((r["server_threads"], r["mode"], r["client"]), []).append(r)
summary = []
order = {"before": 0, "after": 1, "minimal": 2}  # slack variants after these
for (threads, mode, client), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order.get(kv[0][2], 3))):
    causes = {}
    for r in rs:
        if r["client_behind"]:
            c = r.get("behind_cause") or "late sends (cause not reported by this client)"
            causes[c] = causes.get(c, 0) + 1
    row = {"server_threads": threads, "mode": mode, "client": client, "runs": len(rs),
           "client_behind_runs": sum(1 for r in rs if r["client_behind"]),
           "behind_causes": causes,
           "errors": sum(r["errors"] for r in rs), "mismatches": sum(r["mismatches"] for r in rs)}
    for k in keys:
        vals = [r[k] for r in rs if r.get(k) is not None]
        row[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)} if vals else None
    ratios = [r["client_us_per_frame"] / r["server_us_per_frame"] for r in rs if r["server_us_per_frame"]]
    row["client_over_server_cpu"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)} if ratios else None
    summary.append(row)
# after/before ratios within each round (same round = same box state)
speedups = []
for threads in sorted({r["server_threads"] for r in runs}):
    for mode in ("closed", "open", "demo"):
        by_round = {}
        for r in runs:
            if r["server_threads"] == threads and r["mode"] == mode:
                by_round.setdefault(r["round"], {})[r["client"]] = r
        fr = [v["after"]["frames_per_s"] / v["before"]["frames_per_s"] for v in by_round.values() if "after" in v and "before" in v]
        cpu = [v["after"]["client_us_per_frame"] / v["before"]["client_us_per_frame"] for v in by_round.values() if "after" in v and "before" in v]
        if fr:
            speedups.append({"server_threads": threads, "mode": mode,
                             "frames_after_over_before": {"median": statistics.median(fr), "min": min(fr), "max": max(fr)},
                             "client_cpu_after_over_before": {"median": statistics.median(cpu), "min": min(cpu), "max": max(cpu)}})
result = {"experiment": "client_efficiency", "host": host,
          "params": {"rounds": int(rounds), "secs": float(secs), "warmup": float(warmup),
                     "closed": "100 conns x 8 in flight x 64 B ECHO", "open": "1000 conns x 100/s x 64 B ECHO",
                     "demo": "2000 conns, 500 active x 50/s x 64 B ECHO"},
          "summary": summary, "ratios": speedups, "runs": runs}
json.dump(result, open(out + ".json", "w"), indent=2)

def mr(d, fmt="{:.0f}"):
    if d is None:
        return "-"
    return f"{fmt.format(d['median'])} [{fmt.format(d['min'])}-{fmt.format(d['max'])}]"
print(f"\nmedian [min-max] over {rounds} interleaved rounds; {secs}s measured after {warmup}s warm-up")
print(f"{'srv thr':>7} {'mode':6} {'client':9} {'frames/s':>26} {'p50 us':>20} {'p99 us':>22} {'p99.9 us':>22} "
      f"{'client us/frame':>20} {'server us/frame':>20} {'client/server':>18} {'frames/write':>16} behind")
for row in summary:
    print(f"{row['server_threads']:>7} {row['mode']:6} {row['client']:9} {mr(row['frames_per_s'], '{:,.0f}'):>26} "
          f"{mr(row['p50_us']):>20} {mr(row['p99_us']):>22} {mr(row['p99_9_us']):>22} "
          f"{mr(row['client_us_per_frame'], '{:.2f}'):>20} {mr(row['server_us_per_frame'], '{:.2f}'):>20} "
          f"{mr(row['client_over_server_cpu'], '{:.2f}'):>18} {mr(row['frames_per_write'], '{:.1f}'):>16} "
          f"{row['client_behind_runs']}/{row['runs']}"
          + "".join(f" {n}x {c}" for c, n in row["behind_causes"].items()))
# Why a client fell behind, from its own loop counters: CPU share of its loop (busy when
# near 1) and run-queue wait (starved when > 0.10), and the share of sends > 1 ms late.
for row in summary:
    if row["mode"] == "closed" or row["client"] == "minimal":
        continue
    print(f"srv thr {row['server_threads']} {row['mode']:6} {row['client']:9}: client loop CPU share "
          f"{mr(row['client_cpu_share'], '{:.3f}')}, run-queue wait share "
          f"{mr(row['client_run_queue_wait_share'], '{:.3f}')}, sends > 1 ms late "
          f"{mr(row['late_share'], '{:.3f}')}, epoll waits per frame "
          f"{mr(row['waits_per_frame'], '{:.3f}')}")
for row in summary:  # every kernel entry the client made (read, write, epoll, io_uring_enter)
    if row["syscalls_per_frame"] is not None:
        print(f"srv thr {row['server_threads']} {row['mode']:6} {row['client']:9}: client syscalls per frame "
              f"{mr(row['syscalls_per_frame'], '{:.3f}')}")
for s in speedups:
    print(f"server threads {s['server_threads']} {s['mode']:6}: frames/s after/before {mr(s['frames_after_over_before'], '{:.2f}')}, "
          f"client CPU per frame after/before {mr(s['client_cpu_after_over_before'], '{:.2f}')}")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing: no plot")
    sys.exit(0)
modes = [m for m in ("closed", "open", "demo") if any(r["mode"] == m for r in summary)]
has_closed = "closed" in modes
fig, axes = plt.subplots(1, len(modes) + has_closed, figsize=(5.3 * (len(modes) + has_closed), 5),
                         squeeze=False)
axes = list(axes[0])
def color(label):
    return ("#bbbbbb" if label.startswith("before") else "#8fbf6f" if label.startswith("minimal")
            else "#9d6fd8" if label.startswith("slack") else "#3b7dd8")
if has_closed:
    rows = [r for r in summary if r["mode"] == "closed"]
    labels = [f"{r['client']}\nsrv thr {r['server_threads']}" for r in rows]
    med = [r["frames_per_s"]["median"] / 1e3 for r in rows]
    err = [[(r["frames_per_s"]["median"] - r["frames_per_s"]["min"]) / 1e3 for r in rows],
           [(r["frames_per_s"]["max"] - r["frames_per_s"]["median"]) / 1e3 for r in rows]]
    ax = axes.pop(0)
    ax.bar(range(len(rows)), med, yerr=err, color=[color(l) for l in labels], capsize=4)
    ax.axhline(1000, color="red", linestyle="--", linewidth=1, label="goal: 1M frames/s")
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("thousand frames/s (median, min-max)")
    ax.set_title("closed loop 100 x 8 x 64 B, one client thread")
    ax.legend()
titles = {"closed": "closed loop", "open": "open model 100,000/s", "demo": "open model 25,000/s (demo)"}
for ax, mode in zip(axes, modes):
    rows = [r for r in summary if r["mode"] == mode]
    xs = range(len(rows))
    def bars(key, shift, label, col):
        med = [r[key]["median"] for r in rows]
        err = [[r[key]["median"] - r[key]["min"] for r in rows], [r[key]["max"] - r[key]["median"] for r in rows]]
        ax.bar([x + shift for x in xs], med, 0.4, yerr=err, capsize=3, label=label, color=col)
    bars("client_us_per_frame", -0.2, "client", "#3b7dd8")
    bars("server_us_per_frame", 0.2, "server", "#e08a2c")
    ax.set_xticks(list(xs), [f"{r['client']}\nsrv thr {r['server_threads']}" for r in rows], fontsize=8)
    ax.set_ylabel("CPU us per frame (median, min-max)")
    ax.set_title("CPU per frame, " + titles[mode])
    ax.legend()
fig.suptitle(f"c10m-loadclient efficiency ({host.get('cpu', '')}, {host.get('cores', '')} cores, commit {host.get('git_commit', '')})", fontsize=9)
fig.tight_layout()
fig.savefig(out + ".png", dpi=110)
print(f"wrote {out}.json and {out}.png")
PY
