"""Readers of /proc and /sys: a process tree's CPU, RSS, run-queue wait and context switches;
the box's CPU (/proc/stat), memory (/proc/meminfo), TCP memory and sockets (sockstat), TCP
counters (netstat, snmp), slab caches, sysctls. Every reader returns None (or leaves a key
out) for what has gone or is not readable, never raises for a process that exited."""
import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def children(pid):
    """Direct children of `pid` (all its threads' children)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            out += [int(c) for c in text.split()]
    return out


def tree(pid):
    """`pid` and its descendants (a server's supervisor and workers, a client's --procs)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def pid_stat(pid):
    """(CPU seconds of all its threads, RSS bytes, threads) of one process, or None."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    f = text[text.rfind(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK, int(f[21]) * PAGE, int(f[17])


def proc_cpu(pid):
    """utime + stime of a process (all threads), seconds; None when gone."""
    s = pid_stat(pid)
    return s[0] if s else None


def proc_rss(pid):
    """VmRSS in bytes; None when gone."""
    s = pid_stat(pid)
    return s[1] if s else None


def group(pids, max_threads=512):
    """CPU seconds, RSS, threads, processes, and, where the processes have at most
    `max_threads` threads in all (reading every thread's files costs CPU of its own), the
    time run and waited in the run queue (schedstat, ns precision) and the context switches,
    summed over every thread."""
    cpu = rss = threads = 0
    alive = []
    for p in pids:
        s = pid_stat(p)
        if s:
            cpu += s[0]
            rss += s[1]
            threads += s[2]
            alive.append(p)
    out = {"cpu_s": cpu, "rss": rss, "threads": threads, "procs": len(alive)}
    if threads > max_threads:
        return out
    run = wait = ctx = 0
    for p in alive:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            sched = _read(f"/proc/{p}/task/{t}/schedstat")
            if sched:
                f = sched.split()
                run += int(f[0])
                wait += int(f[1])
            status = _read(f"/proc/{p}/task/{t}/status")
            if status:
                for line in status.splitlines():
                    if "ctxt_switches:" in line:
                        ctx += int(line.split()[1])
    out["run_s"] = run / 1e9
    out["rq_wait_s"] = wait / 1e9
    out["ctx_switches"] = ctx
    return out


def meminfo():
    """/proc/meminfo in bytes."""
    out = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        k, _, v = line.partition(":")
        parts = v.split()
        if parts:
            out[k] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def stat():
    """The box's CPU ticks (total and per CPU: busy, idle, softirq) and context switches."""
    out = {"cpus": [], "ctxt": 0}
    for line in (_read("/proc/stat") or "").splitlines():
        f = line.split()
        if not f:
            continue
        if f[0].startswith("cpu"):
            v = [int(x) for x in f[1:9]]
            row = {"total": sum(v), "idle": v[3] + v[4], "softirq": v[6], "irq": v[5],
                   "sys": v[2], "user": v[0] + v[1], "steal": v[7]}
            if f[0] == "cpu":
                out["all"] = row
            else:
                out["cpus"].append(row)
        elif f[0] == "ctxt":
            out["ctxt"] = int(f[1])
        elif f[0] == "procs_running":
            out["procs_running"] = int(f[1])
    return out


def _net(pid, name):
    return _read(f"/proc/{pid}/net/{name}" if pid else f"/proc/net/{name}") or ""


def sockstat(pid=None):
    """TCP sockets in use, orphans, TIME_WAIT, allocated, and the kernel's TCP memory (pages,
    box-wide) from the sockstat of `pid`'s network namespace (ours when None)."""
    for line in _net(pid, "sockstat").splitlines():
        if line.startswith("TCP:"):
            f = line.split()[1:]
            d = {f[i]: int(f[i + 1]) for i in range(0, len(f) - 1, 2)}
            return {"inuse": d.get("inuse", 0), "orphan": d.get("orphan", 0), "tw": d.get("tw", 0),
                    "alloc": d.get("alloc", 0), "mem_pages": d.get("mem", 0)}
    return {}


def netstat(pid=None):
    """TCP counters of `pid`'s namespace: TcpExt (netstat) and Tcp (snmp), as one dict with
    keys such as ListenOverflows, TCPMemoryPressures, PruneCalled, Tcp.RetransSegs."""
    out = {}
    for name in ("netstat", "snmp"):
        lines = _net(pid, name).splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            keys, values = head.split(), vals.split()
            prefix = keys[0].rstrip(":")
            if prefix not in ("TcpExt", "Tcp"):
                continue
            for k, v in zip(keys[1:], values[1:]):
                try:
                    out[k if prefix == "TcpExt" else "Tcp." + k] = int(v)
                except ValueError:
                    pass
    return out


def vmstat(keys=("oom_kill",)):
    out = {}
    for line in (_read("/proc/vmstat") or "").splitlines():
        k, _, v = line.partition(" ")
        if k in keys:
            out[k] = int(v)
    return out


def slab(names=("TCP", "TCPv6", "request_sock_TCP", "tw_sock_TCP", "sock_inode_cache", "filp",
                "dentry", "eventpoll_epi", "skbuff_head_cache", "kmalloc-1k", "kmalloc-2k")):
    """Bytes held by the named slab caches (active objects x object size); root only."""
    out = {}
    for line in (_read("/proc/slabinfo") or "").splitlines()[2:]:
        f = line.split()
        if f and f[0] in names:
            out[f[0]] = int(f[1]) * int(f[3])
    return out


def sysctl(key):
    """A sysctl's value as text (whitespace-normalized), or None."""
    text = _read("/proc/sys/" + key.replace(".", "/"))
    return None if text is None else " ".join(text.split())


def file_nr():
    text = _read("/proc/sys/fs/file-nr")
    return int(text.split()[0]) if text else None
