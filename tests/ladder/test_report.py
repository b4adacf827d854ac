"""The report's schema validator, the docs' schema section, and rendering from JSON alone:
every plot of a report is in its HTML, and its Markdown is what the JSON renders to."""
import base64
import os
import re
import unittest

import ladder_test_util as util
from ladder import schema


class Validator(unittest.TestCase):
    def test_types_enums_optional_and_nullable(self):
        spec = {"a": "int", "b?": "str", "c": "num|null", "d": "str:x|y", "e": ["list", {"f": "bool"}]}
        self.assertEqual(schema.validate({"a": 1, "c": None, "d": "x", "e": [{"f": True}]}, spec), [])
        errs = schema.validate({"a": "1", "c": "no", "d": "z", "e": [{"f": 1}]}, spec)
        self.assertEqual(len(errs), 4, errs)
        self.assertEqual(schema.validate({"c": 1.5, "d": "y", "e": []}, spec), ["$: missing a"])
        self.assertEqual(schema.validate({"a": True, "c": 1, "d": "y", "e": []}, spec)[0][:4], "$.a:")

    def test_docs_list_every_key_of_the_schema(self):
        with open(os.path.join(util.ROOT, "docs", "LADDER.md")) as f:
            doc = f.read()
        missing = [k for k in schema.keys() if f"`{k.split('.')[-1].replace('[]', '')}`" not in doc]
        self.assertEqual(missing, [], "docs/LADDER.md, section JSON, misses these keys")


class CommittedReports(unittest.TestCase):
    """The reports committed under results/ladder/ still validate, render, and compare."""

    def test_validate_render_and_compare(self):
        import glob
        import json
        from ladder import report
        paths = sorted(glob.glob(os.path.join(util.ROOT, "results", "ladder", "*", "report.json")))
        if not paths:
            self.skipTest("no committed report")
        reps = []
        for p in paths:
            with open(p) as f:
                rep = json.load(f)
            self.assertEqual(schema.validate(rep), [], p)
            reps.append(rep)
        page = report.compare_page(reps[0], reps[-1], "A", "B")
        for r in reps[0]["rungs"]:
            if any(s["name"] == "slo" for s in r["steps"]):
                self.assertIn(f"<img id='{r['name']}-compare' src='data:image/png;base64,", page)
        self.assertIn("B / A", page)
        self.assertEqual(report.markdown(reps[-1]).splitlines()[0][:13], "# c10m ladder")


class Plan(unittest.TestCase):
    PROBE = {"fd_soft": 20000, "cores": 2, "io_uring": True, "ports": 28232, "mem_available": 22 << 30,
             "pid_max": 32768, "file_max": 2466239, "somaxconn": 4096, "ehash_buckets": 262144,
             "netns": True, "server_multi_ring": False, "client_direct": False}

    def test_c1m_at_this_fd_limit_is_52_server_and_51_client_processes(self):
        from ladder import plan
        a = plan.arrangement(self.PROBE, 1_000_000, "epoll")
        self.assertEqual((a["mode"], a["server_workers"], a["client_procs"]), ("processes", 52, 51))
        few = plan.arrangement(dict(self.PROBE, server_multi_ring=True, client_direct=True), 1_000_000, "uring")
        self.assertEqual((few["mode"], few["processes"]), ("few", 2))
        self.assertEqual(plan.arrangement(dict(self.PROBE, server_multi_ring=True, client_direct=True),
                                          1_000_000, "thread")["mode"], "processes")

    def test_c1m_plan_names_its_own_hash_and_the_thread_engines_memory_wall(self):
        from ladder import plan
        r = plan.rung_plan("c1m", 1_000_000, self.PROBE, plan.tier(1800, False))
        self.assertTrue(r["fits"])
        self.assertEqual(r["ehash_own"], 1 << 21)
        self.assertFalse(r["engines"]["thread"]["run"])
        self.assertIn("memory", r["engines"]["thread"]["predicted_wall"])
        self.assertEqual(plan.srcips(1_000_000, 0, self.PROBE)[1], 84)

    def test_budgets(self):
        from ladder import plan
        self.assertEqual([plan.parse_duration(x) for x in ("90s", "5m", "1h30m", "120")], [90, 300, 5400, 120])
        self.assertRaises(ValueError, plan.parse_duration, "5 minutes")
        self.assertEqual(plan.tier(120, False)[1]["c1m"], 4000)
        self.assertEqual(plan.tier(300, False)[1]["c1m"], 50000)
        self.assertEqual(plan.tier(1800, False)[1]["c1m"], 1_000_000)


def check_report(test, out_dir):
    """Asserts what a written report must hold; returns the parsed JSON."""
    import json
    from ladder import report
    with open(os.path.join(out_dir, "report.json")) as f:
        rep = json.load(f)
    test.assertEqual(schema.validate(rep), [])
    with open(os.path.join(out_dir, "report.html")) as f:
        page = f.read()
    test.assertNotRegex(page, r"(src|href)=['\"]https?:", "the page loads nothing from outside")
    for r in rep["rungs"]:
        for p in r["plots"]:
            m = re.search(rf"<img id='{re.escape(p['id'])}'[^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
            test.assertIsNotNone(m, f"plot {p['id']} is in the page")
            test.assertEqual(base64.b64decode(m.group(1))[:8], b"\x89PNG\r\n\x1a\n")
    with open(os.path.join(out_dir, "report.md")) as f:
        md = f.read()
    test.assertEqual(md, report.markdown(rep), "the Markdown is what the JSON renders to")
    for r in rep["rungs"]:
        if r.get("wall"):
            test.assertIn(f"Wall: **{r['wall']['name']}**", md)
        for k, v in r["numbers"].items():
            test.assertIn(f"| {k} | {report._fmt(v)} |", md)
    return rep


if __name__ == "__main__":
    util.main_or_skip()
