"""Big-message measurements (FETCH/STREAM through the server, iperf3 on the same loopback),
shared by the Stage-1 experiments and the ladder: a window of the server's byte counters and
both sides' CPU, one closed-loop transfer point, an iperf3 run, and the pattern file.
Ports: the big-data experiments use 22000-22999."""
import json
import os
import subprocess
import time

from . import metrics as mx
from . import proc, procs

PATTERN_FILE = "/tmp/bigdata-pattern.bin"  # 251 * 1 MiB bytes, byte i = i mod 251


def ensure_pattern_file(path=PATTERN_FILE, mib=1):
    """A --fetch-file whose byte i is i mod 251 and whose size is a multiple of 251, so that
    wrapping keeps the protocol's pattern and the load client can verify every byte."""
    size = 251 * (mib << 20)
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path, "wb") as f:
            f.write(bytes(range(251)) * (mib << 20))
    return path


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
            "allocations": mx.allocations(m),
            "zc_sends": m.get("c10m_zerocopy_sends_total", 0.0),
            "zc_copied": m.get("c10m_zerocopy_copied_total", 0.0),
            "sendfile": m.get("c10m_sendfile_bytes_total", 0.0),
            "server_cpu": server.cpu() if server is not None else None,
            "client_cpu": sum((proc.proc_cpu(p) or 0.0) for p in client_pids),
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
    the CPU seconds per GB of sender and receiver over the measured seconds."""
    srv = procs.spawn(["iperf3", "-s", "-p", str(port), "-1"], netns_server,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    cmd = ["iperf3", "-c", host, "-p", str(port), "-t", str(seconds), "-O", str(omit), "-J",
           "-P", str(streams)]
    if zerocopy:
        cmd.append("-Z")
    if length:
        cmd += ["-l", str(length)]
    cli = procs.spawn(cmd, netns_client, stdout=subprocess.PIPE, text=True)
    # CPU over the measured seconds only: sample after the omitted one and near the end.
    time.sleep(omit + 0.3)
    c1, s1, t1 = proc.proc_cpu(cli.pid), proc.proc_cpu(srv.pid), time.monotonic()
    time.sleep(max(0.5, seconds - 0.6))
    c2, s2, t2 = proc.proc_cpu(cli.pid), proc.proc_cpu(srv.pid), time.monotonic()
    out, _ = cli.communicate(timeout=seconds + 30)
    srv.wait(timeout=10)
    procs.forget(cli)
    procs.forget(srv)
    end = json.loads(out)["end"]
    rate = end["sum_received"]["bits_per_second"] / 8
    return {
        "bytes_per_s": rate,
        "sender_cpu_s_per_gb": ((c2 - c1) / ((t2 - t1) * rate / 1e9)) if c2 and c1 else None,
        "receiver_cpu_s_per_gb": ((s2 - s1) / ((t2 - t1) * rate / 1e9)) if s2 and s1 else None,
        "streams": streams,
        "zerocopy": zerocopy,
    }


def payload_for(op, chunk):
    """Request size for a transfer measurement: big enough that request boundaries are rare,
    small enough that tiny frames still finish a request inside the window. A STREAM is
    built whole by the client (at most 16 MiB)."""
    if op == "stream":
        return min(16 << 20, max(1 << 20, chunk * 4096))
    return min(256 << 20, max(4 << 20, chunk * 8192))


def measure_transfer(server, op, conns, chunk, warm, measure, raw_path, payload=None,
                     client_args=(), addr=None, netns_name=None):
    """One closed-loop transfer point (one request in flight per connection, every byte
    verified by the client): rates from the server's byte counters over the window."""
    args = ["--addr", addr or f"127.0.0.1:{server.port}", "--conns", str(conns), "--inflight", "1",
            "--op", op, "--payload", str(payload or payload_for(op, chunk)),
            "--chunk", str(chunk), "--duration", f"{warm + measure + 0.5}s", "--grace", "1s",
            "--threads", "1"] + list(client_args)
    t0 = time.monotonic()
    lc = procs.LoadClient(args, raw_path, netns_name=netns_name)
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


