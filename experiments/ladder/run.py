"""The climb: probe, plan, run each rung's steps within the budget with live progress, keep
every finished rung when interrupted (SIGINT/SIGTERM), restore sysctls, kill what was
started, and write the report (JSON, Markdown, HTML) under results/ladder/<host>-<date>/."""
import datetime
import os
import sys
import time

from harness import RESULTS, host, netns, procs, sysctl

from . import plan as planner
from . import report, steps


class Progress:
    def __init__(self, budget_s):
        self.t0, self.budget_s = time.monotonic(), budget_s
        self.where = ""

    def elapsed(self):
        return time.monotonic() - self.t0

    def remaining(self):
        return None if self.budget_s is None else max(0, self.budget_s - self.elapsed())

    def say(self, msg, where=None):
        if where is not None:
            self.where = where
        rem = self.remaining()
        left = "" if rem is None else f" | ~{int(rem) // 60}:{int(rem) % 60:02d} left"
        e = int(self.elapsed())
        print(f"[{e // 60:2d}:{e % 60:02d} elapsed{left}] {self.where}: {msg}", file=sys.stderr, flush=True)


class Ctx:
    """What the steps share: the probe and plan, the budget, the SLO, what earlier steps
    measured (the fastest engine, its unbatched peak, bytes per connection, rates found)."""

    def __init__(self, probe, plan, out_dir, budget_s, slo_us, payload, progress):
        self.probe, self.plan, self.out_dir = probe, plan, out_dir
        self.raw_dir = os.path.join(out_dir, "raw")
        os.makedirs(self.raw_dir, exist_ok=True)
        self.budget_s, self.slo_us, self.payload, self.progress = budget_s, slo_us, payload, progress
        self.fastest = plan["fastest_engine_prior"]
        self.unbatched_peak = None
        self.rates = {}
        self.measured = None
        self.netns = None
        self.ehash_buckets = probe["ehash_buckets"]
        self.deadline = None
        self.hold_s = 2 if plan["tier"]["trial_s"] <= 2 else 4
        self.perf_s = 2 if probe["perf"] else 0
        self.min_rate = 50

    def somaxconn(self):
        return int(sysctl.get("net.core.somaxconn") or 0)

    @property
    def rate_cap(self):
        return 4 * self.unbatched_peak if self.unbatched_peak else 1_000_000

    def time_for(self, cost):
        return self.deadline is None or time.monotonic() + cost <= self.deadline

    def set_fastest(self, engine, unbatched):
        self.fastest, self.unbatched_peak = engine, unbatched

    def measured_idle(self, engine, res):
        """An idle step's bytes per connection replace the prior for the rungs after it."""
        if engine == "thread":
            return
        self.measured = {"slab_pair": max(0, res["slab_bytes_per_conn_pair"]),
                         "server_user": max(0, res["server_rss_bytes_per_conn"]),
                         "client_user": max(0, res["client_rss_bytes_per_conn"])}

    def found_rate(self, rung, engine, rate):
        self.rates[(rung, engine)] = rate

    def start_rate(self, rung, engine):
        """Where a search starts: half the best rate of the rung below on this engine, else the
        prior box CPU per frame's estimate, a quarter of it (so the first steps go up)."""
        names = [r["name"] for r in self.plan["rungs"]]
        i = names.index(rung["name"])
        for prev in reversed(names[:i]):
            if (prev, engine) in self.rates:
                return steps._round2(self.rates[(prev, engine)] / 2)
        est = 0.6 * self.probe["cores"] / planner.PRIOR_BOX_US[rung["name"]] * 1e6
        if engine == "thread":
            est /= 2
        if self.unbatched_peak:
            est = min(est, 0.5 * self.unbatched_peak)
        return steps._round2(max(self.min_rate * 2, est / 4))


def out_dir_for(probe):
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    return os.path.join(RESULTS, "ladder", f"{probe['hostname']}-{stamp}")


def _apply_sysctls(rung):
    for key, value, why in rung.get("sysctls", []):
        try:
            sysctl.raise_to(key, value, why)
        except OSError as e:
            print(f"sysctl {key}: cannot raise to {value} ({e}); the run goes on", file=sys.stderr)


def climb(args):
    """Runs the ladder for parsed CLI args; returns (report dict, out_dir)."""
    procs.install_signal_handlers()
    budget_s = None if args.full else planner.parse_duration(args.budget)
    t_start = datetime.datetime.now(datetime.timezone.utc)
    probe = host.probe()
    pl = planner.build(probe, budget_s or planner.DEFAULT_BUDGET_S, args.full, args.rungs,
                       args.arrangement)
    text = planner.describe(pl, probe)
    print("\n".join(text), file=sys.stderr, flush=True)
    out_dir = args.out or out_dir_for(probe)
    os.makedirs(out_dir, exist_ok=True)
    os.environ["C10M_LADDER_RUN"] = os.path.abspath(out_dir)  # every child carries it (tests look)
    progress = Progress(budget_s)
    ctx = Ctx(probe, pl, out_dir, budget_s, args.slo_us, args.payload, progress)
    rep = report.new(args, probe, pl, text, t_start)
    status = "complete"
    try:
        for i, rp in enumerate(pl["rungs"]):
            # re-plan this rung from what the rungs below measured (bytes per connection)
            if rp["kind"] == "conns" and ctx.measured:
                rp = planner.rung_plan(rp["name"], rp["conns_full"], probe, planner.tier(pl["budget_s"], pl["full"]),
                                       ctx.measured, args.arrangement, ctx.fastest)
                print(f"{rp['name']}: re-planned with the measured bytes per connection:\n    "
                      + "\n    ".join(rp["arithmetic"]), file=sys.stderr, flush=True)
            elif rp["kind"] == "conns" and rp["engines"].get(ctx.fastest) is None:
                rp = planner.rung_plan(rp["name"], rp["conns_full"], probe, planner.tier(pl["budget_s"], pl["full"]),
                                       None, args.arrangement, ctx.fastest)
            rest = pl["rungs"][i:]
            est_rest = sum(r["estimate_s"] for r in rest) or 1
            if budget_s is not None:
                left = budget_s - progress.elapsed()
                ctx.deadline = time.monotonic() + max(30, left * rp["estimate_s"] / est_rest)
            rung = report.new_rung(rp)
            rep["rungs"].append(rung)
            progress.say(f"start ({rung['conns']:,} connections)" if rp["kind"] == "conns" else "start",
                         where=f"rung {i + 1}/{len(pl['rungs'])} {rp['name']}")
            t0 = time.monotonic()
            try:
                if rp["kind"] == "box":
                    steps.box_rung(ctx, rp, rung["steps"])
                else:
                    _apply_sysctls(rp)
                    ctx.netns, ctx.ehash_buckets = None, probe["ehash_buckets"]
                    if rp.get("ehash_own"):
                        ctx.netns = f"ladder-{rp['name']}-{os.getpid()}"
                        ctx.ehash_buckets = netns.create(ctx.netns, rp["ehash_own"])
                        rung["netns"] = {"name": ctx.netns, "ehash_buckets": ctx.ehash_buckets}
                    try:
                        steps.conns_rung(ctx, rp, rung["steps"])
                    finally:
                        if ctx.netns:
                            netns.delete(ctx.netns)
                            ctx.netns = None
                rung["status"] = "done"
            except KeyboardInterrupt:
                rung["status"] = "interrupted"
                raise
            except Exception as e:  # noqa: BLE001 - one failed rung must not lose the others
                rung["status"] = "failed"
                rung["reason"] = f"{type(e).__name__}: {e}"
                print(f"{rp['name']}: failed: {rung['reason']}", file=sys.stderr, flush=True)
            finally:
                procs.kill_all()
                rung["elapsed_s"] = round(time.monotonic() - t0, 1)
                report.finish_rung(rung)
                report.write(rep, out_dir, partial=True)
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        procs.kill_all()
        netns.delete_all()
        sysctl.restore_all()
        rep["status"] = status
        rep["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        rep["elapsed_s"] = round(progress.elapsed(), 1)
        rep["sysctl_changes"] = list(sysctl.changes)
        report.finish(rep)
        paths = report.write(rep, out_dir)
        print(f"\nladder {status} in {int(progress.elapsed()) // 60} min {int(progress.elapsed()) % 60} s: "
              + ", ".join(paths), file=sys.stderr, flush=True)
    return rep, out_dir
