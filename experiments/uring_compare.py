#!/usr/bin/env python3
"""io_uring engine vs epoll engine vs a peer server, same client, interleaved rounds.

Driven by experiments/uring_compare.sh (run it under /work/tools/quiet, one phase per call:
each phase ends within a few minutes). Phases:

  peak      ROUNDS rounds; in each, every workload on every server, the server order
            rotated per round: closed loop, 64 B ECHO, 100 conns x 8 in flight and
            10,000 conns x 1 in flight. frames/s, server and client CPU per frame (client
            --server-pid), server context switches per frame (/proc/PID/task/*/status).
  syscalls  one run per server and workload under `perf stat` (tracepoints: every
            syscall, io_uring_enter, epoll_wait, read/write families, context switches):
            system calls and context switches per frame. Kept apart from `peak` so that
            the tracepoints do not touch the throughput numbers.
  latency   ROUNDS rounds, open model at a fixed total RATE (64 B ECHO over LAT_CONNS
            connections): p50/p99/p99.9 and whether the client kept its schedule.
  idle      IDLE_CONNS idle connections per server (the client's --server-pid RSS growth
            per connection), one process, one loop.
  profile   `perf record -e cpu-clock -g` of each server under 100 x 8; kernel/user split
            and the top symbols.
  report    medians and min-max ranges -> results/uring_compare.json, .md, .png

Servers (SERVERS, default "epoll uring peer"): c10m-server --engine epoll|uring with
SERVER_THREADS loops, and the peer: PEER_CMD with {port} and {threads} substituted
(default: bench/peers/echo_peer, a raw epoll byte echo). Pinning (PIN=1): server on CPU 0,
client on CPU 1, so neither takes the other's core. Ports 21000-21099.
"""
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
ENV = os.environ.get
ROUNDS = int(ENV("ROUNDS", "3"))
SECS = int(ENV("SECS", "4"))
WARMUP = ENV("WARMUP", "1s")
THREADS = int(ENV("SERVER_THREADS", "1"))
CLIENT_THREADS = int(ENV("CLIENT_THREADS", "1"))
PIN = ENV("PIN", "1") == "1"
SERVERS = ENV("SERVERS", "epoll uring peer").split()
REL = "build/release"
CLIENT = ENV("CLIENT", f"{REL}/apps/c10m-loadclient")
SERVER = f"{REL}/apps/c10m-server"
PEER_CMD = ENV("PEER_CMD", f"{REL}/bench/peers/echo_peer --addr 127.0.0.1:{{port}}")
PEER_NAME = ENV("PEER_NAME", "echo_peer")
SRCIPS = "127.0.0.2-127.0.0.5"
OUT = "results/uring_compare"
RATE = int(ENV("RATE", "20000"))
LAT_CONNS = int(ENV("LAT_CONNS", "1000"))
IDLE_CONNS = int(ENV("IDLE_CONNS", "19000"))
PORT_BASE = 21000

WORKLOADS = {
    "100x8": ["--conns", "100", "--inflight", "8", "--op", "echo", "--payload", "64"],
    "10000x1": ["--conns", "10000", "--inflight", "1", "--op", "echo", "--payload", "64",
                "--srcips", SRCIPS],
}


def pin(cpu):
    return ["taskset", "-c", str(cpu)] if PIN else []


class Server:
    """One server process on a fixed port; stderr captured; SIGTERM on stop."""

    def __init__(self, name, port, threads=THREADS, extra=()):
        self.name = name
        if name in ("epoll", "uring"):
            cmd = [SERVER, "--engine", name, "--threads", str(threads), "--addr",
                   f"127.0.0.1:{port}", "--metrics-addr", "off", *extra]
        else:
            cmd = shlex.split(PEER_CMD.format(port=port, threads=threads))
        self.port = port
        self.err = []
        self.proc = subprocess.Popen(pin(0) + cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True)
        ready = threading.Event()

        def reader():
            for line in self.proc.stderr:
                self.err.append(line)
                if "listening on" in line:
                    ready.set()
        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(10):
            self.stop()
            raise RuntimeError(f"{name} did not start: {''.join(self.err)}")
        self.pid = self.proc.pid

    def ctxsw(self):
        vol = invol = 0
        try:
            for tid in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            vol += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            invol += int(line.split()[1])
        except FileNotFoundError:
            pass
        return vol, invol

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def client(port, args, spid, path, secs=SECS, warmup=WARMUP):
    cmd = pin(1) + [CLIENT, "--addr", f"127.0.0.1:{port}", *args, "--warmup", warmup,
                    "--duration", f"{secs}s", "--threads", str(CLIENT_THREADS),
                    "--server-pid", str(spid), "--quiet", "--json", path]
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       timeout=secs + 120)
    if r.returncode != 0:
        raise RuntimeError(f"client failed: {r.stderr}")
    with open(path) as f:
        return json.load(f)


def summary(j):
    s = j["summary"]
    return {
        "frames_per_s": s["rate"]["completed_per_s"],
        "frames": s["rate"]["completed_per_s"] * s["measured_s"],
        "server_ns_per_frame": s["cpu"]["server_ns_per_frame"],
        "client_ns_per_frame": s["cpu"]["client_ns_per_frame"],
        "p50_us": s["latency_us"]["p50"],
        "p99_us": s["latency_us"]["p99"],
        "p99_9_us": s["latency_us"]["p99_9"],
        "errors": s["errors"],
        "mismatches": s["mismatches"],
        "client_behind": s["client_behind"],
        "conns_open": s["conns"]["open"],
        "server_bytes_per_conn": (s.get("server") or {}).get("bytes_per_conn"),
    }


def label(name):
    return PEER_NAME if name == "peer" else f"c10m-{name}"


def save(phase, key, data):
    os.makedirs(f"{OUT}/{phase}", exist_ok=True)
    with open(f"{OUT}/{phase}/{key}.json", "w") as f:
        json.dump(data, f, indent=1)


def phase_peak():
    for r in range(ROUNDS):
        order = SERVERS[r % len(SERVERS):] + SERVERS[:r % len(SERVERS)]
        for wl, args in WORKLOADS.items():
            for i, name in enumerate(order):
                srv = Server(name, PORT_BASE + i)
                try:
                    c0 = srv.ctxsw()
                    j = client(srv.port, args, srv.pid, f"/tmp/uring-cmp-{os.getpid()}.json")
                    c1 = srv.ctxsw()
                finally:
                    srv.stop()
                res = summary(j)
                # The counters span the whole client run (connect, warm-up, grace), so per
                # frame they are an upper bound; `syscalls` gives the measured-window figure.
                res["ctxsw_vol"] = c1[0] - c0[0]
                res["ctxsw_invol"] = c1[1] - c0[1]
                save("peak", f"{wl}-{name}-r{r}", {"server": label(name), "workload": wl,
                                                    "round": r, **res})
                print(f"peak r{r} {wl:8} {label(name):12} {res['frames_per_s']:>10.0f} f/s  "
                      f"server {res['server_ns_per_frame']:7.0f} ns/f  client "
                      f"{res['client_ns_per_frame']:7.0f} ns/f  err {res['errors']} "
                      f"mism {res['mismatches']}", flush=True)


PERF_EVENTS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_io_uring_enter",
               "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait",
               "syscalls:sys_enter_epoll_ctl", "syscalls:sys_enter_read",
               "syscalls:sys_enter_write", "syscalls:sys_enter_readv",
               "syscalls:sys_enter_writev", "syscalls:sys_enter_recvfrom",
               "syscalls:sys_enter_sendto", "syscalls:sys_enter_sendmsg",
               "context-switches", "task-clock"]


def phase_syscalls():
    for wl, args in WORKLOADS.items():
        for i, name in enumerate(SERVERS):
            srv = Server(name, PORT_BASE + 10 + i)
            perf_out = f"/tmp/uring-cmp-perf-{os.getpid()}.txt"
            try:
                warm = float(WARMUP.rstrip("s"))
                cl = threading.Thread(target=lambda: setattr(
                    phase_syscalls, "j", client(srv.port, args, srv.pid,
                                                f"/tmp/uring-cmp-{os.getpid()}.json")))
                cl.start()
                time.sleep(warm + (2.0 if wl == "10000x1" else 0.2))
                # Counted over SECS - 1 s inside the client's measured window.
                window = SECS - 1 - (1.8 if wl == "10000x1" else 0)
                subprocess.run(["perf", "stat", "-x", ",", "-o", perf_out, "-e",
                                ",".join(PERF_EVENTS), "-p", str(srv.pid), "--", "sleep",
                                f"{window:.2f}"], check=True, stdout=subprocess.DEVNULL)
                cl.join()
                j = phase_syscalls.j
            finally:
                srv.stop()
            counts = {}
            with open(perf_out) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) > 2 and parts[2] in PERF_EVENTS:
                        try:
                            counts[parts[2]] = float(parts[0])
                        except ValueError:
                            counts[parts[2]] = None
            res = summary(j)
            frames = res["frames_per_s"] * window
            per = {k: (v / frames if v is not None and frames else None)
                   for k, v in counts.items()}
            save("syscalls", f"{wl}-{name}", {"server": label(name), "workload": wl,
                                              "window_s": window, "frames": frames,
                                              "counts": counts, "per_frame": per, **res})
            print(f"syscalls {wl:8} {label(name):12} syscalls/frame "
                  f"{per.get('raw_syscalls:sys_enter') or 0:.3f}  ctxsw/frame "
                  f"{per.get('context-switches') or 0:.4f}  enter/frame "
                  f"{per.get('syscalls:sys_enter_io_uring_enter') or 0:.3f}  epoll_wait/frame "
                  f"{per.get('syscalls:sys_enter_epoll_wait') or 0:.3f}", flush=True)


def phase_latency():
    per_conn = RATE / LAT_CONNS
    args = ["--conns", str(LAT_CONNS), "--rate", f"{per_conn:g}", "--op", "echo",
            "--payload", "64"]
    for r in range(ROUNDS):
        order = SERVERS[r % len(SERVERS):] + SERVERS[:r % len(SERVERS)]
        for i, name in enumerate(order):
            srv = Server(name, PORT_BASE + 20 + i)
            try:
                j = client(srv.port, args, srv.pid, f"/tmp/uring-cmp-{os.getpid()}.json",
                           warmup="2s")
            finally:
                srv.stop()
            res = summary(j)
            save("latency", f"{name}-r{r}", {"server": label(name), "round": r,
                                             "rate": RATE, "conns": LAT_CONNS, **res})
            print(f"latency r{r} {label(name):12} {res['frames_per_s']:>8.0f}/s  p50 "
                  f"{res['p50_us']:7.1f}  p99 {res['p99_us']:8.1f}  p99.9 {res['p99_9_us']:8.1f} us"
                  f"  behind {res['client_behind']}", flush=True)


def phase_idle():
    args = ["--conns", str(IDLE_CONNS), "--active-frac", "0", "--ramp", "20000",
            "--srcips", SRCIPS]
    for i, name in enumerate(SERVERS):
        srv = Server(name, PORT_BASE + 30 + i, threads=1, extra=["--idle-timeout", "0"])
        try:
            j = client(srv.port, args, srv.pid, f"/tmp/uring-cmp-{os.getpid()}.json", secs=3,
                       warmup="0")
        finally:
            srv.stop()
        res = summary(j)
        save("idle", name, {"server": label(name), **res})
        print(f"idle {label(name):12} conns {res['conns_open']}  server RSS/conn "
              f"{res['server_bytes_per_conn']:.0f} B", flush=True)


def phase_profile():
    for i, name in enumerate(SERVERS):
        srv = Server(name, PORT_BASE + 40 + i)
        data = f"{OUT}/profile-{name}.perf"
        os.makedirs(OUT, exist_ok=True)
        try:
            cl = threading.Thread(target=lambda: client(srv.port, WORKLOADS["100x8"], srv.pid,
                                                        f"/tmp/uring-cmp-{os.getpid()}.json"))
            cl.start()
            time.sleep(1.2)
            subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p", str(srv.pid),
                            "-o", data, "--", "sleep", str(SECS - 1)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            cl.join()
        finally:
            srv.stop()
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "-g", "none",
                              "--sort", "dso,sym"], capture_output=True, text=True).stdout
        kernel = sum(float(l.split()[0].rstrip("%")) for l in rep.splitlines()
                     if l.strip() and l.lstrip()[0].isdigit() and "[kernel" in l)
        top = [l.strip() for l in rep.splitlines() if l.strip() and l.lstrip()[0].isdigit()][:12]
        save("profile", name, {"server": label(name), "kernel_share_pct": kernel, "top": top})
        print(f"profile {label(name)}: kernel {kernel:.1f}%")
        for t in top:
            print("   ", t)


def load_phase(phase):
    d = f"{OUT}/{phase}"
    if not os.path.isdir(d):
        return []
    out = []
    for f in sorted(os.listdir(d)):
        with open(f"{d}/{f}") as fh:
            out.append(json.load(fh))
    return out


def med_range(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def phase_report():
    host = json.loads(subprocess.run(["bash", "scripts/host_record.sh"], capture_output=True,
                                     text=True).stdout)
    peak = load_phase("peak")
    report = {"experiment": "uring_compare", "host": host,
              "config": {"rounds": ROUNDS, "secs": SECS, "server_threads": THREADS,
                         "client_threads": CLIENT_THREADS, "pinned": PIN, "client": CLIENT,
                         "peer_cmd": PEER_CMD},
              "peak": {}, "ratios": {}, "syscalls": {}, "latency": {}, "idle": {},
              "profile": {}}
    lines = ["| workload | server | frames/s (median, min-max) | server CPU ns/frame | "
             "client CPU ns/frame | server ctx switches/frame | errors |",
             "|---|---|---|---|---|---|---|"]
    for wl in WORKLOADS:
        report["peak"][wl] = {}
        for name in SERVERS:
            runs = [p for p in peak if p["workload"] == wl and p["server"] == label(name)]
            if not runs:
                continue
            agg = {k: med_range([p[k] for p in runs]) for k in
                   ("frames_per_s", "server_ns_per_frame", "client_ns_per_frame")}
            agg["ctxsw_per_frame"] = med_range(
                [(p["ctxsw_vol"] + p["ctxsw_invol"]) / p["frames"] for p in runs if p["frames"]])
            agg["errors"] = sum(p["errors"] + p["mismatches"] for p in runs)
            agg["runs"] = runs
            report["peak"][wl][label(name)] = agg
            f, c, cl, cs = (agg["frames_per_s"], agg["server_ns_per_frame"],
                            agg["client_ns_per_frame"], agg["ctxsw_per_frame"])
            lines.append(f"| {wl} | {label(name)} | {f['median']:,.0f} ({f['min']:,.0f}-{f['max']:,.0f}) | "
                         f"{c['median']:,.0f} ({c['min']:,.0f}-{c['max']:,.0f}) | "
                         f"{cl['median']:,.0f} | {cs['median']:.3f} | {agg['errors']} |")
        # Per-round ratios against epoll and the peer (same round: interleaved).
        for base in ("epoll", "peer"):
            if "uring" not in SERVERS or base not in SERVERS:
                continue
            fr, cr = [], []
            for r in range(ROUNDS):
                u = [p for p in peak if p["workload"] == wl and p["round"] == r and p["server"] == label("uring")]
                b = [p for p in peak if p["workload"] == wl and p["round"] == r and p["server"] == label(base)]
                if u and b:
                    fr.append(u[0]["frames_per_s"] / b[0]["frames_per_s"])
                    cr.append(u[0]["server_ns_per_frame"] / b[0]["server_ns_per_frame"])
            report["ratios"][f"{wl} uring/{label(base)}"] = {
                "frames_per_s": med_range(fr), "server_cpu_per_frame": med_range(cr)}
    for k, v in report["ratios"].items():
        if v["frames_per_s"]:
            lines.append(f"\n{k}: frames/s x{v['frames_per_s']['median']:.2f} "
                         f"({v['frames_per_s']['min']:.2f}-{v['frames_per_s']['max']:.2f}), "
                         f"server CPU/frame x{v['server_cpu_per_frame']['median']:.2f} "
                         f"({v['server_cpu_per_frame']['min']:.2f}-{v['server_cpu_per_frame']['max']:.2f})")
    sc = load_phase("syscalls")
    if sc:
        lines += ["", "| workload | server | syscalls/frame | io_uring_enter/frame | epoll_wait/frame "
                  "| read+recv/frame | write+send/frame | context switches/frame | frames/s under perf |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for s in sc:
            p = s["per_frame"]
            g = lambda *ks: sum((p.get(k) or 0) for k in ks)
            report["syscalls"][f"{s['workload']} {s['server']}"] = s
            lines.append(f"| {s['workload']} | {s['server']} | {g('raw_syscalls:sys_enter'):.3f} | "
                         f"{g('syscalls:sys_enter_io_uring_enter'):.3f} | "
                         f"{g('syscalls:sys_enter_epoll_wait', 'syscalls:sys_enter_epoll_pwait'):.3f} | "
                         f"{g('syscalls:sys_enter_read', 'syscalls:sys_enter_readv', 'syscalls:sys_enter_recvfrom'):.3f} | "
                         f"{g('syscalls:sys_enter_write', 'syscalls:sys_enter_writev', 'syscalls:sys_enter_sendto', 'syscalls:sys_enter_sendmsg'):.3f} | "
                         f"{g('context-switches'):.4f} | {s['frames_per_s']:,.0f} |")
    lat = load_phase("latency")
    if lat:
        lines += ["", f"Open model, {RATE:,}/s over {LAT_CONNS} connections, 64 B ECHO:", "",
                  "| server | achieved/s | p50 us | p99 us | p99.9 us | client behind |",
                  "|---|---|---|---|---|---|"]
        for name in SERVERS:
            runs = [p for p in lat if p["server"] == label(name)]
            if not runs:
                continue
            agg = {k: med_range([p[k] for p in runs]) for k in
                   ("frames_per_s", "p50_us", "p99_us", "p99_9_us")}
            agg["runs"] = runs
            report["latency"][label(name)] = agg
            m = lambda k: f"{agg[k]['median']:,.0f} ({agg[k]['min']:,.0f}-{agg[k]['max']:,.0f})"
            lines.append(f"| {label(name)} | {agg['frames_per_s']['median']:,.0f} | {m('p50_us')} | "
                         f"{m('p99_us')} | {m('p99_9_us')} | "
                         f"{sum(1 for p in runs if p['client_behind'])}/{len(runs)} |")
    idle = load_phase("idle")
    if idle:
        lines += ["", "| server | idle conns | server RSS B/conn |", "|---|---|---|"]
        for s in idle:
            report["idle"][s["server"]] = s
            lines.append(f"| {s['server']} | {s['conns_open']:,} | {s['server_bytes_per_conn']:.0f} |")
    for s in load_phase("profile"):
        report["profile"][s["server"]] = s
    os.makedirs("results", exist_ok=True)
    with open("results/uring_compare.json", "w") as f:
        json.dump(report, f, indent=1)
    with open("results/uring_compare.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(report)


def plot(report):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: no plot)")
        return
    wls = [w for w in WORKLOADS if report["peak"].get(w)]
    if not wls:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    names = [label(n) for n in SERVERS]
    colors = {"c10m-epoll": "#4477aa", "c10m-uring": "#cc6677"}
    width = 0.8 / len(names)
    for k, (key, title) in enumerate([("frames_per_s", "frames/s (closed loop, 64 B ECHO)"),
                                      ("server_ns_per_frame", "server CPU ns per frame")]):
        ax = axes[k]
        for i, n in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for w, wl in enumerate(wls):
                a = report["peak"][wl].get(n)
                if not a:
                    continue
                xs.append(w + i * width)
                ys.append(a[key]["median"])
                lo.append(a[key]["median"] - a[key]["min"])
                hi.append(a[key]["max"] - a[key]["median"])
            ax.bar(xs, ys, width, yerr=[lo, hi], label=n, color=colors.get(n, "#999933"),
                   capsize=3)
        ax.set_xticks([w + width * (len(names) - 1) / 2 for w in range(len(wls))])
        ax.set_xticklabels([w.replace("x", " conns x ") + " in flight" for w in wls])
        ax.set_title(title)
        ax.legend()
    ax = axes[2]
    sc = report.get("syscalls", {})
    if sc:
        keys = sorted(sc)
        ys = [sc[k]["per_frame"].get("raw_syscalls:sys_enter") or 0 for k in keys]
        cs = [sc[k]["per_frame"].get("context-switches") or 0 for k in keys]
        xs = range(len(keys))
        ax.bar([x - 0.2 for x in xs], ys, 0.4, label="syscalls / frame", color="#117733")
        ax.bar([x + 0.2 for x in xs], cs, 0.4, label="context switches / frame", color="#ddcc77")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([k.replace(" ", "\n") for k in keys], fontsize=7)
        ax.set_title("per frame (perf stat, measured window)")
        ax.legend()
    host = report["host"]
    fig.suptitle(f"{host['cpu']}, {host['cores']} cores, kernel {host['kernel']}, commit "
                 f"{host['git_commit']}; server pinned to CPU 0, client to CPU 1"
                 if PIN else f"{host['cpu']}, kernel {host['kernel']}, commit {host['git_commit']}",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig("results/uring_compare.png", dpi=110)
    print("(plot: results/uring_compare.png)")


PHASES = {"peak": phase_peak, "syscalls": phase_syscalls, "latency": phase_latency,
          "idle": phase_idle, "profile": phase_profile, "report": phase_report}

if __name__ == "__main__":
    for ph in sys.argv[1:] or ["peak", "syscalls", "report"]:
        if ph not in PHASES:
            sys.exit(f"unknown phase {ph}; phases: {' '.join(PHASES)}")
        PHASES[ph]()
