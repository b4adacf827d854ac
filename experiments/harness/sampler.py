"""A thread that samples the box and the processes of an experiment every `period` seconds:
/proc/stat (CPU, softirq, context switches), /proc/meminfo, sockstat (TCP sockets and the
kernel's TCP memory), the TCP counters (netstat, snmp), file-nr, the CPU/RSS/run-queue wait/
context switches of each named process group, and the server's /metrics. `window(t0, t1)`
turns the samples between two instants into rates and peaks (the evidence a wall rule reads).

    s = Sampler({"server": srv.pids, "client": cli.pids}, metrics_port=srv.mport,
                net_pid=srv.pid, netns_name=None)
    s.start(); ...; ev = s.window(t0, t1); s.stop()
"""
import os
import threading
import time

from . import metrics, netns, proc

NETSTAT_KEYS = ("ListenOverflows", "ListenDrops", "TCPMemoryPressures", "TCPMemoryPressuresChrono",
                "PruneCalled", "RcvPruned", "TCPRcvQDrop", "TCPAbortOnMemory", "TCPTimeouts",
                "TCPLossProbes", "TCPBacklogDrop", "Tcp.RetransSegs", "Tcp.AttemptFails",
                "Tcp.ActiveOpens", "Tcp.PassiveOpens", "Tcp.OutRsts", "Tcp.CurrEstab")
MEM_KEYS = ("MemTotal", "MemAvailable", "Slab", "SUnreclaim", "KernelStack", "PageTables",
            "AnonPages")
METRIC_KEYS = ("c10m_conns_open", "c10m_accept_total", "c10m_write_queue_drops_total",
               "c10m_memory_budget_bytes", "c10m_memory_budget_limit_bytes", "process_open_fds",
               "c10m_write_queue_bytes")
METRIC_PREFIXES = ("c10m_accept_errors_total", "c10m_overload_actions_total",
                   "c10m_timeouts_total", "c10m_frames_total", "c10m_worker_conns_open")


def snapshot(groups, metrics_port=None, net_pid=None, max_threads=512):
    s = {"t": time.monotonic(), "stat": proc.stat(), "sockstat": proc.sockstat(net_pid),
         "file_nr": proc.file_nr(), "vm": proc.vmstat()}
    mi = proc.meminfo()
    s["mem"] = {k: mi.get(k) for k in MEM_KEYS}
    ns = proc.netstat(net_pid)
    s["netstat"] = {k: ns.get(k) for k in NETSTAT_KEYS if k in ns}
    s["groups"] = {}
    for name, pids_fn in groups.items():
        try:
            pids = pids_fn() or []
        except Exception:  # noqa: BLE001 - a group that is gone is an empty group
            pids = []
        s["groups"][name] = proc.group(pids, max_threads) if pids else None
    if metrics_port:
        m = metrics.scrape(metrics_port, timeout=2)
        if m:
            s["metrics"] = {k: m[k] for k in METRIC_KEYS if k in m}
            s["metrics"].update({k: v for k, v in m.items() if k.startswith(METRIC_PREFIXES)})
    return s


class Sampler(threading.Thread):
    def __init__(self, groups, metrics_port=None, net_pid=None, netns_name=None, period=1.0,
                 max_threads=512):
        super().__init__(daemon=True)
        self.groups, self.metrics_port, self.net_pid = groups, metrics_port, net_pid
        self.netns_name, self.period, self.max_threads = netns_name, period, max_threads
        self.samples = []
        self._halt = threading.Event()

    def run(self):
        if self.netns_name:
            netns.enter(self.netns_name)
        while not self._halt.is_set():
            t = time.monotonic()
            self.samples.append(snapshot(self.groups, self.metrics_port, self.net_pid,
                                         self.max_threads))
            self._halt.wait(max(0.0, self.period - (time.monotonic() - t)))

    def stop(self):
        self._halt.set()
        self.join(timeout=10)
        return self.samples

    def mark(self):
        """Takes one sample now (outside the period) and returns its time."""
        self.samples.append(snapshot(self.groups, self.metrics_port, self.net_pid,
                                     self.max_threads))
        return self.samples[-1]["t"]

    def window(self, t0, t1=None):
        return window(list(self.samples), t0, t1)


def _nearest(samples, t):
    return min(samples, key=lambda s: abs(s["t"] - t))


def _delta(a, b, path):
    va, vb = a, b
    for k in path:
        va = (va or {}).get(k)
        vb = (vb or {}).get(k)
    if va is None or vb is None:
        return None
    return vb - va


def window(samples, t0, t1=None):
    """Rates and peaks over the samples between t0 and t1 (monotonic seconds): the box's busy
    and softirq cores, the busiest CPU, context switches/s, each group's cores, run-queue wait
    (seconds per second) and context switches/s, deltas of the TCP counters and of the server's
    counters, and the peaks/minimums of memory, TCP memory, sockets and connections."""
    if not samples:
        return {}
    t1 = t1 if t1 is not None else samples[-1]["t"]
    inside = [s for s in samples if t0 - 0.6 <= s["t"] <= t1 + 0.6] or [_nearest(samples, t0)]
    a, b = _nearest(samples, t0), _nearest(samples, t1)
    dt = b["t"] - a["t"]
    cores = len(a["stat"]["cpus"]) or os.cpu_count()
    out = {"seconds": dt, "cores": cores}
    tot = _delta(a, b, ("stat", "all", "total"))
    if tot and dt > 0:
        idle = _delta(a, b, ("stat", "all", "idle"))
        out["box_busy_cores"] = (tot - idle) / tot * cores
        out["box_softirq_cores"] = _delta(a, b, ("stat", "all", "softirq")) / tot * cores
        per = []
        for ca, cb in zip(a["stat"]["cpus"], b["stat"]["cpus"]):
            t = cb["total"] - ca["total"]
            per.append(1 - (cb["idle"] - ca["idle"]) / t if t else 0.0)
        out["cpu_busy_share"] = per
        out["box_ctx_per_s"] = _delta(a, b, ("stat", "ctxt")) / dt
    for name in a.get("groups", {}):
        # a group that started (or ended) inside the window: its first and last samples there
        have = [s for s in inside if s["groups"].get(name)]
        if len(have) < 2:
            continue
        sa, sb = have[0], have[-1]
        ga, gb, gdt = sa["groups"][name], sb["groups"][name], sb["t"] - sa["t"]
        if gdt <= 0:
            continue
        g = {"cores": (gb["cpu_s"] - ga["cpu_s"]) / gdt, "procs": gb["procs"],
             "threads": gb["threads"],
             "rss_peak": max((s["groups"].get(name) or {}).get("rss", 0) for s in inside)}
        if "rq_wait_s" in ga and "rq_wait_s" in gb:
            g["rq_wait_per_s"] = (gb["rq_wait_s"] - ga["rq_wait_s"]) / gdt
            g["ctx_per_s"] = (gb["ctx_switches"] - ga["ctx_switches"]) / gdt
        out[name] = g
    out["netstat"] = {k: _delta(a, b, ("netstat", k)) for k in a.get("netstat", {})
                      if k != "Tcp.CurrEstab"}
    out["metrics_delta"] = {k: _delta(a, b, ("metrics", k)) for k in (a.get("metrics") or {})
                            if k.startswith(("c10m_accept_errors_total", "c10m_overload_actions_total",
                                             "c10m_timeouts_total", "c10m_write_queue_drops_total",
                                             "c10m_accept_total", "c10m_frames_total"))}
    mems = [s["mem"] for s in inside if s.get("mem")]
    out["mem_total"] = a["mem"].get("MemTotal")
    out["mem_available_min"] = min(m["MemAvailable"] for m in mems)
    out["slab_delta"] = _delta(a, b, ("mem", "Slab"))
    out["tcp_mem_pages_peak"] = max(s["sockstat"].get("mem_pages", 0) for s in inside)
    out["tcp_inuse_peak"] = max(s["sockstat"].get("inuse", 0) for s in inside)
    out["tcp_tw_peak"] = max(s["sockstat"].get("tw", 0) for s in inside)
    out["file_nr_peak"] = max(s["file_nr"] or 0 for s in inside)
    out["oom_kills"] = _delta(a, b, ("vm", "oom_kill"))
    conns = [s["metrics"].get("c10m_conns_open") for s in inside
             if s.get("metrics") and s["metrics"].get("c10m_conns_open") is not None]
    out["server_conns_peak"] = max(conns) if conns else None
    return out


def series(samples, t_origin=None):
    """Per-second series for plots and reports: time since `t_origin`, box busy cores, each
    group's cores, MemAvailable, Slab, TCP memory (bytes), sockets in use, connections."""
    out = []
    t_origin = samples[0]["t"] if t_origin is None and samples else t_origin
    for a, b in zip(samples, samples[1:]):
        dt = b["t"] - a["t"]
        tot = b["stat"]["all"]["total"] - a["stat"]["all"]["total"]
        cores = len(b["stat"]["cpus"])
        row = {"t": round(b["t"] - t_origin, 2),
               "box_busy": round((tot - (b["stat"]["all"]["idle"] - a["stat"]["all"]["idle"])) / tot
                                 * cores, 3) if tot else None,
               "softirq": round((b["stat"]["all"]["softirq"] - a["stat"]["all"]["softirq"]) / tot
                                * cores, 3) if tot else None,
               "mem_available": b["mem"]["MemAvailable"], "slab": b["mem"]["Slab"],
               "tcp_mem": b["sockstat"].get("mem_pages", 0) * proc.PAGE,
               "tcp_inuse": b["sockstat"].get("inuse"),
               "conns": (b.get("metrics") or {}).get("c10m_conns_open")}
        for name, g in b["groups"].items():
            ga = a["groups"].get(name)
            if g and ga and dt > 0 and g["procs"] >= ga["procs"]:
                # (a process that exited takes its CPU time out of the sum: no rate then)
                row[name + "_cores"] = round(max(0.0, (g["cpu_s"] - ga["cpu_s"]) / dt), 3)
                row[name + "_rss"] = g["rss"]
        out.append(row)
    return out
