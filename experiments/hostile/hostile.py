#!/usr/bin/python3
"""One hostile fleet against one c10m-server with a memory budget, while 100 well-behaved
clients measure latency (docs/FINDINGS.md section 11, issue 11).

  experiments/hostile/hostile.py ATTACK [--conns N] [--attack 20] [--baseline 10]
      [--memory-limit 256MiB] [--workers auto] [--fleet-rate 5000] [--rst-rate 0]
      [--server-flags "..."] [--engine epoll] [--server-cpu 0] [--out results/hostile]

ATTACK: slowloris (half partial headers, half partial 60,000-byte ECHOs with 8,000 bytes
sent), slow-readers (FETCH of 1 GiB with SO_RCVBUF 4 KiB: half never read, half read
1 KiB/s), rst (connect, FETCH, reset, again), flood (hold connections beyond
--max-conns), garbage (4 KiB of random bytes, read until closed, again), bulk (the
fairness check: --conns FETCH readers that read as fast as they can; use --conns 8).

Phases: start the server (--engine, epoll by default; one loop per process, --workers W
processes, all pinned to --server-cpu, CPU 0 by default; the fleet and the good clients on
the other CPU); the good clients alone for --baseline s (their p99 is the baseline); then
the good clients connect again and, 2 s later (once connected: they are never shut out by
what the attack does to admission), the fleet runs for --attack s while they measure.
Fleet processes hold at most 16,000 connections each (the fd limit), share
--fleet-rate connects/s (slowloris, slow readers, garbage; the rst fleet connects at
--rst-rate, 0: as fast as it can; the flood is never capped), and run at nice 10 so that
the measuring client on the same core is not starved by them. --workers auto: one process
per ~19,000 connections (fleet + good clients), 1 up to 15,000. --memory-limit is per
process. The server's VmRSS (supervisor + workers), its budget gauges (summed over
workers), its overload counters and the kernel's TCP memory are sampled every 0.25 s.
Writes OUT/ATTACK.json (host record, git commit, commands, samples, fleet and client
reports) and OUT/ATTACK.png (memory over time; the good clients' p99 per second). The
server's CPU and run-queue wait (schedstat, all its threads) are sampled too, and summed
over the baseline and the attack. Raises net.core.somaxconn and
net.ipv4.tcp_max_syn_backlog to 65535 if lower (printed, restored at exit). Ports
23000-23001. Run it with the box to itself; needs build/release (make build).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ROOT, metrics, proc, sysctl  # noqa: E402

BUILD = os.environ.get("HOSTILE_BUILD", os.path.join(ROOT, "build/release"))
SERVER = os.path.join(BUILD, "apps/c10m-server")
LOADCLIENT = os.path.join(BUILD, "apps/c10m-loadclient")
FLEET = os.path.join(BUILD, "bench/hostile/hostile_fleet")
PORT, METRICS = 23000, 23001
SRCIPS = "127.0.0.2-127.0.0.30"
GOOD = ["--conns", "100", "--rate", os.environ.get("HOSTILE_GOOD_RATE", "100"), "--op", "echo",
        "--payload", "64", "--srcips", "127.0.0.40-127.0.0.41", "--quiet"]

# The measuring clients run SCHED_FIFO on their core (HOSTILE_GOOD_PRIO="" to turn it off):
# the fleet shares that core, and a client starved by it would measure itself.
GOOD_PRIO = os.environ.get("HOSTILE_GOOD_PRIO", "chrt -f 10").split()

SIZES = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def parse_size(text):
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", text)
    return int(m.group(1)) * SIZES.get(m.group(2), 1)


FLEET_PROC_CONNS = 16000  # per hostile_fleet process: under the 20,000 fd limit


def fleets(attack, conns, seconds, rate):
    """hostile_fleet argument lists for an attack, split into processes of at most
    FLEET_PROC_CONNS connections; `rate` connects/s is shared among them."""
    return [p for f in fleet_kinds(attack, conns, seconds, rate) for p in split_fleet(f)]


def split_fleet(args):
    """One fleet's argument list as several processes (--conns and --rate divided)."""
    i = args.index("--conns")
    n = int(args[i + 1])
    parts = max(1, -(-n // FLEET_PROC_CONNS))
    out = []
    for k in range(parts):
        a = list(args)
        a[i + 1] = str(n // parts + (1 if k < n % parts else 0))
        if "--rate" in a:
            j = a.index("--rate")
            a[j + 1] = str(float(a[j + 1]) * int(a[i + 1]) / n)
        out.append(a)
    return out


def fleet_kinds(attack, conns, seconds, rate):
    common = ["--addr", f"127.0.0.1:{PORT}", "--duration", f"{seconds}s", "--srcips", SRCIPS]
    half = max(1, conns // 2)
    r = str(rate / 2)
    if attack == "slowloris":
        return [common + ["--mode", "slow-header", "--conns", str(half), "--rate", r],
                common + ["--mode", "slow-echo", "--conns", str(conns - half), "--rate", r,
                          "--echo-len", "60000", "--prefix", "8000", "--seed", "2"]]
    if attack == "slow-readers":
        return [common + ["--mode", "slow-read", "--conns", str(half), "--rate", r],
                common + ["--mode", "slow-read", "--conns", str(conns - half), "--rate", r,
                          "--read-rate", "1024"]]
    if attack == "bulk":  # fairness: a few bulk readers as fast as they can, same loop
        return [common + ["--mode", "slow-read", "--conns", str(conns), "--rcvbuf", "1048576",
                          "--read-rate", str(1 << 30), "--fetch-total", "1024GiB",
                          "--chunk", "65535"]]
    if attack == "rst":  # `rate` 0: as fast as the fleet can
        return [common + ["--mode", "rst", "--conns", str(conns)] +
                (["--rate", str(rate)] if rate > 0 else [])]
    if attack == "flood":
        return [common + ["--mode", "flood", "--conns", str(conns), "--connect-timeout", "2s"]]
    if attack == "garbage":
        return [common + ["--mode", "garbage", "--conns", str(conns), "--rate", str(rate)]]
    raise SystemExit(f"unknown attack {attack}")


def scrape():
    return metrics.scrape(METRICS, timeout=2) or None


def tcp_mem_bytes():
    return proc.sockstat().get("mem_pages", 0) * proc.PAGE


def cpu_and_wait_s(pid):
    """CPU seconds used and seconds spent waiting in the run queue (schedstat), summed over
    every thread of the server's processes."""
    g = proc.group(proc.tree(pid), max_threads=1 << 30)
    return g.get("run_s", 0.0), g.get("rq_wait_s", 0.0)


def rss_bytes(pid):
    """RSS of the server (supervisor and workers)."""
    return proc.group(proc.tree(pid))["rss"]


ACTIONS = ["pause_read", "shrink_queue", "stop_accept", "close_error", "close_reset", "accept_rate"]


def sampler(pid, t0, samples, stop):
    while not stop.is_set():
        m = scrape() or {}
        samples.append({
            "t": time.monotonic() - t0,
            "rss": rss_bytes(pid),
            "cpu_wait_s": cpu_and_wait_s(pid),
            "budget_used": m.get("c10m_memory_budget_bytes"),
            "budget_limit": m.get("c10m_memory_budget_limit_bytes"),
            "conns_open": m.get("c10m_conns_open"),
            "kernel_tcp_mem": tcp_mem_bytes(),
            "actions": {a: m.get(f'c10m_overload_actions_total{{action="{a}"}}') for a in ACTIONS},
        })
        stop.wait(0.25)


def good_clients_cmd(seconds, json_path, cpu, warmup="1s"):
    return GOOD_PRIO + ["taskset", "-c", str(cpu), LOADCLIENT, "--addr", f"127.0.0.1:{PORT}",
            "--duration", f"{seconds}s", "--json", json_path, "--warmup", warmup] + GOOD


def good_clients(seconds, json_path, cpu):
    cmd = good_clients_cmd(seconds, json_path, cpu)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=seconds + 60)
    with open(json_path) as f:
        return cmd, json.load(f)


def summary(client):
    s = client["summary"]
    return {"p50_us": s["latency_us"]["p50"], "p99_us": s["latency_us"]["p99"],
            "p99_9_us": s["latency_us"]["p99_9"], "count": s["latency_us"]["count"],
            "errors": s["errors"], "mismatches": s["mismatches"],
            "client_behind": s["client_behind"], "error_frames": client["totals"]["error_frames"],
            "unanswered": client["totals"]["unanswered"],
            "unexpected_closes": client["totals"]["unexpected_closes"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("attack", choices=["slowloris", "slow-readers", "rst", "flood", "garbage", "bulk"])
    ap.add_argument("--conns", type=int, default=15000)
    ap.add_argument("--attack", dest="attack_s", type=int, default=20)
    ap.add_argument("--baseline", type=int, default=10)
    ap.add_argument("--memory-limit", default="256MiB", help="per server process")
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--fleet-rate", type=float, default=5000,
                    help="connects/s, all fleets (not rst's, not the flood's)")
    ap.add_argument("--rst-rate", type=float, default=0,
                    help="connects/s of the rst fleet (0: as fast as it can)")
    ap.add_argument("--server-flags", default="", help="extra server flags")
    ap.add_argument("--engine", choices=["epoll", "uring", "thread"], default="epoll")
    ap.add_argument("--server-cpu", type=int, choices=[0, 1], default=0,
                    help="the CPU the server is pinned to; the fleet and the good clients "
                         "take the other one")
    ap.add_argument("--out", default=os.path.join(ROOT, "results/hostile"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    fleet_rate = a.rst_rate if a.attack == "rst" else a.fleet_rate
    tmp = f"/tmp/hostile-{a.attack}-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)

    workers = (1 if a.conns <= 15000 else -(-(a.conns + 2000) // 19000)) \
        if a.workers == "auto" else int(a.workers)
    client_cpu = 1 - a.server_cpu
    server_cmd = ["taskset", "-c", str(a.server_cpu), SERVER, "--engine", a.engine,
                  "--threads", "1", "--workers", str(workers),
                  "--addr", f"127.0.0.1:{PORT}", "--metrics-addr", f"127.0.0.1:{METRICS}",
                  "--memory-limit", a.memory_limit] + a.server_flags.split()
    if a.attack == "flood" and "--max-conns" not in a.server_flags:
        server_cmd += ["--max-conns", str(a.conns * 2 // 3)]
    for key in ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"):
        sysctl.raise_to(key, 65535, "the fleet's connects")
    err = open(f"{tmp}/server.err", "w+")
    server = subprocess.Popen(server_cmd, stderr=err, stdout=subprocess.DEVNULL)
    try:
        ready = "workers started" if workers > 1 else "listening on"
        for _ in range(200):
            err.seek(0)
            if ready in err.read():
                break
            time.sleep(0.05)
        else:
            raise SystemExit("server did not start")
        t0 = time.monotonic()
        samples, stop = [], threading.Event()
        th = threading.Thread(target=sampler, args=(server.pid, t0, samples, stop), daemon=True)
        th.start()
        rss_start = rss_bytes(server.pid)

        good_cmd, base = good_clients(a.baseline, f"{tmp}/baseline.json", client_cpu)
        # The good clients connect first; their measured window opens as the fleet starts.
        good = subprocess.Popen(
            good_clients_cmd(a.attack_s - 2, f"{tmp}/attack.json", client_cpu, "2s"),
            stdout=subprocess.DEVNULL)
        time.sleep(2)
        t_attack = time.monotonic() - t0
        procs = []
        fleet_cmds = fleets(a.attack, a.conns, a.attack_s, fleet_rate)
        for i, f in enumerate(fleet_cmds):
            cmd = ["nice", "-n", "10", "taskset", "-c", str(client_cpu), FLEET] + f + \
                ["--json", f"{tmp}/fleet{i}.json"]
            fleet_cmds[i] = cmd
            procs.append(subprocess.Popen(cmd))
        if good.wait(timeout=a.attack_s + 60) != 0:
            raise SystemExit("good clients failed")
        with open(f"{tmp}/attack.json") as fh:
            during = json.load(fh)
        for p in procs:
            p.wait(timeout=a.attack_s + 60)
        t_attack_end = time.monotonic() - t0
        time.sleep(3)  # after the burst: memory back to the OS within --memory-release
        stop.set()
        th.join()
        fleet_reports = []
        for i in range(len(procs)):
            with open(f"{tmp}/fleet{i}.json") as fh:
                fleet_reports.append(json.load(fh))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        sysctl.restore_all()
    err.seek(0)
    server_log = err.read()

    limit = parse_size(a.memory_limit)
    attack_samples = [s for s in samples if t_attack <= s["t"] <= t_attack_end]
    peak_rss = max(s["rss"] for s in samples)

    def cpu_share(lo, hi):
        """Server cores used and run-queue wait per second between two sample times."""
        w = [s for s in samples if lo <= s["t"] <= hi]
        if len(w) < 2 or w[-1]["t"] <= w[0]["t"]:
            return None
        dt = w[-1]["t"] - w[0]["t"]
        return {"cores": (w[-1]["cpu_wait_s"][0] - w[0]["cpu_wait_s"][0]) / dt,
                "runqueue_wait_per_s": (w[-1]["cpu_wait_s"][1] - w[0]["cpu_wait_s"][1]) / dt}
    peak_budget = max((s["budget_used"] or 0) for s in samples)
    last = samples[-1]["actions"]
    host = json.loads(subprocess.run(["bash", os.path.join(ROOT, "scripts/host_record.sh")],
                                     capture_output=True, text=True).stdout)
    b, d = summary(base), summary(during)
    result = {
        "experiment": "hostile", "attack": a.attack, "host": host,
        "commands": {"server": server_cmd, "good_clients": good_cmd, "fleets": fleet_cmds},
        "memory_limit_bytes": limit * workers, "memory_limit_per_process_bytes": limit,
        "server_workers": workers, "rss_start_bytes": rss_start,
        "fleet_rate": fleet_rate,
        "peak_rss_bytes": peak_rss, "peak_rss_growth_bytes": peak_rss - rss_start,
        "peak_budget_used_bytes": peak_budget,
        "peak_kernel_tcp_mem_bytes": max(s["kernel_tcp_mem"] for s in attack_samples or samples),
        "rss_after_bytes": samples[-1]["rss"],
        "peak_server_conns": max((s["conns_open"] or 0) for s in samples),
        "overload_actions": last,
        "good_baseline": b, "good_attack": d,
        "server_cpu_baseline": cpu_share(t_attack - a.baseline, t_attack),
        "server_cpu_attack": cpu_share(t_attack, t_attack_end),
        "p99_ratio": d["p99_us"] / b["p99_us"] if b["p99_us"] else None,
        "fleet": [{k: v for k, v in r.items() if k != "series"} for r in fleet_reports],
        "bound_held": peak_budget <= workers * (limit + (1 << 20) + 4 * (128 << 10)),
        "t_attack": t_attack, "t_attack_end": t_attack_end,
        "samples": samples,
        "good_series": {"baseline": base["series"], "attack": during["series"]},
        "server_log": server_log.splitlines()[-20:],
    }
    path = os.path.join(a.out, f"{a.attack}.json")
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1)
    plot(result, os.path.join(a.out, f"{a.attack}.png"))
    fleet_closed = sum(r["closes_by_server"] + r["resets_received"] for r in fleet_reports)
    print(f"{a.attack}: peak RSS {peak_rss / 2**20:.1f} MiB (start {rss_start / 2**20:.1f}), "
          f"peak budget {peak_budget / 2**20:.1f} MiB / limit {workers} x {limit / 2**20:.0f} MiB, "
          f"kernel TCP {result['peak_kernel_tcp_mem_bytes'] / 2**20:.0f} MiB, "
          f"RSS after {samples[-1]['rss'] / 2**20:.1f} MiB, actions {last}, "
          f"fleet closed {fleet_closed}, good p99 {b['p99_us']:.0f} -> {d['p99_us']:.0f} us "
          f"(x{result['p99_ratio']:.2f}), good errors {b['errors']}+{d['errors']}, "
          f"behind {b['client_behind']}/{d['client_behind']}, server cores "
          f"{result['server_cpu_attack']} -> {path}")


def plot(r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    t = [s["t"] for s in r["samples"]]
    mib = 2 ** 20
    ax1.plot(t, [s["rss"] / mib for s in r["samples"]], label="server RSS")
    ax1.plot(t, [(s["budget_used"] or 0) / mib for s in r["samples"]], label="budget in use")
    ax1.plot(t, [s["kernel_tcp_mem"] / mib for s in r["samples"]], label="kernel TCP memory (all)",
             linestyle=":")
    ax1.axhline(r["memory_limit_bytes"] / mib, color="red", linestyle="--", label="--memory-limit")
    ax1.axvspan(r["t_attack"], r["t_attack_end"], color="orange", alpha=0.1, label="attack")
    ax1.set_ylabel("MiB")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title(f"{r['attack']}: {sum(f['conns'] for f in r['fleet']):,} hostile connections, "
                  f"100 good clients, epoll, {r.get('server_workers', 1)} process(es) x 1 loop")
    b0 = 0.0
    for name, series, off in (("baseline", r["good_series"]["baseline"], 0.0),
                              ("under attack", r["good_series"]["attack"], r["t_attack"] + 2)):
        if name == "baseline":
            off = r["t_attack"] - (series[-1]["t"] if series else 0)
            b0 = off
        ax2.plot([off + s["t"] for s in series], [s["p99_us"] / 1000 for s in series],
                 marker=".", label=f"good clients p99 per second ({name})")
    ax2.axhline(2 * r["good_baseline"]["p99_us"] / 1000, color="red", linestyle="--",
                label="2x baseline p99")
    ax2.set_yscale("log")
    ax2.set_ylabel("p99 (ms)")
    ax2.set_xlabel("seconds since the server started")
    ax2.legend(loc="upper left", fontsize=8)
    del b0
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
