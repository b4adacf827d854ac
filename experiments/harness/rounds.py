"""Interleaved rounds and their summaries: medians with the min-max range."""
import statistics


def summarize(values):
    """{median, min, max, n} of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def rotated(items, k):
    """`items` rotated by k: round k of an interleaved series starts with a different item, so
    no configuration always runs first."""
    items = list(items)
    if not items:
        return items
    k %= len(items)
    return items[k:] + items[:k]


def interleave(items, rounds):
    """[(round, item)] for `rounds` rounds of every item, the order rotated each round."""
    return [(r, it) for r in range(rounds) for it in rotated(items, r)]
