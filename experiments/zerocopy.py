#!/usr/bin/python3
"""Experiment 6: zero copy against the plain copy, in the same rounds.

FETCH egress from a --fetch-file (a pattern file, so the client still checks every byte)
with every --fetch-send mode: copy (content copied into pooled blocks, then writev), writev
(writev straight from the file's mapping), sendfile (page-cache pages to the socket,
headers with MSG_MORE), zerocopy (writev with MSG_ZEROCOPY, completions read from the error
queue); and STREAM ingest with --ingest read against trunc (recv MSG_TRUNC drops large CHUNK
payloads in the kernel). Frame sizes 4 KiB .. 64 KiB, 1 and 8 connections. For each: GB/s
and the server's CPU seconds per GB; for zerocopy, how many sends the kernel copied anyway.
`profile` adds where the server's CPU goes per mode (perf record -e cpu-clock): the share
of samples in copy routines is the copy count made visible.

  experiments/zerocopy.py run --rounds 1    # repeat for more rounds
  experiments/zerocopy.py profile
  experiments/zerocopy.py report
"""
import glob
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.plot  # noqa: E402
import harness.procs  # noqa: E402
import harness.rounds  # noqa: E402
import harness.transfer  # noqa: E402

OUT = os.path.join(harness.RESULTS, "zerocopy")
SEND_MODES = ["copy", "writev", "sendfile", "zerocopy"]
INGEST_MODES = ["read", "trunc"]
SIZES = [4096, 8192, 16384, 65535]
CONNS = [1, 8]
COPY_SYMBOLS = ("_copy_from_iter", "_copy_to_iter", "copy_user", "memcpy", "memmove",
                "rep_movs", "copy_page")


def server_for(flags):
    # --fetch-ref-min 0: every mode sends every frame size its own way (no copy fallback).
    return harness.procs.Server(["--engine", "epoll", "--threads", "1", "--fetch-file", harness.transfer.PATTERN_FILE,
                      "--fetch-ref-min", "0"] + flags)


def run(args):
    harness.check_binaries()
    harness.transfer.ensure_pattern_file()
    os.makedirs(OUT, exist_ok=True)
    host = harness.host.host_record()
    for _ in range(args.rounds):
        k = len(glob.glob(os.path.join(OUT, "round-*.json")))
        points = []
        for family, modes, op in (("fetch-send", SEND_MODES, "fetch"),
                                  ("ingest", INGEST_MODES, "stream")):
            for mode in modes:
                server = server_for([f"--{family}", mode])
                try:
                    for conns in CONNS:
                        for chunk in args.sizes:
                            raw = os.path.join(OUT, "raw", f"r{k}-{op}-{mode}-{conns}-{chunk}.json")
                            p = harness.transfer.measure_transfer(server, op, conns, chunk, args.warm,
                                                    args.measure, raw)
                            p["mode"] = mode
                            w = p["window"]
                            p["zerocopy_copied_share"] = (w["zc_copied"] / w["zc_sends"]
                                                          if w["zc_sends"] else None)
                            print(f"round {k} {op:6} {mode:8} conns {conns} chunk {chunk:6}: "
                                  f"{p['payload_bytes_per_s'] / 1e9:6.3f} GB/s server "
                                  f"{p['server_cpu_s_per_gb'] or 0:.3f} s/GB client "
                                  f"{p['client_cpu_s_per_gb'] or 0:.3f} s/GB zc sends "
                                  f"{w['zc_sends']:.0f} copied {w['zc_copied']:.0f} "
                                  f"sendfile {w['sendfile'] / 1e9:.2f} GB discarded "
                                  f"{w['discarded'] / 1e9:.2f} GB bad "
                                  f"{p['mismatches'] + p['errors']}", flush=True)
                            points.append(p)
                finally:
                    server.stop()
        iperf = []
        for name, kw in (("iperf3", {}), ("iperf3 -Z", {"zerocopy": True})):
            r = harness.transfer.iperf3(22011, seconds=args.warm + args.measure, omit=1, **kw)
            r["name"] = name
            print(f"round {k} {name}: {r['bytes_per_s'] / 1e9:.3f} GB/s", flush=True)
            iperf.append(r)
        harness.host.write_result(f"zerocopy/round-{k}.json", {
            "experiment": "zerocopy", "round": k, "host": host, "git": harness.host.git_commit(),
            "warm_s": args.warm, "measure_s": args.measure, "points": points, "iperf3": iperf})


def copy_share(perf_data):
    """Share of the server's samples (self time) in copy routines, from perf report."""
    out = subprocess.run(["perf", "report", "-i", perf_data, "--no-children", "--sort", "sym",
                          "--stdio", "-g", "none"], capture_output=True, text=True).stdout
    total = copy = 0.0
    top = []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line:
            continue
        pct = float(line.split("%")[0])
        sym = line.split("]", 1)[-1].strip()
        total += pct
        if any(s in sym for s in COPY_SYMBOLS):
            copy += pct
        if len(top) < 8:
            top.append(f"{pct:.1f}% {sym}")
    return copy, top


def profile(args):
    """perf record the server during a 64 KiB-frame FETCH (1 conn) per send mode, and a
    64 KiB STREAM per ingest mode."""
    harness.check_binaries()
    harness.transfer.ensure_pattern_file()
    host = harness.host.host_record()
    results = []
    for family, mode, op in ([("fetch-send", m, "fetch") for m in SEND_MODES]
                             + [("ingest", m, "stream") for m in INGEST_MODES]):
        server = server_for([f"--{family}", mode])
        data = os.path.join(OUT, f"perf-{op}-{mode}.data")
        try:
            perf = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-g", "-p",
                                     str(server.pid), "-o", data, "--", "sleep",
                                     str(args.seconds)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.2)
            harness.transfer.measure_transfer(server, op, 1, 65535, 0.5, args.seconds - 1,
                                os.path.join(OUT, "raw", f"perf-{op}-{mode}.json"))
            perf.wait(timeout=60)
        finally:
            server.stop()
        share, top = copy_share(data)
        print(f"{op} {mode}: {share:.1f}% of server samples in copy routines; top: {top[:4]}",
              flush=True)
        results.append({"op": op, "mode": mode, "copy_share_pct": share, "top": top})
    harness.host.write_result("zerocopy/profile.json", {"experiment": "zerocopy-profile", "host": host,
                                              "git": harness.host.git_commit(), "profiles": results})


def report(_args):
    rounds = []
    for path in sorted(glob.glob(os.path.join(OUT, "round-*.json"))):
        with open(path) as f:
            rounds.append(json.load(f))
    if not rounds:
        raise SystemExit("no rounds in " + OUT)
    keys = sorted({(p["op"], p["mode"], p["conns"], p["chunk"])
                   for r in rounds for p in r["points"]})
    summary = {"rounds": len(rounds), "git": sorted({r["git"] for r in rounds}),
               "host": rounds[-1]["host"], "points": [], "iperf3": {}}
    for name in ("iperf3", "iperf3 -Z"):
        summary["iperf3"][name] = harness.rounds.summarize(
            [i["bytes_per_s"] / 1e9 for r in rounds for i in r["iperf3"] if i["name"] == name])
    for op, mode, conns, chunk in keys:
        base_mode = "copy" if op == "fetch" else "read"
        rate, cpu, speedup, cpu_ratio, zc, bad = [], [], [], [], [], 0
        for r in rounds:
            by = {(p["op"], p["mode"], p["conns"], p["chunk"]): p for p in r["points"]}
            p = by.get((op, mode, conns, chunk))
            b = by.get((op, base_mode, conns, chunk))
            if not p:
                continue
            rate.append(p["payload_bytes_per_s"] / 1e9)
            cpu.append(p["server_cpu_s_per_gb"])
            if b and b["payload_bytes_per_s"] > 0:
                speedup.append(p["payload_bytes_per_s"] / b["payload_bytes_per_s"])
                if b["server_cpu_s_per_gb"] and p["server_cpu_s_per_gb"]:
                    cpu_ratio.append(p["server_cpu_s_per_gb"] / b["server_cpu_s_per_gb"])
            if p.get("zerocopy_copied_share") is not None:
                zc.append(p["zerocopy_copied_share"])
            bad += p["mismatches"] + p["errors"]
        summary["points"].append({
            "op": op, "mode": mode, "conns": conns, "chunk": chunk,
            "gb_per_s": harness.rounds.summarize(rate), "server_cpu_s_per_gb": harness.rounds.summarize(cpu),
            "rate_vs_" + base_mode: harness.rounds.summarize(speedup),
            "server_cpu_vs_" + base_mode: harness.rounds.summarize(cpu_ratio),
            "zerocopy_copied_share": harness.rounds.summarize(zc), "mismatches_plus_errors": bad})
    prof = os.path.join(OUT, "profile.json")
    if os.path.exists(prof):
        with open(prof) as f:
            summary["profile"] = json.load(f)["profiles"]
    harness.host.write_result("zerocopy/summary.json", summary)
    for p in summary["points"]:
        vs = p.get("rate_vs_copy") or p.get("rate_vs_read")
        cv = p.get("server_cpu_vs_copy") or p.get("server_cpu_vs_read")
        print(f"{p['op']:6} {p['mode']:8} conns {p['conns']} chunk {p['chunk']:6}: "
              f"{p['gb_per_s']['median']:.3f} GB/s [{p['gb_per_s']['min']:.3f}.."
              f"{p['gb_per_s']['max']:.3f}] server {p['server_cpu_s_per_gb']['median']:.3f} s/GB"
              f"  rate x{vs['median'] if vs else float('nan'):.2f}"
              f" cpu x{cv['median'] if cv else float('nan'):.2f}"
              + (f" zc copied {p['zerocopy_copied_share']['median']:.2f}"
                 if p["zerocopy_copied_share"] else "") + f" bad {p['mismatches_plus_errors']}")
    print("iperf3:", summary["iperf3"])
    plot(summary)


def plot(summary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for row, (op, modes) in enumerate((("fetch", SEND_MODES), ("stream", INGEST_MODES))):
        for mode in modes:
            for conns, style in ((1, "-o"), (8, "--s")):
                pts = [p for p in summary["points"]
                       if p["op"] == op and p["mode"] == mode and p["conns"] == conns]
                if not pts:
                    continue
                xs = [p["chunk"] for p in pts]
                label = f"{mode}, {conns} conn{'s' if conns > 1 else ''}"
                axes[row][0].plot(xs, [p["gb_per_s"]["median"] for p in pts], style, label=label)
                axes[row][1].plot(xs, [p["server_cpu_s_per_gb"]["median"] for p in pts], style,
                                  label=label)
        axes[row][0].set_title(f"{op.upper()} ({'--fetch-send' if op == 'fetch' else '--ingest'})")
        axes[row][0].set_ylabel("payload GB/s (median)")
        axes[row][1].set_ylabel("server CPU s per GB (median)")
        for ax in axes[row]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("frame payload bytes")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    ip = summary["iperf3"].get("iperf3")
    if ip:
        axes[0][0].axhline(ip["median"], color="k", ls=":", label="iperf3")
    fig.suptitle(f"zero copy vs copy, loopback, {summary['rounds']} interleaved rounds "
                 f"(commit {','.join(summary['git'])})")
    harness.plot.save(fig, os.path.join(OUT, "zerocopy.png"))


def main():
    ap, sub = harness.host.subcommands(__doc__)
    r = sub.add_parser("run")
    r.add_argument("--rounds", type=int, default=1)
    r.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=SIZES)
    r.add_argument("--warm", type=float, default=1.0)
    r.add_argument("--measure", type=float, default=2.5)
    p = sub.add_parser("profile")
    p.add_argument("--seconds", type=float, default=4)
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "profile": profile, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
