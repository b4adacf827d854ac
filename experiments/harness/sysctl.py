"""Sysctls an experiment changes: each change is printed with its old value and restored, at
the end, on an error, on SIGINT/SIGTERM (see procs.on_exit) and at interpreter exit.

    from harness import sysctl
    sysctl.raise_to("net.core.somaxconn", 65535, "listen backlog of the workers")
    ...
    sysctl.restore_all()          # also runs by itself at exit
"""
import atexit
import sys

from . import proc

_saved = {}      # key -> original text, in the order first changed
changes = []     # [{key, old, new, why, restored}] for reports


def _path(key):
    return "/proc/sys/" + key.replace(".", "/")


def get(key):
    return proc.sysctl(key)


def _write(key, value):
    with open(_path(key), "w") as f:
        f.write(str(value))


def set(key, value, why=""):  # noqa: A001 - the natural name
    """Sets `key` to `value` (text or number), remembering the first old value. Raises
    OSError when it cannot (no root, read-only)."""
    old = get(key)
    if old is None:
        raise OSError(f"no sysctl {key}")
    if old == " ".join(str(value).split()):
        return
    _write(key, value)
    if key not in _saved:
        _saved[key] = old
        changes.append({"key": key, "old": old, "new": str(value), "why": why, "restored": False})
    else:
        next(c for c in changes if c["key"] == key)["new"] = str(value)
    print(f"sysctl {key}: {old} -> {value}" + (f" ({why}; restored at exit)" if why else
                                                " (restored at exit)"), file=sys.stderr, flush=True)


def raise_to(key, value, why=""):
    """Raises a numeric sysctl to at least `value` (first field); returns True if changed."""
    old = get(key)
    if old is None or int(old.split()[0]) >= int(value):
        return False
    set(key, value, why)
    return True


def restore(key):
    if key not in _saved:
        return
    old = _saved.pop(key)
    try:
        _write(key, old)
        print(f"sysctl {key}: restored {old}", file=sys.stderr, flush=True)
        next(c for c in changes if c["key"] == key)["restored"] = True
    except OSError as e:
        print(f"sysctl {key}: COULD NOT RESTORE {old}: {e}", file=sys.stderr, flush=True)


def restore_all():
    for key in reversed(list(_saved)):
        restore(key)


atexit.register(restore_all)
