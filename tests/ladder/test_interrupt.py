"""An interrupted run (SIGINT in the middle of a rung's rate search) restores every sysctl it
changed, leaves no process behind, and writes a valid partial report that keeps the rung it
finished and the steps of the one it was in. Root only; skipped with the reason otherwise."""
import os
import signal
import subprocess
import tempfile
import time
import unittest

import ladder_test_util as util
from test_quick import sysctls
from test_report import check_report


def started_by(out_dir):
    """Processes whose environment carries this run's C10M_LADDER_RUN (everything the ladder
    started inherits it)."""
    mark = f"C10M_LADDER_RUN={os.path.abspath(out_dir)}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


class Interrupt(unittest.TestCase):
    def test_sigint_mid_rung_restores_and_keeps_what_is_done(self):
        why = util.needs_root_and_binaries()
        if why:
            self.skipTest(why)
        before = sysctls()
        out = tempfile.mkdtemp(prefix="ladder-int-")
        p = subprocess.Popen([util.LADDER, "run", "--budget", "2m", "--rungs", "c10k,c100k", "--out", out],
                             stderr=subprocess.PIPE, text=True)
        seen, deadline = [], time.monotonic() + 240
        for line in p.stderr:
            seen.append(line)
            if "c100k" in line and "slo" in line and "trial 1/" in line:
                time.sleep(1.0)  # inside the trial: its load client and perf are running
                p.send_signal(signal.SIGINT)
                break
            if time.monotonic() > deadline:
                break
        _, rest = p.communicate(timeout=120)
        log = "".join(seen) + rest
        self.assertEqual(p.returncode, 130, log[-2000:])
        self.assertIn("SIGINT", log)
        self.assertEqual(sysctls(), before, "every sysctl is back")
        self.assertEqual(started_by(out), [], "nothing it started is left")
        rep = check_report(self, out)
        self.assertEqual(rep["status"], "interrupted")
        self.assertEqual([(r["name"], r["status"]) for r in rep["rungs"]],
                         [("c10k", "done"), ("c100k", "interrupted")])
        self.assertTrue(any(s["name"] == "idle" and s["status"] == "ok" for s in rep["rungs"][1]["steps"]))
        self.assertTrue(all(c["restored"] for c in rep["sysctl_changes"]))
        self.assertFalse(os.path.exists(os.path.join(out, "report.json.tmp")))


if __name__ == "__main__":
    util.main_or_skip()
