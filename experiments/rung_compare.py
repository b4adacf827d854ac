#!/usr/bin/python3
"""Compare conn_rung.sh records (results/<RUNG>.json) of one rung at several frame rates.

    experiments/rung_compare.py OUT.png results/c1m_a.json results/c1m_b.json ...

Prints one row per run (rate, latency, CPU per frame of both sides by their own counters,
the box's busy CPU and that per frame, context switches per frame, the established-hash
size) and plots latency and CPU per frame against the target rate, one line per
established-hash size. Reads only the JSON records.
"""
import json
import sys


def rows(paths):
    for p in paths:
        d = json.load(open(p))
        for r in d["runs"]:
            s = r.get("client_summary") or {}
            lat = s.get("latency_us") or {}
            rate, busy = (s.get("rate") or {}).get("completed_per_s"), r.get("box_busy_cores")
            yield {
                "ehash": d.get("tcp_ehash_entries"), "conns": r["server_conns_peak"],
                "target": r["rate_target"], "rate": rate,
                "p50": lat.get("p50"), "p99": lat.get("p99"), "p999": lat.get("p99_9"),
                "errors": s.get("errors"), "unanswered": (r.get("totals") or {}).get("unanswered"),
                "srv": r.get("server_us_per_frame"), "cli": r.get("client_us_per_frame"),
                "busy": busy, "ctxt": r.get("box_ctxt_per_frame"),
                # all of the box's busy CPU (both sides, kernel threads, the sampler) per frame
                "box": busy * 1e6 / rate if busy is not None and rate else None,
            }


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    rs = sorted(rows(paths), key=lambda r: (str(r["ehash"]), float(r["target"])))
    f = lambda v, fmt="{:,.0f}": "-" if v is None else fmt.format(v)
    print("| ehash buckets | conns | target/s | completed/s | p50 ms | p99 ms | p99.9 ms | errors | "
          "unanswered | server us/frame | client us/frame | box busy cores | box us/frame | ctx switches/frame |")
    print("|" + "---|" * 14)
    for r in rs:
        print(f"| {f(r['ehash'])} | {f(r['conns'])} | {f(float(r['target']))} | {f(r['rate'])} | "
              f"{f(r['p50'] and r['p50'] / 1e3, '{:,.1f}')} | {f(r['p99'] and r['p99'] / 1e3, '{:,.1f}')} | "
              f"{f(r['p999'] and r['p999'] / 1e3, '{:,.1f}')} | {f(r['errors'])} | {f(r['unanswered'])} | "
              f"{f(r['srv'], '{:.1f}')} | {f(r['cli'], '{:.1f}')} | {f(r['busy'], '{:.2f}')} | "
              f"{f(r['box'], '{:.0f}')} | {f(r['ctxt'], '{:.1f}')} |")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for eh in sorted({str(r["ehash"]) for r in rs}):
        sel = [r for r in rs if str(r["ehash"]) == eh and r["rate"]]  # sorted by target rate
        x = [float(r["target"]) for r in sel]
        for key, style in (("p50", "o-"), ("p99", "s--"), ("p999", "^:")):
            a.plot(x, [r[key] / 1e3 for r in sel], style, label=f"{key} (ehash {eh})")
        b.plot(x, [r["srv"] for r in sel], "o-", label=f"server (ehash {eh})")
        b.plot(x, [r["cli"] for r in sel], "s--", label=f"client (ehash {eh})")
        b.plot(x, [r["box"] for r in sel], "^:", label=f"whole box (ehash {eh})")
    a.axhline(5, color="grey", lw=0.8)
    a.set(yscale="log", xlabel="target frames/s (open model)", ylabel="latency, ms (line: 5 ms)",
          title="latency from the intended send time")
    b.set(xlabel="target frames/s (open model)", ylabel="us of CPU per frame", title="CPU per frame", ylim=(0, None))
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    conns = max(r["conns"] for r in rs)
    fig.suptitle(f"{conns:,} connections, mixed-payload ECHO, open model (2 cores, client on the same box)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
