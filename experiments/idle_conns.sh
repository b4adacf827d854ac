#!/usr/bin/env bash
# Experiment: memory per idle connection, per engine.
# Holds N idle connections (default 19,000: just under the 20,000-fd limit of one process)
# on one c10m-server process, opened by one c10m-loadclient process, and prints for each
# engine: server RSS before/while holding, RSS bytes per connection, and the kernel's own
# cost (Slab, KernelStack and page tables from /proc/meminfo, which RSS does not show).
# Bounded: each engine's run ends after HOLD seconds of holding (plus the ramp).
#   N=19000 HOLD=5 ENGINES="epoll thread" bash experiments/idle_conns.sh
# Writes results/idle_conns.json (with the host record) and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-19000}
HOLD=${HOLD:-5}
ENGINES=${ENGINES:-"epoll thread"}
SRCIPS=${SRCIPS:-127.0.0.2-127.0.0.5}  # 4 source IPs: ~4x the ephemeral ports, no sysctl change
bin=build/release/apps
[ -x $bin/c10m-server ] && [ -x $bin/c10m-loadclient ] || make build >/dev/null
mkdir -p results
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

meminfo() { awk -v k="$1:" '$1 == k {print $2 * 1024}' /proc/meminfo; }
rss_of() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
fds_of() { ls "/proc/$1/fd" | wc -l; }

rows=()
for engine in $ENGINES; do
  $bin/c10m-server --engine "$engine" --addr 127.0.0.1:0 --idle-timeout 0 --threads 1 \
    --metrics-addr 127.0.0.1:0 2>"$tmp/server-$engine.log" &
  spid=$!
  for _ in $(seq 100); do grep -q 'listening on' "$tmp/server-$engine.log" && break; sleep 0.1; done
  port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$tmp/server-$engine.log" | head -n1)
  [ -n "$port" ] || { cat "$tmp/server-$engine.log"; exit 1; }
  sleep 0.5
  rss0=$(rss_of $spid); slab0=$(meminfo Slab); kstack0=$(meminfo KernelStack); pt0=$(meminfo PageTables)
  t0=$(date +%s.%N)
  $bin/c10m-loadclient --addr 127.0.0.1:$port --conns "$N" --active-frac 0 --ramp 20000 \
    --srcips "$SRCIPS" --duration $((HOLD + N / 5000 + 5))s --json "$tmp/client-$engine.json" \
    >"$tmp/client-$engine.out" 2>"$tmp/client-$engine.err" &
  cpid=$!
  # wait until the server holds N connections (its fds: N + listener + a few)
  for _ in $(seq 600); do [ "$(fds_of $spid)" -ge "$N" ] && break; sleep 0.1; done
  t1=$(date +%s.%N)
  sleep "$HOLD"
  held=$(( $(fds_of $spid) ))
  rss1=$(rss_of $spid); slab1=$(meminfo Slab); kstack1=$(meminfo KernelStack); pt1=$(meminfo PageTables)
  threads=$(awk '/Threads/ {print $2}' /proc/$spid/status)
  wait $cpid || true
  kill -TERM $spid; wait $spid || true
  drain=$(grep 'drain' "$tmp/server-$engine.log" | tail -n1)
  rows+=("$(python3 - "$engine" "$N" "$held" "$rss0" "$rss1" "$slab0" "$slab1" "$kstack0" "$kstack1" \
           "$pt0" "$pt1" "$threads" "$t0" "$t1" "$drain" <<'PY'
import json, sys
e, n, held, r0, r1, s0, s1, k0, k1, p0, p1, th, t0, t1, drain = sys.argv[1:]
n = int(n)
print(json.dumps({
  "engine": e, "conns_target": n, "server_fds_held": int(held),
  "rss_before_bytes": int(r0), "rss_held_bytes": int(r1),
  "rss_bytes_per_conn": (int(r1) - int(r0)) / n,
  "kernel_slab_bytes_per_conn": (int(s1) - int(s0)) / n,
  "kernel_stack_bytes_per_conn": (int(k1) - int(k0)) / n,
  "page_tables_bytes_per_conn": (int(p1) - int(p0)) / n,
  "server_threads": int(th), "connect_seconds": float(t1) - float(t0),
  "drain_report": drain}))
PY
)")
done

python3 - "$tmp" "${rows[@]}" <<'PY'
import json, subprocess, sys
rows = [json.loads(r) for r in sys.argv[2:]]
host = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True, text=True).stdout)
json.dump({"experiment": "idle_conns", "host": host, "runs": rows}, open("results/idle_conns.json", "w"), indent=2)
print(f"{'engine':8} {'conns':>6} {'RSS before':>11} {'RSS held':>10} {'RSS B/conn':>10} "
      f"{'slab B/pair':>11} {'kstack B/conn':>13} {'threads':>7} {'connect s':>9}")
for r in rows:
    print(f"{r['engine']:8} {r['server_fds_held']:>6} {r['rss_before_bytes']/2**20:>9.1f}Mi "
          f"{r['rss_held_bytes']/2**20:>8.1f}Mi {r['rss_bytes_per_conn']:>10.0f} "
          f"{r['kernel_slab_bytes_per_conn']:>11.0f} {r['kernel_stack_bytes_per_conn']:>13.0f} "
          f"{r['server_threads']:>7} {r['connect_seconds']:>9.1f}")
    print(f"         {r['drain_report']}")
print("(fds held: the connections plus the listener and a few others. Slab: the kernel's socket memory for\n"
      " both ends of each connection, client and server share this kernel. KernelStack: 16 KiB per thread.\n"
      " Full record: results/idle_conns.json)")
PY
