"""A connect-and-close storm (bench/accept_storm: each connection connects, half-closes and
waits for the server's close) against one c10m-server, sampled: the accept experiment
(experiments/accept_storm.py) and the ladder's accept ceiling both run it."""
import json
import re
import subprocess
import time

from . import ACCEPT_STORM, metrics, perf, procs
from .sampler import Sampler


def storm(server_args, seconds, threads=2, inflight=64, srcips="127.0.3.2-127.0.3.9", close="fin",
          profile=None, engine="epoll"):
    """One storm of `seconds` against `c10m-server --engine ENGINE SERVER_ARGS`. Returns the
    storm's own report (cycles/s, errors, cycle latency), the CPU of the server, the storm
    client, softirq and the box over the storm (the sampler's window: `window`), the accepts
    of each acceptor (c10m_loop_accept_total), and with `profile` (a perf.data path) the top
    symbols of a whole-box profile of its middle 2 s."""
    srv = procs.Server(["--engine", engine, "--idle-timeout", "0"] + list(server_args))
    box = {}
    smp = Sampler({"server": srv.pids, "client": lambda: [box["storm"].pid] if box.get("storm") else []},
                  metrics_port=srv.mport, net_pid=srv.pid, period=0.5)
    smp.start()
    try:
        time.sleep(0.6)
        t0 = time.monotonic()
        box["storm"] = procs.spawn([ACCEPT_STORM, "--addr", srv.addr, "--threads", str(threads),
                                    "--inflight", str(inflight), "--duration", f"{seconds}s",
                                    "--srcips", srcips, "--close", close],
                                   stdout=subprocess.PIPE, text=True)
        prof = None
        if profile and perf.available()[0]:
            time.sleep(max(0.0, seconds / 2 - 1))
            prof = perf.record(min(2, seconds), profile)
        out, _ = box["storm"].communicate(timeout=seconds + 60)
        procs.forget(box["storm"])
        t1 = time.monotonic()
        if prof:
            prof.wait()
            procs.forget(prof)
        win = smp.window(t0 + 0.3, t1 - 0.1)
        text = metrics.scrape(srv.mport)
    finally:
        box.pop("storm", None)
        srv.stop()
        smp.stop()
    r = json.loads(out)
    loops = [int(v) for k, v in sorted(text.items()) if k.startswith("c10m_loop_accept_total{")]
    return {"cycles_per_s": r["cycles_per_second"], "errors": r.get("errors"), "cycle_us": r.get("cycle_us"),
            "server_cores": (win.get("server") or {}).get("cores"),
            "client_cores": (win.get("client") or {}).get("cores"),
            "softirq_cores": win.get("box_softirq_cores"), "box_busy_cores": win.get("box_busy_cores"),
            "server_accepts": text.get("c10m_accept_total"), "per_acceptor_accepts": loops or None,
            "window": win, "perf_top": perf.top(profile, 15) if prof else None,
            "server_log_emfile": sum(1 for ln in srv.lines if re.search("EMFILE", ln))}
