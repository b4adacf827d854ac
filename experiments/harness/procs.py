"""Processes an experiment starts: each in a process group of its own (a server's workers and
a client's --procs with it), registered, and killed (the whole group) when the experiment
ends, fails or is interrupted. `Server` and `LoadClient` run c10m-server and c10m-loadclient
through their command lines only.

    from harness import procs
    procs.install_signal_handlers()     # SIGINT/SIGTERM -> KeyboardInterrupt, once
    srv = procs.Server(["--engine", "epoll", "--threads", "1"])
    cli = procs.LoadClient(["--addr", srv.addr, "--conns", "100"], "results/x/client.json")
    res = cli.result()
    drain = srv.stop()
"""
import atexit
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time

from . import CLIENT, SERVER, metrics, netns, proc

_live = []  # Popen objects started here and not yet reaped


def spawn(cmd, netns_name=None, nofile=None, **kw):
    """Popen in a new session (its own process group), registered for cleanup. `nofile`
    lowers RLIMIT_NOFILE for the child (lowering needs no privilege)."""
    pre = None
    if nofile:
        def pre():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    p = subprocess.Popen(netns.prefix(netns_name) + list(cmd), start_new_session=True,
                         preexec_fn=pre, **kw)
    _live.append(p)
    return p


def kill(p, sig=signal.SIGKILL):
    """Signals `p`'s whole process group (it leads one), then reaps it when SIGKILL."""
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    if sig == signal.SIGKILL:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if p in _live:
            _live.remove(p)


def kill_all():
    """Kills every process group started here that is still registered."""
    for p in list(_live):
        kill(p)


def forget(p):
    if p in _live:
        _live.remove(p)


atexit.register(kill_all)

_handlers_installed = False


def install_signal_handlers():
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (so `finally` blocks
    kill, restore and write what is done); a second signal exits at once after the kills."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    state = {"n": 0}

    def on_signal(signum, _frame):
        state["n"] += 1
        if state["n"] > 1:
            kill_all()
            from . import sysctl
            sysctl.restore_all()
            netns.delete_all()
            os._exit(130)
        print(f"\n{signal.Signals(signum).name}: stopping (kills what it started, restores "
              "sysctls, keeps what is finished)", file=sys.stderr, flush=True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


class Server:
    """c10m-server on `addr` (port 0: any free port) with /metrics on a free port unless
    metrics=False; waits until it listens (or all --workers started). stop() drains it
    (SIGTERM) and returns the drain line; `drain_s` is how long the drain took."""

    def __init__(self, args, addr="127.0.0.1:0", metrics=True, netns_name=None, env=None,
                 nofile=None, taskset=None, start_timeout=60):
        self.netns = netns_name
        self.cmd = ([SERVER, "--addr", addr, "--metrics-addr", "127.0.0.1:0" if metrics else "off"]
                    + list(args))
        if taskset is not None:
            self.cmd = ["taskset", "-c", str(taskset)] + self.cmd
        self.proc = spawn(self.cmd, netns_name, nofile=nofile, stderr=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True, env=dict(os.environ, **(env or {})))
        self.pid = self.proc.pid
        self.port = self.mport = None
        self.lines = []
        self.drain_s = None
        workers = "--workers" in args and args[args.index("--workers") + 1] != "1"
        deadline = time.time() + start_timeout
        ready = started = False
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line.rstrip())
            m = re.search(r"metrics on [0-9.]+:(\d+)", line)
            if m:
                self.mport = int(m.group(1))
            m = re.search(r"listening on [0-9.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            started = started or "workers started" in line
            if self.port and (not workers or started):
                ready = True
                break
        if not ready:
            kill(self.proc)
            raise RuntimeError("server did not start: " + " | ".join(self.lines[-5:]))
        self.addr = f"127.0.0.1:{self.port}"
        self._reader = threading.Thread(target=self._read_rest, daemon=True)
        self._reader.start()

    def _read_rest(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def pids(self):
        return proc.tree(self.pid)

    def scrape(self):
        """/metrics (through `ip netns exec ... curl` when the server runs in a namespace)."""
        if not self.netns or not self.mport:
            return metrics.scrape(self.mport)
        out = subprocess.run(netns.prefix(self.netns) + ["curl", "-s", "--max-time", "5",
                             f"http://127.0.0.1:{self.mport}/metrics"], capture_output=True,
                             text=True)
        return metrics.parse(out.stdout)

    def cpu(self):
        return proc.proc_cpu(self.pid)

    def rss(self):
        return proc.proc_rss(self.pid)

    def log_count(self, pattern):
        return sum(1 for line in list(self.lines) if re.search(pattern, line))

    def stop(self, timeout=60):
        """SIGTERM (the graceful drain); SIGKILL after `timeout`. Returns the drain line."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill(self.proc)
        self.drain_s = time.monotonic() - t0
        kill(self.proc)  # the group: a worker left behind would hold the port
        self._reader.join(timeout=5)
        return next((ln for ln in reversed(self.lines) if ln.startswith("drain:")), "")


class LoadClient:
    """c10m-loadclient with --json; result() waits and returns the parsed JSON."""

    def __init__(self, args, json_path, netns_name=None, taskset=None, quiet=True):
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        self.json_path = json_path
        self.cmd = [CLIENT] + (["--quiet"] if quiet else []) + ["--json", json_path] + list(args)
        if taskset is not None:
            self.cmd = ["taskset", "-c", str(taskset)] + self.cmd
        self.proc = spawn(self.cmd, netns_name, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
        self.pid = self.proc.pid
        self.stderr = ""

    def pids(self):
        return proc.tree(self.pid)

    def cpu(self):
        return proc.proc_cpu(self.pid)

    def running(self):
        return self.proc.poll() is None

    def result(self, timeout=600, check=True):
        """Waits for the client; returns its JSON (None when it wrote none and not check)."""
        try:
            _, self.stderr = self.proc.communicate(timeout=timeout)
        finally:
            forget(self.proc)
        if self.proc.returncode != 0 and check:
            raise RuntimeError(f"loadclient failed ({self.proc.returncode}): "
                               f"{self.stderr.strip()[-500:]}")
        try:
            with open(self.json_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            if check:
                raise
            return None

    def stop(self):
        """Ends the client now (its whole process group)."""
        kill(self.proc)


def wait_until(pred, timeout, period=0.2):
    """Polls `pred` until true or `timeout` seconds; returns its last value."""
    deadline = time.monotonic() + timeout
    v = pred()
    while not v and time.monotonic() < deadline:
        time.sleep(period)
        v = pred()
    return v
