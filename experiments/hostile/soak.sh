#!/usr/bin/env bash
# The soak (issue 11 item 6): 100,000 connections under mixed load for an hour, RSS flat,
# 0 errors, 0 unanswered, the memory budget never exceeded. Runs experiments/conn_rung.sh
# (server --workers, client --procs/--srcips, per-second memory/CPU sampler, JSON + PNG in
# results/soak.{json,png}) with the soak's parameters, and beside it samples every worker
# budget's gauges (c10m_memory_budget_bytes, c10m_memory_budget_limit_bytes,
# c10m_overload_actions_total) into results/soak-budget.json and results/soak-budget.png.
#   usage: experiments/hostile/soak.sh [DURATION=3600] [CONNS=100000] [RATE=20000]
# Needs ~2 GiB + 16 KB per connection free; run with the box to itself, it holds the box for
# DURATION + a few minutes (NOT run in CI; FINDINGS 11.4 has the run).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-3600}
CONNS=${2:-100000}
RATE=${3:-20000}
MPORT=23101
out=results/soak-budget.json
mkdir -p results
/usr/bin/python3 - "$MPORT" "$out" <<'PY' &
import json, re, sys, time, urllib.request
mport, out = int(sys.argv[1]), sys.argv[2]
samples, t0, seen = [], time.time(), False
while True:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=2).read().decode()
        g = lambda n: float((re.search(rf"^{n} (\S+)", body, re.M) or [0, 0])[1])
        acts = dict(re.findall(r'^c10m_overload_actions_total\{action="(\w+)"\} (\S+)', body, re.M))
        samples.append({"t": time.time() - t0, "used": g("c10m_memory_budget_bytes"),
                        "limit": g("c10m_memory_budget_limit_bytes"),
                        "conns": g("c10m_conns_open"), "actions": acts})
        seen = True
    except Exception:
        if seen and samples and time.time() - t0 - samples[-1]["t"] > 30:
            break
    json.dump({"samples": samples}, open(out, "w"))
    time.sleep(5)
s = samples
over = [x for x in s if x["limit"] and x["used"] > x["limit"]]
json.dump({"samples": s, "max_used": max((x["used"] for x in s), default=0),
           "limit": max((x["limit"] for x in s), default=0), "samples_over_limit": len(over)},
          open(out, "w"))
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(9, 4))
ax.plot([x["t"] for x in s], [x["used"] / 2**20 for x in s], label="budget in use (all workers)")
ax.plot([x["t"] for x in s], [x["limit"] / 2**20 for x in s], "--", label="budget limit (sum)")
ax.set_yscale("log"); ax.set_xlabel("s"); ax.set_ylabel("MiB"); ax.legend()
fig.savefig(out.replace(".json", ".png"), dpi=110)
PY
budget_pid=$!
trap 'kill $budget_pid 2>/dev/null || true' EXIT
RUNG=soak CONNS=$CONNS RATES=$RATE DURATION=$DURATION PORT=23100 MPORT=$MPORT \
  bash experiments/conn_rung.sh
wait $budget_pid || true
trap - EXIT
