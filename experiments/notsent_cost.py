#!/usr/bin/python3
"""What `--notsent-lowat` costs a fast reader: FETCH throughput and the server's CPU per GB
with TCP_NOTSENT_LOWAT off (0), 16 KiB and 128 KiB, in interleaved rounds (every setting
once per round, the order rotated), through experiments/bigdata_common.py's closed-loop
transfer (c10m-server epoll, one loop; c10m-loadclient one loop, one request in flight per
connection, every byte verified). FINDINGS 11.1.2.

  experiments/notsent_cost.py [--rounds 3] [--conns 1,8] [--chunks 65535,1024]

Bounded by: rounds x settings x conns x chunks points of ~5 s. Writes
results/notsent_cost.json and prints a table: medians of the rounds, [min..max], and the
ratio to the setting 0 of the same round.
"""
import argparse
import os
import statistics

import bigdata_common as bc

SETTINGS = ["0", "16KiB", "128KiB"]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", default="1,8")
    ap.add_argument("--chunks", default="65535,1024")
    a = ap.parse_args()
    conns = [int(x) for x in a.conns.split(",")]
    chunks = [int(x) for x in a.chunks.split(",")]
    bc.check_binaries()
    os.makedirs(os.path.join(bc.RESULTS, "notsent_cost_raw"), exist_ok=True)
    host = bc.host_record()
    points = []
    for r in range(a.rounds):
        order = SETTINGS[r % len(SETTINGS):] + SETTINGS[:r % len(SETTINGS)]
        for s in order:
            server = bc.Server(["--engine", "epoll", "--threads", "1", "--notsent-lowat", s])
            try:
                for n in conns:
                    for c in chunks:
                        p = bc.measure_transfer(server, "fetch", n, c, 1.0, 3.0,
                                                os.path.join(bc.RESULTS, "notsent_cost_raw",
                                                             f"r{r}-{s}-{n}-{c}.json"))
                        p.update({"round": r, "notsent_lowat": s})
                        p.pop("window", None)
                        print(f"round {r} lowat {s:7} conns {n} chunk {c:6}: "
                              f"{p['payload_bytes_per_s'] / 1e9:6.3f} GB/s server "
                              f"{p['server_cpu_s_per_gb'] or 0:.3f} s/GB errors {p['errors']} "
                              f"mismatches {p['mismatches']}", flush=True)
                        points.append(p)
            finally:
                server.stop()
    rows = []
    print("| conns | chunk | --notsent-lowat | GB/s | ratio to 0 | server s/GB |")
    print("|---|---|---|---|---|---|")
    for n in conns:
        for c in chunks:
            base = {p["round"]: p for p in points
                    if (p["conns"], p["chunk"], p["notsent_lowat"]) == (n, c, "0")}
            for s in SETTINGS:
                ps = [p for p in points if (p["conns"], p["chunk"], p["notsent_lowat"]) == (n, c, s)]
                rate = [p["payload_bytes_per_s"] / 1e9 for p in ps]
                ratio = [p["payload_bytes_per_s"] / base[p["round"]]["payload_bytes_per_s"]
                         for p in ps]
                cpu = [p["server_cpu_s_per_gb"] for p in ps if p["server_cpu_s_per_gb"]]
                row = {"conns": n, "chunk": c, "notsent_lowat": s,
                       "gb_per_s": [statistics.median(rate), min(rate), max(rate)],
                       "ratio": [statistics.median(ratio), min(ratio), max(ratio)],
                       "server_cpu_s_per_gb": [statistics.median(cpu), min(cpu), max(cpu)]}
                rows.append(row)
                g, q, u = row["gb_per_s"], row["ratio"], row["server_cpu_s_per_gb"]
                print(f"| {n} | {c} | {s} | {g[0]:.2f} [{g[1]:.2f}..{g[2]:.2f}] "
                      f"| {q[0]:.2f} [{q[1]:.2f}..{q[2]:.2f}] | {u[0]:.3f} [{u[1]:.3f}..{u[2]:.3f}] |")
    bc.write_result("notsent_cost.json", {"experiment": "notsent_cost", "host": host,
                                          "rows": rows, "points": points})


if __name__ == "__main__":
    main()
