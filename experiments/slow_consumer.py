#!/usr/bin/python3
"""Experiment 7: slow consumers. 100 fast clients run 64-byte ECHO (open model, 100/s
each) against c10m-server for the whole run; from t=10 s to t=30 s, 1,000 more clients
(experiments/slow_readers.py) each ask for a huge FETCH and read it at 10 KB/s. Sampled
every 0.5 s: server RSS, queued reply bytes (c10m_write_queue_bytes), open connections,
write-timeout drops, and the kernel's TCP memory (/proc/net/sockstat). From the load
client's per-second series: the fast clients' p99 before, during and after.

Configurations (one run each):
  copy-hold   --fetch-send copy,   --write-timeout 0    queues held: memory <= --write-queue each
  ref-hold    --fetch-send writev, --write-timeout 0    the same queues by reference
  ref-drop    --fetch-send writev, --write-timeout 5s   slow readers dropped and counted

  experiments/slow_consumer.py run
  experiments/slow_consumer.py report
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.plot  # noqa: E402
import harness.procs  # noqa: E402

OUT = os.path.join(harness.RESULTS, "slow_consumer")
CONFIGS = [
    ("copy-hold", ["--fetch-send", "copy", "--write-timeout", "0"]),
    ("ref-hold", ["--fetch-send", "writev", "--write-timeout", "0"]),
    ("ref-drop", ["--fetch-send", "writev", "--write-timeout", "5s"]),
]
SLOW_AT, SLOW_FOR, TOTAL = 10, 20, 40


def sockstat_tcp_mem_bytes():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1]) * 4096
    return None


def run_config(name, flags, args):
    server = harness.procs.Server(["--engine", "epoll", "--threads", "1", "--idle-timeout", "0",
                        "--write-queue", "256KiB"] + flags)
    samples = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sampler():
        while not stop.is_set():
            m = server.scrape()
            samples.append({"t": time.monotonic() - t0, "rss": server.rss(),
                            "write_queue_bytes": m.get("c10m_write_queue_bytes"),
                            "conns_open": m.get("c10m_conns_open"),
                            "drops": m.get("c10m_write_queue_drops_total"),
                            "tcp_mem": sockstat_tcp_mem_bytes()})
            stop.wait(0.5)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    try:
        fast = harness.procs.LoadClient(["--addr", f"127.0.0.1:{server.port}", "--conns", "100",
                              "--rate", "100", "--op", "echo", "--payload", "64",
                              "--duration", f"{TOTAL}s", "--server-pid", str(server.pid)],
                             os.path.join(OUT, "raw", f"{name}-fast.json"))
        time.sleep(max(0.0, t0 + SLOW_AT - time.monotonic()))
        slow = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__),
                                                            "slow_readers.py"),
                               "--port", str(server.port), "--conns", str(args.slow),
                               "--rate", "10000", "--duration", str(SLOW_FOR),
                               "--rcvbuf", str(args.rcvbuf)],
                              capture_output=True, text=True, timeout=SLOW_FOR + 120)
        if slow.returncode != 0:
            raise RuntimeError("slow readers: " + slow.stderr)
        slow_res = json.loads(slow.stdout.strip().splitlines()[-1])
        fast_res = fast.result()
    finally:
        stop.set()
        th.join()
        drain = server.stop()
    series = fast_res["series"]

    def p99s(lo, hi):
        return [s["p99_us"] for s in series if lo <= s["t"] < hi and s.get("p99_us")]

    before = p99s(2, SLOW_AT)
    during = p99s(SLOW_AT + 2, SLOW_AT + SLOW_FOR)
    after = p99s(SLOW_AT + SLOW_FOR + 2, TOTAL)
    peak_rss = max(s["rss"] or 0 for s in samples)
    base_rss = statistics.median([s["rss"] for s in samples if s["t"] < SLOW_AT and s["rss"]])
    peak_q = max(s["write_queue_bytes"] or 0 for s in samples)
    peak_tcp = max(s["tcp_mem"] or 0 for s in samples)
    base_tcp = statistics.median([s["tcp_mem"] for s in samples if s["t"] < SLOW_AT])
    out = {
        "config": name, "flags": flags, "slow": slow_res,
        "fast": {"p99_us_before": statistics.median(before) if before else None,
                 "p99_us_during": statistics.median(during) if during else None,
                 "p99_us_after": statistics.median(after) if after else None,
                 "p99_us_during_max": max(during) if during else None,
                 "overall_p99_us": fast_res["summary"]["latency_us"]["p99"],
                 "achieved_per_s": fast_res["summary"]["rate"]["achieved_per_s"],
                 "client_behind": fast_res["summary"]["client_behind"],
                 "errors": fast_res["summary"]["errors"],
                 "mismatches": fast_res["totals"]["mismatches"]},
        "server": {"rss_base": base_rss, "rss_peak": peak_rss,
                   "rss_growth_per_slow_conn": (peak_rss - base_rss) / args.slow,
                   "write_queue_bytes_peak": peak_q,
                   "write_queue_bytes_per_slow_conn": peak_q / args.slow,
                   "drops": samples[-1]["drops"], "kernel_tcp_mem_peak": peak_tcp,
                   "kernel_tcp_mem_growth_per_slow_conn": (peak_tcp - base_tcp) / args.slow,
                   "drain": drain},
        "samples": samples, "series": series}
    print(f"{name}: rss {base_rss / 2**20:.1f} -> {peak_rss / 2**20:.1f} MiB "
          f"({out['server']['rss_growth_per_slow_conn'] / 1024:.1f} KiB per slow conn), "
          f"queued peak {peak_q / 2**20:.1f} MiB ({out['server']['write_queue_bytes_per_slow_conn'] / 1024:.1f} KiB/conn), "
          f"kernel TCP mem +{(peak_tcp - base_tcp) / 2**20:.0f} MiB, drops {samples[-1]['drops']}, "
          f"slow read {slow_res['bytes_per_conn_per_s']:.0f} B/s/conn, reset {slow_res['reset_by_server']}; "
          f"fast p99 before {out['fast']['p99_us_before']} during {out['fast']['p99_us_during']} "
          f"after {out['fast']['p99_us_after']} us, behind {out['fast']['client_behind']}, "
          f"errors {out['fast']['errors']}", flush=True)
    return out


def run(args):
    harness.check_binaries()
    host = harness.host.host_record()
    results = []
    for name, flags in CONFIGS:
        if args.only and name not in args.only.split(","):
            continue
        results.append(run_config(name, flags, args))
    harness.host.write_result("slow_consumer/result.json", {
        "experiment": "slow_consumer", "host": host, "git": harness.host.git_commit(),
        "slow_conns": args.slow, "slow_rcvbuf": args.rcvbuf, "slow_rate_bytes_per_s": 10000,
        "fast": "100 conns x 100/s ECHO 64 B", "slow_at_s": SLOW_AT, "slow_for_s": SLOW_FOR,
        "configs": results})


def report(_args):
    with open(os.path.join(OUT, "result.json")) as f:
        r = json.load(f)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for c in r["configs"]:
        t = [s["t"] for s in c["samples"]]
        axes[0].plot(t, [(s["rss"] or 0) / 2**20 for s in c["samples"]], label=c["config"])
        axes[1].plot(t, [(s["write_queue_bytes"] or 0) / 2**20 for s in c["samples"]],
                     label=c["config"])
        axes[2].plot([s["t"] for s in c["series"]], [s.get("p99_us") or 0 for s in c["series"]],
                     label=c["config"])
        print(json.dumps({k: c[k] for k in ("config", "fast", "slow")}))
        print(json.dumps({k: v for k, v in c["server"].items()}))
    for ax in axes:
        ax.axvspan(r["slow_at_s"], r["slow_at_s"] + r["slow_for_s"], color="orange", alpha=0.15)
        ax.set_xlabel("seconds (shaded: 1,000 slow readers at 10 KB/s)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("server RSS MiB")
    axes[1].set_ylabel("reply bytes queued in the server, MiB")
    axes[2].set_ylabel("fast clients' p99 per second, us")
    axes[2].set_yscale("log")
    fig.suptitle(f"slow consumers vs 100 fast ECHO clients (commit {r['git']})")
    harness.plot.save(fig, os.path.join(OUT, "slow_consumer.png"))


def main():
    ap, sub = harness.host.subcommands(__doc__)
    r = sub.add_parser("run")
    r.add_argument("--slow", type=int, default=1000)
    r.add_argument("--rcvbuf", type=int, default=0, help="slow readers' SO_RCVBUF (0 default)")
    r.add_argument("--only", default="", help="comma-separated config names")
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
