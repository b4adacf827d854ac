"""The host record every result is stamped with (scripts/host_record.sh), the git commit, the
result writer, and the probe: what this box allows (cores, memory, fd limits, ports,
listen and TCP memory sysctls, the established hash, io_uring and perf, and why not)."""
import json
import os
import platform
import re
import resource
import shutil
import subprocess

from . import ACCEPT_STORM, CLIENT, FLEET, RESULTS, ROOT, SERVER, perf, proc


def host_record():
    out = subprocess.check_output(["bash", os.path.join(ROOT, "scripts", "host_record.sh")])
    return json.loads(out)


def git_commit():
    try:
        return subprocess.check_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(name, payload):
    """Writes results/<name> (JSON, indented); returns the path."""
    path = os.path.join(RESULTS, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
    return path


def subcommands(doc):
    """The argument parser of an experiment script (run/report/... subcommands)."""
    import argparse
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    return ap, ap.add_subparsers(dest="cmd", required=True)


def _kernel_at_least(release, major, minor):
    m = re.match(r"(\d+)\.(\d+)", release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


def uring_probe():
    """(True, "") when `c10m-server --engine uring` starts here, else (False, why): the
    server's own message, or the kernel's switch and version."""
    disabled = proc.sysctl("kernel.io_uring_disabled")
    if disabled not in (None, "0"):
        return False, f"kernel.io_uring_disabled = {disabled}"
    if not _kernel_at_least(platform.release(), 6, 7):
        return False, f"kernel {platform.release()} is older than 6.7 (the uring engine needs it)"
    if not os.access(SERVER, os.X_OK):
        return False, f"no {SERVER}"
    try:
        p = subprocess.Popen([SERVER, "--engine", "uring", "--threads", "1", "--addr", "127.0.0.1:0",
                              "--metrics-addr", "off"], stderr=subprocess.PIPE, text=True)
    except OSError as e:
        return False, str(e)
    lines = []
    try:
        for line in p.stderr:
            lines.append(line.strip())
            if "listening on" in line:
                return True, ""
        return False, (lines[-1] if lines else "the server exited")
    finally:
        p.kill()
        p.wait()


def _help(binary):
    try:
        return subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def probe():
    """Everything the ladder's plan reads about this box, each with the value it found."""
    mi = proc.meminfo()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # raising the hard limit needs CAP_SYS_RESOURCE
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard + 1))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        can_raise = True
    except (ValueError, OSError):
        can_raise = False
    lo, hi = (int(x) for x in (proc.sysctl("net.ipv4.ip_local_port_range") or "32768 60999").split())
    tcp_mem = [int(x) for x in (proc.sysctl("net.ipv4.tcp_mem") or "0 0 0").split()]
    ehash = int(proc.sysctl("net.ipv4.tcp_ehash_entries") or 0)
    uring_ok, uring_why = uring_probe()
    perf_ok, perf_why = perf.available()
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    server_help, client_help = _help(SERVER), _help(CLIENT)
    return {
        "hostname": platform.node(), "kernel": platform.release(), "cpu": cpu,
        "cores": os.cpu_count(), "mem_total": mi.get("MemTotal"),
        "mem_available": mi.get("MemAvailable"),
        "fd_soft": soft, "fd_hard": hard, "fd_can_raise": can_raise,
        "file_max": int(proc.sysctl("fs.file-max") or 0),
        "nr_open": int(proc.sysctl("fs.nr_open") or 0),
        "port_range": [lo, hi], "ports": hi - lo + 1,
        "somaxconn": int(proc.sysctl("net.core.somaxconn") or 0),
        "tcp_max_syn_backlog": int(proc.sysctl("net.ipv4.tcp_max_syn_backlog") or 0),
        "tcp_mem_pages": tcp_mem, "page_size": proc.PAGE,
        # negative: the table is the boot-time one, shared by every namespace
        "ehash_buckets": abs(ehash), "ehash_shared": ehash < 0 or not os.path.exists("/proc/self/ns/net"),
        "pid_max": int(proc.sysctl("kernel.pid_max") or 0),
        "threads_max": int(proc.sysctl("kernel.threads-max") or 0),
        "root": os.geteuid() == 0,
        "io_uring": uring_ok, "io_uring_why": uring_why,
        "perf": perf_ok, "perf_why": perf_why,
        "iperf3": bool(shutil.which("iperf3")),
        "netns": os.geteuid() == 0 and bool(shutil.which("ip")),
        "binaries": {os.path.basename(b): os.access(b, os.X_OK)
                     for b in (SERVER, CLIENT, ACCEPT_STORM, FLEET)},
        # the few-process arrangement (issue 21): a server loop driving several rings sized
        # from --max-conns, and a client holding its connections as direct descriptors
        "server_multi_ring": "rings" in server_help and "--max-conns" in server_help,
        "client_direct": "direct descriptor" in client_help.lower(),
        "git_commit": git_commit(),
        "results_dir": RESULTS,
    }
