#!/usr/bin/python3
"""Sets the EEVDF slice (sched_setattr's sched_runtime on SCHED_OTHER, Linux 6.12+) of every
thread of every process named COMM, again every 0.3 s so that workers and threads started
later get it too, for SECONDS. Prints how many threads it set. Root not needed for one's own
processes; a shorter slice than the default asks the scheduler for earlier deadlines.

  experiments/hostile/sched_slice.py SLICE_NS SECONDS [--comm c10m-server]
"""
import argparse
import ctypes
import os
import signal
import struct
import sys
import time

SYS_SCHED_SETATTR = 314  # x86_64

ap = argparse.ArgumentParser()
ap.add_argument("slice_ns", type=int)
ap.add_argument("seconds", type=float)
ap.add_argument("--comm", default="c10m-server")
a = ap.parse_args()
libc = ctypes.CDLL(None, use_errno=True)
# struct sched_attr (SCHED_ATTR_SIZE_VER1 = 56): size, policy, flags, nice, priority,
# runtime, deadline, period, util_min, util_max.
attr = ctypes.create_string_buffer(
    struct.pack("IIQiIQQQII", 56, 0, 0, 0, 0, a.slice_ns, 0, 0, 0, 0), 56)
done = set()
stop = time.time() + a.seconds


def on_term(*_):
    global stop
    stop = 0


signal.signal(signal.SIGTERM, on_term)
while time.time() < stop:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/comm").read().strip() != a.comm:
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                if tid in done:
                    continue
                if libc.syscall(SYS_SCHED_SETATTR, int(tid), attr, 0) == 0:
                    done.add(tid)
                else:
                    print(f"sched_setattr({tid}): errno {ctypes.get_errno()}", file=sys.stderr)
        except OSError:
            pass
    time.sleep(0.3)
print(f"sched_slice: {len(done)} threads of {a.comm} set to {a.slice_ns} ns", file=sys.stderr)
