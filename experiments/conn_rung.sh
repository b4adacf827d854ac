#!/usr/bin/env bash
# The connection ladder's rungs on one box (issue 7): `make c100k` and `make c1m`.
# For each engine in ENGINES and each total frame rate in RATES, c10m-server --workers W
# (W = enough processes for CONNS at this fd limit, +1) takes CONNS connections from
# c10m-loadclient --procs P --srcips SRCIPS (ramped at RAMP connects/s); a share ACTIVE of
# them sends ECHO in the PAYLOAD mix at RATE/(CONNS*ACTIVE) per connection per second, open
# model, for DURATION s measured after the connect phase. RATE 0 = all idle (memory).
# When the client has finished (every reply in, every connection closed by the client) the
# server gets SIGTERM and prints its merged drain line.
# A sampler records each second: connections open (server /metrics), server RSS (all its
# processes), Slab, KernelStack, PageTables, sockstat TCP, file-nr, MemAvailable, CPU of
# server / client / softirq. Per run: connect time and rate, bytes per connection (user
# and kernel), CPU per frame of both sides, p50/p99/p99.9, errors, unanswered, drain line.
# Host check first: free memory, fd limit, ports, sysctls. Sysctls it must change are
# printed and restored on exit. Writes results/<RUNG>.json and results/<RUNG>.png.
#   RUNG=c100k CONNS=100000 ENGINES="epoll thread" RATES="0 10000 50000" bash experiments/conn_rung.sh
# The active connections send nothing until the ramp is over (--sends-from: the ramp's
# length + 10% + 5 s), so the connects and the load never compete; HOLD=0 lets each send
# from its connect. PACK=1 passes --pack-active (the active connections fill the first
# client processes); off by default: at 1M it saturated those few processes (FINDINGS 8.3).
# Run it with the box to itself. BIN=DIR runs the binaries in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNG=${RUNG:-c100k}
CONNS=${CONNS:-100000}
ENGINES=${ENGINES:-"epoll"}
RATES=${RATES:-"0 10000"}                     # total frames/s; 0 = idle
ACTIVE=${ACTIVE:-0.05}                        # share of connections that send
PAYLOAD=${PAYLOAD:-64:0.9,4096:0.08,65535:0.02}
DURATION=${DURATION:-30}                      # measured seconds after the connect phase
RAMP=${RAMP:-20000}                           # connects/s, all client processes
SRCIPS=${SRCIPS:-127.0.0.2-127.0.0.130}
NSRC=${NSRC:-129}                             # addresses in SRCIPS
PORT=${PORT:-19300}
MPORT=${MPORT:-19301}
bin=${BIN:-build/release/apps}               # a copy keeps a long run safe from rebuilds
# EHASH=N: run everything (server, client, sampler) in a new network namespace that owns
# an established-socket hash of N buckets (net.ipv4.tcp_child_ehash_entries, read when a
# namespace is created; set for that moment, printed and restored). The boot-time table
# is shared by every namespace and sized from RAM (262,144 here): 1M connection pairs are
# 2M sockets in it, ~8 per bucket, and every segment walks a bucket (FINDINGS 8.3).
if [ -n "${EHASH:-}" ] && [ -z "${C10M_RUNG_NETNS:-}" ]; then
  ns=c10m-rung-$$
  old=$(sysctl -n net.ipv4.tcp_child_ehash_entries)
  echo "sysctl net.ipv4.tcp_child_ehash_entries: $old -> $EHASH for creating netns $ns, then restored" >&2
  sysctl -qw net.ipv4.tcp_child_ehash_entries="$EHASH"
  made=0; ip netns add "$ns" || made=$?
  sysctl -qw net.ipv4.tcp_child_ehash_entries="$old"
  [ "$made" = 0 ] || { echo "$RUNG: cannot create network namespace $ns" >&2; exit 3; }
  trap 'ip netns del "$ns"' EXIT
  ip netns exec "$ns" ip link set lo up
  echo "netns $ns: net.ipv4.tcp_ehash_entries = $(ip netns exec "$ns" sysctl -n net.ipv4.tcp_ehash_entries)" >&2
  rc=0; C10M_RUNG_NETNS=$ns ip netns exec "$ns" bash experiments/conn_rung.sh || rc=$?
  exit "$rc"
fi
[ -x $bin/c10m-server ] && [ -x $bin/c10m-loadclient ] || {
  cmake --preset release >/dev/null && cmake --build --preset release -j2 \
    --target c10m-server c10m-loadclient >/dev/null; }
mkdir -p results
tmp=$(mktemp -d /tmp/workers-rung.XXXXXX)
spid= cpid= sampler=
declare -A restore=()
cleanup() {
  [ -n "$cpid" ] && kill -9 "$cpid" 2>/dev/null
  [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  for k in "${!restore[@]}"; do
    sysctl -qw "$k=${restore[$k]}" && echo "restored $k = ${restore[$k]}" >&2
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- host check --------------------------------------------------------------------
fdlim=$(ulimit -n)
per_proc=$((fdlim - 100))
workers=$(( (CONNS + per_proc - 1) / per_proc + 1 ))
procs=$(( (CONNS + per_proc - 1) / per_proc ))
[ "$procs" -lt 1 ] && procs=1
avail=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) * 1024 ))
# measured (FINDINGS 1): ~10.2 KB of kernel memory per connection pair, ~0.2 KB server and
# ~0.06 KB client user space per idle connection; the thread engine adds ~34 KB per
# connection (its stack pages and kernel stack). Ask for 1.5x that.
per_conn=11000
case " $ENGINES " in *" thread "*) per_conn=46000 ;; esac
need=$((CONNS * per_conn * 3 / 2 + 2 * 1024 * 1024 * 1024))
if [ "$need" -gt "$avail" ]; then
  allows=$(( (avail - 2 * 1024 * 1024 * 1024) * 2 / 3 / per_conn ))
  echo "$RUNG: $CONNS connections need about $((need >> 30)) GiB of free memory" \
    "(${per_conn} B per connection pair x 1.5 + 2 GiB); this machine has $((avail >> 30)) GiB" \
    "available, which allows about $allows connections: run CONNS=$allows (engines: $ENGINES)" >&2
  exit 3
fi
# connect() picks a port by scanning the range, even ports first: past half the range per
# source IP every connect scans all even ones and the rate falls ~12x (FINDINGS 8.3,
# experiments/connect_port_search.py). Keep each source IP under half the range.
ports=$(awk '{print $2 - $1 + 1}' /proc/sys/net/ipv4/ip_local_port_range)
if [ $((ports / 2 * NSRC)) -lt "$CONNS" ]; then
  echo "$RUNG: $NSRC source IPs x $((ports / 2)) even ephemeral ports < $CONNS connections:" \
    "widen SRCIPS (past half the range per IP each connect() scans it)" >&2
  exit 3
fi
set_sysctl() {  # key value: raise to value if lower, remember the old value
  local k=$1 v=$2 old
  old=$(sysctl -n "$k" | awk '{print $1}')
  if [ "$old" -lt "$v" ] && [ "${SYSCTLS:-1}" = 0 ]; then
    echo "sysctl $k: $old (would raise to $v; SYSCTLS=0 leaves it)" >&2
  elif [ "$old" -lt "$v" ]; then
    sysctl -qw "$k=$v" || { echo "$RUNG: cannot set $k=$v (needed)" >&2; exit 3; }
    restore[$k]=$old
    echo "sysctl $k: $old -> $v (restored at exit)" >&2
  fi
}
set_sysctl fs.file-max $((2 * CONNS + 200000))        # both ends' fds live on this box
set_sysctl net.core.somaxconn 65535                     # listen backlog of the workers
set_sysctl net.ipv4.tcp_max_syn_backlog 65535           # SYN queue during the ramp
case " $ENGINES " in *" thread "*)
  set_sysctl kernel.pid_max $((CONNS + 100000))          # one thread (pid) per connection
  set_sysctl kernel.threads-max $((CONNS + 100000)) ;;
esac
echo "$RUNG: $CONNS connections: server $workers workers, client $procs processes over" \
  "$NSRC source IPs; fd limit $fdlim per process; $((avail >> 30)) GiB available" >&2

# ---- helpers -----------------------------------------------------------------------
meminfo() { awk -v k="$1:" '$1 == k {print $2 * 1024}' /proc/meminfo; }
start_sampler() {  # out-file
  /usr/bin/python3 - "$1" "$MPORT" "$spid" "$tmp/cpid" <<'PY' &
import json, os, re, sys, time, urllib.request
out, mport, spid, cpid_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
hz = os.sysconf("SC_CLK_TCK"); page = os.sysconf("SC_PAGE_SIZE")
def tree(p):
    ps = [p]
    try: ps += [int(c) for c in open(f"/proc/{p}/task/{p}/children").read().split()]
    except OSError: pass
    return ps
def cpu_rss(pids):
    cpu = rss = 0
    for p in pids:
        try:
            st = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            cpu += int(st[11]) + int(st[12])
            rss += int(st[21]) * page
        except (OSError, IndexError): pass
    return cpu / hz, rss
def meminfo():
    m = {}
    for l in open("/proc/meminfo"):
        k, v = l.split(":"); m[k] = int(v.split()[0]) * 1024
    return m
f = open(out, "w"); t0 = time.time()
while True:
    s = {"t": time.time()}
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=2).read().decode()
        m = re.search(r"^c10m_conns_open (\d+)", body, re.M)
        s["server_conns"] = int(m.group(1)) if m else None
        s["worker_conns"] = [int(v) for v in re.findall(r'^c10m_worker_conns_open\{worker="\d+"\} (\d+)', body, re.M)]
    except Exception:
        s["server_conns"] = None
    s["server_cpu_s"], s["server_rss"] = cpu_rss(tree(spid))
    try:
        cp = int(open(cpid_file).read())
        s["client_cpu_s"], s["client_rss"] = cpu_rss(tree(cp))
    except (OSError, ValueError):
        s["client_cpu_s"], s["client_rss"] = None, None
    mi = meminfo()
    for k in ("Slab", "SUnreclaim", "KernelStack", "PageTables", "MemAvailable", "AnonPages"):
        s[k] = mi[k]
    sock = open("/proc/net/sockstat").read()
    m = re.search(r"TCP: inuse (\d+) orphan (\d+) tw (\d+) alloc (\d+) mem (\d+)", sock)
    s["tcp_inuse"], s["tcp_tw"], s["tcp_alloc"], s["tcp_mem_bytes"] = int(m[1]), int(m[3]), int(m[4]), int(m[5]) * page
    s["file_nr"] = int(open("/proc/sys/fs/file-nr").read().split()[0])
    stat = open("/proc/stat").read().splitlines()
    c = [int(x) for x in stat[0].split()[1:9]]
    ctxt = next(int(l.split()[1]) for l in stat if l.startswith("ctxt "))
    s["stat"] = {"user": c[0] + c[1], "sys": c[2], "idle": c[3] + c[4], "softirq": c[6], "total": sum(c),
                 "ctxt": ctxt}
    f.write(json.dumps(s) + "\n"); f.flush()
    time.sleep(max(0.0, 1.0 - (time.time() - s["t"])))
PY
  sampler=$!
}

runs=()
for engine in $ENGINES; do
  for rate in $RATES; do
    label="$engine-$rate"
    rm -f "$tmp/cpid"
    $bin/c10m-server --engine "$engine" --workers "$workers" --threads 1 --idle-timeout 0 \
      --addr 127.0.0.1:$PORT --metrics-addr 127.0.0.1:$MPORT --drain-timeout 20s \
      2>"$tmp/server-$label.log" &
    spid=$!
    for _ in $(seq 300); do grep -q 'workers started' "$tmp/server-$label.log" && break; sleep 0.1; done
    grep -q 'workers started' "$tmp/server-$label.log" || { cat "$tmp/server-$label.log"; exit 1; }
    sleep 1
    start_sampler "$tmp/series-$label.jsonl"
    sleep 2                                   # baseline samples
    if [ "$rate" = 0 ]; then
      active=0; per=1
    else
      active=$ACTIVE
      per=$(/usr/bin/python3 -c "print($rate / ($CONNS * $ACTIVE))")
    fi
    connect_s=$(( CONNS * 13 / (RAMP * 10) + 15 ))  # the ramp + 30% + 15 s: left out as warm-up
    [ "$engine" = thread ] && connect_s=$(( connect_s + CONNS / 5000 ))  # a thread per accept
    pack=; [ "${PACK:-0}" = 1 ] && [ "$rate" != 0 ] && pack=--pack-active
    hold=; [ "${HOLD:-1}" = 1 ] && [ "$rate" != 0 ] && hold="--sends-from $(( CONNS * 11 / (RAMP * 10) + 5 ))s"
    t_launch=$(date +%s.%N)
    $bin/c10m-loadclient --addr 127.0.0.1:$PORT --conns "$CONNS" --procs "$procs" \
      --srcips "$SRCIPS" --ramp "$RAMP" --active-frac "$active" --rate "$per" --op echo \
      --payload "$PAYLOAD" --schedule poisson --warmup "${connect_s}s" --duration "${DURATION}s" \
      --grace 15s --connect-timeout 20s --quiet --json "$tmp/client-$label.json" $pack $hold \
      >"$tmp/client-$label.out" 2>"$tmp/client-$label.err" &
    cpid=$!
    echo "$cpid" >"$tmp/cpid"
    # A system-wide cpu-clock profile (this box has no hardware counters) of PERF_S seconds
    # in the middle of the measured window: where the CPU goes, by DSO and symbol, and by
    # command (c10m-server and c10m-loadclient, workers included).
    if [ "${PERF_S:-5}" -gt 0 ] && command -v perf >/dev/null; then
      sleep "$(( connect_s + DURATION / 2 ))"
      perf record -q -a -e cpu-clock -F 499 -o "$tmp/perf-$label.data" -- sleep "${PERF_S:-5}" \
        >/dev/null 2>&1 || true
      perf report -q -i "$tmp/perf-$label.data" --stdio --sort dso,sym --percent-limit 1 \
        2>/dev/null | grep -v '^$' | head -n 25 >"$tmp/perf-$label.txt" || true
      perf report -q -i "$tmp/perf-$label.data" --stdio --sort comm --percent-limit 1 \
        2>/dev/null | grep -v '^$' | head -n 12 >"$tmp/perf-comm-$label.txt" || true
    fi
    rc=0; wait "$cpid" || rc=$?
    cpid=
    t_term=$(date +%s.%N)
    kill -TERM "$spid"
    swait=0; wait "$spid" || swait=$?
    spid=
    t_end=$(date +%s.%N)
    sleep 1
    kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=
    drain=$(grep '^drain' "$tmp/server-$label.log" | tail -n1 || true)
    cap=$(grep -o '[0-9]* workers x [^)]*connections' "$tmp/server-$label.log" | head -n1 || true)
    /usr/bin/python3 - "$tmp" "$label" "$engine" "$rate" "$CONNS" "$t_launch" "$t_term" \
      "$t_end" "$connect_s" "$DURATION" "$rc" "$swait" "$drain" "$cap" "$workers" "$procs" <<'PY'
import json, sys
tmp, label, engine, rate, conns, t_launch, t_term, t_end, connect_s, dur, rc, swait, drain, cap, workers, procs = sys.argv[1:]
conns, rate, connect_s, dur = int(conns), int(rate), int(connect_s), int(dur)
t_launch, t_term, t_end = float(t_launch), float(t_term), float(t_end)
series = [json.loads(l) for l in open(f"{tmp}/series-{label}.jsonl")]
try:
    c = json.load(open(f"{tmp}/client-{label}.json"))
except (OSError, ValueError):
    c = None
base = series[0]
def at(t):  # the sample nearest to t
    return min(series, key=lambda s: abs(s["t"] - t))
held = [s for s in series if s["t"] < t_term and (s.get("server_conns") or 0) > 0]
peak = max(held, key=lambda s: s["server_conns"]) if held else base
n = peak.get("server_conns") or 0
# connect time: launch until the server first held 99.9% of what it held at its peak
full = next((s for s in held if s["server_conns"] >= 0.999 * n), peak) if n else peak
connect_time = full["t"] - t_launch
# the idle-memory point: right after all were connected (before the load's buffers add up)
mem = full
w0, w1 = at(t_launch + connect_s), at(t_launch + connect_s + dur)
window = w1["t"] - w0["t"]
def per(k, s=mem):
    return (s[k] - base[k]) / n if n else None
r = {
  "label": label, "engine": engine, "rate_target": rate, "conns_target": conns,
  "server_workers": int(workers), "client_procs": int(procs), "capacity_line": cap,
  "server_conns_peak": n, "per_worker_conns_at_peak": peak.get("worker_conns"),
  "connect_seconds": connect_time, "connects_per_s": n / connect_time if connect_time > 0 else None,
  "server_rss_bytes_per_conn": per("server_rss"),
  "client_rss_bytes_per_conn": (mem["client_rss"] - 0) / n if n and mem.get("client_rss") else None,
  "slab_bytes_per_conn_pair": per("Slab"), "sunreclaim_bytes_per_conn_pair": per("SUnreclaim"),
  "kernel_stack_bytes_per_conn": per("KernelStack"), "page_tables_bytes_per_conn": per("PageTables"),
  "tcp_mem_bytes_per_conn_pair": per("tcp_mem_bytes"),
  "mem_available_drop_bytes_per_conn_pair": -per("MemAvailable") if n else None,
  "mem_available_min_bytes": min(s["MemAvailable"] for s in series),
  "file_nr_peak": max(s["file_nr"] for s in series),
  "tcp_inuse_peak": max(s["tcp_inuse"] for s in series),
  "window_s": window,
  "server_cores": (w1["server_cpu_s"] - w0["server_cpu_s"]) / window if window > 0 else None,
  "client_cores": None,
  "box_softirq_cores": None, "box_busy_cores": None, "box_ctxt_per_s": None, "box_ctxt_per_frame": None,
  "client_rc": int(rc), "server_rc": int(swait), "drain": drain,
}
st0, st1 = w0["stat"], w1["stat"]
tot = st1["total"] - st0["total"]
if tot > 0:
    import os
    cores = os.cpu_count()
    r["box_softirq_cores"] = (st1["softirq"] - st0["softirq"]) / tot * cores
    r["box_busy_cores"] = (tot - (st1["idle"] - st0["idle"])) / tot * cores
    if window > 0:
        r["box_ctxt_per_s"] = (st1["ctxt"] - st0["ctxt"]) / window  # context switches, whole box
if c:
    s, t = c["summary"], c["totals"]
    r.update({
      "client_summary": {"conns": s["conns"], "rate": s["rate"], "latency_us": s["latency_us"],
                         "errors": s["errors"], "mismatches": s["mismatches"],
                         "client_behind": s["client_behind"], "behind_cause": s["behind_cause"],
                         "cpu": s["cpu"], "measured_s": s.get("measured_s"),
                         "syscalls": s.get("syscalls"), "client_loops": s.get("client_loops"),
                         "late_sends": s.get("late_sends")},
      "totals": {k: t[k] for k in ("conns_opened", "conns_open", "ops_sent", "ops_done", "sent_measured",
                                   "done_measured", "unanswered", "incomplete_at_end", "goaways",
                                   "unexpected_closes", "connect_failures", "error_frames", "errors")},
      "warnings": c.get("warnings", []),
    })
    done = t["done_measured"]
    if done and r["server_cores"] is not None:
        r["server_us_per_frame"] = r["server_cores"] * window / done * 1e6 if done else None
        if r["box_ctxt_per_s"] is not None:
            r["box_ctxt_per_frame"] = r["box_ctxt_per_s"] * window / done
        r["client_us_per_frame"] = s["cpu"]["client_ns_per_frame"] / 1000 if s["cpu"]["client_ns_per_frame"] else None
    if s["cpu"].get("client_s") and s.get("measured_s"):
        r["client_cores"] = s["cpu"]["client_s"] / s["measured_s"]
try:
    r["perf_comm_dso"] = [l.strip() for l in open(f"{tmp}/perf-{label}.txt").read().splitlines()]
except OSError:
    r["perf_comm_dso"] = None
try:  # share of all samples by command
    r["perf_comm"] = [l.strip() for l in open(f"{tmp}/perf-comm-{label}.txt").read().splitlines()]
except OSError:
    r["perf_comm"] = None
r["series"] = [{k: v for k, v in s.items() if k != "worker_conns"} for s in series]
r["t_launch"], r["t_term"] = t_launch, t_term
json.dump(r, open(f"{tmp}/run-{label}.json", "w"))
PY
    runs+=("$tmp/run-$label.json")
    /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin); s = r.get("client_summary") or {}; lat = s.get("latency_us") or {}
t = r.get("totals") or {}
print("%s: %s conns in %.1f s; p99 %s us; errors %s; unanswered %s; %s" % (r["label"],
      r["server_conns_peak"], r["connect_seconds"], lat.get("p99"), s.get("errors"),
      t.get("unanswered"), r["drain"]))' <"${runs[-1]}" >&2
    cat "$tmp/client-$label.err" | grep -v '^\[' | tail -n 5 >&2 || true
  done
done

/usr/bin/python3 - "$RUNG" "${runs[@]}" <<'PY'
import json, subprocess, sys
# Each run's record is a file (a long run's per-second series is too large for argv).
rung, rows = sys.argv[1], [json.load(open(p)) for p in sys.argv[2:]]
host = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True, text=True).stdout)
ehash = int(open("/proc/sys/net/ipv4/tcp_ehash_entries").read())  # < 0: the shared boot table
json.dump({"experiment": rung, "host": host, "tcp_ehash_entries": ehash, "runs": rows}, open(f"results/{rung}.json", "w"), indent=2)
def f(v, fmt="{:.0f}"):
    return "-" if v is None else fmt.format(v)
print(f"{'run':14} {'conns':>8} {'connect s':>9} {'conn/s':>7} {'srv B/c':>7} {'slab B/pair':>11} "
      f"{'kstack B/c':>10} {'rate/s':>7} {'p50 us':>7} {'p99 us':>8} {'p99.9 us':>8} {'err':>4} {'unans':>5} "
      f"{'srv us/f':>8} {'cli us/f':>8} {'srv cores':>9} {'cli cores':>9} {'softirq':>7}")
for r in rows:
    s = r.get("client_summary") or {}; lat = s.get("latency_us") or {}; t = r.get("totals") or {}
    print(f"{r['label']:14} {r['server_conns_peak']:>8} {f(r['connect_seconds'], '{:.1f}'):>9} "
          f"{f(r['connects_per_s']):>7} {f(r['server_rss_bytes_per_conn']):>7} "
          f"{f(r['slab_bytes_per_conn_pair']):>11} {f(r['kernel_stack_bytes_per_conn']):>10} "
          f"{f((s.get('rate') or {}).get('completed_per_s')):>7} {f(lat.get('p50')):>7} {f(lat.get('p99')):>8} "
          f"{f(lat.get('p99_9')):>8} {f(s.get('errors')):>4} {f(t.get('unanswered')):>5} "
          f"{f(r.get('server_us_per_frame'), '{:.1f}'):>8} {f(r.get('client_us_per_frame'), '{:.1f}'):>8} "
          f"{f(r['server_cores'], '{:.2f}'):>9} {f(r['client_cores'], '{:.2f}'):>9} {f(r['box_softirq_cores'], '{:.2f}'):>7}")
    print(f"{'':14} {r['drain']}; {r['capacity_line']}; MemAvailable min {r['mem_available_min_bytes'] / 2**30:.1f} GiB")
    if r.get("box_busy_cores") is not None:
        print(f"{'':14} box busy {r['box_busy_cores']:.2f} cores; context switches {f(r.get('box_ctxt_per_s'))}/s, "
              f"{f(r.get('box_ctxt_per_frame'), '{:.1f}')} per frame")
    for l in (r.get("perf_comm") or [])[:6]:
        print(f"{'':14} perf by command: {l}")
    for l in (r.get("perf_comm_dso") or [])[:8]:
        print(f"{'':14} perf: {l}")
print(f"(srv B/c: server RSS of all its processes per connection; slab B/pair: kernel slab per\n"
      f" connection pair, both ends live in this kernel; CPU per frame over the measured window.\n"
      f" Full record: results/{rung}.json)")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit(0)
fig, ax = plt.subplots(1, 3, figsize=(17, 4.8))
for r in rows:
    t0 = r["t_launch"]; ser = r["series"]
    ts = [s["t"] - t0 for s in ser]
    ax[0].plot(ts, [s.get("server_conns") or 0 for s in ser], label=r["label"])
    ax[1].plot(ts, [(s["Slab"] - ser[0]["Slab"]) / 2**30 for s in ser], label=f"{r['label']} slab")
    ax[1].plot(ts, [(s["server_rss"] - ser[0]["server_rss"]) / 2**30 for s in ser], "--", label=f"{r['label']} server RSS")
ax[0].set(title="connections held by the server", xlabel="s since client start", ylabel="connections")
ax[1].set(title="memory added", xlabel="s since client start", ylabel="GiB")
lab = [r["label"] for r in rows if r.get("client_summary")]
lat = [r["client_summary"]["latency_us"] for r in rows if r.get("client_summary")]
for i, p in enumerate(("p50", "p99", "p99_9")):
    ax[2].bar([x + i * 0.27 for x in range(len(lab))], [(l.get(p) or 0) / 1000 for l in lat], 0.27, label=p)
ax[2].set_xticks([x + 0.27 for x in range(len(lab))], lab, rotation=20)
ax[2].set(title="latency (measured window)", ylabel="ms", yscale="log")
for a in ax: a.legend(fontsize=7)
fig.suptitle(f"{rung}: {rows[0]['conns_target']:,} connections ({host['cores']} cores, {host['git_commit']})")
fig.tight_layout(); fig.savefig(f"results/{rung}.png", dpi=110)
print(f"plot: results/{rung}.png")
PY
