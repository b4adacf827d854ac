#!/usr/bin/python3
"""Experiment 4: Nagle (TCP_NODELAY) on and off, and TCP_CORK/MSG_MORE against it.

1. loadclient: 64-byte ECHO through c10m-server (epoll, one loop), closed loop, 8
   connections, 1 request in flight (ping-pong) and 16 in flight (pipelined), with Nagle
   on or off at the server (--nodelay) and at the client (--nodelay/--no-nodelay), in
   interleaved rounds: frames/s, p50/p99, and packets on the wire per frame (from the
   loopback interface's packet counter), i.e. what disabling Nagle costs in segments.
2. write-write-read: a small client (below) that sends each 64-byte ECHO as two send()s
   (the 3-byte header, then the payload) and waits for the reply, the classic pattern
   that meets the delayed ACK: with Nagle on at the client, the payload waits for the
   header's ACK, which the server delays (it has nothing to say until the frame is whole).
   Variants: nagle (two sends, Nagle on), nodelay (two sends, TCP_NODELAY), cork (header
   with MSG_MORE, payload without: one segment), one (one send of header+payload). Per
   request latency histograms; the 40 ms peak is the signature.

  experiments/nagle.py run
  experiments/nagle.py report
"""
import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.plot  # noqa: E402
import harness.procs  # noqa: E402
import harness.rounds  # noqa: E402

OUT = os.path.join(harness.RESULTS, "nagle")
WWR_MODES = ["nagle", "nodelay", "cork", "one"]


def lo_packets():
    with open("/sys/class/net/lo/statistics/tx_packets") as f:
        return int(f.read())


def loadclient_point(server_nodelay, client_nodelay, inflight, seconds, tag):
    server = harness.procs.Server(["--engine", "epoll", "--threads", "1",
                        f"--nodelay={'true' if server_nodelay else 'false'}"])
    try:
        cl = ["--addr", f"127.0.0.1:{server.port}", "--conns", "8", "--inflight", str(inflight),
              "--op", "echo", "--payload", "64", "--warmup", "1s", "--duration", f"{seconds}s",
              "--threads", "1", "--nodelay" if client_nodelay else "--no-nodelay"]
        p0 = lo_packets()
        t0 = time.monotonic()
        lc = harness.procs.LoadClient(cl, os.path.join(OUT, "raw", tag + ".json"))
        res = lc.result()
        dt = time.monotonic() - t0
        p1 = lo_packets()
    finally:
        server.stop()
    s = res["summary"]
    frames = res["totals"]["ops_done"]
    return {"server_nodelay": server_nodelay, "client_nodelay": client_nodelay,
            "inflight": inflight, "frames_per_s": s["rate"]["completed_per_s"],
            "p50_us": s["latency_us"]["p50"], "p99_us": s["latency_us"]["p99"],
            "max_us": s["latency_us"].get("max"),
            # both directions go through lo: packets per request+reply pair
            "packets_per_frame": (p1 - p0) / frames if frames else None,
            "run_s": dt, "bad": res["totals"]["mismatches"] + s["errors"]}


def wwr(port, mode, seconds, max_requests):
    """write-write-read ECHO 64 B on one connection; returns per-request latencies (us)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if mode == "nodelay" else 0)
    payload = bytes(range(64))
    header = bytes([0x02, 0x00, 64])
    lat = []
    start = time.monotonic()
    while time.monotonic() - start < seconds and len(lat) < max_requests:
        t = time.perf_counter_ns()
        if mode == "one":
            s.sendall(header + payload)
        elif mode == "cork":
            s.send(header, socket.MSG_MORE)
            s.sendall(payload)
        else:
            s.sendall(header)
            s.sendall(payload)
        got = b""
        while len(got) < 67:
            b = s.recv(67 - len(got))
            if not b:
                raise RuntimeError("server closed")
            got += b
        lat.append((time.perf_counter_ns() - t) / 1e3)
        if got != header + payload:
            raise RuntimeError("echo mismatch")
    s.close()
    return lat


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def run(args):
    harness.check_binaries()
    host = harness.host.host_record()
    points = []
    for k in range(args.rounds):
        for inflight in (1, 16):
            for sn in (True, False):
                for cn in (True, False):
                    p = loadclient_point(sn, cn, inflight, args.seconds,
                                         f"r{k}-if{inflight}-s{int(sn)}-c{int(cn)}")
                    p["round"] = k
                    print(f"r{k} inflight {inflight:2} server nodelay {sn!s:5} client nodelay "
                          f"{cn!s:5}: {p['frames_per_s']:9.0f} frames/s p50 {p['p50_us']:7.0f} "
                          f"p99 {p['p99_us']:7.0f} us, {p['packets_per_frame']:.2f} packets/frame,"
                          f" bad {p['bad']}", flush=True)
                    points.append(p)
    wwr_rows = []
    for sn in (True, False):
        server = harness.procs.Server(["--engine", "epoll", "--threads", "1",
                            f"--nodelay={'true' if sn else 'false'}"])
        try:
            for mode in WWR_MODES:
                lat = wwr(server.port, mode, args.wwr_seconds, args.wwr_max)
                row = {"server_nodelay": sn, "mode": mode, "n": len(lat),
                       "p50_us": statistics.median(lat), "p99_us": pct(lat, 0.99),
                       "max_us": max(lat), "requests_per_s": len(lat) / (sum(lat) / 1e6),
                       "over_30ms": sum(1 for x in lat if x > 30000), "latencies_us": lat}
                print(f"write-write-read server nodelay {sn!s:5} {mode:8}: n {row['n']:6} "
                      f"p50 {row['p50_us']:8.0f} p99 {row['p99_us']:8.0f} us, "
                      f"{row['requests_per_s']:8.0f} req/s, >30 ms: {row['over_30ms']}",
                      flush=True)
                wwr_rows.append(row)
        finally:
            server.stop()
    harness.host.write_result("nagle/result.json", {"experiment": "nagle", "host": host,
                                          "git": harness.host.git_commit(), "points": points,
                                          "write_write_read": wwr_rows})


def report(_args):
    with open(os.path.join(OUT, "result.json")) as f:
        r = json.load(f)
    summary = {"git": r["git"], "host": r["host"], "loadclient": [], "write_write_read": []}
    for inflight in (1, 16):
        for sn in (True, False):
            for cn in (True, False):
                rows = [p for p in r["points"] if (p["inflight"], p["server_nodelay"],
                                                   p["client_nodelay"]) == (inflight, sn, cn)]
                e = {"inflight": inflight, "server_nodelay": sn, "client_nodelay": cn}
                for key in ("frames_per_s", "p50_us", "p99_us", "packets_per_frame"):
                    e[key] = harness.rounds.summarize([x[key] for x in rows])
                e["bad"] = sum(x["bad"] for x in rows)
                summary["loadclient"].append(e)
                print(f"inflight {inflight:2} server nodelay {sn!s:5} client {cn!s:5}: "
                      f"{e['frames_per_s']['median']:9.0f} frames/s "
                      f"[{e['frames_per_s']['min']:.0f}..{e['frames_per_s']['max']:.0f}] "
                      f"p50 {e['p50_us']['median']:.0f} p99 {e['p99_us']['median']:.0f} us "
                      f"packets/frame {e['packets_per_frame']['median']:.2f} bad {e['bad']}")
    for w in r["write_write_read"]:
        summary["write_write_read"].append({k: v for k, v in w.items() if k != "latencies_us"})
        print(f"wwr server nodelay {w['server_nodelay']!s:5} {w['mode']:8}: n {w['n']} p50 "
              f"{w['p50_us']:.0f} p99 {w['p99_us']:.0f} max {w['max_us']:.0f} us "
              f"{w['requests_per_s']:.0f} req/s >30ms {w['over_30ms']}")
    harness.host.write_result("nagle/summary.json", summary)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    bins = np.logspace(0, 5.3, 80)
    for w in r["write_write_read"]:
        if not w["server_nodelay"]:
            continue
        axes[0].hist(w["latencies_us"], bins=bins, histtype="step", lw=1.5,
                     label=f"{w['mode']} (n={w['n']})", weights=[1 / w["n"]] * w["n"])
    axes[0].axvline(40000, color="grey", ls=":", lw=1)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("request latency, us (64 B ECHO, one connection, server --nodelay)")
    axes[0].set_ylabel("fraction of requests")
    axes[0].set_title("write-write-read: header and payload in two send()s")
    axes[0].legend(fontsize=8)
    labels, fps, p99 = [], [], []
    for e in summary["loadclient"]:
        labels.append(f"if{e['inflight']} s{'+' if e['server_nodelay'] else '-'}"
                      f"c{'+' if e['client_nodelay'] else '-'}")
        fps.append(e["frames_per_s"]["median"])
        p99.append(e["p99_us"]["median"])
    x = np.arange(len(labels))
    axes[1].bar(x, fps, color=["C0" if "if1" in l else "C1" for l in labels])
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(labels, fontsize=8, rotation=30)
    axes[1].set_ylabel("frames/s (median)")
    axes[1].set_title("load client 8 conns, 64 B ECHO (s/c: server/client TCP_NODELAY +on -off)")
    for i, v in enumerate(p99):
        axes[1].text(i, fps[i], f"p99 {v:.0f}us", ha="center", va="bottom", fontsize=7)
    fig.suptitle(f"Nagle and delayed ACK (commit {r['git']})")
    harness.plot.save(fig, os.path.join(OUT, "nagle.png"))


def main():
    ap, sub = harness.host.subcommands(__doc__)
    r = sub.add_parser("run")
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--seconds", type=float, default=4)
    r.add_argument("--wwr-seconds", type=float, default=6)
    r.add_argument("--wwr-max", type=int, default=20000)
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
