"""Shared pieces of the ladder's tests: paths, the skip convention (exit 77: CTest's
SKIP_RETURN_CODE), and running c10m-ladder."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
LADDER = os.path.join(ROOT, "experiments", "ladder", "c10m-ladder")
FIXTURES = os.path.join(HERE, "fixtures")
SKIP = 77


def needs_root_and_binaries():
    """Why a live ladder test cannot run here, or None."""
    from harness import ACCEPT_STORM, CLIENT, FLEET, SERVER
    if os.geteuid() != 0:
        return "needs root (sysctls, network namespaces)"
    missing = [b for b in (SERVER, CLIENT, ACCEPT_STORM, FLEET) if not os.access(b, os.X_OK)]
    if missing:
        return "binaries not built: " + ", ".join(missing)
    return None


def main_or_skip():
    """unittest.main, but exit 77 when every test was skipped (CTest shows SKIP)."""
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    if r.testsRun and len(r.skipped) == r.testsRun:
        sys.exit(SKIP)
    sys.exit(0 if r.wasSuccessful() else 1)
