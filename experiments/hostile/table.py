#!/usr/bin/python3
"""Prints the FINDINGS table of every results/hostile/*.json (experiments/hostile/hostile.py)."""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "results/hostile")
MIB = 2 ** 20
print("| attack | hostile conns | peak RSS (start) | peak budget / limit | RSS 3 s after | kernel TCP peak "
      "| overload actions | fleet: closed by server / resets / ERROR frames | good p99 baseline -> attack "
      "| good errors | server cores, run-queue wait (s/s): baseline -> attack | commit |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
order = ["slowloris", "slow-readers", "rst", "flood", "garbage", "bulk"]
for path in sorted(glob.glob(os.path.join(out, "*.json")),
                   key=lambda p: order.index(os.path.basename(p)[:-5])
                   if os.path.basename(p)[:-5] in order else 99):
    r = json.load(open(path))
    acts = ", ".join(f"{k} {int(v):,}" for k, v in r["overload_actions"].items() if v)
    closed = sum(f["closes_by_server"] for f in r["fleet"])
    resets = sum(f["resets_received"] for f in r["fleet"])
    errs = {}
    for f in r["fleet"]:
        for k, v in f["errors_received"].items():
            errs[k] = errs.get(k, 0) + v
    errtxt = " ".join(f"{k} {v:,}" for k, v in errs.items()) or "none"
    b, d = r["good_baseline"], r["good_attack"]
    behind = " (client behind)" if b["client_behind"] or d["client_behind"] else ""

    def cpu(c):
        return "-" if not c else f"{c['cores']:.2f}, {c['runqueue_wait_per_s']:.2f}"
    cores = f"{cpu(r.get('server_cpu_baseline'))} -> {cpu(r.get('server_cpu_attack'))}"
    print(f"| {r['attack']} | {sum(f['conns'] for f in r['fleet']):,} "
          f"| {r['peak_rss_bytes'] / MIB:.0f} MiB ({r['rss_start_bytes'] / MIB:.0f}) "
          f"| {r['peak_budget_used_bytes'] / MIB:.0f} / {r['memory_limit_bytes'] / MIB:.0f} MiB "
          f"| {r['rss_after_bytes'] / MIB:.0f} MiB | {r['peak_kernel_tcp_mem_bytes'] / MIB:.0f} MiB "
          f"| {acts or 'none'} | {closed:,} / {resets:,} / {errtxt} "
          f"| {b['p99_us'] / 1000:.2f} -> {d['p99_us'] / 1000:.2f} ms (x{r['p99_ratio']:.2f}){behind} "
          f"| {b['errors']} / {d['errors']} | {cores} | {r['host']['git_commit']} |")
