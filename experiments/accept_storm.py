#!/usr/bin/python3
"""Experiment 9 of the brief: accept strategies under a connect-and-close storm.

For each strategy, c10m-server (epoll engine) takes a storm from bench/accept_storm
(STORM_THREADS threads x STORM_INFLIGHT connections each cycling connect -> half-close ->
wait for the server's close, 8 source IPs) for DURATION seconds, in ROUNDS interleaved rounds
(the order rotates each round): connect+close cycles/s, the server's CPU, the storm client's,
the box's softirq and busy time, and the per-acceptor balance (c10m_loop_accept_total).
  strategies (N = ACCEPTORS, default 2 = the cores of this box):
    single      --threads 1                 one loop, one listener
    shared      --threads N                 N loops, one listener, EPOLLEXCLUSIVE
    reuseport   --threads N --reuseport     N loops, N SO_REUSEPORT listeners
    workers     --workers N                 N processes, one inherited listener
    workers_rp  --workers N --reuseport     N processes, a SO_REUSEPORT listener each
Then the edge: 2 workers whose total capacity (--max-conns) is EDGE_CAP, EDGE_CONNS
connections held at once (each sends a PING): how many are served / refused / unanswered with
the shared listener and with per-worker SO_REUSEPORT listeners.
Writes results/accept_storm.json (with the host record) and results/accept_storm.png. The
storm itself is experiments/harness/storm.py (the ladder's accept ceiling runs it too).
Run it with the box to itself: ~2 minutes with the defaults.
  ROUNDS=3 DURATION=5 ACCEPTORS=2 experiments/accept_storm.py      (or make accept)
"""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import host, metrics, plot, procs, rounds, storm  # noqa: E402

ENV = {k: os.environ.get(k, d) for k, d in (("ROUNDS", "3"), ("DURATION", "5"), ("ACCEPTORS", "2"),
                                             ("STORM_THREADS", "2"), ("STORM_INFLIGHT", "64"),
                                             ("EDGE_CAP", "2000"), ("EDGE_CONNS", "2000"))}
STRATEGIES = os.environ.get("STRATEGIES", "single shared reuseport workers workers_rp").split()


def flags_of(strat, n):
    return {"single": ["--threads", "1"], "shared": ["--threads", str(n)],
            "reuseport": ["--threads", str(n), "--reuseport"], "workers": ["--workers", str(n)],
            "workers_rp": ["--workers", str(n), "--reuseport"]}[strat]


def edge(strat, cap, n):
    """2 workers of total capacity `cap`; `n` connections held at once, each sends a PING."""
    srv = procs.Server((["--reuseport"] if strat == "workers_rp" else []) +
                       ["--engine", "epoll", "--workers", "2", "--max-conns", str(cap)])
    socks, res = [], {"served": 0, "overloaded": 0, "unanswered": 0, "other": 0}
    try:
        for i in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((f"127.0.0.{2 + i % 8}", 0))
            s.connect(("127.0.0.1", srv.port))
            s.settimeout(5)
            s.sendall(b"\x01\x00\x00")
            socks.append(s)
        for s in socks:
            try:
                d = s.recv(64)
                if d[:3] == b"\x01\x00\x00":
                    res["served"] += 1
                elif d[:1] == b"\xff" and len(d) > 3 and d[3] == 6:
                    res["overloaded"] += 1
                else:
                    res["other"] += 1
            except socket.timeout:
                res["unanswered"] += 1
        per = [int(v) for v in metrics.labelled(srv.scrape(), "c10m_worker_conns_open", "worker").values()]
    finally:
        for s in socks:
            s.close()
        srv.stop()
    return {"strategy": strat, "conns": n, "capacity": cap, "per_worker_open": per, **res}


def main():
    harness.check_binaries(harness.SERVER, harness.ACCEPT_STORM)
    procs.install_signal_handlers()
    n, dur = int(ENV["ACCEPTORS"]), int(ENV["DURATION"])
    runs = []
    for rnd, strat in rounds.interleave(STRATEGIES, int(ENV["ROUNDS"])):
        r = storm.storm(flags_of(strat, n), dur, int(ENV["STORM_THREADS"]), int(ENV["STORM_INFLIGHT"]),
                        srcips="127.0.0.2-127.0.0.9")
        r = {k: v for k, v in r.items() if k not in ("window", "perf_top")}
        runs.append(dict(r, strategy=strat, round=rnd + 1))
        print(f"round {rnd + 1} {strat}: {r['cycles_per_s']:.0f}/s, accepts per acceptor "
              f"{r['per_acceptor_accepts']}", file=sys.stderr)
    edges = [edge(s, int(ENV["EDGE_CAP"]), int(ENV["EDGE_CONNS"])) for s in ("workers", "workers_rp")]
    hr = host.host_record()
    summary = {}
    for s in STRATEGIES:
        rs = [r for r in runs if r["strategy"] == s]
        bal = [max(a) / (sum(a) / len(a)) for a in (r["per_acceptor_accepts"] for r in rs) if a and len(a) > 1]
        med = {k: rounds.summarize([r[k] for r in rs])["median"]
               for k in ("server_cores", "client_cores", "softirq_cores", "box_busy_cores")}
        c = rounds.summarize([r["cycles_per_s"] for r in rs])
        summary[s] = {"cycles_per_second_median": c["median"], "cycles_per_second_min": c["min"],
                      "cycles_per_second_max": c["max"], **med,
                      "busiest_acceptor_vs_mean": rounds.summarize(bal)["median"] if bal else None}
    base = summary.get("single", {}).get("cycles_per_second_median")
    for s in summary:
        summary[s]["ratio_to_single"] = summary[s]["cycles_per_second_median"] / base if base else None
    path = host.write_result("accept_storm.json", {"experiment": "accept_storm", "host": hr, "runs": runs,
                                                   "summary": summary, "edge": edges})
    print(f"{'strategy':11} {'conn+close/s':>12} {'min..max':>15} {'x single':>8} {'server':>6} {'client':>6} "
          f"{'softirq':>7} {'box busy':>8} {'busiest/mean':>12}")
    for s, v in summary.items():
        b = v["busiest_acceptor_vs_mean"]
        print(f"{s:11} {v['cycles_per_second_median']:>12.0f} {v['cycles_per_second_min']:>7.0f}.."
              f"{v['cycles_per_second_max']:<7.0f} {v['ratio_to_single'] or 0:>8.2f} {v['server_cores']:>6.2f} "
              f"{v['client_cores']:>6.2f} {v['softirq_cores']:>7.2f} {v['box_busy_cores']:>8.2f} "
              f"{('%.2f' % b) if b else '-':>12}")
    print("(CPU in cores = CPU seconds per second; process times include softirq work the kernel did\n"
          " in their context, so they overlap the softirq column; busiest/mean: accepts of the busiest\n"
          " acceptor over the mean)")
    for e in edges:
        print(f"edge {e['strategy']:10}: {e['conns']} conns, capacity {e['capacity']}: served {e['served']}, "
              f"OVERLOADED {e['overloaded']}, unanswered {e['unanswered']}; open per worker {e['per_worker_open']}")
    plt = plot.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = list(summary)
    med = [summary[s]["cycles_per_second_median"] for s in xs]
    a1.bar(xs, med, yerr=[[m - summary[s]["cycles_per_second_min"] for s, m in zip(xs, med)],
                          [summary[s]["cycles_per_second_max"] - m for s, m in zip(xs, med)]], capsize=4)
    a1.set_ylabel("connect+close cycles/s (median, min-max)")
    a1.set_title(f"accept strategies, {hr['cores']} cores, loopback")
    srv = [summary[s]["server_cores"] for s in xs]
    a2.bar(xs, srv, label="server")
    a2.bar(xs, [summary[s]["client_cores"] for s in xs], bottom=srv, label="storm client")
    a2.set_ylabel("cores")
    a2.set_title("CPU split (medians)")
    a2.legend(fontsize=8)
    for a in (a1, a2):
        a.tick_params(axis="x", rotation=20)
    plot.save(fig, os.path.join(harness.RESULTS, "accept_storm.png"))
    print("wrote", path)


if __name__ == "__main__":
    main()
