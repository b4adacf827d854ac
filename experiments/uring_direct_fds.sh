#!/usr/bin/env bash
# Experiment: how many connections ONE c10m-server process holds with --engine uring when
# its fd limit is 20,000. Connections are direct descriptors in each loop's ring, whose
# fixed-file table may hold up to RLIMIT_NOFILE entries on its own, so the process's limit
# is loops x the fd limit, not the fd limit. For each LOOPS value: one server (--threads
# LOOPS, fd limit as the box gives it), load clients with --procs (each process has its own
# 20,000 fds) and 8 source IPs open CONNS = LOOPS x PER_LOOP connections, 1% of them sending
# a 64 B ECHO per second (every one must be answered); then it reports the connections the
# server holds (its /metrics gauge and the established sockets on its port), the fds it has
# open, its RSS and the kernel's slab per connection pair.
#   LOOPS="2 5" PER_LOOP=19900 HOLD=5 bash experiments/uring_direct_fds.sh
# Writes results/uring_direct_fds.json (with the host record); ports 21100-21101. No system
# setting is changed. Memory: ~10 KB of kernel slab per connection pair (both ends live in
# this kernel): 100,000 connections take ~1 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
LOOPS=${LOOPS:-"2 5"}
PER_LOOP=${PER_LOOP:-19900}
HOLD=${HOLD:-5}
SRCIPS=127.0.0.2-127.0.0.9
bin=build/release/apps
[ -x $bin/c10m-server ] && [ -x $bin/c10m-loadclient ] || make build >/dev/null
mkdir -p results
tmp=$(mktemp -d /tmp/uring-direct.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

meminfo() { awk -v k="$1:" '$1 == k {print $2 * 1024}' /proc/meminfo; }
rss_of() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
gauge() { curl -s "http://127.0.0.1:21101/metrics" | awk '$1 == "c10m_conns_open" {print $2}'; }
established() { ss -Htn state established '( sport = :21100 )' | wc -l; }

rows=()
for loops in $LOOPS; do
  conns=$((loops * PER_LOOP))
  procs=$(((conns + 18999) / 19000))
  $bin/c10m-server --engine uring --threads "$loops" --addr 127.0.0.1:21100 --idle-timeout 0 \
    --metrics-addr 127.0.0.1:21101 2>"$tmp/server-$loops.log" &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do grep -q 'listening on' "$tmp/server-$loops.log" && break; sleep 0.1; done
  grep -q 'listening on' "$tmp/server-$loops.log" || { cat "$tmp/server-$loops.log"; exit 1; }
  sleep 0.5
  rss0=$(rss_of $spid); slab0=$(meminfo Slab); fdlimit=$(awk '/Max open files/ {print $4}' /proc/$spid/limits)
  t0=$(date +%s.%N)
  $bin/c10m-loadclient --addr 127.0.0.1:21100 --conns "$conns" --procs "$procs" --srcips "$SRCIPS" \
    --active-frac 0.01 --rate 1 --op echo --payload 64 --ramp 20000 --connect-timeout 30s \
    --duration $((HOLD + conns / 1000 + 20))s --quiet --json "$tmp/client-$loops.json" \
    >"$tmp/client-$loops.out" 2>"$tmp/client-$loops.err" &
  cpid=$!
  pids+=("$cpid")
  for _ in $(seq 900); do [ "$(gauge || echo 0)" -ge "$conns" ] 2>/dev/null && break; sleep 0.1; done
  t1=$(date +%s.%N)
  sleep "$HOLD"
  held=$(gauge || echo 0); est=$(established); fds=$(ls /proc/$spid/fd | wc -l)
  rss1=$(rss_of $spid); slab1=$(meminfo Slab)
  wait $cpid || true
  kill -TERM $spid; wait $spid || true
  drain=$(grep 'drain:' "$tmp/server-$loops.log" | tail -n1)
  start=$(grep 'at most' "$tmp/server-$loops.log" | head -n1)
  rows+=("$(/usr/bin/python3 - "$loops" "$conns" "$procs" "$held" "$est" "$fds" "$fdlimit" "$rss0" \
    "$rss1" "$slab0" "$slab1" "$t0" "$t1" "$tmp/client-$loops.json" "$drain" "$start" <<'PY'
import json, sys
(loops, conns, procs, held, est, fds, fdlimit, r0, r1, s0, s1, t0, t1, cj, drain,
 start) = sys.argv[1:]
conns = int(conns)
try:
    c = json.load(open(cj))["summary"]
except (OSError, ValueError, KeyError):
    c = {"conns": {"open": None, "connect_failures": None}, "rate": {"completed_per_s": 0},
         "errors": -1, "mismatches": 0}
print(json.dumps({
    "loops": int(loops), "conns_target": conns, "client_procs": int(procs),
    "server_fd_limit": int(fdlimit), "server_conns_open_gauge": int(float(held or 0)),
    "server_established_sockets": int(est), "server_open_fds": int(fds),
    "rss_before_bytes": int(r0), "rss_held_bytes": int(r1),
    "rss_bytes_per_conn": (int(r1) - int(r0)) / conns,
    "kernel_slab_bytes_per_conn_pair": (int(s1) - int(s0)) / conns,
    "connect_seconds": float(t1) - float(t0),
    "client_conns_open": c["conns"]["open"], "client_connect_failures": c["conns"]["connect_failures"],
    "requests_answered_per_s": c["rate"]["completed_per_s"], "errors": c["errors"],
    "mismatches": c["mismatches"], "server_start_line": start, "drain_report": drain}))
PY
)")
  echo "${rows[-1]}" | /usr/bin/python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"loops {r['loops']}: {r['server_conns_open_gauge']:,} connections held ({r['server_established_sockets']:,} established), {r['server_open_fds']} fds open, fd limit {r['server_fd_limit']:,}; RSS {r['rss_bytes_per_conn']:.0f} B/conn; errors {r['errors']}\")"
done

/usr/bin/python3 - "${rows[@]}" <<'PY'
import json, subprocess, sys
rows = [json.loads(r) for r in sys.argv[1:]]
host = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True, text=True).stdout)
json.dump({"experiment": "uring_direct_fds", "host": host, "runs": rows},
          open("results/uring_direct_fds.json", "w"), indent=2)
print(f"{'loops':>5} {'target':>8} {'held':>8} {'estab.':>8} {'fds':>5} {'fd limit':>8} "
      f"{'RSS B/conn':>10} {'slab B/pair':>11} {'connect s':>9} {'answered/s':>10} {'errors':>6}")
for r in rows:
    print(f"{r['loops']:>5} {r['conns_target']:>8,} {r['server_conns_open_gauge']:>8,} "
          f"{r['server_established_sockets']:>8,} {r['server_open_fds']:>5} {r['server_fd_limit']:>8,} "
          f"{r['rss_bytes_per_conn']:>10.0f} {r['kernel_slab_bytes_per_conn_pair']:>11.0f} "
          f"{r['connect_seconds']:>9.1f} {r['requests_answered_per_s']:>10.0f} "
          f"{r['errors'] + r['mismatches']:>6}")
print("(results/uring_direct_fds.json)")
PY
