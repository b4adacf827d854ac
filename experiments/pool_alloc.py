#!/usr/bin/python3
"""Experiment 5 (buffer pool) and the Stage-1 allocation proof.

1. steady: c10m-server under 10 s of steady load of each request type (PING, ECHO 64 B /
   4 KiB / 64 KiB, SINK 16 KiB, STREAM 1 MiB in 16 KiB CHUNKs, FETCH 1 MiB in 16 KiB
   frames); the exact growth of c10m_allocations_total over the window, next to what one
   idle scrape allocates (the scrape at the window's end is inside it).
2. pool: --pool true against --pool false in interleaved rounds, open-model load (ECHO 64 B
   and 4 KiB, FETCH 1 MiB): allocations per request, server CPU per request, p99.
3. bench: bench/session_bench (Google Benchmark): allocations per request of the request
   path itself, pool on and off.

  experiments/pool_alloc.py run
  experiments/pool_alloc.py report
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.metrics  # noqa: E402
import harness.plot  # noqa: E402
import harness.procs  # noqa: E402
import harness.rounds  # noqa: E402
import harness.transfer  # noqa: E402

OUT = os.path.join(harness.RESULTS, "pool_alloc")

STEADY = [  # name, loadclient args (closed loop: 4 connections x 4 in flight)
    ("PING", ["--op", "ping"]),
    ("ECHO 64 B", ["--op", "echo", "--payload", "64"]),
    ("ECHO 4 KiB", ["--op", "echo", "--payload", "4096"]),
    ("ECHO 64 KiB", ["--op", "echo", "--payload", "65535"]),
    ("SINK 16 KiB", ["--op", "sink", "--payload", "16384"]),
    ("STREAM 1 MiB", ["--op", "stream", "--payload", "1MiB", "--chunk", "16384"]),
    ("FETCH 1 MiB", ["--op", "fetch", "--payload", "1MiB", "--chunk", "16384"]),
]

POOL_LOADS = [  # name, loadclient args (open model)
    ("ECHO 64 B", ["--op", "echo", "--payload", "64", "--conns", "100", "--rate", "100"]),
    ("ECHO 4 KiB", ["--op", "echo", "--payload", "4096", "--conns", "100", "--rate", "100"]),
    ("FETCH 1 MiB", ["--op", "fetch", "--payload", "1MiB", "--chunk", "16384", "--conns", "10",
                     "--rate", "50"]),
]


def scrape_cost(server):
    a = harness.metrics.allocations(server.scrape())
    b = harness.metrics.allocations(server.scrape())
    return None if a is None else b - a


def steady(seconds):
    out = []
    server = harness.procs.Server(["--engine", "epoll", "--threads", "1"])
    try:
        per_scrape = scrape_cost(server)
        for name, args in STEADY:
            cl = ["--addr", f"127.0.0.1:{server.port}", "--conns", "4", "--inflight", "4",
                  "--duration", f"{seconds + 1.5}s", "--grace", "1s"] + args
            t0 = time.monotonic()
            lc = harness.procs.LoadClient(cl, os.path.join(OUT, "raw", f"steady-{name.replace(' ', '_')}.json"))
            w = harness.transfer.window(server, [lc.pid], t0, 1.0, seconds)
            res = lc.result()
            done = res["totals"]["ops_done"]
            rate = done / (seconds + 1.5)
            row = {"load": name, "window_s": w["seconds"], "allocations": w["allocations"],
                   "allocations_per_idle_scrape": per_scrape,
                   "requests_in_window_approx": rate * w["seconds"],
                   "bytes_in": w["bytes_in"], "bytes_out": w["bytes_out"],
                   "mismatches": res["totals"]["mismatches"], "errors": res["summary"]["errors"]}
            print(f"steady {name:13}: allocations {w['allocations']:.0f} in {w['seconds']:.1f} s "
                  f"(one idle scrape: {per_scrape:.0f}) over ~{row['requests_in_window_approx']:.0f} "
                  f"requests; bad {row['mismatches'] + row['errors']}", flush=True)
            out.append(row)
    finally:
        drain = server.stop()
    return {"rows": out, "drain": drain}


def pool_compare(rounds, seconds):
    rows = []
    for k in range(rounds):
        for name, args in POOL_LOADS:
            for pool in ("true", "false"):
                server = harness.procs.Server(["--engine", "epoll", "--threads", "1", "--pool", pool])
                try:
                    tag = f"pool-r{k}-{name.replace(' ', '_')}-{pool}"
                    cl = ["--addr", f"127.0.0.1:{server.port}", "--warmup", "1s",
                          "--duration", f"{seconds}s", "--server-pid", str(server.pid)] + args
                    t0 = time.monotonic()
                    lc = harness.procs.LoadClient(cl, os.path.join(OUT, "raw", tag + ".json"))
                    w = harness.transfer.window(server, [lc.pid], t0, 1.0, seconds)
                    res = lc.result()
                finally:
                    server.stop()
                s = res["summary"]
                done = s["rate"]["completed_per_s"] * w["seconds"]
                row = {"round": k, "load": name, "pool": pool,
                       "allocations_per_request": w["allocations"] / done if done else None,
                       "server_cpu_us_per_request": (s["cpu"]["server_ns_per_frame"] or 0) / 1e3,
                       "p50_us": s["latency_us"]["p50"], "p99_us": s["latency_us"]["p99"],
                       "p99_9_us": s["latency_us"]["p99_9"],
                       "achieved_per_s": s["rate"]["achieved_per_s"],
                       "target_per_s": s["rate"]["target_per_s"],
                       "client_behind": s["client_behind"],
                       "bad": res["totals"]["mismatches"] + s["errors"]}
                print(f"pool r{k} {name:11} --pool {pool:5}: {row['allocations_per_request']:.3f} "
                      f"allocs/req, server {row['server_cpu_us_per_request']:.1f} us/req, "
                      f"p99 {row['p99_us']:.0f} us, achieved {row['achieved_per_s']:.0f}/s "
                      f"behind {row['client_behind']} bad {row['bad']}", flush=True)
                rows.append(row)
    return rows


def bench():
    exe = os.path.join(harness.BUILD, "bench", "session_bench")
    out = subprocess.run([exe, "--benchmark_format=json", "--benchmark_min_time=0.3"],
                         capture_output=True, text=True, check=True).stdout
    j = json.loads(out)
    rows = []
    for b in j["benchmarks"]:
        rows.append({"name": b["name"], "cpu_ns": b["cpu_time"],
                     "allocs_per_op": b.get("allocs_per_op"),
                     "bytes_per_second": b.get("bytes_per_second")})
        print(f"bench {b['name']:40} {b['cpu_time']:10.0f} ns/op  allocs/op "
              f"{b.get('allocs_per_op')}", flush=True)
    return rows


def run(args):
    harness.check_binaries()
    host = harness.host.host_record()
    result = {"experiment": "pool_alloc", "host": host, "git": harness.host.git_commit()}
    result["bench"] = bench()
    result["steady"] = steady(args.seconds)
    result["pool"] = pool_compare(args.rounds, args.seconds)
    harness.host.write_result("pool_alloc/result.json", result)


def report(_args):
    with open(os.path.join(OUT, "result.json")) as f:
        r = json.load(f)
    summary = {"git": r["git"], "host": r["host"], "steady": r["steady"], "bench": r["bench"],
               "pool": []}
    for name, _ in POOL_LOADS:
        for pool in ("true", "false"):
            rows = [x for x in r["pool"] if x["load"] == name and x["pool"] == pool]
            summary["pool"].append({
                "load": name, "pool": pool,
                "allocations_per_request": harness.rounds.summarize([x["allocations_per_request"] for x in rows]),
                "server_cpu_us_per_request": harness.rounds.summarize(
                    [x["server_cpu_us_per_request"] for x in rows]),
                "p99_us": harness.rounds.summarize([x["p99_us"] for x in rows]),
                "client_behind_rounds": sum(1 for x in rows if x["client_behind"]),
                "bad": sum(x["bad"] for x in rows)})
    harness.host.write_result("pool_alloc/summary.json", summary)
    for p in summary["pool"]:
        print(f"{p['load']:11} --pool {p['pool']:5}: allocs/req "
              f"{p['allocations_per_request']['median']:.3f}, server us/req "
              f"{p['server_cpu_us_per_request']['median']:.2f} "
              f"[{p['server_cpu_us_per_request']['min']:.2f}..{p['server_cpu_us_per_request']['max']:.2f}]"
              f", p99 {p['p99_us']['median']:.0f} us [{p['p99_us']['min']:.0f}..{p['p99_us']['max']:.0f}]"
              f", behind {p['client_behind_rounds']}, bad {p['bad']}")
    plot(summary)


def plot(summary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    loads = [name for name, _ in POOL_LOADS]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for i, (key, label) in enumerate((("allocations_per_request", "heap allocations per request"),
                                      ("server_cpu_us_per_request", "server CPU us per request"),
                                      ("p99_us", "p99 latency us"))):
        for j, pool in enumerate(("true", "false")):
            vals = [next(p for p in summary["pool"] if p["load"] == l and p["pool"] == pool)[key]
                    for l in loads]
            xs = [x + (j - 0.5) * 0.35 for x in range(len(loads))]
            axes[i].bar(xs, [v["median"] for v in vals], width=0.35,
                        yerr=[[v["median"] - v["min"] for v in vals],
                              [v["max"] - v["median"] for v in vals]],
                        capsize=3, label=f"--pool {pool}")
        axes[i].set_xticks(range(len(loads)))
        axes[i].set_xticklabels(loads, fontsize=8)
        axes[i].set_title(label)
        axes[i].legend(fontsize=8)
    fig.suptitle(f"--pool true vs false (medians, min..max; commit {summary['git']})")
    harness.plot.save(fig, os.path.join(OUT, "pool_alloc.png"))


def main():
    ap, sub = harness.host.subcommands(__doc__)
    r = sub.add_parser("run")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--seconds", type=float, default=10)
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
