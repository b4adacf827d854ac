"""The wall rules: what bounded a step, named from the evidence gathered while it ran.

`name_wall(ev)` reads one evidence dict (ladder/evidence.py builds it from the sampler, the
load client's JSON, the server's counters and log, and perf) and returns the first rule that
fires, in this order, with the numbers that made it fire; "not identified" lists what was
checked. The rules, their thresholds and their order are documented in docs/LADDER.md
("Wall rules") and unit-tested on evidence recorded from real runs (tests/ladder/fixtures).
"""

BOX_SATURATED = 0.90        # box busy cores / cores
SERVER_SATURATED = 0.90     # server cores / cores it may use (its loops, pinned CPUs)
MEM_AVAILABLE_LOW = 0.05    # MemAvailable / MemTotal
EHASH_CHAIN = 4.0           # established sockets per hash bucket
EHASH_PERF_PCT = 3.0        # % of samples in __inet_lookup_established
PORT_PERF_PCT = 5.0         # % of samples in the connect-time port search
PORT_CLIFF = 4.0            # connect rate before / after
SCHED_PROCS_PER_CORE = 4    # processes per core before the run queue is suspected
SCHED_CTX_PER_FRAME = 2.0   # context switches per frame
SCHED_WAIT = 0.2            # run-queue wait, seconds per second, server + client
RETRANS_PER_FRAME = 0.01

PORT_SYMBOLS = ("__inet_check_established", "__inet_hash_connect", "inet_bind_bucket")
EHASH_SYMBOLS = ("__inet_lookup_established",)


def g(ev, key, default=0):
    v = ev.get(key)
    return default if v is None else v


def _e(what, value, threshold=None):
    d = {"what": what, "value": value}
    if threshold is not None:
        d["threshold"] = threshold
    return d


def perf_pct(ev, symbols):
    return sum(r["pct"] for r in ev.get("perf_top") or [] if any(s in r["sym"] for s in symbols))


def fd_limit(ev):
    s, c, log = g(ev, "server_emfile"), g(ev, "client_emfile"), g(ev, "server_emfile_log")
    if s or c or log:
        ev_ = [_e("server accept() failures with EMFILE (c10m_accept_errors_total)", s, "> 0"),
               _e("server log lines naming EMFILE", log),
               _e("client connects failed with EMFILE", c)]
        if ev.get("server_fd_limit"):
            ev_.append(_e("server fd limit per process", ev["server_fd_limit"]))
        if ev.get("conns_target"):
            ev_.append(_e("connections held / asked", f"{g(ev, 'conns_reached'):,} / {ev['conns_target']:,}"))
        side = "server" if s or log else "client"
        return {"name": "fd limit", "detail": f"EMFILE on the {side} side: a process hit its fd limit",
                "evidence": ev_}
    return None


def ports(ev):
    eaddr = g(ev, "client_eaddrnotavail")
    if eaddr:
        return {"name": "ports", "detail": "ephemeral ports exhausted (EADDRNOTAVAIL)",
                "evidence": [_e("client connects failed with EADDRNOTAVAIL", eaddr, "> 0")]}
    per_ip, even = g(ev, "max_conns_per_srcip"), g(ev, "even_ports")
    pct = perf_pct(ev, PORT_SYMBOLS)
    cliff = g(ev, "connect_cliff")
    if even and per_ip > even and (pct >= PORT_PERF_PCT or cliff >= PORT_CLIFF):
        return {"name": "ports",
                "detail": "the kernel's source-port search: a source IP past half the port range "
                          "scans every even port on each connect",
                "evidence": [_e("connections per source IP", per_ip, f"> {even:,} even ports"),
                             _e("% of samples in the port search (" + ", ".join(PORT_SYMBOLS[:2]) + ")",
                                round(pct, 1), f">= {PORT_PERF_PCT}"),
                             _e("connect rate before / after the cliff", round(cliff, 1), f">= {PORT_CLIFF}")]}
    return None


def memory(ev):
    out = []
    if g(ev, "oom_kills"):
        out.append(_e("OOM kills (vmstat oom_kill)", ev["oom_kills"], "> 0"))
    thresholds = ev.get("tcp_mem_thresholds") or [0, 0, 0]
    pressure = g(ev, "tcp_mem_pressure")
    peak = g(ev, "tcp_mem_pages_peak")
    if pressure or (thresholds[1] and peak >= thresholds[1]):
        out += [_e("entries into TCP memory pressure (TCPMemoryPressures)", pressure, "> 0"),
                _e("kernel TCP memory peak, pages (sockstat)", peak,
                   f">= {thresholds[1]:,} (tcp_mem pressure)"),
                _e("receive queues pruned or dropped (PruneCalled + RcvPruned + TCPRcvQDrop)",
                   g(ev, "tcp_prune"))]
    total, avail = g(ev, "mem_total"), ev.get("mem_available_min")
    if total and avail is not None and avail < MEM_AVAILABLE_LOW * total:
        out.append(_e("MemAvailable minimum", avail, f"< {MEM_AVAILABLE_LOW:.0%} of {total:,}"))
    if g(ev, "budget_sheds"):
        out.append(_e("connections the server's memory budget shed (close_error + close_reset)",
                      ev["budget_sheds"], "> 0"))
    if not out:
        return None
    kind = ("the kernel's TCP memory (tcp_mem pressure)" if any("TCP memory" in e["what"] for e in out)
            else "MemAvailable" if any("MemAvailable" in e["what"] or "OOM" in e["what"] for e in out)
            else "the server's memory budget")
    return {"name": "memory", "detail": kind, "evidence": out}


def listen_queue(ev):
    over, drops = g(ev, "listen_overflows"), g(ev, "listen_drops")
    if over or drops:
        return {"name": "listen queue",
                "detail": "the listen backlog overflowed: connects waited for a SYN retransmission",
                "evidence": [_e("ListenOverflows", over, "> 0"), _e("ListenDrops", drops),
                             _e("somaxconn", ev.get("somaxconn"))]}
    return None


def ehash(ev):
    buckets, socks = g(ev, "ehash_buckets"), g(ev, "sockets_established")
    chain = socks / buckets if buckets else 0
    pct = perf_pct(ev, EHASH_SYMBOLS)
    if chain > EHASH_CHAIN and pct >= EHASH_PERF_PCT:
        return {"name": "established hash",
                "detail": "long chains in the established-socket hash: every segment walks one",
                "evidence": [_e("sockets per hash bucket", round(chain, 1), f"> {EHASH_CHAIN}"),
                             _e("% of samples in __inet_lookup_established", round(pct, 1),
                                f">= {EHASH_PERF_PCT}")]}
    return None


def _cpu_evidence(ev):
    out = [_e("box busy cores", round(g(ev, "box_busy_cores"), 2), f"of {g(ev, 'cores')}"),
           _e("server cores", round(g(ev, "server_cores"), 2),
              f"of {ev.get('server_core_limit') or g(ev, 'cores')} it may use"),
           _e("client cores", round(g(ev, "client_cores"), 2)),
           _e("softirq cores", round(g(ev, "softirq_cores"), 2))]
    for k, what in (("box_us_per_frame", "box CPU per frame, us"),
                    ("ctx_per_frame", "context switches per frame (box)"),
                    ("client_syscalls_per_frame", "client kernel entries per frame")):
        if ev.get(k) is not None:
            out.append(_e(what, round(ev[k], 2)))
    top = [f"{r['pct']:.1f}% {r['comm']} {r['sym']}" for r in (ev.get("perf_top") or [])[:5]]
    if top:
        out.append(_e("top symbols (perf -e cpu-clock, whole box)", "; ".join(top)))
    return out


def cpu(ev):
    cores = g(ev, "cores", 1)
    box = g(ev, "box_busy_cores") >= BOX_SATURATED * cores
    limit = ev.get("server_core_limit") or cores
    srv = g(ev, "server_cores") >= SERVER_SATURATED * limit
    if not (box or srv):
        return None
    s, c = g(ev, "server_cores"), g(ev, "client_cores")
    if srv and (not box or s >= 1.5 * c):
        side = "the server's"
    elif c >= 1.5 * s:
        side = "the load client's"
    else:
        side = "server and client together"
    where = "the box is saturated" if box else f"the server used its {limit} core(s)"
    return {"name": "CPU", "detail": f"{side} CPU: {where}", "evidence": _cpu_evidence(ev)}


def scheduler(ev):
    cores = g(ev, "cores", 1)
    procs = g(ev, "server_procs") + g(ev, "client_procs")
    wait = g(ev, "server_rq_wait_per_s") + g(ev, "client_rq_wait_per_s")
    starved = "starved" in (ev.get("client_behind_cause") or "")
    if procs > SCHED_PROCS_PER_CORE * cores and g(ev, "ctx_per_frame") >= SCHED_CTX_PER_FRAME \
            and (wait >= SCHED_WAIT or starved):
        return {"name": "scheduler",
                "detail": f"wake-ups and the run queue: {procs} processes on {cores} cores, every "
                          "frame wakes a process on each side",
                "evidence": [_e("processes (server + client)", procs, f"> {SCHED_PROCS_PER_CORE} x {cores}"),
                             _e("context switches per frame", round(g(ev, "ctx_per_frame"), 2),
                                f">= {SCHED_CTX_PER_FRAME}"),
                             _e("run-queue wait, s per s (server + client)", round(wait, 2), f">= {SCHED_WAIT}"),
                             _e("client's verdict", ev.get("client_behind_cause") or "on schedule")]
                + _cpu_evidence(ev)}
    return None


def client(ev):
    if not ev.get("client_behind"):
        return None
    return {"name": "load client",
            "detail": f"the load client fell behind its schedule ({ev.get('client_behind_cause')}) "
                      "while the server had room: the numbers measure the client",
            "evidence": [_e("client's verdict", ev.get("client_behind_cause")),
                         _e("client loops' CPU share", round(g(ev, "client_loop_cpu_share"), 2)),
                         _e("client loops' run-queue wait share", round(g(ev, "client_rq_wait_share"), 2)),
                         _e("sends > 1 ms late, share", round(g(ev, "late_share"), 3))]
            + _cpu_evidence(ev)}


def retransmits(ev):
    per = g(ev, "retrans_per_frame")
    if per >= RETRANS_PER_FRAME:
        return {"name": "retransmits", "detail": "segments were lost and resent",
                "evidence": [_e("retransmitted segments per frame (Tcp.RetransSegs)", round(per, 4),
                                f">= {RETRANS_PER_FRAME}"),
                             _e("TCP timeouts (TCPTimeouts)", g(ev, "tcp_timeouts"))]}
    return None


RULES = [("fd limit", fd_limit), ("ports", ports), ("memory", memory), ("listen queue", listen_queue),
         ("established hash", ehash), ("CPU", cpu), ("scheduler", scheduler),
         ("load client", client), ("retransmits", retransmits)]


def name_wall(ev):
    """{name, detail, evidence: [{what, value, threshold?}], checked: [rule names]}; the name
    is "not identified" when no rule fires."""
    checked = []
    for name, rule in RULES:
        w = rule(ev)
        checked.append(name)
        if w:
            w["checked"] = checked
            return w
    return {"name": "not identified",
            "detail": "no rule fired: " + ", ".join(checked) + " were checked",
            "evidence": _cpu_evidence(ev) + [
                _e("p99 us", ev.get("p99_us"), f"SLO {ev.get('slo_us')}"),
                _e("TCPMemoryPressures", g(ev, "tcp_mem_pressure")),
                _e("ListenOverflows", g(ev, "listen_overflows")),
                _e("client behind", bool(ev.get("client_behind")))],
            "checked": checked}
