"""The experiments' one harness: running the binaries (procs), sampling /proc (proc, sampler),
the server's /metrics (metrics), sysctls printed and restored (sysctl), network namespaces
(netns), perf (perf), rounds and summaries (rounds), plots (plot), the host record and probe
(host), and the big-message transfer measurements (transfer).

Experiments talk to the binaries only through their command lines and JSON; nothing here links
the library. Import the modules you need: `from harness import procs, proc, sampler`.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("C10M_BUILD", os.path.join(ROOT, "build", "release"))
SERVER = os.path.join(BUILD, "apps", "c10m-server")
CLIENT = os.path.join(BUILD, "apps", "c10m-loadclient")
ACCEPT_STORM = os.path.join(BUILD, "bench", "accept_storm")
FLEET = os.path.join(BUILD, "bench", "hostile", "hostile_fleet")
RESULTS = os.path.join(ROOT, "results")


def check_binaries(*paths):
    """Exits with a clear message when a binary the experiment needs is missing."""
    for b in paths or (SERVER, CLIENT):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"no {b}: build first (make build, or C10M_BUILD=DIR)")
