#!/usr/bin/python3
"""The kernel's source-port search on connect(): where it turns from O(1) into a scan
(docs/FINDINGS.md section 8.3, issue 7).

  experiments/connect_port_search.py [--conns 19000] [--out results/port_search]

A client that binds only its source address (IP_BIND_ADDRESS_NO_PORT, as
`c10m-loadclient --srcips` does) leaves the port to `__inet_hash_connect`, which scans the
ephemeral range from a per-destination offset, even ports first, and tries odd ports only
after a full pass over the even ones. Once a source IP holds a connection to the same
destination on every even port, each further connect() scans all of them
(`__inet_check_established` on each) before it finds an odd one: the connect rate falls
off a cliff at half the range per source IP. This script shows the cliff and where it is:

  case "1 IP, default range": one source IP, net.ipv4.ip_local_port_range as it is;
  case "1 IP, 20,000 ports":  one source IP, the range narrowed to 40000-59999;
  case "2 IPs, default range": two source IPs (each needs fewer than half the range).

Each case starts one c10m-server (epoll, --idle-timeout 0) and one c10m-loadclient
process (--conns N, idle connections, --connect-timeout 30s), samples the TCP sockets in
use (/proc/net/sockstat) every 0.02 s and reports the connect rate in each slice of 1,000
connections. The range is printed, changed and restored (also on error). Ports
24000-24002. Writes OUT.json and OUT.png. Bounded: each case ends after 60 s.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.plot  # noqa: E402

RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
BIN = os.path.join(harness.ROOT, "build/release/apps")


def tcp_inuse():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                return int(line.split()[2])
    return 0


def set_range(text):
    with open(RANGE, "w") as f:
        f.write(text)


def run_case(label, srcips, port_range, conns, port, limit_s):
    old = open(RANGE).read().split()
    if port_range:
        print(f"sysctl net.ipv4.ip_local_port_range: {old[0]} {old[1]} -> {port_range}")
        set_range(port_range)
    try:
        lo, hi = (int(x) for x in open(RANGE).read().split())
        server = subprocess.Popen(
            [f"{BIN}/c10m-server", "--engine", "epoll", "--threads", "1", "--addr",
             f"127.0.0.1:{port}", "--idle-timeout", "0", "--metrics-addr", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        base = tcp_inuse()
        client_cmd = [f"{BIN}/c10m-loadclient", "--addr", f"127.0.0.1:{port}", "--conns",
                      str(conns), "--active-frac", "0", "--srcips", srcips, "--duration",
                      f"{limit_s}s", "--connect-timeout", "30s", "--quiet", "--grace", "0s"]
        t0 = time.monotonic()
        client = subprocess.Popen(client_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples = []
        while time.monotonic() - t0 < limit_s:
            pairs = max(0, (tcp_inuse() - base) // 2)
            samples.append([round(time.monotonic() - t0, 3), pairs])
            if pairs >= conns:
                break
            time.sleep(0.02)
        client.terminate()
        client.wait(timeout=30)
        server.terminate()
        server.wait(timeout=40)
    finally:
        if port_range:
            set_range(f"{old[0]} {old[1]}")
            print(f"sysctl net.ipv4.ip_local_port_range: restored {old[0]} {old[1]}")
    # connects/s over each slice of 1,000 connections
    def reached_at(k):  # linear interpolation between the samples around k
        for (t0_, n0), (t1, n1) in zip(samples, samples[1:]):
            if n0 < k <= n1:
                return t0_ + (t1 - t0_) * (k - n0) / (n1 - n0)
        return None
    slices = []
    for k in range(1000, conns + 1, 1000):
        a, b = reached_at(k - 999), reached_at(k)
        if a is not None and b is not None and b > a:
            slices.append([k, round(999 / (b - a))])
    n_ips = len(srcips.split(","))
    half = (hi - lo + 1) // 2
    reached = samples[-1][1] if samples else 0
    print(f"{label}: range {lo}-{hi} ({hi - lo + 1} ports, {half} even), {n_ips} source IP(s): "
          f"{reached} connections in {samples[-1][0] if samples else 0:.1f} s; "
          f"connects/s per 1,000: {[r for _, r in slices]}")
    return {"label": label, "srcips": srcips, "port_range": [lo, hi], "even_ports": half,
            "source_ips": n_ips, "conns_target": conns, "conns_reached": reached,
            "client_command": " ".join(client_cmd), "samples": samples,
            "rate_per_1000": slices}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=19000)
    ap.add_argument("--limit", type=float, default=60)
    ap.add_argument("--out", default=os.path.join(harness.ROOT, "results/port_search"))
    a = ap.parse_args()
    harness.check_binaries()
    cases = [("1 IP, default range", "127.0.0.2", None, 24000),
             ("1 IP, 20,000 ports", "127.0.0.2", "40000 59999", 24001),
             ("2 IPs, default range", "127.0.0.2,127.0.0.3", None, 24002)]
    results = [run_case(label, ips, rng, a.conns, port, a.limit) for label, ips, rng, port in cases]
    payload = {"experiment": "connect_port_search", "host": harness.host.host_record(),
               "commit": harness.host.git_commit(), "command": " ".join(sys.argv), "cases": results}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(payload, f, indent=1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        xs = [k for k, _ in r["rate_per_1000"]]
        ax.plot(xs, [v for _, v in r["rate_per_1000"]], marker=".", label=r["label"])
        if r["source_ips"] == 1:
            ax.axvline(r["even_ports"], ls=":", color=ax.lines[-1].get_color())
    ax.set_yscale("log")
    ax.set_xlabel("connections open (one client process, one destination)")
    ax.set_ylabel("connects/s (per 1,000 connections)")
    ax.set_title("connect() source-port search: the cliff at half the range per source IP")
    ax.legend()
    harness.plot.save(fig, a.out + ".png")
    print(f"wrote {a.out}.json {a.out}.png")


if __name__ == "__main__":
    main()
