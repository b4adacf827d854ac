#!/usr/bin/python3
"""The Stage-1 bar: at least 100 GB through one c10m-server in one run, STREAM up and
FETCH down at the same time, every byte checked by the load clients, with the server's
RSS sampled every 0.5 s (plotted: it must stay flat).

One server (epoll, one loop), two load clients at once: STREAM uploads of 16 MiB in
64 KiB CHUNKs on --conns connections and FETCH downloads of 256 MiB in 64 KiB frames on
--conns connections, for --seconds (bounded in time; the run reports the bytes it moved
and whether the 100 GB bar was reached).

  experiments/bigrun.py run --seconds 60
  experiments/bigrun.py report
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.metrics  # noqa: E402
import harness.plot  # noqa: E402
import harness.procs  # noqa: E402

OUT = os.path.join(harness.RESULTS, "bigrun")


def run(args):
    harness.check_binaries()
    host = harness.host.host_record()
    flags = ["--engine", "epoll", "--threads", "1"] + args.server_arg
    server = harness.procs.Server(flags)
    samples = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sampler():
        while not stop.is_set():
            m = server.scrape()
            samples.append({"t": time.monotonic() - t0, "rss": server.rss(),
                            "cpu": server.cpu(),
                            "bytes_in": m.get("c10m_bytes_in_total"),
                            "bytes_out": m.get("c10m_bytes_out_total"),
                            "allocations": harness.metrics.allocations(m)})
            stop.wait(0.5)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    common = ["--addr", f"127.0.0.1:{server.port}", "--conns", str(args.conns), "--inflight",
              "1", "--chunk", "65535", "--duration", f"{args.seconds}s", "--grace", "5s",
              "--threads", "1"]
    up_cmd = common + ["--op", "stream", "--payload", str(16 << 20)]
    down_cmd = common + ["--op", "fetch", "--payload", str(256 << 20)]
    try:
        up = harness.procs.LoadClient(up_cmd, os.path.join(OUT, "raw", "stream.json"))
        down = harness.procs.LoadClient(down_cmd, os.path.join(OUT, "raw", "fetch.json"))
        up_res = up.result(timeout=args.seconds + 120)
        down_res = down.result(timeout=args.seconds + 120)
        wall = time.monotonic() - t0
    finally:
        stop.set()
        th.join()
        last = server.scrape()
        drain = server.stop()
    bytes_in = last.get("c10m_bytes_in_total", 0)
    bytes_out = last.get("c10m_bytes_out_total", 0)
    rss = [s["rss"] for s in samples if s["rss"]]
    steady = [s["rss"] for s in samples if s["rss"] and s["t"] > 5]
    result = {
        "experiment": "bigrun", "host": host, "git": harness.host.git_commit(),
        "server_cmd": server.cmd, "stream_cmd": up.cmd, "fetch_cmd": down.cmd,
        "seconds": args.seconds, "wall_s": wall,
        "server_bytes_in": bytes_in, "server_bytes_out": bytes_out,
        "total_bytes": bytes_in + bytes_out, "reached_100gb": bytes_in + bytes_out >= 100e9,
        "stream": {"requests": up_res["totals"]["ops_done"],
                   "mismatches": up_res["totals"]["mismatches"],
                   "errors": up_res["summary"]["errors"]},
        "fetch": {"requests": down_res["totals"]["ops_done"],
                  "mismatches": down_res["totals"]["mismatches"],
                  "errors": down_res["summary"]["errors"]},
        "rss_min": min(rss), "rss_max": max(rss),
        "rss_after_5s_min": min(steady) if steady else None,
        "rss_after_5s_max": max(steady) if steady else None,
        "allocations_after_5s": (samples[-1]["allocations"] - next(
            s["allocations"] for s in samples if s["t"] > 5)) if samples[-1]["allocations"]
        is not None and steady else None,
        "drain": drain, "samples": samples}
    harness.host.write_result("bigrun/result.json", result)
    print(f"moved {bytes_in / 1e9:.1f} GB up + {bytes_out / 1e9:.1f} GB down = "
          f"{(bytes_in + bytes_out) / 1e9:.1f} GB in {wall:.0f} s; "
          f"stream {result['stream']}, fetch {result['fetch']}; RSS after 5 s "
          f"{(result['rss_after_5s_min'] or 0) / 2**20:.1f}..{(result['rss_after_5s_max'] or 0) / 2**20:.1f} MiB; "
          f"allocations after 5 s {result['allocations_after_5s']}", flush=True)


def report(_args):
    with open(os.path.join(OUT, "result.json")) as f:
        r = json.load(f)
    print(json.dumps({k: v for k, v in r.items() if k not in ("samples", "host")}, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = [x for x in r["samples"] if x["bytes_in"] is not None]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    axes[0].plot([x["t"] for x in s], [x["rss"] / 2**20 for x in s])
    axes[0].set_ylim(0, max(x["rss"] for x in s) / 2**20 * 1.3)
    axes[0].set_ylabel("server RSS, MiB")
    axes[1].plot([x["t"] for x in s], [x["bytes_in"] / 1e9 for x in s], label="STREAM up (in)")
    axes[1].plot([x["t"] for x in s], [x["bytes_out"] / 1e9 for x in s], label="FETCH down (out)")
    axes[1].plot([x["t"] for x in s], [(x["bytes_in"] + x["bytes_out"]) / 1e9 for x in s],
                 label="total")
    axes[1].axhline(100, color="grey", ls=":")
    axes[1].set_ylabel("GB through the server")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("seconds")
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{r['total_bytes'] / 1e9:.0f} GB in one run, every byte verified "
                 f"(commit {r['git']})")
    harness.plot.save(fig, os.path.join(OUT, "bigrun.png"))


def main():
    ap, sub = harness.host.subcommands(__doc__)
    r = sub.add_parser("run")
    r.add_argument("--seconds", type=float, default=60)
    r.add_argument("--conns", type=int, default=4)
    r.add_argument("--server-arg", action="append", default=[])
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
