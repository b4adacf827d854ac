#!/usr/bin/python3
"""Experiment 2 (throughput vs frame size) and the Stage-1 line-rate check against iperf3.

FETCH egress and STREAM ingest through c10m-server (epoll, one loop) from c10m-loadclient
(one loop, closed loop, one request in flight per connection; every byte verified by the
client), 1 and 8 connections, frame payloads 64 B .. 65535 B; in the same rounds, iperf3 on
the same loopback (1 stream, 8 streams, and -Z sendfile). Rates come from the server's own
byte counters over a fixed window after a warm-up (bytes on the wire; payload = wire *
chunk / (chunk + 3)); CPU from /proc of both processes over the same window.

Rounds are interleaved (every configuration once per round) so that drift on a shared box
hits all of them alike; each round is one file, so rounds can be run in separate calls:

  experiments/throughput.py run --rounds 1      # repeat for more rounds
  experiments/throughput.py report                                # JSON summary + PNG

Results: results/throughput/round-*.json, results/throughput/summary.json, throughput.png.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.plot  # noqa: E402
import harness.procs  # noqa: E402
import harness.rounds  # noqa: E402
import harness.transfer  # noqa: E402

OUT = os.path.join(harness.RESULTS, "throughput")
SIZES = [64, 256, 1024, 4096, 16384, 65535]
CONNS = [1, 8]
OPS = ["fetch", "stream"]


def run(args):
    harness.check_binaries()
    os.makedirs(OUT, exist_ok=True)
    host = harness.host.host_record()
    for _ in range(args.rounds):
        k = len(glob.glob(os.path.join(OUT, "round-*.json")))
        points = []
        server = harness.procs.Server(["--engine", "epoll", "--threads", "1", "--fetch-send",
                            args.fetch_send] + args.server_arg)
        try:
            for op in OPS:
                for conns in CONNS:
                    for chunk in args.sizes:
                        tag = f"r{k}-{op}-{conns}-{chunk}"
                        p = harness.transfer.measure_transfer(server, op, conns, chunk, args.warm,
                                                args.measure,
                                                os.path.join(OUT, "raw", f"{tag}.json"))
                        print(f"round {k} {op:6} conns {conns} chunk {chunk:6}: "
                              f"{p['payload_bytes_per_s'] / 1e9:6.3f} GB/s "
                              f"{p['frames_per_s'] / 1e3:9.1f} kframes/s server "
                              f"{p['server_cpu_s_per_gb'] or 0:.3f} s/GB "
                              f"mismatches {p['mismatches']} errors {p['errors']}", flush=True)
                        points.append(p)
        finally:
            drain = server.stop()
        iperf = []
        for name, kw in (("iperf3", {}), ("iperf3 -P 8", {"streams": 8}),
                         ("iperf3 -Z", {"zerocopy": True})):
            r = harness.transfer.iperf3(22010, seconds=args.warm + args.measure, omit=1, **kw)
            r["name"] = name
            print(f"round {k} {name:12}: {r['bytes_per_s'] / 1e9:6.3f} GB/s "
                  f"sender {r['sender_cpu_s_per_gb'] or 0:.3f} s/GB", flush=True)
            iperf.append(r)
        harness.host.write_result(f"throughput/round-{k}.json", {
            "experiment": "throughput", "round": k, "host": host, "git": harness.host.git_commit(),
            "server_flags": ["--engine", "epoll", "--threads", "1", "--fetch-send",
                             args.fetch_send] + args.server_arg,
            "warm_s": args.warm, "measure_s": args.measure, "drain": drain,
            "points": points, "iperf3": iperf})


def report(_args):
    rounds = []
    for path in sorted(glob.glob(os.path.join(OUT, "round-*.json"))):
        with open(path) as f:
            rounds.append(json.load(f))
    if not rounds:
        raise SystemExit("no rounds in " + OUT)
    keys = sorted({(p["op"], p["conns"], p["chunk"]) for r in rounds for p in r["points"]})
    summary = {"rounds": len(rounds), "git": sorted({r["git"] for r in rounds}),
               "host": rounds[-1]["host"], "server_flags": rounds[-1]["server_flags"],
               "iperf3": {}, "points": []}
    for name in ("iperf3", "iperf3 -P 8", "iperf3 -Z"):
        summary["iperf3"][name] = harness.rounds.summarize(
            [i["bytes_per_s"] for r in rounds for i in r["iperf3"] if i["name"] == name])
        summary["iperf3"][name + " sender s/GB"] = harness.rounds.summarize(
            [i["sender_cpu_s_per_gb"] for r in rounds for i in r["iperf3"] if i["name"] == name])
    for op, conns, chunk in keys:
        rates, ratios, scpu, ccpu, fps, bad = [], [], [], [], [], 0
        for r in rounds:
            ref = next(i["bytes_per_s"] for i in r["iperf3"] if i["name"] == "iperf3")
            for p in r["points"]:
                if (p["op"], p["conns"], p["chunk"]) == (op, conns, chunk):
                    rates.append(p["payload_bytes_per_s"])
                    ratios.append(p["payload_bytes_per_s"] / ref)
                    scpu.append(p["server_cpu_s_per_gb"])
                    ccpu.append(p["client_cpu_s_per_gb"])
                    fps.append(p["frames_per_s"])
                    bad += p["mismatches"] + p["errors"]
        summary["points"].append({
            "op": op, "conns": conns, "chunk": chunk,
            "gb_per_s": harness.rounds.summarize([x / 1e9 for x in rates]),
            "ratio_to_iperf3_same_round": harness.rounds.summarize(ratios),
            "frames_per_s": harness.rounds.summarize(fps),
            "server_cpu_s_per_gb": harness.rounds.summarize(scpu),
            "client_cpu_s_per_gb": harness.rounds.summarize(ccpu),
            "mismatches_plus_errors": bad})
    harness.host.write_result("throughput/summary.json", summary)
    for p in summary["points"]:
        print(f"{p['op']:6} conns {p['conns']} chunk {p['chunk']:6}: "
              f"{p['gb_per_s']['median']:.3f} GB/s [{p['gb_per_s']['min']:.3f}.."
              f"{p['gb_per_s']['max']:.3f}] ratio {p['ratio_to_iperf3_same_round']['median']:.2f} "
              f"[{p['ratio_to_iperf3_same_round']['min']:.2f}.."
              f"{p['ratio_to_iperf3_same_round']['max']:.2f}] "
              f"server {p['server_cpu_s_per_gb']['median']:.3f} s/GB "
              f"client {p['client_cpu_s_per_gb']['median']:.3f} s/GB "
              f"frames/s {p['frames_per_s']['median']:.0f} bad {p['mismatches_plus_errors']}")
    for name, s in summary["iperf3"].items():
        if s:
            print(f"{name}: median {s['median'] / (1 if 's/GB' in name else 1e9):.3f} "
                  f"[{s['min'] / (1 if 's/GB' in name else 1e9):.3f}.."
                  f"{s['max'] / (1 if 's/GB' in name else 1e9):.3f}]")
    plot(summary)


def plot(summary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for op, style in (("fetch", "-o"), ("stream", "--s")):
        for conns in CONNS:
            pts = [p for p in summary["points"] if p["op"] == op and p["conns"] == conns]
            if not pts:
                continue
            xs = [p["chunk"] for p in pts]
            label = f"{op.upper()} {conns} conn{'s' if conns > 1 else ''}"
            axes[0].errorbar(xs, [p["gb_per_s"]["median"] for p in pts],
                             yerr=[[p["gb_per_s"]["median"] - p["gb_per_s"]["min"] for p in pts],
                                   [p["gb_per_s"]["max"] - p["gb_per_s"]["median"] for p in pts]],
                             fmt=style, capsize=3, label=label)
            axes[1].plot(xs, [p["server_cpu_s_per_gb"]["median"] for p in pts], style,
                         label=label)
    for name, color in (("iperf3", "k"), ("iperf3 -Z", "grey")):
        s = summary["iperf3"].get(name)
        if s:
            axes[0].axhline(s["median"] / 1e9, color=color, ls=":", label=f"{name} (1 stream)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("frame payload (chunk) bytes")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("payload GB/s (median, min..max)")
    axes[1].set_ylabel("server CPU seconds per GB")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"c10m-server epoll, 1 loop, loopback; {summary['rounds']} interleaved rounds "
                 f"(commit {','.join(summary['git'])})")
    harness.plot.save(fig, os.path.join(OUT, "throughput.png"))


def main():
    ap, sub = harness.host.subcommands(__doc__)
    r = sub.add_parser("run")
    r.add_argument("--rounds", type=int, default=1)
    r.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES)
    r.add_argument("--warm", type=float, default=1.0)
    r.add_argument("--measure", type=float, default=3.0)
    r.add_argument("--fetch-send", default="writev")
    r.add_argument("--server-arg", action="append", default=[],
                   help="extra server flag (repeat), e.g. --server-arg=--write-queue=1MiB")
    sub.add_parser("report")
    args = ap.parse_args()
    if args.cmd == "run":
        run(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
