"""The steps of each rung. A step returns a dict: {name, engine?, status, elapsed_s, results,
evidence, wall, data} where `data` holds what the report plots (docs/LADDER.md, "JSON").

Connection rungs (c10k, c100k, c1m): `Hold` starts the server in the rung's arrangement and an
idle fleet of N - A connections (the idle step: bytes per connection, connect rate), then an
open-model rate search runs A active connections (a second load client, a fresh one per
trial) against it: the highest rate whose p99 stays under the SLO, on the fastest engine and
on the thread engine; the fastest engine's hold ends with the drain check (SIGTERM under
load). The box rung: the 64 B peak (closed loop) on each event engine and p50/p99/p99.9 at
80% of it, the accept ceiling with 1 and N acceptors, FETCH/STREAM against iperf3, and slow
consumers against the write timeout."""
import math
import os
import re
import socket
import subprocess
import threading
import time

from harness import FLEET, perf, procs, rounds, storm, transfer
from harness.sampler import Sampler, series

from . import evidence, plan, walls

DRAIN_RE = re.compile(r"(\w+)=(\d+)")


def _step(name, **kw):
    return dict({"name": name, "status": "ok", "results": {}, "evidence": None, "wall": None,
                 "data": {}, "t0": time.monotonic()}, **kw)


def _done(step):
    step["elapsed_s"] = round(time.monotonic() - step.pop("t0"), 1)
    return step


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _perf_in(ctx, delay, seconds, tag, netns_name=None):
    """Starts a whole-box profile of `seconds` after `delay` in a thread; .result() -> top."""
    box = {}

    def run():
        time.sleep(max(0.0, delay))
        path = os.path.join(ctx.raw_dir, f"{tag}.perf")
        p = perf.record(seconds, path, netns_name=netns_name)
        if p is None:
            return
        p.wait()
        procs.forget(p)
        box["top"] = perf.top(path, 15)
        try:
            os.unlink(path)
        except OSError:
            pass

    th = threading.Thread(target=run, daemon=True)
    th.start()

    class R:
        @staticmethod
        def result():
            th.join(timeout=seconds + delay + 60)
            return box.get("top")
    return R


def _lat(c):
    s = (c or {}).get("summary") or {}
    lat = s.get("latency_us") or {}
    return {"p50_us": lat.get("p50"), "p99_us": lat.get("p99"), "p999_us": lat.get("p99_9"),
            "completed_per_s": (s.get("rate") or {}).get("completed_per_s"),
            "target_per_s": (s.get("rate") or {}).get("target_per_s"),
            "errors": s.get("errors"), "client_behind": s.get("client_behind"),
            "behind_cause": s.get("behind_cause"),
            "server_us_per_frame": ((s.get("cpu") or {}).get("server_ns_per_frame") or 0) / 1000 or None,
            "client_us_per_frame": ((s.get("cpu") or {}).get("client_ns_per_frame") or 0) / 1000 or None}


# ---- connection rungs --------------------------------------------------------------------

class Hold:
    """A server in the rung's arrangement holding an idle fleet; trials run active
    connections against it. close() stops everything it started."""

    def __init__(self, ctx, rung, engine):
        self.ctx, self.rung, self.engine = ctx, rung, engine
        self.arr = rung["engines"][engine]["arrangement"]
        self.n, self.a = rung["conns"], rung["active"]
        self.idle_n = self.n - self.a
        self.netns = ctx.netns
        self.server = self.idle = self.probe = self.sampler = None
        self.idle_result = None

    def _groups(self):
        return {"server": lambda: self.server.pids() if self.server else [],
                "idle": lambda: self.idle.pids() if self.idle else [],
                "client": lambda: self.probe.pids() if self.probe else []}

    def conns(self):
        for s in reversed(self.sampler.samples[-3:]):
            v = (s.get("metrics") or {}).get("c10m_conns_open")
            if v is not None:
                return v
        return 0

    def start(self):
        """The idle step: connect N - A idle connections and measure what each costs."""
        ctx, n = self.ctx, self.idle_n
        st = _step("idle", engine=self.engine)
        flags = self.arr["server_flags"] + ["--idle-timeout", "0", "--drain-timeout", "20s"]
        self.server = procs.Server(flags, netns_name=self.netns, start_timeout=180)
        self.sampler = Sampler(self._groups(), metrics_port=self.server.mport,
                               net_pid=self.server.pid, netns_name=self.netns, period=1.0)
        self.sampler.start()
        time.sleep(1.3)
        t_launch = self.sampler.mark()
        ramp = plan.THREAD_RAMP if self.engine == "thread" else plan.RAMP
        ips, k = plan.srcips(n, 0, ctx.probe)
        args = ["--addr", self.server.addr, "--conns", str(n), "--active-frac", "0",
                "--ramp", str(ramp), "--srcips", ips, "--connect-timeout", "20s",
                "--duration", "86400s", "--grace", "0s"] + self.arr["client_flags"]
        self.idle = procs.LoadClient(args, os.path.join(ctx.raw_dir, f"{self.rung['name']}-{self.engine}-idle.json"),
                                     netns_name=self.netns)
        connect_s = n / ramp
        prof = _perf_in(ctx, 0.5, min(3.0, max(1.0, connect_s)), f"{self.rung['name']}-{self.engine}-connect",
                        self.netns)
        ctx.progress.say(f"idle {self.engine}: connecting {n:,} ({self.arr['processes']} processes)")
        limit = connect_s * 2.5 + 30
        procs.wait_until(lambda: self.conns() >= 0.999 * n or not self.idle.running(), limit, 0.3)
        t_full = self.sampler.mark()
        held = self.conns()
        time.sleep(ctx.hold_s)
        t_mem = self.sampler.mark()
        base = self.sampler.samples[0]
        mem = self.sampler.samples[-1]
        held = max(held, self.conns())
        ok = held >= 0.999 * n and self.idle.running()
        if not ok:  # the client's own account of what failed
            self.idle_result = self._stop_idle()
        win = self.sampler.window(t_launch, t_full)
        top = prof.result()
        rates = _connect_rates(self.sampler.samples, t_launch, t_full, n)
        ev = evidence.gather(win, self.idle_result, self.server, top, client_groups=("idle",),
                             conns_target=n, conns_reached=int(held),
                             max_conns_per_srcip=math.ceil(n / k), even_ports=ctx.probe["ports"] // 2,
                             connect_cliff=rates["cliff"], ehash_buckets=ctx.ehash_buckets,
                             tcp_mem_thresholds=ctx.probe["tcp_mem_pages"], somaxconn=ctx.somaxconn(),
                             server_fd_limit=ctx.probe["fd_soft"], slo_us=ctx.slo_us)

        def grp(s, key):
            return (s["groups"].get("server") or {}).get(key) or 0
        per = max(1, held)
        res = {"conns_target": n, "conns_held": int(held), "connect_s": round(t_full - t_launch, 2),
               "connects_per_s": round(held / max(0.01, t_full - t_launch)),
               "server_rss_bytes_per_conn": round((grp(mem, "rss") - grp(base, "rss")) / per, 1),
               "client_rss_bytes_per_conn": round(((mem["groups"].get("idle") or {}).get("rss", 0)) / per, 1),
               "slab_bytes_per_conn_pair": round((mem["mem"]["Slab"] - base["mem"]["Slab"]) / per, 1),
               "kernel_stack_bytes_per_conn": round((mem["mem"]["KernelStack"] - base["mem"]["KernelStack"]) / per, 1),
               "mem_available_drop_bytes_per_conn_pair": round((base["mem"]["MemAvailable"] - mem["mem"]["MemAvailable"]) / per, 1),
               "tcp_mem_bytes_per_conn_pair": round((mem["sockstat"].get("mem_pages", 0) - base["sockstat"].get("mem_pages", 0)) * 4096 / per, 1),
               "mem_available_min": win.get("mem_available_min"),
               "server_processes": (mem["groups"].get("server") or {}).get("procs"),
               "client_processes": (mem["groups"].get("idle") or {}).get("procs"),
               "server_cores_idle": None, "arrangement": self.arr["mode"]}
        idle_win = self.sampler.window(t_full, t_mem)
        res["server_cores_idle"] = round((idle_win.get("server") or {}).get("cores", 0), 3)
        res["client_cores_idle"] = round((idle_win.get("idle") or {}).get("cores", 0), 3)
        st.update(results=res, evidence=ev,
                  data={"series": series([s for s in self.sampler.samples if s["t"] <= t_mem + 0.5], t_launch),
                        "connect_rates": rates["rates"]})
        if not ok:
            st["status"] = "failed"
            st["wall"] = walls.name_wall(ev)
            st["reason"] = f"held {int(held):,} of {n:,} connections"
        else:
            self.ctx.measured_idle(self.engine, res)
        return _done(st)

    def _stop_idle(self):
        if not self.idle:
            return None
        try:
            os.kill(self.idle.pid, 15)
        except ProcessLookupError:
            pass
        try:
            r = self.idle.result(timeout=120, check=False)
        except Exception:  # noqa: BLE001 - a client that will not stop is killed below
            r = None
        self.idle.stop()
        return r

    def trial(self, rate, dur, tag, drain=False):
        """`rate` frames/s over A active connections for `dur` s; with `drain`, SIGTERM to the
        server half-way (the drain check)."""
        ctx, a = self.ctx, self.a
        ips, _ = plan.srcips(a, 1, ctx.probe)
        warm = a / plan.RAMP + 1.5
        nprocs = 1 if self.arr["mode"] == "few" else math.ceil(a / max(1000, ctx.probe["fd_soft"] - plan.FD_MARGIN))
        args = ["--addr", self.server.addr, "--conns", str(a), "--active-frac", "1",
                "--rate", f"{rate / a:.6g}", "--op", "echo", "--payload", ctx.payload,
                "--schedule", "poisson", "--ramp", str(plan.RAMP), "--srcips", ips,
                "--warmup", f"{warm:.1f}s", "--duration", f"{dur}s", "--grace", "2s",
                "--connect-timeout", "10s", "--procs", str(nprocs)]
        if self.arr["mode"] == "few":
            args += self.arr["client_flags"]
        path = os.path.join(ctx.raw_dir, f"{tag}.json")
        t_launch = time.monotonic()
        self.probe = procs.LoadClient(args, path, netns_name=self.netns)
        pf = min(ctx.perf_s, dur)
        prof = _perf_in(ctx, warm + dur / 2 - pf / 2, pf, tag, self.netns) if not drain else None
        drained = {}
        if drain:
            time.sleep(max(0.0, t_launch + warm + dur / 2 - time.monotonic()))
            t_term = time.monotonic()
            line = self.server.stop(timeout=_drain_limit(self.n))
            drained = {"line": line, "seconds": round(self.server.drain_s, 2),
                       "counts": {k: int(v) for k, v in DRAIN_RE.findall(line)},
                       "server_rc": self.server.proc.returncode, "t_term": t_term}
            time.sleep(0.5)
            try:
                os.kill(self.probe.pid, 15)
            except ProcessLookupError:
                pass
        try:
            res = self.probe.result(timeout=warm + dur + 120, check=False)
        finally:
            self.probe.stop()
        t1 = min(time.monotonic(), t_launch + warm + dur)
        if drain:
            self.idle_result = self._stop_idle()
        win = self.sampler.window(t_launch + warm, drained.get("t_term", t1))
        top = prof.result() if prof else None
        ev = evidence.gather(win, res, self.server, top, client_groups=("client", "idle"),
                             ehash_buckets=ctx.ehash_buckets, tcp_mem_thresholds=ctx.probe["tcp_mem_pages"],
                             somaxconn=ctx.somaxconn(), slo_us=ctx.slo_us, conns_target=a,
                             conns_reached=(res or {}).get("summary", {}).get("conns", {}).get("open"))
        lat = _lat(res)
        passed = bool(res) and lat["p99_us"] is not None and lat["p99_us"] <= ctx.slo_us \
            and (ev.get("completed_ratio") or 0) >= 0.97 and not ev.get("errors") \
            and not ev.get("unanswered")
        t = {"rate": rate, "pass": passed, **lat, "unanswered": ev.get("unanswered"),
             "box_busy_cores": _r(ev.get("box_busy_cores")), "server_cores": _r(ev.get("server_cores")),
             "client_cores": _r(ev.get("client_cores")), "softirq_cores": _r(ev.get("softirq_cores")),
             "box_us_per_frame": _r(ev.get("box_us_per_frame"), 1), "ctx_per_frame": _r(ev.get("ctx_per_frame")),
             "conns_held": self.conns()}
        if not passed:
            t["wall"] = walls.name_wall(ev)
        t["evidence"] = ev
        t["series"] = series([s for s in self.sampler.samples
                              if t_launch <= s["t"] <= t_launch + warm + dur + 1], t_launch)
        if drain:
            t["drain"] = drained
        return t

    def close(self):
        for c in (self.probe, self.idle):
            if c:
                c.stop()
        if self.server:
            self.server.stop(timeout=_drain_limit(self.n))
        if self.sampler:
            self.sampler.stop()


def _drain_limit(n):
    """How long a server holding n connections may take to drain (its --drain-timeout is 20 s;
    closing a million connections on a saturated box takes tens of seconds more)."""
    return 40 + n / 10_000


def _r(v, nd=2):
    return None if v is None else round(v, nd)


def _connect_rates(samples, t0, t1, target):
    """Connections per second during the connect phase, and the cliff: the fastest second
    over the last full second before the phase ended (a port search shows as a cliff)."""
    pts = [(s["t"], (s.get("metrics") or {}).get("c10m_conns_open")) for s in samples
           if t0 - 0.1 <= s["t"] <= t1 + 0.1 and (s.get("metrics") or {}).get("c10m_conns_open") is not None]
    rates = []
    for (ta, ca), (tb, cb) in zip(pts, pts[1:]):
        if tb - ta > 0.3 and cb < 0.999 * target:
            rates.append(round((cb - ca) / (tb - ta)))
    cliff = (max(rates) / max(1, rates[-1])) if len(rates) >= 3 else 0
    return {"rates": rates, "cliff": round(cliff, 2)}


def search(ctx, hold, start):
    """Open-model rate search on a hold: doubles from `start` until a trial fails (or halves
    until one passes), then bisects between the best pass and the lowest failure. Returns the
    step with every trial; the wall is named from the lowest failing trial above the best."""
    rung = hold.rung
    st = _step("slo", engine=hold.engine)
    dur = rung["trial_s"]
    trials, best, low_fail = [], None, None
    r = start
    cap = ctx.rate_cap
    for i in range(rung["max_trials"]):
        cost = hold.a / plan.RAMP + dur + 6
        if not ctx.time_for(cost):
            st["note"] = "stopped by the budget"
            break
        ctx.progress.say(f"slo {hold.engine}: trial {i + 1}/{rung['max_trials']} at {r:,.0f} frames/s")
        t = hold.trial(r, dur, f"{rung['name']}-{hold.engine}-trial{i + 1}")
        trials.append(t)
        ctx.progress.say(f"slo {hold.engine}: {r:,.0f}/s -> p99 {_ms(t['p99_us'])}, "
                         f"{'PASS' if t['pass'] else 'fail'}"
                         + (f" ({t['wall']['name']})" if t.get("wall") else ""))
        if t["pass"]:
            best = max(best or 0, r)
        else:
            low_fail = min(low_fail or math.inf, r)
        if low_fail is None:
            if r * 2 > cap:
                st["note"] = f"every rate up to the cap ({cap:,.0f}/s) held the SLO"
                break
            r = r * 2
        elif best is None:
            r = r / 2
            if r < ctx.min_rate:
                st["note"] = f"no rate down to {ctx.min_rate}/s held the SLO"
                break
        else:
            if low_fail / best < 1.2:
                break
            r = math.sqrt(best * low_fail)
        r = _round2(r)
    deciding = min((t for t in trials if not t["pass"] and (best is None or t["rate"] > best)),
                   key=lambda t: t["rate"], default=None)
    st["results"] = {"max_rate_per_s": best, "lowest_failing_rate_per_s": low_fail,
                     "slo_us": ctx.slo_us, "trials": len(trials), "active_conns": hold.a,
                     "conns": hold.n, "payload": ctx.payload}
    at_best = next((t for t in trials if t["rate"] == best), None)
    if at_best:
        st["results"].update({"p50_at_max_us": at_best["p50_us"], "p99_at_max_us": at_best["p99_us"],
                              "p999_at_max_us": at_best["p999_us"],
                              "box_us_per_frame_at_max": at_best["box_us_per_frame"]})
    if deciding:
        st["wall"] = deciding["wall"]
        st["evidence"] = deciding["evidence"]
        st["results"]["wall_trial_rate_per_s"] = deciding["rate"]
    else:
        st["wall"] = {"name": "not reached", "detail": st.get("note", "the search ended before a failure"),
                      "evidence": [], "checked": []}
    for t in trials:  # evidence stays with the deciding trial only (the JSON stays small)
        t.pop("evidence", None)
        if t is not deciding:
            t.pop("series", None)
    st["data"] = {"trials": trials}
    if not trials:
        st["status"] = "skipped"
    return _done(st)


def drain_check(ctx, hold, rate):
    st = _step("drain", engine=hold.engine)
    ctx.progress.say(f"drain: SIGTERM under {rate:,.0f} frames/s with {hold.n:,} connections")
    t = hold.trial(rate, max(2, hold.rung["trial_s"]), f"{hold.rung['name']}-{hold.engine}-drain", drain=True)
    d = t.get("drain") or {}
    counts = d.get("counts", {})
    ev = t.get("evidence") or {}
    idle = (hold.idle_result or {}).get("totals") or {}
    res = {"drain_line": d.get("line"), "drain_s": d.get("seconds"), "server_exit": d.get("server_rc"),
           "open_at_sigterm": counts.get("open"), "closed_by_peer": counts.get("closed_by_peer"),
           "force_closed": counts.get("force_closed"), "in_flight": counts.get("in_flight"),
           "rate": rate, "unanswered": ev.get("unanswered"), "mismatches": ev.get("mismatches"),
           "goaways_active": ev.get("goaways"), "goaways_idle": idle.get("goaways"),
           "unexpected_closes": (ev.get("unexpected_closes") or 0) + (idle.get("unexpected_closes") or 0)}
    # The contract (docs/PROTOCOL.md): in-flight frames are answered, nothing is truncated,
    # and what is still open at --drain-timeout is force-closed (counted, not a failure).
    ok = bool(d.get("line")) and not counts.get("in_flight") and not ev.get("mismatches") \
        and not ev.get("unanswered") and d.get("server_rc") == 0
    st.update(results=res, status="ok" if ok else "failed",
              data={"series": t.get("series") or []})
    if not ok:
        st["reason"] = "in-flight, truncated or unanswered frames, or no clean exit: see results"
    return _done(st)


def _ms(us):
    return "-" if us is None else f"{us / 1000:.2f} ms"


def _round2(x):
    """Two significant figures (rates read better as 12,000 than as 11,873)."""
    if x <= 0:
        return x
    e = math.floor(math.log10(x)) - 1
    return round(x / 10 ** e) * 10 ** e


def conns_rung(ctx, rung, steps):
    """Every step of one connection rung, appended to `steps` as each ends (an interrupted
    rung keeps the steps it finished)."""
    fastest = ctx.fastest
    for engine in (fastest, "thread"):
        e = rung["engines"].get(engine) or {}
        if not e.get("run"):
            steps.append(_done(_step("idle", engine=engine, status="skipped",
                                     reason=e.get("predicted_wall") or e.get("why", ""))))
            continue
        if not ctx.time_for(rung["conns"] / plan.RAMP + 10):
            steps.append(_done(_step("idle", engine=engine, status="skipped", reason="budget")))
            continue
        hold = Hold(ctx, rung, engine)
        try:
            idle = hold.start()
            steps.append(idle)
            if idle["status"] != "ok":
                continue
            start = ctx.start_rate(rung, engine)
            slo = search(ctx, hold, start)
            steps.append(slo)
            if engine == fastest and ctx.time_for(rung["trial_s"] + 10):
                rate = slo["results"].get("max_rate_per_s") or min(
                    (t["rate"] for t in slo["data"]["trials"]), default=ctx.min_rate)
                steps.append(drain_check(ctx, hold, rate))
            if slo["results"].get("max_rate_per_s"):
                ctx.found_rate(rung["name"], engine, slo["results"]["max_rate_per_s"])
        finally:
            hold.close()


# ---- the box's own ceilings ----------------------------------------------------------------

def _pinned(ctx, side):
    return plan.cpus(ctx.probe, side)


def _loops(ctx):
    return max(1, ctx.probe["cores"] // 2)


def peak(ctx, rung):
    """The 64 B peak, closed loop, on each event engine (100 x 8 in flight: batched; 1,000 x 1:
    every frame alone, as in the open model); then p50/p99/p99.9 open model at 80% of the
    fastest engine's unbatched peak. The fastest engine (highest batched peak; the rungs
    use it) is chosen here."""
    st = _step("peak")
    d = rung["trial_s"]
    per_engine, walls_by = {}, {}
    for engine in rung["engines"]:
        ctx.progress.say(f"peak: {engine}, closed loop 64 B")
        srv = procs.Server(["--engine", engine, "--threads", str(_loops(ctx)), "--idle-timeout", "0"],
                           taskset=_pinned(ctx, "server"))
        cli = None
        smp = Sampler({"server": srv.pids, "client": lambda: cli.pids() if cli else []},
                      metrics_port=srv.mport, net_pid=srv.pid, period=0.5)
        smp.start()
        out = {}
        try:
            for label, args in (("batched", ["--conns", "100", "--inflight", "8"]),
                                ("unbatched", ["--conns", "1000", "--inflight", "1",
                                               "--srcips", "127.0.2.2-127.0.2.3"])):
                t0 = time.monotonic()
                cli = procs.LoadClient(["--addr", srv.addr, "--op", "echo", "--payload", "64",
                                        "--warmup", "1s", "--duration", f"{d}s", "--threads",
                                        str(_loops(ctx)), "--server-pid", str(srv.pid)] + args,
                                       os.path.join(ctx.raw_dir, f"peak-{engine}-{label}.json"),
                                       taskset=_pinned(ctx, "client"))
                pf = _perf_in(ctx, 1 + d / 2 - min(ctx.perf_s, d) / 2, min(ctx.perf_s, d),
                              f"peak-{engine}-{label}") if label == "batched" else None
                res = cli.result(timeout=d + 60)
                win = smp.window(t0 + 1.2, t0 + 1 + d)
                ev = evidence.gather(win, res, srv, pf.result() if pf else None,
                                     server_core_limit=_loops(ctx), slo_us=ctx.slo_us)
                out[label] = {**_lat(res), "frames_per_s": (res["summary"]["rate"] or {}).get("completed_per_s"),
                              "server_cores": _r(ev.get("server_cores")), "client_cores": _r(ev.get("client_cores")),
                              "box_busy_cores": _r(ev.get("box_busy_cores"))}
                if label == "batched":
                    walls_by[engine] = (walls.name_wall(ev), ev)
        finally:
            cli = None
            srv.stop()
            smp.stop()
        per_engine[engine] = out
    fastest = max(per_engine, key=lambda e: per_engine[e]["batched"]["frames_per_s"] or 0)
    ctx.set_fastest(fastest, per_engine[fastest]["unbatched"]["frames_per_s"])
    # p50/p99/p99.9 at 80% of the fastest engine's unbatched peak (open model, 1,000 conns)
    unb = per_engine[fastest]["unbatched"]["frames_per_s"] or 1000
    rate = 0.8 * unb
    ctx.progress.say(f"peak: {fastest} at 80% of its unbatched peak, {rate:,.0f}/s open model")
    srv = procs.Server(["--engine", fastest, "--threads", str(_loops(ctx)), "--idle-timeout", "0"],
                       taskset=_pinned(ctx, "server"))
    try:
        res = procs.LoadClient(["--addr", srv.addr, "--conns", "1000", "--rate", f"{rate / 1000:.6g}",
                                "--op", "echo", "--payload", "64", "--warmup", "1s", "--duration", f"{d}s",
                                "--srcips", "127.0.2.2-127.0.2.3", "--threads", str(_loops(ctx)),
                                "--server-pid", str(srv.pid)],
                               os.path.join(ctx.raw_dir, "peak-at80.json"),
                               taskset=_pinned(ctx, "client")).result(timeout=d + 60)
    finally:
        srv.stop()
    at80 = {**_lat(res), "rate": rate}
    w, ev = walls_by[fastest]
    st.update(results={"fastest_engine": fastest, "engines": per_engine, "at_80pct": at80,
                       "peak_batched_per_s": per_engine[fastest]["batched"]["frames_per_s"],
                       "peak_unbatched_per_s": unb},
              wall=w, evidence=ev, data={"engines": per_engine, "at_80pct": at80})
    return _done(st)


def accept(ctx, rung):
    """The accept ceiling: bench/accept_storm (connect -> half-close -> wait for the server's
    close, 2 threads x 64 in flight, 8 source IPs) against one acceptor (--threads 1) and N
    (--threads N --reuseport), interleaved rounds; the multiplier is N's median over 1's."""
    st = _step("accept")
    n = max(2, ctx.probe["cores"])
    strategies = {"1 acceptor": ["--threads", "1"], f"{n} acceptors (SO_REUSEPORT)":
                  ["--threads", str(n), "--reuseport"]}
    d = rung["trial_s"]
    runs, last_ev = [], None
    for rnd, name in rounds.interleave(strategies, rung["rounds"]):
        ctx.progress.say(f"accept: {name}, round {rnd + 1}/{rung['rounds']}")
        last = rnd == rung["rounds"] - 1 and name != "1 acceptor"
        r = storm.storm(strategies[name], d, profile=os.path.join(ctx.raw_dir, "accept.perf") if last else None)
        ev = evidence.gather(r["window"], None, None, r["perf_top"], frames_per_s=r["cycles_per_s"],
                             server_core_limit=int(strategies[name][1]), slo_us=ctx.slo_us,
                             somaxconn=ctx.somaxconn(), server_emfile_log=r["server_log_emfile"])
        runs.append({"strategy": name, "round": rnd, "cycles_per_s": r["cycles_per_s"], "errors": r["errors"],
                     "server_cores": _r(ev.get("server_cores")), "client_cores": _r(ev.get("client_cores")),
                     "softirq_cores": _r(ev.get("softirq_cores")), "box_busy_cores": _r(ev.get("box_busy_cores")),
                     "per_acceptor_accepts": r["per_acceptor_accepts"]})
        if name != "1 acceptor":
            last_ev = ev
    summ = {name: rounds.summarize([x["cycles_per_s"] for x in runs if x["strategy"] == name])
            for name in strategies}
    one, many = summ["1 acceptor"]["median"], summ[list(strategies)[1]]["median"]
    st.update(results={"ceiling_1_acceptor_per_s": one, "ceiling_n_acceptors_per_s": many,
                       "acceptors": n, "multiplier": round(many / one, 2) if one else None,
                       "by_strategy": summ},
              evidence=last_ev, wall=walls.name_wall(last_ev) if last_ev else None, data={"runs": runs})
    return _done(st)


def bigdata(ctx, rung):
    """FETCH and STREAM of 64 KiB frames on one connection through the fastest engine (one
    loop), every byte verified, against iperf3's single stream on the same loopback."""
    st = _step("bigdata")
    d = rung["trial_s"]
    srv = procs.Server(["--engine", "epoll", "--threads", "1"])
    cli_pids = []
    smp = Sampler({"server": srv.pids, "client": lambda: cli_pids}, metrics_port=srv.mport,
                  net_pid=srv.pid, period=0.5)
    smp.start()
    pts, ev = {}, None
    try:
        for op in ("fetch", "stream"):
            ctx.progress.say(f"bigdata: {op.upper()} 64 KiB frames, 1 connection")
            t0 = time.monotonic()
            p = transfer.measure_transfer(srv, op, 1, 65535, 1.0, d,
                                          os.path.join(ctx.raw_dir, f"bigdata-{op}.json"))
            pts[op] = {k: p[k] for k in ("payload_bytes_per_s", "server_cpu_s_per_gb", "client_cpu_s_per_gb",
                                         "server_cpu_share", "client_cpu_share", "mismatches", "errors")}
            if op == "fetch":
                win = smp.window(t0 + 1.1, t0 + 1 + d)
                ev = evidence.gather(win, None, srv, None, server_core_limit=1, slo_us=ctx.slo_us,
                                     client_cores=p["client_cpu_share"])
    finally:
        srv.stop()
        smp.stop()
    ip = None
    if ctx.probe["iperf3"]:
        ctx.progress.say("bigdata: iperf3, 1 stream")
        ip = transfer.iperf3(_free_port(), seconds=d + 1, omit=1)
    res = {"fetch_gb_per_s": pts["fetch"]["payload_bytes_per_s"] / 1e9,
           "stream_gb_per_s": pts["stream"]["payload_bytes_per_s"] / 1e9,
           "iperf3_gb_per_s": ip["bytes_per_s"] / 1e9 if ip else None, "points": pts}
    if ip:
        res["fetch_vs_iperf3"] = round(res["fetch_gb_per_s"] / res["iperf3_gb_per_s"], 2)
        res["stream_vs_iperf3"] = round(res["stream_gb_per_s"] / res["iperf3_gb_per_s"], 2)
    st.update(results=res, evidence=ev, wall=walls.name_wall(ev) if ev else None, data=res)
    return _done(st)


def slow_consumer(ctx, rung):
    """Slow readers (hostile_fleet slow-read: FETCH, read 1 KiB/s, 4 KiB receive buffers)
    against a server with --write-queue 64KiB --write-timeout 2s, while 50 fast connections
    send 64 B ECHO at 20/s each: the slow ones are dropped by the write timeout, the fast ones
    keep p99 and see no error, the server's RSS stays bounded."""
    st = _step("slow_consumer")
    d = max(4, rung["trial_s"] * 2)
    nslow = 200 if rung["trial_s"] <= 2 else 1000
    srv = procs.Server(["--engine", "epoll", "--threads", "1", "--write-queue", "64KiB",
                        "--write-timeout", "2s", "--idle-timeout", "0"])
    fleet = cli = None
    smp = Sampler({"server": srv.pids, "client": lambda: (cli.pids() if cli else []) + ([fleet.pid] if fleet else [])},
                  metrics_port=srv.mport, net_pid=srv.pid, period=0.5)
    smp.start()
    try:
        ctx.progress.say("slow consumers: fast clients alone")
        base = procs.LoadClient(["--addr", srv.addr, "--conns", "50", "--rate", "20", "--warmup", "0.5s",
                                 "--duration", "2s"], os.path.join(ctx.raw_dir, "slow-baseline.json")).result(timeout=60)
        ctx.progress.say(f"slow consumers: {nslow} slow readers + 50 fast clients for {d} s")
        t0 = time.monotonic()
        fleet = procs.spawn([FLEET, "--addr", srv.addr, "--mode", "slow-read", "--conns", str(nslow),
                             "--rate", "0", "--read-rate", "1024", "--rcvbuf", "4096", "--duration", f"{d + 2}s",
                             "--srcips", "127.0.4.2-127.0.4.3", "--no-reconnect",
                             "--json", os.path.join(ctx.raw_dir, "slow-fleet.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        cli = procs.LoadClient(["--addr", srv.addr, "--conns", "50", "--rate", "20", "--warmup", "0.5s",
                                "--duration", f"{d}s"], os.path.join(ctx.raw_dir, "slow-fast.json"))
        res = cli.result(timeout=d + 60)
        fleet.wait(timeout=60)
        procs.forget(fleet)
        t1 = time.monotonic()
        win = smp.window(t0, t1)
        ser = series(smp.samples, t0)
    finally:
        cli = fleet = None
        srv.stop()
        smp.stop()
    ev = evidence.gather(win, res, srv, None, server_core_limit=1, slo_us=ctx.slo_us,
                         tcp_mem_thresholds=ctx.probe["tcp_mem_pages"])
    b, f = _lat(base), _lat(res)
    dropped = ev.get("write_queue_drops") or ev.get("write_timeouts", 0)  # a timeout drop counts in both
    rss0 = ser[0].get("server_rss") if ser else None
    rssmax = max((s.get("server_rss") or 0) for s in ser) if ser else None
    results = {"slow_conns": nslow, "slow_dropped": dropped, "fast_errors": f["errors"],
               "fast_p99_before_us": b["p99_us"], "fast_p99_during_us": f["p99_us"],
               "fast_p99_ratio": round(f["p99_us"] / b["p99_us"], 2) if b["p99_us"] and f["p99_us"] else None,
               "server_rss_growth_bytes": (rssmax - rss0) if rss0 else None,
               "kernel_tcp_mem_peak_bytes": (ev.get("tcp_mem_pages_peak") or 0) * 4096,
               "fast_client_behind": f["client_behind"]}
    ok = dropped > 0 and not f["errors"]
    st.update(results=results, evidence=ev, status="ok" if ok else "failed",
              wall=walls.name_wall(ev) if (f["p99_us"] or 0) > ctx.slo_us else None,
              data={"series": ser})
    if not ok:
        st["reason"] = "the slow readers were not dropped, or fast clients saw errors"
    return _done(st)


def box_rung(ctx, rung, steps):
    for fn in (peak, accept, bigdata, slow_consumer):
        if not ctx.time_for(rung["trial_s"] * 2 + 6):
            steps.append(_done(_step(fn.__name__, status="skipped", reason="budget")))
            continue
        try:
            steps.append(fn(ctx, rung))
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            steps.append(_done(_step(fn.__name__, status="failed", reason=f"{type(e).__name__}: {e}")))

