#!/usr/bin/python3
"""Experiment 10: socket buffer sizing (--sndbuf/--rcvbuf) against kernel autotuning.

A veth pair between two network namespaces (bigdata-srv holds c10m-server, bigdata-cli
the load client). FETCH downloads (64 KiB frames, 1 connection, every byte verified) with
the server's SO_SNDBUF and the client's SO_RCVBUF both set to 4 KiB .. 4 MiB, or left to
the kernel (0: autotuned), over two links:
  veth        the pair as it is (no shaping: CPU-bound, RTT tens of microseconds);
  tbf-1gbit   tbf on the server's side: 1 Gbit/s, 256 KiB bucket, up to 20 ms queued.
While each transfer runs, the server's smoothed RTT for the flow is sampled (ss -ti): the
loaded RTT (the tbf queue the flow itself fills is the only delay this kernel can add: there is no netem, so a
propagation delay cannot be modelled). Throughput is compared with window / RTT.

The namespaces, the veth pair and the qdisc are created at start and removed at exit
(finally); nothing else on the host changes.

  experiments/bufsize.py run
  experiments/bufsize.py report
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import harness.host  # noqa: E402
import harness.plot  # noqa: E402
import harness.procs  # noqa: E402
import harness.rounds  # noqa: E402
import harness.transfer  # noqa: E402

OUT = os.path.join(harness.RESULTS, "bufsize")
NS_SRV, NS_CLI = "bigdata-srv", "bigdata-cli"
IP_SRV, IP_CLI = "10.222.0.1", "10.222.0.2"
SIZES = [0, 4096, 16384, 65536, 262144, 1048576, 4194304]
LINKS = ["veth", "tbf-1gbit"]
PORT = 22100


def sh(cmd, check=True):
    print("+", cmd, flush=True)
    return subprocess.run(cmd, shell=True, check=check)


def setup():
    teardown()
    sh(f"ip netns add {NS_SRV}")
    sh(f"ip netns add {NS_CLI}")
    sh(f"ip link add bd-srv netns {NS_SRV} type veth peer name bd-cli netns {NS_CLI}")
    for ns, dev, ip in ((NS_SRV, "bd-srv", IP_SRV), (NS_CLI, "bd-cli", IP_CLI)):
        sh(f"ip -n {ns} addr add {ip}/24 dev {dev}")
        sh(f"ip -n {ns} link set {dev} up")
        sh(f"ip -n {ns} link set lo up")
    for ns in (NS_SRV, NS_CLI):
        sh(f"ip netns exec {ns} sysctl net.ipv4.tcp_rmem net.ipv4.tcp_wmem", check=False)


def shape(link):
    sh(f"ip netns exec {NS_SRV} tc qdisc del dev bd-srv root", check=False)
    if link == "tbf-1gbit":
        sh(f"ip netns exec {NS_SRV} tc qdisc add dev bd-srv root tbf rate 1gbit burst 256kb "
           f"latency 20ms")
    sh(f"ip netns exec {NS_SRV} tc qdisc show dev bd-srv")


def teardown():
    for ns in (NS_SRV, NS_CLI):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def ss_sampler(seconds):
    """Samples the server's TCP view of its connections (ss -tin in the server namespace)
    every 0.5 s for `seconds`: smoothed RTT, cwnd, and the send queue; a thread."""
    out = []

    def loop():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            txt = subprocess.run(["ip", "netns", "exec", NS_SRV, "ss", "-tinm", "state",
                                  "established", f"( sport = :{PORT} )"],
                                 capture_output=True, text=True).stdout
            for m in re.finditer(r"rtt:([0-9.]+)/", txt):
                out.append(float(m.group(1)))
            time.sleep(0.5)

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return th, out


def rtt_result(sampler):
    th, rtts = sampler
    th.join()
    rtts = sorted(rtts)
    return {"n": len(rtts), "median_ms": rtts[len(rtts) // 2] if rtts else None,
            "max_ms": rtts[-1] if rtts else None}


def run(args):
    harness.check_binaries()
    host = harness.host.host_record()
    rows = []
    try:
        setup()
        for link in LINKS:
            shape(link)
            for k in range(args.rounds):
                for size in SIZES:
                    server = harness.procs.Server(["--engine", "epoll", "--threads", "1",
                                        "--sndbuf", str(size), "--rcvbuf", str(size)],
                                       addr=f"{IP_SRV}:{PORT}", netns_name=NS_SRV)
                    try:
                        pg = ss_sampler(args.warm + args.measure)
                        p = harness.transfer.measure_transfer(
                            server, "fetch", 1, 65535, args.warm, args.measure,
                            os.path.join(OUT, "raw", f"{link}-r{k}-{size}.json"),
                            payload=256 << 20,
                            client_args=["--rcvbuf", str(size), "--sndbuf", str(size)],
                            addr=f"{IP_SRV}:{PORT}", netns_name=NS_CLI)
                        rtt = rtt_result(pg)
                    finally:
                        server.stop()
                    p.update({"link": link, "round": k, "bufsize": size, "loaded_rtt": rtt})
                    del p["window"]
                    print(f"{link:9} r{k} buf {size:8}: {p['payload_bytes_per_s'] / 1e6:8.1f} MB/s "
                          f"server {p['server_cpu_s_per_gb'] or 0:.3f} s/GB loaded RTT "
                          f"{rtt['median_ms']} ms bad "
                          f"{p['mismatches'] + p['errors']}", flush=True)
                    rows.append(p)
    finally:
        teardown()
    harness.host.write_result("bufsize/result.json", {"experiment": "bufsize", "host": host,
                                            "git": harness.host.git_commit(), "rows": rows,
                                            "links": LINKS, "sizes": SIZES})


def report(_args):
    with open(os.path.join(OUT, "result.json")) as f:
        r = json.load(f)
    summary = {"git": r["git"], "host": r["host"], "points": []}
    for link in r["links"]:
        for size in r["sizes"]:
            rows = [x for x in r["rows"] if x["link"] == link and x["bufsize"] == size]
            if not rows:
                continue
            e = {"link": link, "bufsize": size,
                 "mb_per_s": harness.rounds.summarize([x["payload_bytes_per_s"] / 1e6 for x in rows]),
                 "server_cpu_s_per_gb": harness.rounds.summarize([x["server_cpu_s_per_gb"] for x in rows]),
                 "loaded_rtt_ms": harness.rounds.summarize([x["loaded_rtt"]["median_ms"] for x in rows]),
                                 "bad": sum(x["mismatches"] + x["errors"] for x in rows)}
            summary["points"].append(e)
            print(f"{link:9} buf {size:8}: {e['mb_per_s']['median']:8.1f} MB/s "
                  f"[{e['mb_per_s']['min']:.1f}..{e['mb_per_s']['max']:.1f}] server "
                  f"{e['server_cpu_s_per_gb']['median']:.3f} s/GB loaded RTT "
                  f"{e['loaded_rtt_ms']['median'] if e['loaded_rtt_ms'] else None} ms "
                  f"bad {e['bad']}")
    harness.host.write_result("bufsize/summary.json", summary)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for link in r["links"]:
        pts = [p for p in summary["points"] if p["link"] == link and p["bufsize"]]
        auto = next((p for p in summary["points"] if p["link"] == link and not p["bufsize"]), None)
        xs = [p["bufsize"] for p in pts]
        line = axes[0].errorbar(xs, [p["mb_per_s"]["median"] for p in pts],
                                yerr=[[p["mb_per_s"]["median"] - p["mb_per_s"]["min"] for p in pts],
                                      [p["mb_per_s"]["max"] - p["mb_per_s"]["median"]
                                       for p in pts]], fmt="-o", capsize=3, label=link)
        if auto:
            axes[0].axhline(auto["mb_per_s"]["median"], ls=":", color=line[0].get_color(),
                            label=f"{link} autotuned")
        axes[1].plot(xs, [p["loaded_rtt_ms"]["median"] if p["loaded_rtt_ms"] else None
                          for p in pts], "-o", label=link)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("SO_SNDBUF (server) = SO_RCVBUF (client), bytes requested")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("FETCH payload MB/s (median, min..max)")
    axes[1].set_ylabel("loaded RTT, ms (server's srtt, ss -ti)")
    fig.suptitle(f"buffer sizing over veth between namespaces (commit {r['git']})")
    harness.plot.save(fig, os.path.join(OUT, "bufsize.png"))


def main():
    ap, sub = harness.host.subcommands(__doc__)
    r = sub.add_parser("run")
    r.add_argument("--rounds", type=int, default=2)
    r.add_argument("--warm", type=float, default=1.0)
    r.add_argument("--measure", type=float, default=3.0)
    sub.add_parser("report")
    args = ap.parse_args()
    {"run": run, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
