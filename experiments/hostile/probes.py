#!/usr/bin/python3
"""Small probes to run beside hostile.py, to find where the good clients' latency spikes
come from (FINDINGS 11.1.3). Each runs for SECONDS and writes one line per sample.

  probes.py ping PORT SECONDS OUT    a PING every 5 ms on one connection to 127.0.0.1:PORT
                                     (waits for the server); OUT: "monotonic_s rtt_ms" lines
  probes.py sleep SECONDS            sleeps 1 ms at a time; prints each 100 ms window in
                                     which it woke more than 10 ms late (run it pinned and
                                     SCHED_FIFO: a late wakeup means the core was not there)
  probes.py softirq SECONDS OUT      /proc/softirqs deltas per CPU every 100 ms; OUT:
                                     "monotonic_s NAME=cpu0/cpu1 ..." lines
  probes.py vmstat SECONDS           /proc/vmstat reclaim and refault deltas every 250 ms
                                     (printed when non-zero)
  probes.py reporting SECONDS OUT    the guest's free page reporting to the host (the
                                     virtio balloon's /sys/module/page_reporting counters)
                                     every 10 ms; OUT: "monotonic_s reported_kib passes"
                                     lines, one per change
  probes.py load KIND SECONDS        a control load with no network, on the CPU it is pinned
                                     to: busy (a loop), duty (0.7 ms busy, 0.3 ms asleep),
                                     syscalls (1-byte reads and writes), pingpong (a byte
                                     through two pipes to a child pinned to CPU 1 and back),
                                     touch (map 1 GiB, write each 4 KiB page, unmap, 0.5 s
                                     pause: one page fault per page)
  probes.py align PING SOFTIRQ       the ping's worst round trip per 100 ms next to that
                                     window's NET_RX softirqs, for windows worse than 8 ms
  probes.py starved PERF [PING [REPORTING [RETRANS]]]
                                     PERF: `perf script -F comm,pid,time,event` of a `perf
                                     record -C N -k CLOCK_MONOTONIC` of one CPU: cpu-clock
                                     samples (idle included), and any events recorded as
                                     they happen (page faults, tracepoints). Prints the
                                     20 ms windows in which that CPU took under half its
                                     usual timer samples (an idle CPU is sampled too, so
                                     its timer interrupt did not arrive), and each other
                                     event's rate inside those windows and elsewhere (what
                                     the CPU still did there). PING: how many slow round
                                     trips (> 15 and > 25 ms) span such a window, against
                                     the fast ones (< 3 ms). REPORTING: how many starved
                                     runs began within 200 ms after a page reporting pass.
                                     RETRANS: `perf script -F time,trace` of
                                     tcp:tcp_retransmit_skb; how many fall inside the
                                     windows, by source address. An empty argument skips one

Example (the run in FINDINGS 11.1.3): experiments/hostile/starved_cpu.sh.
Bounded by SECONDS; read-only except OUT.
"""
import collections
import mmap
import os
import re
import socket
import sys
import time


def ping(port, seconds, out):
    for _ in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit(f"no server on port {port}")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rows, end, due = [], time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < end:
        a = time.monotonic()
        s.sendall(b"\x01\x00\x00")
        got = b""
        while len(got) < 3:
            got += s.recv(3 - len(got))
        b = time.monotonic()
        rows.append(f"{b:.4f} {(b - a) * 1000:.3f}")
        due += 0.005
        time.sleep(max(0.0, due - time.monotonic()))
    with open(out, "w") as f:
        f.write("\n".join(rows) + "\n")


def sleep_probe(seconds):
    worst = collections.defaultdict(float)
    t0 = time.monotonic()
    while (a := time.monotonic()) - t0 < seconds:
        time.sleep(0.001)
        late = (time.monotonic() - a - 0.001) * 1000
        k = int((a - t0) * 10)
        worst[k] = max(worst[k], late)
    big = [f"{k / 10:.1f}s:{v:.0f}ms" for k, v in sorted(worst.items()) if v > 10]
    print(f"windows late > 10 ms: {len(big)} of {len(worst)}; worst {max(worst.values()):.1f} ms")
    print(" ".join(big))


def read_softirqs():
    d = {}
    with open("/proc/softirqs") as f:
        for line in f:
            p = line.split()
            if p[0].endswith(":"):
                d[p[0][:-1]] = [int(x) for x in p[1:]]
    return d


def softirq(seconds, out):
    with open(out, "w") as f:
        prev, end = read_softirqs(), time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.1)
            cur = read_softirqs()
            f.write(f"{time.monotonic():.3f} " + " ".join(
                k + "=" + "/".join(str(c - p) for c, p in zip(cur[k], prev[k]))
                for k in ("NET_RX", "NET_TX", "TIMER", "RCU", "SCHED")) + "\n")
            prev = cur


VMSTAT = ["workingset_refault_file", "pgmajfault", "pgsteal_kdamond", "pgscan_kdamond",
          "pgsteal_direct", "pgsteal_kswapd", "allocstall_normal", "compact_stall"]


def vmstat(seconds):
    def read():
        with open("/proc/vmstat") as f:
            return {k: int(v) for k, v in (line.split() for line in f)}
    prev, t0 = read(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(0.25)
        cur = read()
        d = {k: cur.get(k, 0) - prev.get(k, 0) for k in VMSTAT}
        if any(d.values()):
            print(f"{time.monotonic() - t0:6.2f}s " + " ".join(f"{k}={v}" for k, v in d.items() if v))
        prev = cur


REPORTING = "/sys/module/page_reporting/parameters/"


def reporting(seconds, out):
    def read():
        with open(REPORTING + "reported_kib") as a, open(REPORTING + "passes") as b:
            return int(a.read()), int(b.read())
    with open(out, "w") as f:
        prev, end = None, time.monotonic() + seconds
        while time.monotonic() < end:
            cur = read()
            if cur != prev:
                f.write(f"{time.monotonic():.4f} {cur[0]} {cur[1]}\n")
                prev = cur
            time.sleep(0.01)


def read_reporting(path):
    """Times at which a reporting pass was seen (passes went up), and the KiB it reported."""
    with open(path) as f:
        rows = [tuple(map(float, line.split())) for line in f if line.strip()]
    return [(t, kib - rows[i - 1][1]) for i, (t, kib, n) in enumerate(rows)
            if i > 0 and n > rows[i - 1][2]]


def load(kind, seconds):
    end = time.monotonic() + seconds
    count = 0
    if kind == "pingpong":
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        if os.fork() == 0:
            os.sched_setaffinity(0, {1})
            while (b := os.read(r1, 1)):
                os.write(w2, b)
            os._exit(0)
    with open("/dev/zero", "rb", buffering=0) as zero, open("/dev/null", "wb", buffering=0) as null:
        while time.monotonic() < end:
            if kind == "busy":
                t = time.monotonic()
                while time.monotonic() - t < 0.01:
                    pass
            elif kind == "duty":
                t = time.monotonic()
                while time.monotonic() - t < 0.0007:
                    pass
                time.sleep(0.0003)
            elif kind == "syscalls":
                for _ in range(1000):
                    null.write(zero.read(1))
            elif kind == "pingpong":
                os.write(w1, b"x")
                os.read(r2, 1)
            elif kind == "touch":
                m = mmap.mmap(-1, 1 << 30)
                for off in range(0, 1 << 30, 4096):
                    m[off] = 1
                m.close()
                time.sleep(0.5)
            else:
                raise SystemExit(f"unknown load {kind}")
            count += 1
    if kind == "pingpong":
        os.close(w1)
    print(f"{kind}: {count} rounds in {seconds:.0f} s")


def read_pings(path):
    """The (reply time, round trip ms) pairs `ping` wrote."""
    with open(path) as f:
        return [tuple(map(float, line.split())) for line in f if line.strip()]


def align(ping_path, softirq_path):
    worst = collections.defaultdict(float)
    rows = read_pings(ping_path)
    t0 = rows[0][0]
    for t, rtt in rows:
        k = int((t - t0) * 10)
        worst[k] = max(worst[k], rtt)
    net_rx = {}
    with open(softirq_path) as f:
        for line in f:
            p = line.split()
            net_rx[int((float(p[0]) - t0) * 10)] = p[1].split("=")[1]
    cpu1 = sorted(int(v.split("/")[1]) for v in net_rx.values())
    print(f"NET_RX softirqs on cpu1 per 100 ms: median {cpu1[len(cpu1) // 2]}")
    print("t since the first ping | worst round trip ms | NET_RX softirqs cpu0/cpu1 in those 100 ms")
    for k in sorted(worst):
        if worst[k] > 8:
            print(f"{k / 10:6.1f} s | {worst[k]:6.1f} | {net_rx.get(k, '?')}")


def starved(perf_path, ping_path=None, reporting_path=None, retrans_path=None):
    stamp = re.compile(r"^\s*(.+?)\s+(\d+)\s+(?:\[\d+\]\s+)?([\d.]+):\s*([^\s/]*)")
    ts, other = [], collections.defaultdict(list)  # cpu-clock times; event -> (t, comm, pid)
    with open(perf_path) as f:
        for m in (stamp.match(line) for line in f):
            if m and m.group(4).rstrip(":") not in ("", "cpu-clock"):
                other[m.group(4).rstrip(":")].append((float(m.group(3)), m.group(1), m.group(2)))
            elif m:
                ts.append(float(m.group(3)))
    if len(ts) < 100:
        raise SystemExit(f"{perf_path}: too few samples")
    t0, w = ts[0], 0.02
    per_bin = collections.Counter(int((t - t0) / w) for t in ts)
    bins = int((ts[-1] - t0) / w)
    usual = len(ts) / bins
    low = {b for b in range(bins) if per_bin.get(b, 0) < 0.5 * usual}
    runs = []
    for b in sorted(low):
        if runs and b == runs[-1][1] + 1:
            runs[-1][1] = b
        else:
            runs.append([b, b])
    print(f"{len(ts)} samples over {ts[-1] - t0:.1f} s ({usual:.0f} per 20 ms); starved windows: "
          f"{len(low)} ({len(low) / bins * 100:.1f} % of the time), in {len(runs)} runs "
          "(start s: length ms):")
    print(" ".join(f"{r[0] * w:.2f}:{(r[1] - r[0] + 1) * w * 1000:.0f}" for r in runs))
    if reporting_path:
        passes = [(t - t0, kib) for t, kib in read_reporting(reporting_path) if t0 <= t <= ts[-1]]
        def after_pass(b):
            return any(0 <= b * w - t <= 0.2 for t, _ in passes)
        hit = sum(1 for r in runs if after_pass(r[0]))
        base = sum(1 for b in range(bins) if after_pass(b))
        print(f"page reporting passes: {len(passes)}, {sum(k for _, k in passes) / 1024:.0f} MiB "
              f"reported; starved runs starting <= 200 ms after one: {hit} of {len(runs)}; "
              f"all 20 ms windows: {base} of {bins} ({base / max(bins, 1) * 100:.1f} %)")
    # Events recorded as they happen (page faults, tracepoints), not by the sampling timer:
    # what the CPU did inside the starved windows, per second, against elsewhere.
    t_in = len(low) * w
    t_out = bins * w - t_in
    for name, rows in sorted(other.items()):
        rows = [r for r in rows if t0 <= r[0] < t0 + bins * w]
        inside = [r for r in rows if int((r[0] - t0) / w) in low]
        procs = {(c, p) for _, c, p in inside}
        comms = collections.Counter(c for _, c, _ in inside).most_common(2)
        print(f"{name} per second: in starved windows {len(inside) / max(t_in, 1e-9):,.0f} "
              f"({len(procs)} processes, most {dict(comms)}), elsewhere "
              f"{(len(rows) - len(inside)) / max(t_out, 1e-9):,.0f}")
    if retrans_path:
        # `perf script -F time,trace` of tcp:tcp_retransmit_skb, all CPUs.
        rx = re.compile(r"^\s*(?:\[\d+\]\s+)?([\d.]+):.*\bsaddr=([\d.]+)")
        with open(retrans_path) as f:
            rt = [(float(m.group(1)), m.group(2)) for m in map(rx.match, f) if m]
        rt = [(t, a) for t, a in rt if t0 <= t < t0 + bins * w]
        inside = sum(1 for t, _ in rt if int((t - t0) / w) in low)
        print(f"TCP retransmissions: {len(rt)}, {inside} inside starved windows; by source "
              f"address: {dict(collections.Counter(a for _, a in rt).most_common(4))}")
    if not ping_path:
        return
    pings = read_pings(ping_path)
    # A round trip (end time, ms) spans the windows from its send to its reply.
    def spans_low(end, ms):
        return any(b in low for b in range(int((end - ms / 1000 - t0) / w), int((end - t0) / w) + 1))
    inside = [(e, ms) for e, ms in pings if t0 < e - ms / 1000 and e < ts[-1]]
    for label, sel in (("> 25 ms", lambda ms: ms > 25), ("> 15 ms", lambda ms: ms > 15),
                       ("< 3 ms", lambda ms: ms < 3)):
        chosen = [(e, ms) for e, ms in inside if sel(ms)]
        hit = sum(1 for e, ms in chosen if spans_low(e, ms))
        print(f"round trips {label}: {len(chosen)}, spanning a starved window: {hit}"
              + (f" ({hit / len(chosen) * 100:.1f} %)" if chosen else ""))

    def p99(xs):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else float("nan")
    clear = [ms for e, ms in inside if not spans_low(e, ms)]
    print(f"round-trip p99 over the sampled span: {p99([ms for e, ms in inside]):.2f} ms; "
          f"without the {len(inside) - len(clear)} that span a starved window: {p99(clear):.2f} ms")


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ping":
        ping(int(args[0]), float(args[1]), args[2])
    elif cmd == "sleep":
        sleep_probe(float(args[0]))
    elif cmd == "softirq":
        softirq(float(args[0]), args[1])
    elif cmd == "vmstat":
        vmstat(float(args[0]))
    elif cmd == "reporting":
        reporting(float(args[0]), args[1])
    elif cmd == "load":
        load(args[0], float(args[1]))
    elif cmd == "align":
        align(args[0], args[1])
    elif cmd == "starved":
        starved(*args[:4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
