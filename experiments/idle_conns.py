#!/usr/bin/python3
"""Experiment: memory per idle connection, per engine (make idle; FINDINGS 1).

Holds N idle connections (default 19,000: just under the 20,000-fd limit of one process) on
one c10m-server process (--threads 1 --idle-timeout 0), opened by one c10m-loadclient process
from SRCIPS, and prints for each engine: server RSS before/while holding, RSS bytes per
connection, and the kernel's own cost (Slab, KernelStack and page tables from /proc/meminfo,
which RSS does not show). Bounded: each engine's run ends after HOLD seconds of holding.
  N=19000 HOLD=5 ENGINES="epoll thread" experiments/idle_conns.py
Writes results/idle_conns.json (with the host record) and prints a table. The ladder's idle
step (docs/LADDER.md) measures the same at each rung's size.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import host, proc, procs  # noqa: E402

N = int(os.environ.get("N", "19000"))
HOLD = float(os.environ.get("HOLD", "5"))
ENGINES = os.environ.get("ENGINES", "epoll thread").split()
SRCIPS = os.environ.get("SRCIPS", "127.0.0.2-127.0.0.5")  # ~4x the ephemeral ports, no sysctl


def held(srv, engine):
    """Connections the server holds: its fds (the uring engine's are direct descriptors: its
    own count of open connections instead)."""
    if engine == "uring":
        return int(srv.scrape().get("c10m_conns_open", 0))
    try:
        return len(os.listdir(f"/proc/{srv.pid}/fd"))
    except OSError:
        return 0


def run(engine):
    srv = procs.Server(["--engine", engine, "--idle-timeout", "0", "--threads", "1"])
    try:
        time.sleep(0.5)
        m0, rss0 = proc.meminfo(), srv.rss()
        t0 = time.monotonic()
        cli = procs.LoadClient(["--addr", srv.addr, "--conns", str(N), "--active-frac", "0", "--ramp", "20000",
                                "--srcips", SRCIPS, "--duration", f"{HOLD + N / 5000 + 5:.0f}s"],
                               f"/tmp/idle-conns-{os.getpid()}-{engine}.json")
        procs.wait_until(lambda: held(srv, engine) >= N, 60, 0.1)
        t1 = time.monotonic()
        time.sleep(HOLD)
        n_held = held(srv, engine)
        m1, rss1 = proc.meminfo(), srv.rss()
        threads = proc.pid_stat(srv.pid)[2]
        cli.result(timeout=N / 5000 + HOLD + 120, check=False)
    finally:
        drain = srv.stop()
    return {"engine": engine, "conns_target": N, "server_fds_held": n_held,
            "rss_before_bytes": rss0, "rss_held_bytes": rss1, "rss_bytes_per_conn": (rss1 - rss0) / N,
            "kernel_slab_bytes_per_conn": (m1["Slab"] - m0["Slab"]) / N,
            "kernel_stack_bytes_per_conn": (m1["KernelStack"] - m0["KernelStack"]) / N,
            "page_tables_bytes_per_conn": (m1["PageTables"] - m0["PageTables"]) / N,
            "server_threads": threads, "connect_seconds": t1 - t0, "drain_report": drain}


def main():
    harness.check_binaries()
    procs.install_signal_handlers()
    rows = [run(e) for e in ENGINES]
    host.write_result("idle_conns.json", {"experiment": "idle_conns", "host": host.host_record(), "runs": rows})
    print(f"{'engine':8} {'conns':>6} {'RSS before':>11} {'RSS held':>10} {'RSS B/conn':>10} "
          f"{'slab B/pair':>11} {'kstack B/conn':>13} {'threads':>7} {'connect s':>9}")
    for r in rows:
        print(f"{r['engine']:8} {r['server_fds_held']:>6} {r['rss_before_bytes'] / 2**20:>9.1f}Mi "
              f"{r['rss_held_bytes'] / 2**20:>8.1f}Mi {r['rss_bytes_per_conn']:>10.0f} "
              f"{r['kernel_slab_bytes_per_conn']:>11.0f} {r['kernel_stack_bytes_per_conn']:>13.0f} "
              f"{r['server_threads']:>7} {r['connect_seconds']:>9.1f}")
        print(f"         {r['drain_report']}")
    print("(fds held: the connections plus the listener and a few others. Slab: the kernel's socket memory for\n"
          " both ends of each connection, client and server share this kernel. KernelStack: 16 KiB per thread.\n"
          " Full record: results/idle_conns.json)")


if __name__ == "__main__":
    main()
