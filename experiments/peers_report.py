#!/usr/bin/python3
"""Merges the rounds of experiments/peers.sh into one table, JSON and chart.

usage: peers_report.py RESULTS_DIR "SERVERS" SERVER_THREADS CLIENT_THREADS PIN SECS [PREFIX]
Reads RESULTS_DIR/{peak100x8,peak10k,latency,idle,profile}/, writes
PREFIX.json (every round's numbers, medians, min-max, the host record), PREFIX.md (the
tables) and PREFIX.png, PREFIX being results/peers unless given; prints the tables.
Each cell is the median of the rounds with the min-max range. Env RATIOS ("a/b ..."): the
per-round ratios to print (default: uring/epoll, epoll/libuv, before/libuv, epoll/before,
those whose servers ran).
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import host  # noqa: E402
from harness.rounds import summarize  # noqa: E402

res_dir, servers_arg, server_threads, client_threads, pin, secs = sys.argv[1:7]
prefix = sys.argv[7] if len(sys.argv) > 7 else "results/peers"
servers = servers_arg.split()
PEERS = [s for s in servers if not s.startswith("c10m-")]


def load_rounds(phase, server):
    out = []
    for f in sorted(glob.glob(f"{res_dir}/{phase}/{server}-r*.json")):
        try:
            out.append(json.load(open(f)))
        except (OSError, ValueError):
            pass
    return out


def client_metrics(j):
    s = j["summary"]
    cpu = s["cpu"]
    measured = s.get("measured_s") or 1
    lat = s["latency_us"]
    return {
        "frames_per_s": s["rate"]["completed_per_s"],
        "achieved_per_s": s["rate"]["achieved_per_s"],
        "server_us_per_frame": (cpu.get("server_ns_per_frame") or float("nan")) / 1000,
        "client_us_per_frame": cpu["client_ns_per_frame"] / 1000,
        "server_cores": (cpu.get("server_s") or float("nan")) / measured,
        "client_cores": cpu["client_s"] / measured,
        "p50_us": lat["p50"], "p99_us": lat["p99"], "p99_9_us": lat["p99_9"],
        "errors": s["errors"], "mismatches": s["mismatches"],
        "client_behind": bool(s["client_behind"]),
        "conns_open": s["conns"]["open"],
        "conns_target": s["conns"]["target"],
    }


def stats(values):
    return summarize([x for x in values if x == x])  # NaN dropped


def read_stat(path):
    """perf stat -x, output -> {event: count}."""
    out = {}
    if not os.path.exists(path):
        return out
    for line in open(path):
        parts = line.strip().split(",")
        if len(parts) >= 3 and parts[0].replace(".", "").isdigit():
            out[parts[2]] = float(parts[0])
    return out


result = {"experiment": "peers", "config": {
    "servers": servers, "server_threads": int(server_threads),
    "client_threads": int(client_threads), "pinned": pin == "1", "measured_s": int(secs),
    "workloads": {
        "peak100x8": "closed loop, 100 conns x 8 in flight, 64 B ECHO",
        "peak10k": "closed loop, 10,000 conns x 1 in flight, 64 B ECHO, 4 source IPs",
        "latency": "open model, 100 conns, 64 B ECHO, total rate in latency_rate_per_s (basis: latency_rate_basis)",
        "idle": "IDLE_CONNS idle connections (--active-frac 0), server VmRSS growth per connection"}},
    "servers": {}}
rate_file = f"{res_dir}/latency/rate.txt"
result["latency_rate_per_s"] = int(open(rate_file).read()) if os.path.exists(rate_file) else None
basis_file = f"{res_dir}/latency/basis.txt"
basis = open(basis_file).read().strip() if os.path.exists(basis_file) else "?"
basis_text = {"peak10k": "half the slowest median 10,000 x 1 peak",
              "peak100x8": "half the slowest median 100 x 8 peak"}.get(basis, "rate given by RATE")
result["latency_rate_basis"] = basis

for s in servers:
    entry = {}
    for phase in ("peak100x8", "peak10k", "latency"):
        rounds = [client_metrics(j) for j in load_rounds(phase, s)]
        if not rounds:
            continue
        entry[phase] = {
            "rounds": rounds,
            **{k: stats([r[k] for r in rounds]) for k in rounds[0]
               if k not in ("client_behind",)},
            "client_behind_rounds": sum(r["client_behind"] for r in rounds),
        }
    idle = load_rounds("idle", s)
    if idle:
        entry["idle"] = {"rounds": idle,
                         "rss_bytes_per_conn": stats([r["rss_bytes_per_conn"] for r in idle]),
                         "server_fds_held": stats([r["server_fds_held"] for r in idle]),
                         "server_threads": stats([r["server_threads"] for r in idle])}
    stat_json = f"{res_dir}/profile/{s}-stat.json"
    if os.path.exists(stat_json):
        ops = json.load(open(stat_json))["totals"]["ops_done"] or 1
        sv = read_stat(f"{res_dir}/profile/{s}-server.stat")
        cl = read_stat(f"{res_dir}/profile/{s}-client.stat")
        per_100 = lambda *names: 100 * sum(sv.get(f"syscalls:sys_enter_{n}", 0) for n in names) / ops
        entry["profile"] = {
            "ops_done": ops,
            "server_per_100_frames": {
                "epoll_waits": per_100("epoll_wait", "epoll_pwait"),
                "reads": per_100("read", "recvfrom", "recvmsg"),
                "writes": per_100("write", "writev", "sendto", "sendmsg"),
                "epoll_ctls": per_100("epoll_ctl"), "futexes": per_100("futex"),
                "io_uring_enters": per_100("io_uring_enter")},
            "server_syscalls_per_frame": sv.get("raw_syscalls:sys_enter", float("nan")) / ops,
            "server_ctx_switches_per_frame": sv.get("context-switches", float("nan")) / ops,
            "client_syscalls_per_frame": cl.get("raw_syscalls:sys_enter", float("nan")) / ops,
            "client_ctx_switches_per_frame": cl.get("context-switches", float("nan")) / ops,
            "perf_report": f"{res_dir}/profile/{s}.txt"}
    result["servers"][s] = entry


def med(s, phase, key):
    st = result["servers"].get(s, {}).get(phase, {}).get(key)
    return st["median"] if st else None


def cell(s, phase, key, fmt="{:,.0f}", scale=1.0):
    st = result["servers"].get(s, {}).get(phase, {}).get(key)
    if not st:
        return "-"
    f = lambda x: fmt.format(x * scale)
    return f"{f(st['median'])} ({f(st['min'])}-{f(st['max'])})"


def flags(s, phase):
    e = result["servers"].get(s, {}).get(phase)
    if not e:
        return ""
    notes = []
    if e["errors"]["max"] or e["mismatches"]["max"]:
        notes.append("ERRORS")
    if e["conns_open"]["min"] < e["conns_target"]["max"]:
        notes.append(f"only {e['conns_open']['min']:,.0f}-{e['conns_open']['max']:,.0f} of "
                     f"{e['conns_target']['max']:,.0f} conns open")
    if e["client_behind_rounds"]:
        notes.append(f"client behind in {e['client_behind_rounds']} round(s)")
    return "; ".join(notes)


# Who wins each row (medians): highest for rates, lowest for costs.
winners = {}
rows = [("peak100x8", "frames_per_s", max, "100x8 frames/s"),
        ("peak100x8", "server_us_per_frame", min, "100x8 server CPU/frame"),
        ("peak10k", "frames_per_s", max, "10kx1 frames/s"),
        ("peak10k", "server_us_per_frame", min, "10kx1 server CPU/frame"),
        ("latency", "p50_us", min, "p50 at fixed rate"),
        ("latency", "p99_us", min, "p99 at fixed rate"),
        ("latency", "p99_9_us", min, "p99.9 at fixed rate"),
        ("idle", "rss_bytes_per_conn", min, "RSS per idle conn")]
for phase, key, best, label in rows:
    cands = [(med(s, phase, key), s) for s in servers if med(s, phase, key) is not None]
    if cands:
        v, s = best(cands)
        winners[label] = {"server": s, "median": v}
result["winners"] = winners

# The goal (issue 27): with its defaults, c10m >= 1.1x the best peer's frames/s and <= 0.9x
# the cheapest peer's server CPU per frame on both closed-loop rows (medians of the rounds);
# and --engine epoll at or below libuv's CPU per frame.
RATE_GOAL, CPU_GOAL = 1.1, 0.9


def target_of(engine, phase):
    rate, cpu = med(engine, phase, "frames_per_s"), med(engine, phase, "server_us_per_frame")
    peers = [s for s in PEERS if med(s, phase, "frames_per_s") and med(s, phase, "server_us_per_frame")]
    if not rate or not cpu or not peers:
        return None
    best = max(peers, key=lambda p: med(p, phase, "frames_per_s"))
    cheapest = min(peers, key=lambda p: med(p, phase, "server_us_per_frame"))
    r, c = rate / med(best, phase, "frames_per_s"), cpu / med(cheapest, phase, "server_us_per_frame")
    return {"best_peer_by_rate": best, "rate_ratio": r, "cheapest_peer_by_cpu": cheapest,
            "cpu_ratio": c, "rate_goal": RATE_GOAL, "cpu_goal": CPU_GOAL,
            "met": r >= RATE_GOAL and c <= CPU_GOAL}


targets = {e: {ph: t for ph in ("peak100x8", "peak10k") for t in [target_of(e, ph)] if t}
           for e in ("c10m-default", "c10m-epoll", "c10m-uring", "c10m-before")}
result["targets"] = {e: t for e, t in targets.items() if t}
epoll_vs_libuv = {ph: med("c10m-epoll", ph, "server_us_per_frame") / med("libuv", ph, "server_us_per_frame")
                  for ph in ("peak100x8", "peak10k")
                  if med("c10m-epoll", ph, "server_us_per_frame") and med("libuv", ph, "server_us_per_frame")}
result["epoll_cpu_over_libuv"] = epoll_vs_libuv

# Per-round ratios a/b (the same round: the same box state), per phase: the comparison to
# read when rounds differ more from each other than servers do within one.
ratio_keys = ("frames_per_s", "server_us_per_frame", "client_us_per_frame", "p99_us")
pairs = (os.environ.get("RATIOS") or
         "c10m-uring/c10m-epoll c10m-epoll/libuv c10m-before/libuv c10m-epoll/c10m-before").split()
ratios = {}
for pair in pairs:
    a, b = pair.split("/")
    for phase in ("peak100x8", "peak10k", "latency"):
        ra = result["servers"].get(a, {}).get(phase, {}).get("rounds", [])
        rb = result["servers"].get(b, {}).get(phase, {}).get("rounds", [])
        if ra and rb and len(ra) == len(rb):
            ratios.setdefault(pair, {})[phase] = {
                k: stats([x[k] / y[k] for x, y in zip(ra, rb) if y[k]]) for k in ratio_keys}
result["per_round_ratios"] = ratios

try:
    result["host"] = host.host_record()
except ValueError:
    result["host"] = None
json.dump(result, open(f"{prefix}.json", "w"), indent=1)

# ---- tables
lines = []
cfg = result["config"]
n_rounds = max([st["n"] for e in result["servers"].values() for ph in ("peak100x8", "peak10k", "latency")
                for st in [e.get(ph, {}).get("frames_per_s")] if st] or [0])
lines.append(f"peers: {n_rounds} rounds, "
             f"server {cfg['server_threads']} thread(s){' on CPU 0' if cfg['pinned'] else ''}, "
             f"client {cfg['client_threads']} thread(s){' on CPU 1' if cfg['pinned'] else ''}, "
             f"{cfg['measured_s']} s measured per run; median (min-max)")
lines.append("")
for phase, title in (("peak100x8", "closed loop, 100 conns x 8 in flight x 64 B ECHO"),
                     ("peak10k", "closed loop, 10,000 conns x 1 in flight x 64 B ECHO")):
    if not any(phase in e for e in result["servers"].values()):
        continue  # not run (PEAKS)
    lines.append(f"### {title}")
    lines.append("")
    lines.append("| server | frames/s | server CPU us/frame | client CPU us/frame | server cores | client cores | notes |")
    lines.append("|---|---|---|---|---|---|---|")
    for s in servers:
        lines.append(f"| {s} | {cell(s, phase, 'frames_per_s')} | {cell(s, phase, 'server_us_per_frame', '{:.2f}')} | "
                     f"{cell(s, phase, 'client_us_per_frame', '{:.2f}')} | {cell(s, phase, 'server_cores', '{:.2f}')} | "
                     f"{cell(s, phase, 'client_cores', '{:.2f}')} | {flags(s, phase)} |")
    lines.append("")
if any("latency" in e for e in result["servers"].values()):
    lines.append(f"### open model, 100 conns, 64 B ECHO at {result['latency_rate_per_s'] or '?'}/s ({basis_text})")
    lines.append("")
    lines.append("| server | achieved/s | p50 us | p99 us | p99.9 us | server CPU us/frame | client CPU us/frame | notes |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for s in servers:
        lines.append(f"| {s} | {cell(s, 'latency', 'achieved_per_s')} | {cell(s, 'latency', 'p50_us', '{:.0f}')} | "
                     f"{cell(s, 'latency', 'p99_us', '{:.0f}')} | {cell(s, 'latency', 'p99_9_us', '{:.0f}')} | "
                     f"{cell(s, 'latency', 'server_us_per_frame', '{:.2f}')} | {cell(s, 'latency', 'client_us_per_frame', '{:.2f}')} | "
                     f"{flags(s, 'latency')} |")
    lines.append("")
lines.append("### idle connections and syscalls")
lines.append("")
idle_n = next((e["idle"]["rounds"][0]["conns_target"] for e in result["servers"].values() if "idle" in e), 0)
lines.append(f"| server | RSS B per idle conn ({idle_n:,}) | server threads | syscalls/frame server | syscalls/frame client | ctx switches/frame server | server per 100 frames (100x8): epoll waits / reads / writes / epoll_ctl / futex / io_uring_enter |")
lines.append("|---|---|---|---|---|---|---|")
for s in servers:
    e = result["servers"].get(s, {})
    idle = e.get("idle")
    prof = e.get("profile")
    rss = cell(s, "idle", "rss_bytes_per_conn") if idle else "-"
    th = f"{idle['server_threads']['median']:,.0f}" if idle else "-"
    f = lambda k: f"{prof[k]:.3f}" if prof and prof[k] == prof[k] else "-"
    p100 = " / ".join(f"{v:.1f}" for v in prof["server_per_100_frames"].values()) if prof else "-"
    lines.append(f"| {s} | {rss} | {th} | {f('server_syscalls_per_frame')} | {f('client_syscalls_per_frame')} | "
                 f"{f('server_ctx_switches_per_frame')} | {p100} |")
lines.append("")
lines.append("winners (median): " + "; ".join(f"{k}: {v['server']}" for k, v in winners.items()))
names = {"peak100x8": "100x8", "peak10k": "10kx1"}
for engine, by_phase in targets.items():
    for phase, t in by_phase.items():
        lines.append(f"{engine} vs the peers, {names[phase]}: {t['rate_ratio']:.2f}x {t['best_peer_by_rate']}'s frames/s "
                     f"(goal >= {RATE_GOAL}), {t['cpu_ratio']:.2f}x {t['cheapest_peer_by_cpu']}'s server CPU/frame "
                     f"(goal <= {CPU_GOAL}): {'MET' if t['met'] else 'NOT MET'}")
for phase, r in epoll_vs_libuv.items():
    lines.append(f"c10m-epoll / libuv server CPU/frame, {names[phase]} (medians): {r:.2f} (goal <= 1.00)")
for pair, by_phase in ratios.items():
    for phase, r in by_phase.items():
        lines.append(f"{pair}, {phase}, per round (median, min-max): " + ", ".join(
            f"{k} {v['median']:.3f} ({v['min']:.3f}-{v['max']:.3f})" for k, v in r.items() if v))
text = "\n".join(lines)
open(f"{prefix}.md", "w").write(text + "\n")
print(text)

# ---- chart
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("(matplotlib missing: no chart)")
    sys.exit(0)

panels = [("peak100x8", "frames_per_s", "100x8x64B closed loop: frames/s", False),
          ("peak10k", "frames_per_s", "10,000x1x64B closed loop: frames/s", False),
          ("peak100x8", "server_us_per_frame", "100x8: server CPU us/frame", False),
          ("latency", "p99_us", f"p99 us at {result['latency_rate_per_s']}/s open model", True),
          ("idle", "rss_bytes_per_conn", f"RSS bytes per idle connection ({idle_n:,})", True),
          ("peak10k", "server_us_per_frame", "10,000x1: server CPU us/frame", False)]
fig, axes = plt.subplots(2, 3, figsize=(15, 8))
colors = ["#d62728" if s.startswith("c10m-") else "#1f77b4" for s in servers]
for ax, (phase, key, title, log) in zip(axes.flat, panels):
    meds, lo, hi = [], [], []
    for s in servers:
        st = result["servers"].get(s, {}).get(phase, {}).get(key)
        m = st["median"] if st else 0
        meds.append(m)
        lo.append(m - st["min"] if st else 0)
        hi.append(st["max"] - m if st else 0)
    ax.bar(servers, meds, color=colors, yerr=[lo, hi], capsize=3)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", rotation=35, labelsize=8)
    if log and any(m > 0 for m in meds):
        ax.set_yscale("log")
fig.suptitle(f"c10m (red) vs peers (blue): server {cfg['server_threads']} thread(s), client "
             f"{cfg['client_threads']}, median of rounds, bars = min-max; "
             f"{(result.get('host') or {}).get('git_commit', '?')}", fontsize=10)
fig.tight_layout()
fig.savefig(f"{prefix}.png", dpi=100)
print(f"({prefix}.json, {prefix}.md, {prefix}.png)")
