"""The plan: which rungs run at which size within the budget, how their processes are
arranged at this fd limit, what the sysctls must be, and whether each rung fits this box,
with the arithmetic. Priors are the per-connection costs measured on the project's box
(docs/FINDINGS.md 1, 8.2, 8.3); a rung's idle step replaces them with what it measured, and
the rungs after it are planned again from that."""
import math
import re

RUNGS = ["box", "c10k", "c100k", "c1m"]
FULL = {"c10k": 10_000, "c100k": 100_000, "c1m": 1_000_000}
DEFAULT_BUDGET_S = 30 * 60

# Budget tiers: (largest budget in s, rung sizes, measured seconds per trial, most SLO
# trials per engine, rounds of the box's steps, rungs where the thread engine runs).
TIERS = [
    (150, {"c10k": 1_000, "c100k": 2_000, "c1m": 4_000}, 1, 3, 1, ("c10k",)),
    (720, {"c10k": 10_000, "c100k": 20_000, "c1m": 50_000}, 2, 5, 1, ("c10k", "c100k")),
    (None, FULL, 8, 8, 2, ("c10k", "c100k", "c1m")),
]
FULL_TIER = (None, FULL, 20, 10, 3, ("c10k", "c100k", "c1m"))

# Priors, bytes (FINDINGS 1 and 8.3): kernel slab per connection pair (both ends live in
# this kernel), the server's and the client's user space per idle connection; the thread
# engine's extra RSS, kernel stack and slab per connection.
PRIOR = {"slab_pair": 10_178, "server_user": 200, "client_user": 60,
         "thread_extra": 17_815 + 16_386 + 7_000}
# Prior box CPU per frame (us, both sides on one box) by rung: FINDINGS 7.2 (1,000 conns,
# ~19 us), 8.2 (100,000 conns, 1.35 cores at 20,000/s: ~68 us), 8.3 (1M: 99-289 us).
PRIOR_BOX_US = {"c10k": 25, "c100k": 70, "c1m": 150}
ACTIVE_FRAC = 0.05
RAMP = 20_000           # connects/s of the idle fleet (all client processes)
THREAD_RAMP = 4_000     # the thread engine creates a thread per accept (FINDINGS 8.2)
FD_MARGIN = 100         # fds a process keeps for itself (listeners, metrics, logs)
SRCIP_SHARE = 0.85      # connections per source IP at most this share of the even ports
MEM_SAFETY = 1.25
MEM_RESERVE = 1 << 30

# The few-process arrangement (issue 21): one uring server process whose loops drive
# several rings sized from --max-conns, one client process holding direct descriptors.
FEW_SERVER_FLAGS = ["--engine", "uring", "--workers", "1"]
FEW_CLIENT_FLAGS = ["--io", "uring"]


def parse_duration(text):
    """'90s', '5m', '1h', '1h30m', or plain seconds -> seconds (int)."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return int(float(text))
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"bad duration {text!r} (e.g. 90s, 5m, 1h)")
    return int(sum(float(a) * {"h": 3600, "m": 60, "s": 1}[b] for a, b in parts))


def tier(budget_s, full):
    if full:
        return FULL_TIER
    return next(t for t in TIERS if t[0] is None or budget_s <= t[0])


def fmt_bytes(n):
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def per_conn_bytes(engine, measured=None):
    """Bytes of memory one connection (with its client end) takes: measured by an idle step
    ({slab_pair, server_user, client_user} of the largest rung so far) or the prior."""
    m = dict(PRIOR, **(measured or {}))
    b = m["slab_pair"] + m["server_user"] + m["client_user"]
    if engine == "thread":
        b += m.get("thread_extra", PRIOR["thread_extra"])
    return b


def arrangement(probe, n, engine, choice="auto"):
    """How n connections are spread over processes at this fd limit. 'processes': server
    --workers W (each worker holds up to the fd limit) and client --procs P; 'few': one
    uring server process and one client process (issue 21), chosen by 'auto' when both
    binaries say they can (the probe reads their --help) and io_uring works here."""
    per = max(1000, probe["fd_soft"] - FD_MARGIN)
    few_ok = probe.get("server_multi_ring") and probe.get("client_direct") and probe.get("io_uring")
    if engine != "thread" and (choice == "few" or (choice == "auto" and few_ok)):
        return {"mode": "few", "server_workers": 1, "client_procs": 1,
                "server_flags": FEW_SERVER_FLAGS + ["--threads", str(probe["cores"]),
                                                    "--max-conns", str(n)],
                "client_flags": list(FEW_CLIENT_FLAGS), "processes": 2,
                "why": "few-process mode: one uring server, one client on direct descriptors"}
    workers = math.ceil(n / per)
    if workers > 1:
        workers += 1  # a full worker steps aside; one spare keeps a sibling with room
    procs = math.ceil(n / per)
    return {"mode": "processes", "server_workers": workers, "client_procs": procs,
            "server_flags": ["--engine", engine, "--workers", str(workers), "--threads", "1"],
            "client_flags": ["--procs", str(procs)], "processes": workers + procs,
            "why": f"fd limit {probe['fd_soft']:,} per process: {per:,} connections each"}


def srcips(n, first_octet3, probe, first=2):
    """A source-IP range on 127.0.X.first.. with each address under SRCIP_SHARE of half the
    port range (past half, every connect scans the even ports: FINDINGS 8.3)."""
    even = probe["ports"] // 2
    k = max(1, math.ceil(n / (even * SRCIP_SHARE)))
    if first + k - 1 > 254:
        raise ValueError(f"{n:,} connections need {k} source IPs, more than one /24 holds")
    return f"127.0.{first_octet3}.{first}-127.0.{first_octet3}.{first + k - 1}", k


def active_conns(n):
    return max(10, int(n * ACTIVE_FRAC))


def rung_plan(name, n_full, probe, t, measured=None, arrangement_choice="auto", fastest="epoll"):
    """One connection rung's plan: its size, arrangement, sysctls, whether it fits, and the
    arithmetic, for the fastest engine and the thread engine."""
    _, sizes, trial_s, trials, _, thread_rungs = t
    n = sizes[name]
    lines, sysctls = [], []
    avail = probe["mem_available"]
    engines = {}
    for engine in (fastest, "thread"):
        if engine == "thread" and name not in thread_rungs:
            engines[engine] = {"run": False, "fits": None,
                               "why": "not in this budget (a larger budget or --full runs it)"}
            continue
        arr = arrangement(probe, n, engine, arrangement_choice)
        per = per_conn_bytes(engine, measured)
        need = n * per * MEM_SAFETY + MEM_RESERVE
        fits_mem = need <= avail
        most = int(max(0, avail - MEM_RESERVE) / (per * MEM_SAFETY))
        why = (f"{n:,} connections x {fmt_bytes(per)} ({'measured' if measured else 'prior'}: "
               f"slab per pair + user space{'; + the prior thread stack, kernel stack, task' if engine == 'thread' else ''})"
               f" x {MEM_SAFETY} + {fmt_bytes(MEM_RESERVE)} = {fmt_bytes(need)} of "
               f"{fmt_bytes(avail)} available: {'fits' if fits_mem else 'does not fit'}")
        e = {"run": True, "fits": fits_mem, "arrangement": arr, "memory": why,
             "max_conns_by_memory": most, "bytes_per_conn": per}
        if engine == "thread" and n + 10_000 > probe["pid_max"]:
            e["pid_max"] = f"kernel.pid_max {probe['pid_max']:,} < {n:,} threads + 10,000: raised for the run"
        if not fits_mem:
            e["run"] = False
            e["predicted_wall"] = f"memory: {why}; at most ~{most:,} connections"
        engines[engine] = e
    fast = engines[fastest]
    arr = fast.get("arrangement") or arrangement(probe, n, fastest, arrangement_choice)
    lines.append(f"{n:,} connections ({ACTIVE_FRAC:.0%} active in the SLO trials): "
                 f"{arr['mode']} arrangement, server {arr['server_workers']} process(es), client "
                 f"{arr['client_procs']} process(es) ({arr['why']})")
    lines.append("memory: " + fast["memory"])
    if probe["file_max"] < 2 * n + 100_000:
        sysctls.append(("fs.file-max", 2 * n + 200_000, "both ends' fds live on this box"))
        lines.append(f"fs.file-max {probe['file_max']:,} < 2 x {n:,} fds + 100,000: raised for the run")
    else:
        lines.append(f"fs.file-max {probe['file_max']:,} >= 2 x {n:,} fds: fits")
    ips, k = srcips(n, 0, probe)
    lines.append(f"ports: {k} source IP(s) ({ips}), each under {SRCIP_SHARE:.0%} of half the "
                 f"{probe['ports']:,}-port range ({probe['ports'] // 2:,} even ports): no port search")
    if probe["somaxconn"] < 65535:
        sysctls.append(("net.core.somaxconn", 65535, "listen backlog during the connect ramp"))
        sysctls.append(("net.ipv4.tcp_max_syn_backlog", 65535, "SYN queue during the connect ramp"))
    ehash = probe["ehash_buckets"]
    chain = 2 * n / ehash if ehash else 0
    own_ehash = None
    if chain > 2 and probe["netns"]:
        own_ehash = 1 << math.ceil(math.log2(2 * n))
        lines.append(f"established hash: 2 x {n:,} sockets in {ehash:,} buckets = {chain:.1f} per "
                     f"bucket: the rung runs in its own network namespace with {own_ehash:,} buckets")
    else:
        lines.append(f"established hash: 2 x {n:,} sockets in {ehash:,} buckets = {chain:.2f} per bucket"
                     + ("" if chain <= 2 else " (predicted wall: hash chains; no netns here)"))
    us = PRIOR_BOX_US[name]
    lines.append(f"CPU: prior ~{us} us of box CPU per frame at this scale (FINDINGS 7.2, 8.2, 8.3): "
                 f"p99 < SLO needs headroom, so expect at most ~{int(0.6 * probe['cores'] / us * 1e6):,}"
                 f" frames/s on {probe['cores']} cores")
    th = engines["thread"]
    if th["run"]:
        lines.append("thread engine: " + th["memory"])
        if th.get("pid_max"):
            lines.append("thread engine: " + th["pid_max"])
            sysctls.append(("kernel.pid_max", n + 100_000, "a pid per thread-engine connection"))
            sysctls.append(("kernel.threads-max", n + 100_000, "a thread per connection"))
    elif th.get("predicted_wall"):
        lines.append("thread engine: skipped, predicted wall " + th["predicted_wall"])
    else:
        lines.append("thread engine: " + th["why"])
    a = active_conns(n)
    hold_s = n / RAMP + 4
    trial_cost = a / RAMP + 1.5 + trial_s + 4
    est = hold_s + trials * trial_cost + trial_cost + 6
    if th["run"]:
        est += n / THREAD_RAMP + 4 + trials * trial_cost
    predicted = fast.get("predicted_wall") or f"CPU per frame (prior ~{us} us of box CPU per frame)"
    return {"name": name, "kind": "conns", "conns": n, "conns_full": n_full, "active": a,
            "trial_s": trial_s, "max_trials": trials, "fits": fast["fits"], "engines": engines,
            "arrangement": arr, "sysctls": sysctls, "ehash_own": own_ehash,
            "ehash_chain": chain, "arithmetic": lines, "predicted_wall": predicted,
            "estimate_s": int(est)}


def box_plan(probe, t):
    _, _, trial_s, _, rounds, _ = t
    engines = ["epoll"] + (["uring"] if probe["io_uring"] else [])
    lines = [f"{probe['cores']} cores: server {'pinned to ' + cpus(probe, 'server') if probe['cores'] >= 2 else 'unpinned'}, "
             f"client {'pinned to ' + cpus(probe, 'client') if probe['cores'] >= 2 else 'unpinned'}",
             f"event engines measured for the peak: {', '.join(engines)}"
             + ("" if probe["io_uring"] else f" (uring: {probe['io_uring_why']})"),
             f"accept ceiling: 1 acceptor against {max(2, probe['cores'])} (SO_REUSEPORT), "
             f"{rounds} round(s) of {trial_s} s",
             "FETCH/STREAM against iperf3 " + ("(installed)" if probe["iperf3"] else "(not installed: skipped)"),
             "slow consumers and the write timeout; perf " + ("available" if probe["perf"] else
                                                               f"unavailable ({probe['perf_why']})")]
    est = len(engines) * 2 * (trial_s + 2.5) + (trial_s + 2) + rounds * 2 * (trial_s + 1.5) \
        + 3 * (trial_s + 2) + 2 * max(4, 2 * trial_s) + 6
    return {"name": "box", "kind": "box", "trial_s": trial_s, "rounds": rounds, "engines": engines,
            "fits": True, "arithmetic": lines, "predicted_wall": "CPU (loopback: the kernel's TCP path)",
            "sysctls": [], "estimate_s": int(est)}


def cpus(probe, side):
    """The CPUs a side is pinned to in the box's steps: the server the first half, the client
    the second half (one each on 2 cores)."""
    c = probe["cores"]
    half = max(1, c // 2)
    r = range(0, half) if side == "server" else range(half, c)
    return ",".join(str(i) for i in r) if c >= 2 else None


def build(probe, budget_s, full=False, rungs=None, arrangement_choice="auto", measured=None,
          fastest=None):
    """The whole plan: the tier the budget gives, and each selected rung's plan."""
    t = tier(budget_s, full)
    fastest = fastest or ("uring" if probe["io_uring"] else "epoll")
    out = []
    for name in rungs or RUNGS:
        if name == "box":
            out.append(box_plan(probe, t))
        else:
            out.append(rung_plan(name, FULL[name], probe, t, measured, arrangement_choice, fastest))
    return {"budget_s": budget_s, "full": full, "tier": {"trial_s": t[2], "max_trials": t[3],
            "box_rounds": t[4], "thread_rungs": list(t[5])}, "fastest_engine_prior": fastest,
            "rungs": out, "estimate_s": sum(r["estimate_s"] for r in out)}


def describe(plan, probe):
    """The plan as text lines (printed before the climb, and kept in the report)."""
    p = probe
    out = [f"host {p['hostname']}: {p['cores']} cores ({p['cpu']}), {fmt_bytes(p['mem_total'])} "
           f"memory ({fmt_bytes(p['mem_available'])} available), kernel {p['kernel']}",
           f"fd limit {p['fd_soft']:,} soft / {p['fd_hard']:,} hard"
           + ("" if p["fd_can_raise"] else " (cannot be raised: no CAP_SYS_RESOURCE)")
           + f"; fs.file-max {p['file_max']:,}; ports {p['port_range'][0]}-{p['port_range'][1]}; "
           f"somaxconn {p['somaxconn']:,}; tcp_mem {' '.join(f'{x:,}' for x in p['tcp_mem_pages'])} pages; "
           f"established hash {p['ehash_buckets']:,} buckets",
           f"io_uring: {'available' if p['io_uring'] else 'no (' + p['io_uring_why'] + ')'}; perf: "
           f"{'available' if p['perf'] else 'no (' + p['perf_why'] + ')'}; iperf3: "
           f"{'yes' if p['iperf3'] else 'no'}; root: {'yes' if p['root'] else 'no (sysctls and netns skipped)'}",
           f"budget {plan['budget_s'] // 60} min{' (--full)' if plan['full'] else ''}: "
           f"{plan['tier']['trial_s']} s per trial, at most {plan['tier']['max_trials']} SLO trials per "
           f"engine; estimated {plan['estimate_s'] // 60} min {plan['estimate_s'] % 60} s"]
    for r in plan["rungs"]:
        size = f"{r['conns']:,} connections" + ("" if r.get("conns") == r.get("conns_full") else
                                               f" (scaled from {r['conns_full']:,} by the budget)") \
            if r["kind"] == "conns" else "the box's own ceilings"
        out.append(f"{r['name']}: {size}; {'fits' if r['fits'] else 'does NOT fit'}; predicted wall: "
                   f"{r['predicted_wall']}; ~{r['estimate_s']} s")
        out += ["    " + line for line in r["arithmetic"]]
    return out
