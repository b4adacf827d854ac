"""Builds the evidence dict a wall rule reads (ladder/walls.py) from what a step gathered: the
sampler's window (harness/sampler.py), the load client's JSON, the server's counters and log,
and perf's top symbols. Every key is documented in docs/LADDER.md ("Evidence")."""
from harness import metrics


def _client(c, ev):
    if not c:
        return
    s, t = c["summary"], c["totals"]
    lat = s.get("latency_us") or {}
    loops = s.get("client_loops") or {}
    cf = t.get("connect_failures") or {}
    rate = s.get("rate") or {}
    ev.update({
        "p50_us": lat.get("p50"), "p99_us": lat.get("p99"), "p999_us": lat.get("p99_9"),
        "samples": lat.get("count"),
        "rate_target": rate.get("target_per_s"), "rate_completed": rate.get("completed_per_s"),
        "errors": s.get("errors"), "mismatches": s.get("mismatches"),
        "unanswered": t.get("unanswered"), "incomplete_at_end": t.get("incomplete_at_end"),
        "goaways": t.get("goaways"), "unexpected_closes": t.get("unexpected_closes"),
        "client_behind": bool(s.get("client_behind")), "client_behind_cause": s.get("behind_cause"),
        "client_loop_cpu_share": loops.get("cpu_share"),
        "client_rq_wait_share": loops.get("run_queue_wait_share"),
        "late_share": (t.get("late_sends") or 0) / t["sent_measured"] if t.get("sent_measured") else 0,
        "client_emfile": cf.get("emfile", 0), "client_eaddrnotavail": cf.get("eaddrnotavail", 0),
        "client_connect_timeouts": cf.get("timeout", 0), "client_econnrefused": cf.get("econnrefused", 0),
        "conns_open": (s.get("conns") or {}).get("open"),
        "done_measured": t.get("done_measured"), "measured_s": s.get("measured_s"),
        "client_syscalls_per_frame": (s.get("syscalls") or {}).get("syscalls_per_frame"),
        "server_us_per_frame_own": ((s.get("cpu") or {}).get("server_ns_per_frame") or 0) / 1000 or None,
        "client_us_per_frame_own": ((s.get("cpu") or {}).get("client_ns_per_frame") or 0) / 1000 or None,
    })
    if rate.get("target_per_s"):
        ev["completed_ratio"] = (rate.get("completed_per_s") or 0) / rate["target_per_s"]


def gather(win, client=None, server=None, perf_top=None, client_groups=("client",), **extra):
    """One step's evidence. `win` is sampler.window(...); `client` the load client's JSON
    (None for a step without one); `server` a procs.Server (its log and fd limit);
    `client_groups` the sampler groups that are the load's clients; `extra` any known facts
    (cores the server may use, thresholds, sizes)."""
    ev = {"cores": win.get("cores"), "box_busy_cores": win.get("box_busy_cores"),
          "softirq_cores": win.get("box_softirq_cores"),
          "busiest_cpu_share": max(win.get("cpu_busy_share") or [0]),
          "box_ctx_per_s": win.get("box_ctx_per_s"), "window_s": win.get("seconds"),
          "mem_total": win.get("mem_total"), "mem_available_min": win.get("mem_available_min"),
          "tcp_mem_pages_peak": win.get("tcp_mem_pages_peak"), "sockets_established": win.get("tcp_inuse_peak"),
          "oom_kills": win.get("oom_kills"), "server_conns_peak": win.get("server_conns_peak"),
          "slab_delta": win.get("slab_delta")}
    srv = win.get("server") or {}
    ev.update({"server_cores": srv.get("cores"), "server_procs": srv.get("procs", 0),
               "server_threads": srv.get("threads"), "server_rq_wait_per_s": srv.get("rq_wait_per_s"),
               "server_ctx_per_s": srv.get("ctx_per_s"), "server_rss_peak": srv.get("rss_peak")})
    cc = cp = cw = 0.0
    for name in client_groups:
        grp = win.get(name) or {}
        cc += grp.get("cores") or 0
        cp += grp.get("procs") or 0
        cw += grp.get("rq_wait_per_s") or 0
    ev.update({"client_cores": cc, "client_procs": int(cp), "client_rq_wait_per_s": cw})
    ns = win.get("netstat") or {}
    ev.update({"listen_overflows": ns.get("ListenOverflows") or 0, "listen_drops": ns.get("ListenDrops") or 0,
               "tcp_mem_pressure": ns.get("TCPMemoryPressures") or 0,
               "tcp_prune": sum(ns.get(k) or 0 for k in ("PruneCalled", "RcvPruned", "TCPRcvQDrop")),
               "retrans_segs": ns.get("Tcp.RetransSegs") or 0, "tcp_timeouts": ns.get("TCPTimeouts") or 0})
    md = win.get("metrics_delta") or {}
    errs = metrics.labelled(md, "c10m_accept_errors_total", "reason")
    acts = metrics.labelled(md, "c10m_overload_actions_total", "action")
    ev.update({"server_emfile": int(errs.get("EMFILE") or 0) + int(errs.get("ENFILE") or 0),
               "budget_sheds": int((acts.get("close_error") or 0) + (acts.get("close_reset") or 0)),
               "write_timeouts": int(metrics.labelled(md, "c10m_timeouts_total", "kind").get("write") or 0),
               "write_queue_drops": int(md.get("c10m_write_queue_drops_total") or 0)})
    _client(client, ev)
    if server is not None:
        ev["server_emfile_log"] = server.log_count(r"EMFILE")
    if perf_top is not None:
        ev["perf_top"] = perf_top
    frames = None
    if ev.get("done_measured") and ev.get("measured_s"):
        frames = ev["done_measured"] / ev["measured_s"]
    frames = extra.pop("frames_per_s", frames)
    if frames:
        ev["frames_per_s"] = frames
        if ev.get("box_busy_cores") is not None:
            ev["box_us_per_frame"] = ev["box_busy_cores"] / frames * 1e6
        if ev.get("box_ctx_per_s") is not None:
            ev["ctx_per_frame"] = ev["box_ctx_per_s"] / frames
        if ev.get("retrans_segs") is not None and ev.get("window_s"):
            ev["retrans_per_frame"] = ev["retrans_segs"] / (frames * ev["window_s"])
    ev.update(extra)
    return ev
