#!/usr/bin/env python3
"""Two servers' CPU profiles side by side, in nanoseconds of server CPU per frame.

usage: perf_diff.py PROFILE_DIR A B [--sort sym|dso] [--top N]
Reads PROFILE_DIR/{A,B}.perf (`perf record -e cpu-clock -g` of each server, as the profile
phase of experiments/peers.sh writes them) and PROFILE_DIR/{A,B}-perf.json (the load
client's JSON of the same run: the server's CPU per frame). Each symbol's share of its
server's samples times that server's CPU per frame gives its cost per frame; printed are the
totals, then the symbols by difference A - B (largest first, then the most negative).
One run each: differences that swing between runs are the box's, not the servers'.
"""
import json
import re
import subprocess
import sys


def profile(d, server, sort):
    ns = json.load(open(f"{d}/{server}-perf.json"))["summary"]["cpu"]["server_ns_per_frame"]
    out = subprocess.run(["perf", "report", "-i", f"{d}/{server}.perf", "--no-children", "--stdio",
                          "--sort", sort, "-g", "none"], capture_output=True, text=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"\s+([0-9.]+)%\s+(.*\S)\s*$", line)
        if m:
            costs[m.group(2)] = float(m.group(1)) / 100 * ns
    return ns, costs


def main():
    args = sys.argv[1:]
    sort = args[args.index("--sort") + 1] if "--sort" in args else "sym"
    top = int(args[args.index("--top") + 1]) if "--top" in args else 25
    d, a, b = [x for i, x in enumerate(args) if not x.startswith("--") and
               (i == 0 or not args[i - 1].startswith("--"))][:3]
    a_ns, ca = profile(d, a, sort)
    b_ns, cb = profile(d, b, sort)
    print(f"server CPU per frame: {a} {a_ns:.0f} ns, {b} {b_ns:.0f} ns ({a_ns - b_ns:+.0f})")
    if sort == "sym":
        for label, pick in (("kernel", lambda k: k.startswith("[k]")),
                            ("user", lambda k: not k.startswith("[k]"))):
            ta = sum(v for k, v in ca.items() if pick(k))
            tb = sum(v for k, v in cb.items() if pick(k))
            print(f"  {label}: {ta:.0f} vs {tb:.0f} ns ({ta - tb:+.0f})")
    keys = sorted(set(ca) | set(cb), key=lambda k: cb.get(k, 0) - ca.get(k, 0))
    print(f"{a:>12} {b:>12} {'diff':>8}  ns per frame, {sort}")
    shown = keys[:top] + (keys[-top // 2:] if len(keys) > top else [])
    for i, k in enumerate(shown):
        if i == top:
            print("  ...")
        print(f"{ca.get(k, 0):12.1f} {cb.get(k, 0):12.1f} {ca.get(k, 0) - cb.get(k, 0):+8.1f}  {k}")


if __name__ == "__main__":
    main()
