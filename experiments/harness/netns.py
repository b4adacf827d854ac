"""Network namespaces an experiment creates (named with its prefix, deleted at exit), with an
established-socket hash of their own: net.ipv4.tcp_child_ehash_entries is read when a
namespace is created, so it is set for that moment, printed and restored (FINDINGS 8.3)."""
import atexit
import ctypes
import os
import subprocess

from . import sysctl

_made = []
CLONE_NEWNET = 0x40000000


def create(name, ehash=None):
    """Creates namespace `name` with loopback up; with `ehash`, its own established hash of
    that many buckets. Returns the buckets it got (its net.ipv4.tcp_ehash_entries)."""
    if ehash:
        sysctl.set("net.ipv4.tcp_child_ehash_entries", ehash, f"for creating netns {name}")
    try:
        subprocess.run(["ip", "netns", "add", name], check=True)
    finally:
        if ehash:
            sysctl.restore("net.ipv4.tcp_child_ehash_entries")
    _made.append(name)
    subprocess.run(prefix(name) + ["ip", "link", "set", "lo", "up"], check=True)
    out = subprocess.run(prefix(name) + ["sysctl", "-n", "net.ipv4.tcp_ehash_entries"],
                         capture_output=True, text=True)
    return abs(int(out.stdout.strip() or 0))


def delete(name):
    if name in _made:
        _made.remove(name)
        subprocess.run(["ip", "netns", "del", name], check=False)


def delete_all():
    for name in list(_made):
        delete(name)


def prefix(name):
    """The command prefix that runs a program inside namespace `name` ([] for none)."""
    return ["ip", "netns", "exec", name] if name else []


def enter(name):
    """Moves the calling thread (only it) into namespace `name`: sockets it opens afterwards
    live there (a sampler scraping a server's /metrics inside the namespace)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


atexit.register(delete_all)
