"""`c10m-ladder record-fixture KIND OUT.json`: runs one small scenario that hits a known wall
and records the evidence the ladder gathers (the same sampler, client JSON, server counters
and perf as a rung), so the wall rules can be tested on real samples (tests/ladder):

  emfile   a server whose fd limit is lowered to 1,000 (RLIMIT_NOFILE of the child) takes
           1,500 idle connections
  ports    16,000 connections from one source IP (more than half the port range)
  cpu      an open model above what the box serves (both cores)
  memory   net.ipv4.tcp_mem lowered (printed, restored) while non-reading FETCH clients
           fill their send buffers and fast clients send ECHOs
  client   the load client pinned to a CPU that a busy loop also wants (it falls behind)
           while the server has its own CPU

Run each under `boxlock exclusive` (a scenario changes sysctls or saturates the box)."""
import json
import os
import subprocess
import sys
import time

from harness import FLEET, host, perf, procs, sysctl
from harness.sampler import Sampler

from . import evidence, walls

EXPECTED = {"emfile": "fd limit", "ports": "ports", "cpu": "CPU", "memory": "memory",
            "client": "load client"}


def _run(server_args, clients, seconds, nofile=None, taskset=None, perf_at=None, extra=None,
         client_groups=("client",), main=0, fleets=()):
    """Starts a server and the clients (argument lists; the `main` one's JSON is kept), samples
    for `seconds`, stops everything, returns (evidence, server)."""
    tmp = f"/tmp/ladder-fixture-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    srv = procs.Server(server_args, nofile=nofile, taskset=taskset)
    cls, fl = [], []
    smp = Sampler({"server": srv.pids,
                   "client": lambda: [p for c in cls for p in c.pids()] + [f.pid for f in fl]},
                  metrics_port=srv.mport, net_pid=srv.pid, period=0.5)
    smp.start()
    time.sleep(1.2)
    t0 = smp.mark()
    for i, (args, ts) in enumerate(clients):
        cls.append(procs.LoadClient(["--addr", srv.addr] + args, f"{tmp}/c{i}.json", taskset=ts))
    for args in fleets:
        fl.append(procs.spawn([FLEET, "--addr", srv.addr] + args, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL))
    top = None
    if perf_at is not None:
        time.sleep(perf_at)
        path = f"{tmp}/perf.data"
        p = perf.record(2, path)
        if p:
            p.wait()
            procs.forget(p)
            top = perf.top(path, 15)
        time.sleep(max(0.0, seconds - perf_at - 2))
    else:
        time.sleep(seconds)
    t1 = smp.mark()
    results = []
    for c in cls:
        try:
            os.kill(c.pid, 15)
        except ProcessLookupError:
            pass
        results.append(c.result(timeout=60, check=False))
    win = smp.window(t0, t1)
    ev = evidence.gather(win, results[main] if results else None, srv, top,
                         client_groups=client_groups, **(extra or {}))
    for f in fl:
        procs.kill(f)
    srv.stop(timeout=20)
    smp.stop()
    return ev


def record(kind):
    probe = host.probe()
    common = {"tcp_mem_thresholds": probe["tcp_mem_pages"], "ehash_buckets": probe["ehash_buckets"],
              "even_ports": probe["ports"] // 2, "slo_us": 5000.0}
    if kind == "emfile":
        ev = _run(["--engine", "epoll", "--threads", "1", "--idle-timeout", "0"],
                  [(["--conns", "1500", "--active-frac", "0", "--duration", "60s", "--srcips",
                     "127.0.6.2-127.0.6.3", "--connect-timeout", "5s"], None)], 6, nofile=1000,
                  extra=dict(common, conns_target=1500, server_fd_limit=1000))
        ev["conns_reached"] = ev.get("server_conns_peak")
        cmd = "server --engine epoll --threads 1 with RLIMIT_NOFILE 1000; 1,500 idle connections"
    elif kind == "ports":
        ev = _run(["--engine", "epoll", "--threads", "1", "--idle-timeout", "0"],
                  [(["--conns", "16000", "--active-frac", "0", "--duration", "60s", "--srcips",
                     "127.0.7.2", "--connect-timeout", "30s"], None)], 9, perf_at=1.0,
                  extra=dict(common, conns_target=16000, max_conns_per_srcip=16000))
        ev["conns_reached"] = ev.get("server_conns_peak")
        cmd = "server --engine epoll --threads 1; 16,000 idle connections from one source IP"
    elif kind == "cpu":
        ev = _run(["--engine", "epoll", "--threads", "2", "--idle-timeout", "0"],
                  [(["--conns", "1000", "--rate", "150", "--op", "echo", "--payload", "64",
                     "--duration", "30s", "--threads", "2", "--srcips", "127.0.8.2"], None)],
                  7, perf_at=3.0, extra=dict(common, server_core_limit=2))
        cmd = "server --engine epoll --threads 2; open model 1,000 x 150/s = 150,000 ECHO/s, client 2 loops"
    elif kind == "memory":
        old = sysctl.get("net.ipv4.tcp_mem")
        try:
            sysctl.set("net.ipv4.tcp_mem", "2000 3000 4000", "fixture: TCP memory pressure at 12 MB")
            ev = _run(["--engine", "epoll", "--threads", "1", "--idle-timeout", "0", "--write-timeout", "0"],
                      [(["--conns", "50", "--rate", "100", "--op", "echo", "--payload", "4096",
                         "--duration", "30s"], None)], 8,
                      fleets=[["--mode", "slow-read", "--conns", "200", "--rate", "0", "--read-rate", "0",
                               "--duration", "20s", "--srcips", "127.0.9.2"]],
                      extra=dict(common, tcp_mem_thresholds=[2000, 3000, 4000], server_core_limit=1))
        finally:
            sysctl.restore("net.ipv4.tcp_mem")
        cmd = (f"net.ipv4.tcp_mem {old} -> 2000 3000 4000 (restored); 200 non-reading FETCH "
               "clients + 50 x 100/s 4 KiB ECHO")
    elif kind == "client":
        hog = procs.spawn(["taskset", "-c", "1", sys.executable, "-c", "while True: pass"])
        try:
            ev = _run(["--engine", "epoll", "--threads", "1", "--idle-timeout", "0"],
                      [(["--conns", "200", "--rate", "100", "--op", "echo", "--payload", "64",
                         "--duration", "30s"], "1")], 7, taskset="0",
                      extra=dict(common, server_core_limit=1))
        finally:
            procs.kill(hog)
        cmd = ("server pinned to CPU 0 (1 loop); client pinned to CPU 1 beside a busy loop; "
               "200 x 100/s = 20,000 ECHO/s")
    else:
        raise SystemExit(f"unknown fixture {kind!r} (choose from {', '.join(EXPECTED)})")
    w = walls.name_wall(ev)
    return {"kind": kind, "expected_wall": EXPECTED[kind], "named_when_recorded": w["name"],
            "scenario": cmd, "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "host": {k: probe[k] for k in ("hostname", "kernel", "cores", "mem_total", "fd_soft", "git_commit")},
            "evidence": ev}


def main(argv):
    if len(argv) != 2:
        print("usage: c10m-ladder record-fixture KIND OUT.json  (KIND: " + ", ".join(EXPECTED) + ")",
              file=sys.stderr)
        return 2
    procs.install_signal_handlers()
    try:
        fx = record(argv[0])
    finally:
        procs.kill_all()
        sysctl.restore_all()
    with open(argv[1], "w") as f:
        json.dump(fx, f, indent=1, default=str)
    print(f"{argv[0]}: named {fx['named_when_recorded']!r} (expected {fx['expected_wall']!r}) -> {argv[1]}")
    return 0 if fx["named_when_recorded"] == fx["expected_wall"] else 1
