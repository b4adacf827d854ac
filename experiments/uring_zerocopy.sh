#!/usr/bin/env bash
# Experiment: does IORING_OP_SEND_ZC (zero-copy send) pay for the io_uring engine, and from
# what reply size? For each reply size, the same closed-loop load against
# `c10m-server --engine uring --threads 1` with `--zerocopy-min 0` (plain send) and with
# `--zerocopy-min 1` (every send zero-copy), in interleaved rounds (order swapped each
# round): ECHO of SIZE bytes, CONNS connections x 1 in flight (each reply leaves alone, so
# the send is exactly the reply), and one FETCH row (1 MiB downloads in 64 KiB-1 chunks: the
# engine sends whole 128 KiB blocks). Server pinned to CPU 0, client to CPU 1. Reports
# frames/s, server CPU per frame and per MiB sent, and the ratio zero-copy / copy.
#   ROUNDS=3 SECS=3 SIZES="1024 4096 16384 65535" CONNS=4 bash experiments/uring_zerocopy.sh
# Writes results/uring_zerocopy.json (host record, every run) and results/uring_zerocopy.png.
# Ports 21200-21201. No system setting is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
SIZES=${SIZES:-"1024 4096 16384 65535"}
CONNS=${CONNS:-4}
CLIENT=${CLIENT:-build/release/apps/c10m-loadclient}
bin=build/release/apps
[ -x $bin/c10m-server ] && [ -x "$CLIENT" ] || make build >/dev/null
out=results/uring_zerocopy
mkdir -p "$out"
rm -f "$out"/*.json
tmp=$(mktemp -d /tmp/uring-zc.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

run() {  # ZC_MIN WORKLOAD ROUND CLIENT-ARGS...
  local zc=$1 wl=$2 r=$3 port=$((21200 + ($1 > 0 ? 1 : 0)))
  shift 3
  taskset -c 0 $bin/c10m-server --engine uring --threads 1 --zerocopy-min "$zc" \
    --addr 127.0.0.1:$port --metrics-addr off --idle-timeout 0 2>"$tmp/server.log" &
  local spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do grep -q 'listening on' "$tmp/server.log" && break; sleep 0.1; done
  taskset -c 1 "$CLIENT" --addr 127.0.0.1:$port --warmup 1s --duration "${SECS}s" \
    --server-pid "$spid" --quiet --json "$out/$wl-zc$zc-r$r.json" "$@" >/dev/null 2>"$tmp/client.err" ||
    { cat "$tmp/client.err" >&2; exit 1; }
  kill -TERM "$spid"; wait "$spid" || true
  grep -q 'zero-copy sends from' "$tmp/server.log" || [ "$zc" = 0 ] ||
    { echo "zero-copy not enabled:" >&2; cat "$tmp/server.log" >&2; exit 1; }
}

for r in $(seq 1 "$ROUNDS"); do
  order="0 1"; [ $((r % 2)) = 0 ] && order="1 0"
  for size in $SIZES; do
    for zc in $order; do
      run "$zc" "echo$size" "$r" --conns "$CONNS" --inflight 1 --op echo --payload "$size"
    done
  done
  for zc in $order; do
    run "$zc" fetch1MiB "$r" --conns "$CONNS" --inflight 1 --op fetch --payload 1048576 --chunk 65535
  done
  echo "round $r/$ROUNDS done"
done

/usr/bin/python3 - "$out" "$SIZES" <<'PY'
import glob, json, statistics, subprocess, sys
out, sizes = sys.argv[1], sys.argv[2].split()
workloads = [f"echo{s}" for s in sizes] + ["fetch1MiB"]
rows = {}
for wl in workloads:
    for zc in (0, 1):
        runs = []
        for f in sorted(glob.glob(f"{out}/{wl}-zc{zc}-r*.json")):
            j = json.load(open(f))
            s = j["summary"]
            fps = s["rate"]["completed_per_s"]
            ns = s["cpu"]["server_ns_per_frame"]
            reply = 1 << 20 if wl == "fetch1MiB" else int(wl[4:]) + 3
            runs.append({"frames_per_s": fps, "server_ns_per_frame": ns,
                         "server_ms_per_mib": ns * (1 << 20) / reply / 1e6,
                         "mib_per_s": fps * reply / (1 << 20),
                         "errors": s["errors"] + s["mismatches"]})
        rows[(wl, zc)] = runs
med = lambda v: statistics.median(v) if v else float("nan")
report = {"experiment": "uring_zerocopy", "workloads": {}}
print(f"{'workload':10} {'send':5} {'MiB/s':>9} {'frames/s':>10} {'server us/frame':>15} "
      f"{'server ms/MiB':>13} {'zc/copy CPU':>11} {'errors':>6}")
for wl in workloads:
    base = med([r["server_ms_per_mib"] for r in rows[(wl, 0)]])
    report["workloads"][wl] = {}
    for zc in (0, 1):
        rs = rows[(wl, zc)]
        cpu = med([r["server_ms_per_mib"] for r in rs])
        ratio = cpu / base if base == base and base else float("nan")
        report["workloads"][wl]["zerocopy" if zc else "copy"] = {
            "runs": rs, "median_mib_per_s": med([r["mib_per_s"] for r in rs]),
            "median_server_ms_per_mib": cpu, "cpu_ratio_to_copy": ratio,
            "range_server_ms_per_mib": [min(r["server_ms_per_mib"] for r in rs),
                                        max(r["server_ms_per_mib"] for r in rs)] if rs else None}
        print(f"{wl:10} {'zc' if zc else 'copy':5} {med([r['mib_per_s'] for r in rs]):>9.0f} "
              f"{med([r['frames_per_s'] for r in rs]):>10.0f} "
              f"{med([r['server_ns_per_frame'] for r in rs]) / 1000:>15.2f} {cpu:>13.3f} "
              f"{ratio:>11.2f} {sum(r['errors'] for r in rs):>6}")
report["host"] = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True,
                                           text=True).stdout)
json.dump(report, open("results/uring_zerocopy.json", "w"), indent=1)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for zc, color in ((0, "#4477aa"), (1, "#cc6677")):
        ys = [report["workloads"][wl]["zerocopy" if zc else "copy"]["median_server_ms_per_mib"]
              for wl in workloads]
        ax.plot(workloads, ys, "o-", color=color, label="SEND_ZC" if zc else "send (copy)")
    ax.set_ylabel("server CPU ms per MiB sent (median)")
    ax.set_title("io_uring send vs SEND_ZC on loopback, by reply size", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig("results/uring_zerocopy.png", dpi=100)
except ImportError:
    pass
print("(results/uring_zerocopy.json, results/uring_zerocopy.png)")
PY
