"""c10m-ladder's command line (docs/LADDER.md)."""
import argparse
import json
import os
import sys

from harness import host

from . import plan, report, schema

USAGE = """c10m-ladder [run] [--budget 30m | --full] [--rungs box,c10k,c100k,c1m] [--slo 5ms] ...
c10m-ladder plan [--budget 30m] [--rungs ...]     probe the box and print the plan only
c10m-ladder compare A.json B.json [--out F.html]  a before/after page
c10m-ladder report FILE.json                      render FILE's Markdown and HTML again
c10m-ladder validate FILE.json                    check a report against the schema
c10m-ladder record-fixture KIND OUT.json          record a wall fixture (tests/ladder/fixtures)"""


def _duration_us(text):
    t = text.strip()
    for unit, mul in (("us", 1), ("ms", 1000), ("s", 1_000_000)):
        if t.endswith(unit) and t[:-len(unit)].replace(".", "", 1).isdigit():
            return float(t[:-len(unit)]) * mul
    raise argparse.ArgumentTypeError(f"--slo: bad duration {text!r} (e.g. 5ms, 500us)")


def _rungs(text):
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in plan.RUNGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--rungs: unknown rung {','.join(bad) or text!r} "
                                         f"(choose from {','.join(plan.RUNGS)})")
    return [r for r in plan.RUNGS if r in names]


def _budget(text):
    try:
        s = plan.parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--budget: {e}")
    if s < 30:
        raise argparse.ArgumentTypeError("--budget: at least 30s")
    return text


def run_parser():
    ap = argparse.ArgumentParser(prog="c10m-ladder run", description=(
        "Probe this box, plan the rungs within the budget, climb them (idle connections, the "
        "highest open-model rate under the SLO on the fastest engine and on the thread engine, "
        "the drain; the box's peak, accept ceiling, line rate and slow consumers), name each "
        "rung's wall from evidence, and write results/ladder/<host>-<date>/report.{html,json,md}. "
        "Ctrl-C stops cleanly: sysctls restored, processes killed, finished rungs kept."))
    ap.add_argument("--budget", type=_budget, default="30m",
                    help="wall-clock budget (90s, 5m, 30m, 1h): smaller budgets visit every rung at a "
                         "smaller size (docs/LADDER.md, 'Budgets'); default 30m")
    ap.add_argument("--full", action="store_true", help="full sizes, longer trials, no time limit")
    ap.add_argument("--rungs", type=_rungs, default=list(plan.RUNGS),
                    help="comma-separated subset of box,c10k,c100k,c1m (default: all)")
    ap.add_argument("--slo", dest="slo_us", type=_duration_us, default=5000.0,
                    help="p99 that a rate must keep to pass (default 5ms)")
    ap.add_argument("--payload", default="64:0.9,4096:0.08,65535:0.02",
                    help="ECHO payload (size or weighted mix) of the SLO trials (default: the C1M mix)")
    ap.add_argument("--arrangement", choices=["auto", "processes", "few"], default="auto",
                    help="how a rung's connections are spread over processes: processes (server "
                         "--workers, client --procs at this fd limit), few (one uring server, one "
                         "client on direct descriptors: issue 21), auto (few where both binaries support it)")
    ap.add_argument("--out", help="report directory (default results/ladder/<host>-<date>)")
    return ap


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv[0] if argv and not argv[0].startswith("-") else "run"
    if argv and argv[0] == cmd:
        argv = argv[1:]
    if cmd in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if cmd == "run":
        args = run_parser().parse_args(argv)
        from . import run
        rep, _ = run.climb(args)
        return 0 if rep["status"] == "complete" else 130
    if cmd == "plan":
        args = run_parser().parse_args(argv)
        probe = host.probe()
        budget = plan.DEFAULT_BUDGET_S if args.full else plan.parse_duration(args.budget)
        print("\n".join(plan.describe(plan.build(probe, budget, args.full, args.rungs, args.arrangement), probe)))
        return 0
    if cmd == "compare":
        ap = argparse.ArgumentParser(prog="c10m-ladder compare")
        ap.add_argument("a")
        ap.add_argument("b")
        ap.add_argument("--out", help="default: results/ladder/compare-<A>-vs-<B>.html")
        args = ap.parse_args(argv)
        a, b = report.load(args.a), report.load(args.b)
        na, nb = (os.path.basename(os.path.dirname(os.path.abspath(p))) for p in (args.a, args.b))
        out = args.out or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.a))),
                                       f"compare-{na}-vs-{nb}.html")
        with open(out, "w") as f:
            f.write(report.compare_page(a, b, na, nb))
        print(out)
        return 0
    if cmd in ("report", "validate"):
        ap = argparse.ArgumentParser(prog=f"c10m-ladder {cmd}")
        ap.add_argument("json")
        args = ap.parse_args(argv)
        with open(args.json) as f:
            rep = json.load(f)
        errs = schema.validate(rep)
        if errs:
            print("\n".join(errs), file=sys.stderr)
            return 1
        if cmd == "report":
            report.finish(rep)
            print("\n".join(report.write(rep, os.path.dirname(os.path.abspath(args.json)))))
        else:
            print(f"{args.json}: valid ({schema.SCHEMA_ID})")
        return 0
    if cmd == "record-fixture":
        from . import fixtures
        return fixtures.main(argv)
    print(f"c10m-ladder: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2
