"""Shared pieces of the Stage-1 (big data) experiments: starting c10m-server and
c10m-loadclient through their command lines, scraping /metrics, sampling /proc, running
iperf3, and stamping results with the host record. Experiments talk to the binaries only
through CLI and JSON; nothing here links the library.

Ports: this family of experiments uses 22000-22999 (see the project's port plan).
"""
import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("C10M_BUILD", os.path.join(ROOT, "build", "release"))
SERVER = os.path.join(BUILD, "apps", "c10m-server")
CLIENT = os.path.join(BUILD, "apps", "c10m-loadclient")
RESULTS = os.path.join(ROOT, "results")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PATTERN_FILE = "/tmp/bigdata-pattern.bin"  # 251 * 1 MiB bytes, byte i = i mod 251


def check_binaries():
    for b in (SERVER, CLIENT):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"no {b}: build first (make build, or C10M_BUILD=...)")


def host_record():
    out = subprocess.check_output(["bash", os.path.join(ROOT, "scripts", "host_record.sh")])
    return json.loads(out)


def ensure_pattern_file(path=PATTERN_FILE, mib=1):
    """A --fetch-file whose byte i is i mod 251 and whose size is a multiple of 251, so that
    wrapping keeps the protocol's pattern and the load client can verify every byte."""
    size = 251 * (mib << 20)
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path, "wb") as f:
            f.write(bytes(range(251)) * (mib << 20))
    return path


def proc_cpu(pid):
    """utime + stime of a process (all threads), seconds; None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid):
    """VmRSS in bytes; None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def ns_prefix(netns):
    return ["ip", "netns", "exec", netns] if netns else []


class Server:
    """c10m-server on 127.0.0.1 (or `addr`), with /metrics on a free port unless metrics=False.
    stop() drains it (SIGTERM) and returns the drain line."""

    def __init__(self, args, addr="127.0.0.1:0", metrics=True, netns=None, env=None):
        self.netns = netns
        cmd = ns_prefix(netns) + [SERVER, "--addr", addr,
                                  "--metrics-addr", "127.0.0.1:0" if metrics else "off"] + args
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        self.pid = self.proc.pid
        self.port = self.mport = None
        self.lines = []
        deadline = time.time() + 15
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line.rstrip())
            m = re.search(r"metrics on [0-9.]+:(\d+)", line)
            if m:
                self.mport = int(m.group(1))
            m = re.search(r"listening on [0-9.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start: " + " | ".join(self.lines))
        self._drain = threading.Thread(target=self._read_rest, daemon=True)
        self._drain.start()

    def _read_rest(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def scrape(self):
        if self.mport is None:
            return {}
        url = f"http://127.0.0.1:{self.mport}/metrics"
        out = subprocess.run(ns_prefix(self.netns) + ["curl", "-s", "--max-time", "5", url],
                             capture_output=True, text=True)
        return parse_metrics(out.stdout)

    def cpu(self):
        return proc_cpu(self.pid)

    def rss(self):
        return proc_rss(self.pid)

    def stop(self, timeout=40):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join(timeout=5)
        return next((l for l in reversed(self.lines) if l.startswith("drain:")), "")


def allocations(metrics):
    """c10m_allocations_total, whatever its hook label (None when not counted)."""
    for k, v in metrics.items():
        if k.startswith("c10m_allocations_total{"):
            return v
    return None


class LoadClient:
    """c10m-loadclient with --json; result() waits and returns the parsed JSON."""

    def __init__(self, args, json_path, netns=None):
        os.makedirs(os.path.dirname(json_path), exist_ok=True)
        self.json_path = json_path
        cmd = ns_prefix(netns) + [CLIENT, "--quiet", "--json", json_path] + args
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.pid = self.proc.pid

    def cpu(self):
        return proc_cpu(self.pid)

    def result(self, timeout=600):
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"loadclient failed ({self.proc.returncode}): {err.strip()}")
        with open(self.json_path) as f:
            return json.load(f)


def window(server, client_pids, t0, warm, measure):
    """Samples bytes and CPU at t0 + warm and t0 + warm + measure (monotonic seconds):
    server bytes in/out from /metrics, server CPU and the CPU of `client_pids`."""

    def sample():
        m = server.scrape() if server is not None else {}
        return {
            "t": time.monotonic(),
            "bytes_in": m.get("c10m_bytes_in_total", 0.0),
            "bytes_out": m.get("c10m_bytes_out_total", 0.0),
            "discarded": m.get("c10m_ingest_discarded_bytes_total", 0.0),
            "allocations": allocations(m),
            "zc_sends": m.get("c10m_zerocopy_sends_total", 0.0),
            "zc_copied": m.get("c10m_zerocopy_copied_total", 0.0),
            "sendfile": m.get("c10m_sendfile_bytes_total", 0.0),
            "server_cpu": server.cpu() if server is not None else None,
            "client_cpu": sum((proc_cpu(p) or 0.0) for p in client_pids),
        }

    time.sleep(max(0.0, t0 + warm - time.monotonic()))
    a = sample()
    time.sleep(max(0.0, t0 + warm + measure - time.monotonic()))
    b = sample()
    dt = b["t"] - a["t"]
    out = {"seconds": dt}
    for k in ("bytes_in", "bytes_out", "discarded", "zc_sends", "zc_copied", "sendfile"):
        out[k] = b[k] - a[k]
    out["allocations"] = (None if a["allocations"] is None or b["allocations"] is None
                          else b["allocations"] - a["allocations"])
    out["server_cpu_s"] = (None if a["server_cpu"] is None or b["server_cpu"] is None
                           else b["server_cpu"] - a["server_cpu"])
    out["client_cpu_s"] = b["client_cpu"] - a["client_cpu"]
    return out


def iperf3(port, seconds=4, omit=1, streams=1, zerocopy=False, length=None, netns_server=None,
           netns_client=None, host="127.0.0.1"):
    """One iperf3 run (client sends to server), same machine. Returns received bytes/s and
    the CPU seconds of sender and receiver over the whole run (incl. the omitted second)."""
    srv = subprocess.Popen(ns_prefix(netns_server) + ["iperf3", "-s", "-p", str(port), "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    cmd = ns_prefix(netns_client) + ["iperf3", "-c", host, "-p", str(port), "-t", str(seconds),
                                     "-O", str(omit), "-J", "-P", str(streams)]
    if zerocopy:
        cmd.append("-Z")
    if length:
        cmd += ["-l", str(length)]
    cli = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    # CPU over the measured seconds only: sample after the omitted one and near the end.
    time.sleep(omit + 0.3)
    c1, s1, t1 = proc_cpu(cli.pid), proc_cpu(srv.pid), time.monotonic()
    time.sleep(max(0.5, seconds - 0.6))
    c2, s2, t2 = proc_cpu(cli.pid), proc_cpu(srv.pid), time.monotonic()
    out, _ = cli.communicate(timeout=seconds + 30)
    srv.wait(timeout=10)
    j = json.loads(out)
    end = j["end"]
    rate = end["sum_received"]["bits_per_second"] / 8
    return {
        "bytes_per_s": rate,
        "sender_cpu_s_per_gb": ((c2 - c1) / ((t2 - t1) * rate / 1e9)) if c2 and c1 else None,
        "receiver_cpu_s_per_gb": ((s2 - s1) / ((t2 - t1) * rate / 1e9)) if s2 and s1 else None,
        "streams": streams,
        "zerocopy": zerocopy,
    }


def summarize(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def write_result(name, payload):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
    return path


def git_commit():
    try:
        return subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                       text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def payload_for(op, chunk):
    """Request size for a transfer measurement: big enough that request boundaries are rare,
    small enough that tiny frames still finish a request inside the window. A STREAM is
    built whole by the client (at most 16 MiB)."""
    if op == "stream":
        return min(16 << 20, max(1 << 20, chunk * 4096))
    return min(256 << 20, max(4 << 20, chunk * 8192))


def measure_transfer(server, op, conns, chunk, warm, measure, raw_path, payload=None,
                     client_args=(), addr=None, netns=None):
    """One closed-loop transfer point (one request in flight per connection, every byte
    verified by the client): rates from the server's byte counters over the window."""
    args = ["--addr", addr or f"127.0.0.1:{server.port}", "--conns", str(conns), "--inflight", "1",
            "--op", op, "--payload", str(payload or payload_for(op, chunk)),
            "--chunk", str(chunk), "--duration", f"{warm + measure + 0.5}s", "--grace", "1s",
            "--threads", "1"] + list(client_args)
    t0 = time.monotonic()
    lc = LoadClient(args, raw_path, netns=netns)
    w = window(server, [lc.pid], t0, warm, measure)
    res = lc.result()
    wire = w["bytes_out"] if op == "fetch" else w["bytes_in"]
    payload_bytes = wire * chunk / (chunk + 3)
    gb = payload_bytes / 1e9
    return {
        "op": op, "conns": conns, "chunk": chunk,
        "payload_bytes_per_s": payload_bytes / w["seconds"],
        "frames_per_s": wire / (chunk + 3) / w["seconds"],
        "server_cpu_s_per_gb": w["server_cpu_s"] / gb if gb > 0 and w["server_cpu_s"] is not None
        else None,
        "client_cpu_s_per_gb": w["client_cpu_s"] / gb if gb > 0 else None,
        "server_cpu_share": (w["server_cpu_s"] or 0) / w["seconds"],
        "client_cpu_share": w["client_cpu_s"] / w["seconds"],
        "mismatches": res["totals"]["mismatches"],
        "errors": res["summary"]["errors"],
        "requests_done": res["totals"]["ops_done"],
        "window": w,
    }


def save_plot(fig, path):
    """Lays out `fig` and writes it to `path` (a PNG)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print("plot:", path)


def subcommands(doc):
    """The argument parser of an experiment script (run/report/... subcommands)."""
    import argparse
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    return ap, ap.add_subparsers(dest="cmd", required=True)
