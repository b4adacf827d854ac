#!/usr/bin/python3
"""Experiment 8 of the brief: fd and port exhaustion, both sides, each with its fix (make
exhaustion; FINDINGS 8.4).
 A. server EMFILE: one c10m-server process (20,000 fds) and EMFILE_CONNS connections: what it
    logs, whether it spins (its CPU while the surplus waits), what the client sees. Fix: --workers.
 B. client EADDRNOTAVAIL: PORT_CONNS connections from one source IP to one server address with
    the default ephemeral port range; then the same with --srcips (the fix), all connected.
 C. TIME_WAIT under a connect/close storm (bench/accept_storm, one source IP, the client closes
    first): TIME_WAIT sockets (sockstat) and errors; then --close rst (no TIME_WAIT).
Writes results/port_exhaustion.json (with the host record) and prints a summary. Changes no
sysctl. Run it with the box to itself: about 1.5 minutes.
  EMFILE_CONNS=20500 PORT_CONNS=30000 STORM_S=8 experiments/port_exhaustion.py
The ladder names these walls from the same evidence (docs/LADDER.md: the fd limit and ports
rules, and their recorded fixtures).
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import host, proc, procs, storm  # noqa: E402

EMFILE_CONNS = int(os.environ.get("EMFILE_CONNS", "20500"))
PORT_CONNS = int(os.environ.get("PORT_CONNS", "30000"))
STORM_S = int(os.environ.get("STORM_S", "8"))


def client(srv, args, name):
    c = procs.LoadClient(["--addr", srv.addr, "--active-frac", "0"] + args, f"/tmp/exh-{os.getpid()}-{name}.json")
    return c


def emfile():
    srv = procs.Server(["--engine", "epoll", "--threads", "1", "--idle-timeout", "0"], metrics=False)
    try:
        c = client(srv, ["--conns", str(EMFILE_CONNS), "--procs", "2", "--srcips", "127.0.0.2-127.0.0.3",
                         "--duration", "12s", "--connect-timeout", "3s"], "a")
        time.sleep(6)
        c0 = srv.cpu()
        time.sleep(4)
        c1 = srv.cpu()
        fds = len(os.listdir(f"/proc/{srv.pid}/fd"))
        a = c.result(timeout=120, check=False)
    finally:
        srv.stop()
    log = [ln for ln in srv.lines if "fd" in ln.lower() or "emfile" in ln.lower()][:4]
    return {"conns": EMFILE_CONNS, "server_fds": fds, "server_cpu_cores_while_full": (c1 - c0) / 4,
            "server_log": log, "client_open": a and a["summary"]["conns"]["open"],
            "client_connect_failures": a and a["totals"]["connect_failures"],
            "client_warnings": a and a.get("warnings")}


def eaddrnotavail():
    srv = procs.Server(["--engine", "epoll", "--workers", "3", "--idle-timeout", "0"], metrics=False)
    try:
        b1 = client(srv, ["--conns", str(PORT_CONNS), "--procs", "2", "--duration", "6s"], "b1").result(
            timeout=120, check=False)
        b2 = client(srv, ["--conns", str(PORT_CONNS), "--procs", "2", "--srcips", "127.0.0.2-127.0.0.3",
                          "--duration", "6s"], "b2").result(timeout=120, check=False)
    finally:
        srv.stop()
    return {"conns": PORT_CONNS,
            "one_ip": {"open": b1 and b1["summary"]["conns"]["open"],
                       "connect_failures": b1 and b1["totals"]["connect_failures"],
                       "warnings": b1 and b1.get("warnings")},
            "srcips_2": {"open": b2 and b2["summary"]["conns"]["open"],
                         "connect_failures": b2 and b2["totals"]["connect_failures"]}}


def time_wait():
    out = {}
    for mode in ("fin", "rst"):
        tw0 = proc.sockstat().get("tw", 0)
        r = storm.storm(["--threads", "1"], STORM_S, threads=1, inflight=64, srcips="127.0.0.2", close=mode)
        ss = subprocess.run(["ss", "-s"], capture_output=True, text=True).stdout.splitlines()[:3]
        out[mode] = {"cycles_per_second": r["cycles_per_s"], "errors": r["errors"], "tw_before": tw0,
                     "tw_peak": r["window"].get("tcp_tw_peak"), "ss_s": ss}
        time.sleep(2)
    return out


def main():
    harness.check_binaries(harness.SERVER, harness.CLIENT, harness.ACCEPT_STORM)
    procs.install_signal_handlers()
    res = {"experiment": "port_exhaustion", "host": host.host_record(), "emfile": emfile(),
           "eaddrnotavail": eaddrnotavail(), "time_wait": time_wait()}
    host.write_result("port_exhaustion.json", res)
    e = res["emfile"]
    print(f"A. EMFILE: {e['conns']} conns to one process: server holds {e['server_fds']} fds, CPU "
          f"{e['server_cpu_cores_while_full']:.3f} cores while full; client open {e['client_open']}, "
          f"failures {e['client_connect_failures']}")
    for line in e["server_log"]:
        print("   server:", line)
    for w in e["client_warnings"] or []:
        print("   client:", w)
    b = res["eaddrnotavail"]
    print(f"B. one source IP: {b['one_ip']['open']} of {b['conns']} open, failures {b['one_ip']['connect_failures']}")
    for w in b["one_ip"]["warnings"] or []:
        print("   client:", w)
    print(f"   --srcips 127.0.0.2-127.0.0.3: {b['srcips_2']['open']} of {b['conns']} open, "
          f"failures {b['srcips_2']['connect_failures']}")
    for m, t in res["time_wait"].items():
        print(f"C. storm --close {m}: {t['cycles_per_second']:.0f} cycles/s, errors {t['errors']}, "
              f"TIME_WAIT {t['tw_before']} -> peak {t['tw_peak']}")
        print("   ss -s:", " | ".join(t["ss_s"][1:3]))
    print("wrote results/port_exhaustion.json")


if __name__ == "__main__":
    main()
