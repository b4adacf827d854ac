"""The quick pass (`c10m-ladder run --budget 2m`, every rung at a small size, under 2 minutes
on this box): it writes a complete report whose JSON validates against the schema, whose HTML
holds every plot, whose Markdown matches the JSON; it names a wall for every rung, and puts
every sysctl it changed back. Root only (sysctls); skipped with the reason otherwise."""
import subprocess
import tempfile
import time
import unittest

import ladder_test_util as util
from test_report import check_report

KEYS = ("net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "fs.file-max", "kernel.pid_max")


def sysctls():
    from harness import proc
    return {k: proc.sysctl(k) for k in KEYS}


class QuickPass(unittest.TestCase):
    def test_quick_pass_writes_a_valid_report(self):
        why = util.needs_root_and_binaries()
        if why:
            self.skipTest(why)
        before = sysctls()
        out = tempfile.mkdtemp(prefix="ladder-quick-")
        t0 = time.monotonic()
        r = subprocess.run([util.LADDER, "run", "--budget", "2m", "--out", out], capture_output=True,
                           text=True, timeout=400)
        took = time.monotonic() - t0
        print(r.stderr[-3000:])
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(sysctls(), before, "every sysctl is back")
        rep = check_report(self, out)
        self.assertEqual(rep["status"], "complete")
        self.assertEqual([x["name"] for x in rep["rungs"]], ["box", "c10k", "c100k", "c1m"])
        for rung in rep["rungs"]:
            self.assertEqual(rung["status"], "done", rung.get("reason"))
            self.assertIsNotNone(rung["wall"], f"{rung['name']} names a wall")
            self.assertTrue(rung["plots"])
        steps = {(x["name"], s["name"]) for x in rep["rungs"] for s in x["steps"] if s["status"] == "ok"}
        for want in (("box", "peak"), ("box", "accept"), ("box", "bigdata"), ("c10k", "idle"), ("c10k", "slo")):
            self.assertIn(want, steps)
        self.assertTrue(rep["answers"])
        print(f"quick pass: {took:.0f} s")


if __name__ == "__main__":
    util.main_or_skip()
