#!/usr/bin/python3
"""Summary of experiments/hostile/rate_sweep.sh: per fleet connect rate (rst 0: uncapped),
the median and range over rounds of the good clients' p99 (and its ratio to their baseline), the server's
cores and run-queue wait under attack, and the connects the fleet completed per second.
Writes OUT/sweep.json and OUT/sweep.png; prints a Markdown table.

  experiments/hostile/rate_sweep.py results/hostile-rate-sweep rst
"""
import glob
import json
import os
import re
import statistics
import sys

out, attack = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "rst"
runs = {}
for path in glob.glob(os.path.join(out, f"{attack}-rate*-r*", f"{attack}.json")):
    rate = int(re.search(r"-rate(\d+)-r\d+", path).group(1))
    runs.setdefault(rate, []).append(json.load(open(path)))


def med_range(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


rows = []
for rate in sorted(runs, key=lambda r: r if r > 0 else float("inf")):
    rs = runs[rate]
    rows.append({
        "fleet_rate": rate,
        "rounds": len(rs),
        "good_p99_baseline_ms": med_range([r["good_baseline"]["p99_us"] / 1000 for r in rs]),
        "good_p99_attack_ms": med_range([r["good_attack"]["p99_us"] / 1000 for r in rs]),
        "p99_ratio": med_range([r["p99_ratio"] for r in rs]),
        "good_errors": sum(r["good_baseline"]["errors"] + r["good_attack"]["errors"] for r in rs),
        "client_behind": any(r["good_baseline"]["client_behind"] or r["good_attack"]["client_behind"]
                             for r in rs),
        "server_cores": med_range([(r.get("server_cpu_attack") or {}).get("cores") for r in rs]),
        "runqueue_wait_per_s": med_range(
            [(r.get("server_cpu_attack") or {}).get("runqueue_wait_per_s") for r in rs]),
        "fleet_connects_per_s": med_range(
            [sum(f["connects_ok"] for f in r["fleet"]) / max(f["seconds"] for f in r["fleet"])
             for r in rs]),
        "peak_server_conns": med_range([r["peak_server_conns"] for r in rs]),
        "git_commit": rs[0]["host"]["git_commit"],
    })
with open(os.path.join(out, "sweep.json"), "w") as fh:
    json.dump({"experiment": "hostile-rate-sweep", "attack": attack,
               "host": next(iter(runs.values()))[0]["host"] if runs else None,
               "server_command": next(iter(runs.values()))[0]["commands"]["server"] if runs else None,
               "rows": rows}, fh, indent=1)


def fmt(m, f="{:.2f}"):
    if m is None:
        return "-"
    return (f + " (" + f + "-" + f + ")").format(m["median"], m["min"], m["max"])


print("| fleet connects/s asked | completed/s | good p99 baseline ms | under attack ms | ratio "
      "| server cores | run-queue wait s/s | peak server conns | good errors | rounds |")
print("|---|---|---|---|---|---|---|---|---|---|")
for w in rows:
    print(f"| {w['fleet_rate']:,} |" if w["fleet_rate"] else "| uncapped |", end="")
    print(f" {fmt(w['fleet_connects_per_s'], '{:,.0f}')} "
          f"| {fmt(w['good_p99_baseline_ms'])} | {fmt(w['good_p99_attack_ms'])} "
          f"| x{fmt(w['p99_ratio'], '{:.1f}')} | {fmt(w['server_cores'])} "
          f"| {fmt(w['runqueue_wait_per_s'])} | {fmt(w['peak_server_conns'], '{:,.0f}')} "
          f"| {w['good_errors']}"
          f"{' (client behind)' if w['client_behind'] else ''} | {w['rounds']} |")

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(8, 5))
x = list(range(len(rows)))
ratio = [w["p99_ratio"] for w in rows]
ax.errorbar(x, [m["median"] for m in ratio],
            yerr=[[m["median"] - m["min"] for m in ratio], [m["max"] - m["median"] for m in ratio]],
            marker="o", capsize=4, label="good p99 / baseline p99", color="C0")
ax.axhline(2, color="red", linestyle="--", label="2x (the issue's bound)")
ax.set_yscale("log")
ax.set_xticks(x, [f"{w['fleet_rate']:,.0f}" if w["fleet_rate"] else "uncapped" for w in rows])
ax.set_xlabel(f"{attack} fleet's connect rate, asked"
              + (" (connect, FETCH, reset)" if attack == "rst" else ""))
ax.set_ylabel("good clients' p99 under attack / baseline")
ax2 = ax.twinx()
ax2.plot(x, [w["server_cores"]["median"] if w["server_cores"] else 0 for w in rows], marker="s",
         color="C1", label="server cores used (its 1 core)")
ax2.plot(x, [w["runqueue_wait_per_s"]["median"] if w["runqueue_wait_per_s"] else 0 for w in rows],
         marker="^", color="C2", label="server run-queue wait (s/s)")
ax2.set_ylabel("cores / s per s")
h1, l1 = ax.get_legend_handles_labels()
h2, l2 = ax2.get_legend_handles_labels()
ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
rate_flag = "--rst-rate" if attack == "rst" else "--fleet-rate"
ax.set_title(f"{attack} (hostile.py --conns 100000 {rate_flag} R): the server's core "
             "(CPU 0)\nagainst the fleet's rate", fontsize=10)
fig.tight_layout()
fig.savefig(os.path.join(out, "sweep.png"), dpi=110)
