"""perf with `-e cpu-clock` (this box has no hardware counters): a whole-box profile for a few
seconds and its top symbols, each with its command and DSO."""
import os
import shutil
import subprocess

from . import procs

_available = None


def available():
    """(True, "") when `perf record -e cpu-clock -a` works here, else (False, why)."""
    global _available
    if _available is None:
        if not shutil.which("perf"):
            _available = (False, "perf is not installed (Debian: linux-perf)")
        else:
            r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-a", "-o", "/dev/null",
                                "--", "sleep", "0.05"], capture_output=True, text=True)
            _available = (True, "") if r.returncode == 0 else (
                False, "perf record -e cpu-clock -a fails: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    return _available


def record(seconds, out, freq=499, netns_name=None):
    """Starts a whole-box cpu-clock profile of `seconds` into `out`; returns the Popen (wait on
    it, then top(out)), or None when perf is not available."""
    if not available()[0]:
        return None
    return procs.spawn(["perf", "record", "-q", "-a", "-e", "cpu-clock", "-F", str(freq), "-o", out,
                        "--", "sleep", str(seconds)], netns_name, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def top(data, n=12):
    """The `n` largest symbols of a perf.data as [{pct, comm, dso, sym}] (self time, share of
    all samples, idle included)."""
    if not data or not os.path.exists(data):
        return []
    r = subprocess.run(["perf", "report", "-q", "-i", data, "--stdio", "--no-children",
                        "--sort", "comm,dso,sym", "--percent-limit", "0.5"],
                       capture_output=True, text=True, timeout=120)
    out = []
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) < 4 or not f[0].endswith("%"):
            continue
        try:
            pct = float(f[0].rstrip("%"))
        except ValueError:
            continue
        # pct comm dso [.|k] sym...
        sym = " ".join(f[4:]) if len(f) > 4 and f[3] in ("[.]", "[k]") else " ".join(f[3:])
        out.append({"pct": pct, "comm": f[1], "dso": f[2], "sym": sym})
        if len(out) >= n:
            break
    return out


def share(top_rows, *symbols):
    """Percent of samples in any of `symbols` (substring match) among `top_rows`."""
    return sum(r["pct"] for r in top_rows if any(s in r["sym"] for s in symbols))
