"""The server's Prometheus text (/metrics on --metrics-addr) as a dict name{labels} -> value."""
import urllib.request


def parse(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def scrape(port, host="127.0.0.1", timeout=3):
    """One scrape, or {} when the port does not answer (a missed sample is recorded as
    missing, never fatal). The calling thread's network namespace is the one reached."""
    if not port:
        return {}
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as r:
            return parse(r.read().decode())
    except Exception:  # noqa: BLE001 - any failure is a missing sample
        return {}


def total(m, prefix):
    """Sum of every series whose name starts with `prefix` (e.g. all labels of a counter)."""
    return sum(v for k, v in m.items() if k == prefix or k.startswith(prefix + "{"))


def labelled(m, name, label):
    """{label value: value} of a labelled series, e.g. labelled(m, "c10m_accept_errors_total",
    "reason") -> {"EMFILE": 0, ...}."""
    out = {}
    for k, v in m.items():
        if k.startswith(name + "{") and f'{label}="' in k:
            out[k.split(f'{label}="', 1)[1].split('"', 1)[0]] = v
    return out


def allocations(m):
    """c10m_allocations_total, whatever its hook label (None when not counted)."""
    for k, v in m.items():
        if k.startswith("c10m_allocations_total{"):
            return v
    return None
