"""The report: the JSON (schema.py; docs/LADDER.md), a Markdown summary generated from it, and
one self-contained HTML page (every plot inline as a base64 PNG, no external asset), plus
the before/after page of `c10m-ladder compare A.json B.json`. Everything here reads only the
JSON, so a report can be rendered again (`c10m-ladder report FILE.json`) or compared later."""
import html
import json
import os
import sys

from harness import host, plot
from . import schema

QUESTIONS = [
    ("idle", "How many idle connections before memory runs out?"),
    ("accept", "The accept ceiling with 1 acceptor, and the multiplier with N"),
    ("peak", "The 64 B peak (closed loop), and what binds it"),
    ("at80", "p50 / p99 / p99.9 at 80% of the peak"),
    ("line", "Big messages: the fraction of line rate (iperf3 on the same loopback)"),
    ("slo", "The top rung that holds the SLO, and the highest rate it holds"),
    ("thread", "Where the thread engine stops paying"),
    ("slow", "Slow consumers: dropped, and the others unaffected?"),
    ("drain", "Drain under load: every in-flight frame answered?"),
]



def new(args, probe, plan, text, t_start):
    return {"schema": schema.SCHEMA_ID, "status": "running",
            "started": t_start.isoformat(timespec="seconds"), "finished": None, "elapsed_s": None,
            "command": list(sys.argv), "budget_s": None if args.full else plan["budget_s"],
            "slo_us": args.slo_us, "payload": args.payload, "host": probe,
            "host_record": host.host_record(), "plan": dict(plan, text=text),
            "sysctl_changes": [], "rungs": [], "answers": []}


def new_rung(rp):
    r = {"name": rp["name"], "kind": rp["kind"], "status": "running", "fits": rp.get("fits"),
         "predicted_wall": rp["predicted_wall"], "arithmetic": rp["arithmetic"], "elapsed_s": None,
         "numbers": {}, "wall": None, "steps": [], "plots": []}
    if rp["kind"] == "conns":
        r.update(conns=rp["conns"], conns_full=rp["conns_full"], active=rp["active"],
                 arrangement=rp["arrangement"])
    return r


def _step(rung, name, engine=None):
    return next((s for s in rung["steps"] if s["name"] == name and s["status"] in ("ok", "failed")
                 and (engine is None or s.get("engine") == engine)), None)


def numbers(rung):
    """The rung's headline numbers (flat), read from its steps."""
    n = {}
    if rung["kind"] == "box":
        p = _step(rung, "peak")
        if p:
            r = p["results"]
            n.update(fastest_engine=r["fastest_engine"], peak_batched_per_s=r["peak_batched_per_s"],
                     peak_unbatched_per_s=r["peak_unbatched_per_s"],
                     at80_rate_per_s=r["at_80pct"]["rate"], at80_p50_us=r["at_80pct"]["p50_us"],
                     at80_p99_us=r["at_80pct"]["p99_us"], at80_p999_us=r["at_80pct"]["p999_us"],
                     at80_client_behind=r["at_80pct"]["client_behind"])
            for e, v in r["engines"].items():
                n[f"peak_batched_{e}_per_s"] = v["batched"]["frames_per_s"]
                n[f"server_us_per_frame_batched_{e}"] = v["batched"]["server_us_per_frame"]
        a = _step(rung, "accept")
        if a:
            n.update(accept_1_per_s=a["results"]["ceiling_1_acceptor_per_s"],
                     accept_n_per_s=a["results"]["ceiling_n_acceptors_per_s"],
                     accept_acceptors=a["results"]["acceptors"], accept_multiplier=a["results"]["multiplier"])
        b = _step(rung, "bigdata")
        if b:
            for k in ("fetch_gb_per_s", "stream_gb_per_s", "iperf3_gb_per_s", "fetch_vs_iperf3", "stream_vs_iperf3"):
                n[k] = b["results"].get(k)
        s = _step(rung, "slow_consumer")
        if s:
            n.update(slow_conns=s["results"]["slow_conns"], slow_dropped=s["results"]["slow_dropped"],
                     slow_fast_errors=s["results"]["fast_errors"], slow_fast_p99_ratio=s["results"]["fast_p99_ratio"])
        return n
    n["conns"] = rung.get("conns")
    for s in rung["steps"]:
        if s["status"] not in ("ok", "failed"):
            continue
        e = s.get("engine")
        tag = "thread" if e == "thread" else "fastest"
        if s["name"] == "idle":
            r = s["results"]
            if tag == "fastest":
                n["fastest_engine"] = e
            n[f"{tag}_conns_held"] = r["conns_held"]
            for k in ("connect_s", "connects_per_s", "server_rss_bytes_per_conn", "client_rss_bytes_per_conn",
                      "slab_bytes_per_conn_pair", "kernel_stack_bytes_per_conn",
                      "mem_available_drop_bytes_per_conn_pair", "server_processes", "client_processes"):
                n[f"{tag}_{k}"] = r.get(k)
        elif s["name"] == "slo":
            r = s["results"]
            n[f"{tag}_max_rate_per_s"] = r.get("max_rate_per_s")
            n[f"{tag}_p99_at_max_us"] = r.get("p99_at_max_us")
            if tag == "fastest":
                n["fastest_p50_at_max_us"] = r.get("p50_at_max_us")
                n["fastest_p999_at_max_us"] = r.get("p999_at_max_us")
                n["fastest_box_us_per_frame_at_max"] = r.get("box_us_per_frame_at_max")
                n["fastest_wall_trial_rate_per_s"] = r.get("wall_trial_rate_per_s")
        elif s["name"] == "drain":
            r = s["results"]
            n.update(drain_ok=s["status"] == "ok", drain_s=r.get("drain_s"),
                     drain_force_closed=r.get("force_closed"), drain_unanswered=r.get("unanswered"))
    f, t = n.get("fastest_max_rate_per_s"), n.get("thread_max_rate_per_s")
    if f and t:
        n["thread_vs_fastest_rate"] = round(t / f, 2)
    return n


def rung_wall(rung):
    if rung["kind"] == "box":
        p = _step(rung, "peak")
        return p["wall"] if p else None
    eng = rung["numbers"].get("fastest_engine")
    for name in ("slo", "idle"):
        s = next((s for s in rung["steps"] if s["name"] == name and s.get("engine") == eng
                  and s.get("wall")), None)
        if s:
            return s["wall"]
    return None


def finish_rung(rung):
    rung["numbers"] = numbers(rung)
    rung["wall"] = rung_wall(rung)
    rung["plots"] = [{"id": pid, "title": title} for pid, title, _ in plots_of(rung)]


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}{unit}"
        return f"{v:,.2f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def _ms(us):
    return "-" if us is None else f"{us / 1000:.2f} ms"


def answers(rep):
    """Short answers to the user's questions, each from one rung's numbers."""
    out = []
    rungs = {r["name"]: r for r in rep["rungs"]}
    box = rungs.get("box", {}).get("numbers", {})
    conns = [r for r in rep["rungs"] if r["kind"] == "conns"]
    idle = [r for r in conns if r["numbers"].get("fastest_slab_bytes_per_conn_pair") is not None]
    avail = rep["host"]["mem_available"]
    if idle:
        r = max(idle, key=lambda r: r["numbers"].get("fastest_conns_held") or 0)
        n = r["numbers"]
        pair = (n["fastest_slab_bytes_per_conn_pair"] or 0) + (n["fastest_server_rss_bytes_per_conn"] or 0) \
            + (n["fastest_client_rss_bytes_per_conn"] or 0)
        srv = (n["fastest_slab_bytes_per_conn_pair"] or 0) / 2 + (n["fastest_server_rss_bytes_per_conn"] or 0)
        out.append({"question": QUESTIONS[0][1], "rung": r["name"], "answer":
                    f"{n['fastest_engine']} engine, measured at {n.get('fastest_conns_held') or 0:,} idle "
                    f"connections ({r['name']}): {pair:,.0f} B per connection with both ends on this box "
                    f"(slab {n['fastest_slab_bytes_per_conn_pair']:,.0f} B per pair, server "
                    f"{n['fastest_server_rss_bytes_per_conn']:,.0f} B, client {n['fastest_client_rss_bytes_per_conn']:,.0f} B): "
                    f"~{avail / max(1, pair):,.0f} in the {avail / 2**30:.1f} GiB available; a server "
                    f"alone (its socket's half of the slab + its user space, {srv:,.0f} B) ~{avail / max(1, srv):,.0f}"})
    if box.get("accept_1_per_s"):
        out.append({"question": QUESTIONS[1][1], "rung": "box", "answer":
                    f"{box['accept_1_per_s']:,.0f} connect+close cycles/s with 1 acceptor, "
                    f"{box['accept_n_per_s']:,.0f} with {box['accept_acceptors']} (SO_REUSEPORT): "
                    f"x{box['accept_multiplier']}; wall of the N-acceptor run: "
                    + _wall_name(_step(rungs["box"], "accept"))})
    if box.get("peak_batched_per_s"):
        out.append({"question": QUESTIONS[2][1], "rung": "box", "answer":
                    f"{box['peak_batched_per_s']:,.0f} frames/s (100 connections x 8 in flight, "
                    f"{box['fastest_engine']}), {box['peak_unbatched_per_s']:,.0f} with every frame alone "
                    f"(1,000 x 1); bound by: " + _wall_name(_step(rungs["box"], "peak"))})
        out.append({"question": QUESTIONS[3][1], "rung": "box", "answer":
                    f"at {box['at80_rate_per_s']:,.0f} frames/s (open model, 80% of the unbatched peak): "
                    f"p50 {_ms(box['at80_p50_us'])}, p99 {_ms(box['at80_p99_us'])}, p99.9 {_ms(box['at80_p999_us'])}"
                    + ("; the load client fell behind (its own delay is in these)" if box.get("at80_client_behind") else "")})
    if box.get("fetch_gb_per_s"):
        ip = box.get("iperf3_gb_per_s")
        out.append({"question": QUESTIONS[4][1], "rung": "box", "answer":
                    f"FETCH {box['fetch_gb_per_s']:.2f} GB/s, STREAM {box['stream_gb_per_s']:.2f} GB/s on one connection"
                    + (f"; iperf3 {ip:.2f} GB/s: {box['fetch_vs_iperf3']:.2f}x and {box['stream_vs_iperf3']:.2f}x"
                       if ip else " (iperf3 not installed)")})
    held = [r for r in conns if r["numbers"].get("fastest_max_rate_per_s")]
    if conns:
        if held:
            top = max(held, key=lambda r: r.get("conns") or 0)
            n = top["numbers"]
            failing = [r["name"] for r in conns if r not in held and r["status"] != "interrupted"]
            out.append({"question": QUESTIONS[5][1], "rung": top["name"], "answer":
                        f"{top['name']} ({top['conns']:,} connections): up to {n['fastest_max_rate_per_s']:,.0f} "
                        f"frames/s at p99 {_ms(n['fastest_p99_at_max_us'])} < {_ms(rep['slo_us'])} "
                        f"({n['fastest_engine']}); above it: {_wall_name_w(top['wall'])}"
                        + (f"; no rate held at {', '.join(failing)}" if failing else "")})
        else:
            out.append({"question": QUESTIONS[5][1], "answer": "no rung held the SLO at any rate tried"})
        parts = []
        for r in conns:
            n = r["numbers"]
            if n.get("thread_max_rate_per_s") is not None or n.get("fastest_max_rate_per_s"):
                th = next((s for s in r["steps"] if s["name"] == "idle" and s.get("engine") == "thread"), None)
                if th and th["status"] == "skipped":
                    parts.append(f"{r['name']}: not run ({th.get('reason')})")
                elif n.get("thread_max_rate_per_s") is not None or n.get("thread_conns_held"):
                    parts.append(f"{r['name']}: thread {_fmt(n.get('thread_max_rate_per_s'))}/s vs "
                                 f"{n.get('fastest_engine')} {_fmt(n.get('fastest_max_rate_per_s'))}/s"
                                 + (f" (x{n['thread_vs_fastest_rate']})" if n.get("thread_vs_fastest_rate") else "")
                                 + f", {_fmt(n.get('thread_server_rss_bytes_per_conn'))} B of server RSS per "
                                   f"connection vs {_fmt(n.get('fastest_server_rss_bytes_per_conn'))}")
        if parts:
            out.append({"question": QUESTIONS[6][1], "answer": "; ".join(parts)})
    if box.get("slow_conns"):
        out.append({"question": QUESTIONS[7][1], "rung": "box", "answer":
                    f"{box['slow_dropped']:,} of {box['slow_conns']:,} slow readers dropped by the write timeout; "
                    f"fast clients: {box['slow_fast_errors']} errors, p99 x{box['slow_fast_p99_ratio']} of their baseline"})
    dr = [r for r in conns if r["numbers"].get("drain_s") is not None]
    if dr:
        out.append({"question": QUESTIONS[8][1], "answer": "; ".join(
            (f"{r['name']}: drained in {r['numbers']['drain_s']:.1f} s, force-closed "
             f"{r['numbers']['drain_force_closed']}, unanswered {r['numbers']['drain_unanswered']}"
             if r["numbers"].get("drain_force_closed") is not None else
             f"{r['name']}: no drain line: the server was killed after {r['numbers']['drain_s']:.0f} s")
            + f" ({'ok' if r['numbers']['drain_ok'] else 'FAILED'})" for r in dr)})
    return out


def _wall_name(step):
    return _wall_name_w(step.get("wall") if step else None)


def _wall_name_w(w):
    return "not measured" if not w else f"{w['name']} ({w['detail']})"


def finish(rep):
    rep["answers"] = answers(rep)


# ---- plots -------------------------------------------------------------------------------

def plots_of(rung):
    """[(id, title, draw(fig-less) -> matplotlib figure)] for one rung, from its JSON only."""
    out = []
    if rung["kind"] == "box":
        p = _step(rung, "peak")
        if p:
            out.append((f"{rung['name']}-peak", "64 B peak, closed loop, by engine", lambda p=p: _plot_peak(p)))
        a = _step(rung, "accept")
        if a:
            out.append((f"{rung['name']}-accept", "accept ceiling: 1 acceptor against N", lambda a=a: _plot_accept(a)))
        b = _step(rung, "bigdata")
        if b:
            out.append((f"{rung['name']}-bigdata", "FETCH / STREAM against iperf3", lambda b=b: _plot_bigdata(b)))
        s = _step(rung, "slow_consumer")
        if s and s["data"].get("series"):
            out.append((f"{rung['name']}-slow", "slow consumers: server RSS and kernel TCP memory",
                        lambda s=s: _plot_slow(s)))
        return out
    idle = [s for s in rung["steps"] if s["name"] == "idle" and s["data"].get("series")]
    if idle:
        out.append((f"{rung['name']}-idle", "connecting and holding: connections and memory",
                    lambda idle=idle: _plot_idle(rung, idle)))
    slo = [s for s in rung["steps"] if s["name"] == "slo" and s["data"].get("trials")]
    if slo:
        out.append((f"{rung['name']}-slo", "open-model rate search: p99 against the rate (SLO line)",
                    lambda slo=slo: _plot_slo(rung, slo)))
        wall_trials = [(s, t) for s in slo for t in s["data"]["trials"] if t.get("series")]
        if wall_trials:
            out.append((f"{rung['name']}-wall", "the trial that named the wall: CPU over time",
                        lambda wt=wall_trials: _plot_wall(wt)))
    return out


def _num(v):
    """A value for a plot: a missed sample (None) is a gap, not a zero."""
    return float("nan") if v is None else v


def _plot_peak(p):
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    eng = p["data"]["engines"]
    names = list(eng)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [eng[e]["batched"]["frames_per_s"] or 0 for e in names], 0.4,
           label="100 conns x 8 in flight")
    ax.bar([i + 0.2 for i in x], [eng[e]["unbatched"]["frames_per_s"] or 0 for e in names], 0.4,
           label="1,000 conns x 1 (every frame alone)")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("frames/s (64 B ECHO)")
    ax.legend(fontsize=8)
    return fig


def _plot_accept(a):
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    summ = a["results"]["by_strategy"]
    names = list(summ)
    med = [summ[k]["median"] for k in names]
    lo = [m - summ[k]["min"] for k, m in zip(names, med)]
    hi = [summ[k]["max"] - m for k, m in zip(names, med)]
    ax.bar(names, med, yerr=[lo, hi], capsize=4)
    ax.set_ylabel("connect+close cycles/s (median, min-max)")
    return fig


def _plot_bigdata(b):
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    r = b["results"]
    names = ["FETCH", "STREAM"] + (["iperf3"] if r.get("iperf3_gb_per_s") else [])
    vals = [r["fetch_gb_per_s"], r["stream_gb_per_s"]] + ([r["iperf3_gb_per_s"]] if r.get("iperf3_gb_per_s") else [])
    ax.bar(names, vals, color=["tab:blue", "tab:orange", "grey"][:len(vals)])
    ax.set_ylabel("payload GB/s, 1 connection, 64 KiB frames")
    return fig


def _plot_slow(s):
    plt = plot.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ser = s["data"]["series"]
    t = [x["t"] for x in ser]
    ax.plot(t, [(x.get("server_rss") or 0) / 2**20 for x in ser], label="server RSS")
    ax.plot(t, [(x.get("tcp_mem") or 0) / 2**20 for x in ser], label="kernel TCP memory (all sockets)")
    ax.set_xlabel("s")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=8)
    return fig


def _plot_idle(rung, idle):
    plt = plot.pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    for s in idle:
        ser = s["data"]["series"]
        t = [x["t"] for x in ser]
        a.plot(t, [_num(x.get("conns")) for x in ser], label=s["engine"])
        base_slab, base_av = ser[0]["slab"], ser[0]["mem_available"]
        b.plot(t, [(x["slab"] - base_slab) / 2**30 for x in ser], label=f"{s['engine']}: slab added")
        b.plot(t, [(base_av - x["mem_available"]) / 2**30 for x in ser], "--",
               label=f"{s['engine']}: MemAvailable taken")
    a.set(xlabel="s since the idle fleet started", ylabel="connections held by the server")
    b.set(xlabel="s since the idle fleet started", ylabel="GiB")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    return fig


def _plot_slo(rung, slo):
    plt = plot.pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    slo_ms = None
    for s in slo:
        ts = sorted(s["data"]["trials"], key=lambda t: t["rate"])
        slo_ms = s["results"]["slo_us"] / 1000
        x = [t["rate"] for t in ts]
        line, = a.plot(x, [(t["p99_us"] or 0) / 1000 for t in ts], "o-", label=f"{s['engine']} p99")
        a.plot(x, [(t["p50_us"] or 0) / 1000 for t in ts], ".:", color=line.get_color(), label=f"{s['engine']} p50")
        for t in ts:
            if not t["pass"]:
                a.plot([t["rate"]], [(t["p99_us"] or 0) / 1000], "x", color="red", ms=9)
        b.plot(x, [t.get("box_us_per_frame") or 0 for t in ts], "o-", label=f"{s['engine']}: box CPU per frame")
    if slo_ms:
        a.axhline(slo_ms, color="grey", lw=1)
    a.set(xscale="log", yscale="log", xlabel="frames/s (open model)", ylabel="ms (x: failed)")
    b.set(xscale="log", xlabel="frames/s (open model)", ylabel="us of box CPU per frame", ylim=(0, None))
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    return fig


def _plot_wall(wt):
    plt = plot.pyplot()
    fig, axes = plt.subplots(1, len(wt), figsize=(5.5 * len(wt), 3.6), squeeze=False)
    for ax, (s, t) in zip(axes[0], wt):
        ser = t["series"]
        x = [p["t"] for p in ser]
        for k, lab in (("box_busy", "box busy"), ("server_cores", "server"), ("client_cores", "client (active)"),
                       ("idle_cores", "client (idle fleet)"), ("softirq", "softirq")):
            ax.plot(x, [max(0.0, _num(p.get(k))) if p.get(k) is not None else float("nan") for p in ser],
                    label=lab)
        ax.set(title=f"{s['engine']} at {t['rate']:,.0f}/s: {t.get('wall', {}).get('name', '')}",
               xlabel="s since the trial started", ylabel="cores")
        ax.legend(fontsize=7)
    return fig


# ---- Markdown and HTML ------------------------------------------------------------------

def _numbers_rows(n):
    return [(k, _fmt(v)) for k, v in n.items()]


def markdown(rep):
    """The Markdown summary; generated from the JSON alone (tests regenerate and compare)."""
    h = rep["host"]
    lines = [f"# c10m ladder: {h['hostname']}, {rep['started']}", "",
             f"Status **{rep['status']}**; {h['cores']} cores, {h['mem_total'] / 2**30:.1f} GiB, kernel "
             f"{h['kernel']}, fd limit {h['fd_soft']:,}; commit {h['git_commit']}; SLO p99 < "
             f"{_ms(rep['slo_us'])}; payload {rep['payload']}; budget "
             + ("--full" if rep["budget_s"] is None else f"{rep['budget_s'] // 60} min")
             + (f"; took {rep['elapsed_s'] / 60:.1f} min" if rep.get("elapsed_s") else ""), "",
             "## Answers", ""]
    lines += [f"- **{a['question']}** {a['answer']}" for a in rep["answers"]]
    lines += ["", "## Plan", "", "```"] + rep["plan"]["text"] + ["```", ""]
    for r in rep["rungs"]:
        w = r.get("wall")
        lines += [f"## {r['name']} ({r['status']})", "",
                  f"Wall: **{w['name']}**: {w['detail']}" if w else "Wall: none named", ""]
        if w and w["evidence"]:
            lines += [f"- {e['what']}: {_fmt(e['value'])}" + (f" ({e['threshold']})" if e.get("threshold") else "")
                      for e in w["evidence"]] + [""]
        if r.get("reason"):
            lines += [f"Reason: {r['reason']}", ""]
        lines += ["| number | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _numbers_rows(r["numbers"])]
        lines += ["", "| step | engine | status | s | wall |", "|---|---|---|---|---|"]
        lines += [f"| {s['name']} | {s.get('engine', '')} | {s['status']}{' (' + s['reason'] + ')' if s.get('reason') else ''} "
                  f"| {s['elapsed_s']} | {(s.get('wall') or {}).get('name', '')} |" for s in r["steps"]]
        lines.append("")
    if rep["sysctl_changes"]:
        lines += ["## Sysctls changed (and restored)", ""]
        lines += [f"- {c['key']}: {c['old']} -> {c['new']} ({c['why']}); restored: {'yes' if c['restored'] else 'NO'}"
                  for c in rep["sysctl_changes"]]
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1300px;color:#222}
h1{font-size:22px}h2{font-size:19px;border-bottom:1px solid #ccc;padding-top:8px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
.wall{background:#fff6e0;border-left:4px solid #e8a000;padding:8px 12px;margin:10px 0}
.ok{color:#0a7a2f}.bad{color:#b00020}.plots{display:flex;flex-wrap:wrap;gap:10px}
.plots figure{margin:4px 0}.plots img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;font-weight:600}.cols{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto}.ans li{margin:4px 0}
.small{font-size:12px;color:#555}"""


def _e(x):
    return html.escape(str(x))


def _wall_html(w):
    if not w:
        return "<div class='wall'>No wall named for this rung.</div>"
    rows = "".join(f"<tr><td>{_e(e['what'])}</td><td>{_e(_fmt(e['value']))}</td><td>{_e(e.get('threshold', ''))}</td></tr>"
                   for e in w["evidence"])
    return (f"<div class='wall'><b>Wall: {_e(w['name'])}</b>: {_e(w['detail'])}"
            f"<table><tr><th>evidence</th><th>value</th><th>rule</th></tr>{rows}</table>"
            f"<div class='small'>rules checked, in order: {_e(', '.join(w.get('checked', [])))}</div></div>")


def html_page(rep):
    h = rep["host"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>c10m ladder: {_e(h['hostname'])}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>c10m ladder: {_e(h['hostname'])}, {_e(rep['started'])}</h1>",
             f"<p>Status <b>{_e(rep['status'])}</b>. {h['cores']} cores ({_e(h['cpu'])}), "
             f"{h['mem_total'] / 2**30:.1f} GiB, kernel {_e(h['kernel'])}, fd limit {h['fd_soft']:,}, commit "
             f"{_e(h['git_commit'])}. SLO: p99 &lt; {_e(_ms(rep['slo_us']))}, payload {_e(rep['payload'])}. "
             + (f"Took {rep['elapsed_s'] / 60:.1f} min. " if rep.get("elapsed_s") else "")
             + f"<span class='small'>{_e(' '.join(rep['command']))}</span></p>",
             "<h2>Answers</h2><ul class='ans'>"]
    parts += [f"<li><b>{_e(a['question'])}</b><br>{_e(a['answer'])}</li>" for a in rep["answers"]]
    parts.append("</ul><h2>Probe and plan</h2><pre>" + _e("\n".join(rep["plan"]["text"])) + "</pre>")
    for r in rep["rungs"]:
        cls = "ok" if r["status"] == "done" else "bad"
        parts.append(f"<h2>{_e(r['name'])} <span class='{cls}'>({_e(r['status'])})</span>"
                     + (f" {r['conns']:,} connections" if r.get("conns") else "") + "</h2>")
        parts.append(f"<p class='small'>predicted: {_e(r['predicted_wall'])}"
                     + (f"; {_e(r['reason'])}" if r.get("reason") else "") + "</p>")
        parts.append(_wall_html(r.get("wall")))
        parts.append("<div class='plots'>")
        for pid, title, draw in plots_of(r):
            try:
                data = plot.png_base64(draw())
            except Exception as e:  # noqa: BLE001 - one bad plot must not lose the page
                parts.append(f"<p class='bad'>plot {_e(pid)} failed: {_e(e)}</p>")
                continue
            parts.append(f"<figure><figcaption>{_e(title)}</figcaption>"
                         f"<img id='{_e(pid)}' alt='{_e(title)}' src='data:image/png;base64,{data}'></figure>")
        parts.append("</div><div class='cols'><table><tr><th>number</th><th>value</th></tr>"
                     + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in _numbers_rows(r["numbers"]))
                     + "</table>")
        parts.append("<table><tr><th>step</th><th>engine</th><th>status</th><th>s</th><th>wall</th><th>results</th></tr>")
        for s in r["steps"]:
            res = ", ".join(f"{k} {_fmt(v)}" for k, v in s["results"].items()
                            if not isinstance(v, (dict, list)))
            parts.append(f"<tr><td>{_e(s['name'])}</td><td>{_e(s.get('engine', ''))}</td><td>{_e(s['status'])}"
                         f"{_e(' (' + s['reason'] + ')') if s.get('reason') else ''}</td><td>{s['elapsed_s']}</td>"
                         f"<td>{_e((s.get('wall') or {}).get('name', ''))}</td><td class='small'>{_e(res)}</td></tr>")
        parts.append("</table></div>")
        for s in r["steps"]:
            if s["name"] == "slo" and s["data"].get("trials"):
                parts.append(f"<p class='small'>{_e(s['engine'])} trials:</p><table><tr><th>rate/s</th><th>pass</th>"
                             "<th>p50</th><th>p99</th><th>p99.9</th><th>completed/s</th><th>box cores</th>"
                             "<th>server</th><th>client</th><th>box us/frame</th><th>wall</th></tr>")
                for t in sorted(s["data"]["trials"], key=lambda t: t["rate"]):
                    parts.append(f"<tr><td>{t['rate']:,.0f}</td><td>{'yes' if t['pass'] else 'no'}</td>"
                                 f"<td>{_ms(t['p50_us'])}</td><td>{_ms(t['p99_us'])}</td><td>{_ms(t['p999_us'])}</td>"
                                 f"<td>{_fmt(t['completed_per_s'])}</td><td>{_fmt(t['box_busy_cores'])}</td>"
                                 f"<td>{_fmt(t['server_cores'])}</td><td>{_fmt(t['client_cores'])}</td>"
                                 f"<td>{_fmt(t['box_us_per_frame'])}</td><td>{_e((t.get('wall') or {}).get('name', ''))}</td></tr>")
                parts.append("</table>")
    if rep["sysctl_changes"]:
        parts.append("<h2>Sysctls changed (and restored)</h2><ul>" + "".join(
            f"<li>{_e(c['key'])}: {_e(c['old'])} &rarr; {_e(c['new'])} ({_e(c['why'])}); restored: "
            f"{'yes' if c['restored'] else '<b>NO</b>'}</li>" for c in rep["sysctl_changes"]) + "</ul>")
    parts.append("<p class='small'>The JSON behind this page is report.json beside it (schema in docs/LADDER.md); "
                 "raw load-client records are under raw/.</p></body></html>")
    return "\n".join(parts)


def write(rep, out_dir, partial=False):
    """Writes report.json, report.md and report.html (during the climb, after every rung, so
    an interrupted run leaves a valid partial report)."""
    os.makedirs(out_dir, exist_ok=True)
    if partial:
        rep = dict(rep)
        rep["answers"] = answers(rep)
    paths = []
    for name, text in (("report.json", json.dumps(rep, indent=1, default=str)),
                       ("report.md", markdown(rep)), ("report.html", html_page(rep))):
        path = os.path.join(out_dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths


# ---- compare ------------------------------------------------------------------------------

def compare_page(a, b, name_a="A", name_b="B"):
    """Before/after: every rung both reports have, number by number with the ratio B/A, both
    walls, and the SLO searches of both on one plot."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>c10m ladder: compare</title>"
             f"<style>{CSS}</style></head><body><h1>c10m ladder: {_e(name_a)} against {_e(name_b)}</h1>"]
    for tag, r in (("A", a), ("B", b)):
        h = r["host"]
        parts.append(f"<p><b>{tag}</b>: {_e(h['hostname'])} {_e(r['started'])}, commit {_e(h['git_commit'])}, kernel "
                     f"{_e(h['kernel'])}, {h['cores']} cores, status {_e(r['status'])}</p>")
    changed = [c for c in ("somaxconn", "tcp_mem_pages", "ehash_buckets", "fd_soft", "kernel", "port_range", "file_max")
               if a["host"].get(c) != b["host"].get(c)]
    if changed:
        parts.append("<p>Host differences: " + "; ".join(
            f"{_e(c)}: {_e(a['host'].get(c))} &rarr; {_e(b['host'].get(c))}" for c in changed) + "</p>")
    rb = {r["name"]: r for r in b["rungs"]}
    for ra in a["rungs"]:
        r2 = rb.get(ra["name"])
        if not r2:
            continue
        parts.append(f"<h2>{_e(ra['name'])}</h2><table><tr><th>wall</th><th>A</th><th>B</th></tr><tr><td></td>"
                     f"<td>{_e(_wall_name_w(ra.get('wall')))}</td><td>{_e(_wall_name_w(r2.get('wall')))}</td></tr></table>")
        parts.append("<table><tr><th>number</th><th>A</th><th>B</th><th>B / A</th></tr>")
        for k in list(dict.fromkeys(list(ra["numbers"]) + list(r2["numbers"]))):
            va, vb = ra["numbers"].get(k), r2["numbers"].get(k)
            ratio = f"{vb / va:.2f}" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) \
                and not isinstance(va, bool) and va else ""
            parts.append(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(va))}</td><td>{_e(_fmt(vb))}</td><td>{ratio}</td></tr>")
        parts.append("</table>")
        sa = [s for s in ra["steps"] if s["name"] == "slo" and s["data"].get("trials")]
        sb = [s for s in r2["steps"] if s["name"] == "slo" and s["data"].get("trials")]
        if sa or sb:
            plt = plot.pyplot()
            fig, ax = plt.subplots(figsize=(7, 3.8))
            for tag, ss, style in (("A", sa, "o-"), ("B", sb, "s--")):
                for s in ss:
                    ts = sorted(s["data"]["trials"], key=lambda t: t["rate"])
                    ax.plot([t["rate"] for t in ts], [(t["p99_us"] or 0) / 1000 for t in ts], style,
                            label=f"{tag} {s['engine']} p99")
            ax.axhline(a["slo_us"] / 1000, color="grey", lw=1)
            ax.set(xscale="log", yscale="log", xlabel="frames/s (open model)", ylabel="p99 ms")
            ax.legend(fontsize=7)
            parts.append(f"<figure><figcaption>{_e(ra['name'])}: p99 against the rate, A and B</figcaption>"
                         f"<img id='{_e(ra['name'])}-compare' src='data:image/png;base64,{plot.png_base64(fig)}'></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def load(path):
    with open(path) as f:
        rep = json.load(f)
    errs = schema.validate(rep)
    if errs:
        raise SystemExit(f"{path}: not a ladder report: " + "; ".join(errs[:5]))
    return rep


