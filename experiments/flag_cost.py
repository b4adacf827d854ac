#!/usr/bin/python3
"""What a server flag costs a fast peer: throughput and the server's CPU per GB for each
setting of one flag, in interleaved rounds (every setting once per round, the order
rotated), through experiments/harness/transfer.py's closed-loop transfer (c10m-server epoll,
one loop; c10m-loadclient one loop, one request in flight per connection, every byte
verified). FETCH measures the server's sending side; ECHO of CHUNK-byte frames its
receiving side too. FINDINGS 11.1.2 (--notsent-lowat) and 11.1.3 (--rcvlowat).

  experiments/flag_cost.py [--flag --notsent-lowat] [--settings 0,16KiB,128KiB]
                           [--op fetch] [--rounds 3] [--conns 1,8] [--chunks 65535,1024]

Bounded by: rounds x settings x conns x chunks points of ~5 s. Writes
results/FLAG_cost.json (FLAG without dashes: notsent_lowat_cost.json) and prints a table:
medians of the rounds, [min..max], and the ratio to the first setting in the same round.
"""
import argparse
import os

import harness
import harness.host
import harness.procs
import harness.rounds
import harness.transfer


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flag", default="--notsent-lowat")
    ap.add_argument("--settings", default="0,16KiB,128KiB", help="the first is the reference")
    ap.add_argument("--op", choices=["fetch", "echo"], default="fetch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", default="1,8")
    ap.add_argument("--chunks", default="65535,1024")
    a = ap.parse_args()
    settings = a.settings.split(",")
    conns = [int(x) for x in a.conns.split(",")]
    chunks = [int(x) for x in a.chunks.split(",")]
    name = a.flag.strip("-").replace("-", "_")
    harness.check_binaries()
    raw = os.path.join(harness.RESULTS, f"{name}_cost_raw")
    os.makedirs(raw, exist_ok=True)
    host = harness.host.host_record()
    points = []
    for r in range(a.rounds):
        order = settings[r % len(settings):] + settings[:r % len(settings)]
        for s in order:
            server = harness.procs.Server(["--engine", "epoll", "--threads", "1", a.flag, s])
            try:
                for n in conns:
                    for c in chunks:
                        p = harness.transfer.measure_transfer(server, a.op, n, c, 1.0, 3.0,
                                                os.path.join(raw, f"r{r}-{s}-{n}-{c}.json"),
                                                payload=c if a.op == "echo" else None)
                        p.update({"round": r, "setting": s})
                        p.pop("window", None)
                        print(f"round {r} {a.flag} {s:7} conns {n} chunk {c:6}: "
                              f"{p['payload_bytes_per_s'] / 1e9:6.3f} GB/s server "
                              f"{p['server_cpu_s_per_gb'] or 0:.3f} s/GB errors {p['errors']} "
                              f"mismatches {p['mismatches']}", flush=True)
                        points.append(p)
            finally:
                server.stop()
    rows = []
    print(f"| {a.op} conns | chunk | {a.flag} | GB/s | ratio to {settings[0]} | server s/GB |")
    print("|---|---|---|---|---|---|")
    for n in conns:
        for c in chunks:
            base = {p["round"]: p for p in points
                    if (p["conns"], p["chunk"], p["setting"]) == (n, c, settings[0])}
            for s in settings:
                ps = [p for p in points if (p["conns"], p["chunk"], p["setting"]) == (n, c, s)]
                rate = [p["payload_bytes_per_s"] / 1e9 for p in ps]
                ratio = [p["payload_bytes_per_s"] / base[p["round"]]["payload_bytes_per_s"]
                         for p in ps]
                cpu = [p["server_cpu_s_per_gb"] for p in ps if p["server_cpu_s_per_gb"]]
                row = {"conns": n, "chunk": c, "setting": s, "gb_per_s": harness.rounds.summarize(rate),
                       "ratio": harness.rounds.summarize(ratio), "server_cpu_s_per_gb": harness.rounds.summarize(cpu)}
                rows.append(row)
                g, q, u = row["gb_per_s"], row["ratio"], row["server_cpu_s_per_gb"]
                print(f"| {n} | {c} | {s} | {g['median']:.2f} [{g['min']:.2f}..{g['max']:.2f}] "
                      f"| {q['median']:.2f} [{q['min']:.2f}..{q['max']:.2f}] "
                      f"| {u['median']:.3f} [{u['min']:.3f}..{u['max']:.3f}] |")
    harness.host.write_result(f"{name}_cost.json", {"experiment": "flag_cost", "flag": a.flag, "op": a.op,
                                          "host": host, "rows": rows, "points": points})


if __name__ == "__main__":
    main()
