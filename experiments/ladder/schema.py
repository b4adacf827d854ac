"""The report's JSON schema (documented in docs/LADDER.md, "JSON") and a small validator (no
jsonschema package here). A spec is a type name ("str", "int", "num", "bool", "dict", "any"),
"str:a|b" for one of some strings, a trailing "|null" where None is allowed, ["list", spec],
or a dict of key -> spec whose keys ending in "?" are optional."""

SCHEMA_ID = "c10m-ladder/1"

WALL = {"name": "str", "detail": "str",
        "evidence": ["list", {"what": "str", "value": "any", "threshold?": "any"}],
        "checked": ["list", "str"]}
STEP = {"name": "str:idle|slo|drain|peak|accept|bigdata|slow_consumer", "engine?": "str",
        "status": "str:ok|failed|skipped|interrupted", "elapsed_s": "num", "results": "dict",
        "evidence": "dict|null", "wall": [WALL, "null"], "data": "dict", "reason?": "str",
        "note?": "str"}
RUNG = {"name": "str", "kind": "str:box|conns", "status": "str:running|done|failed|interrupted",
        "conns?": "int", "conns_full?": "int", "active?": "int", "fits": "bool|null",
        "predicted_wall": "str", "arithmetic": ["list", "str"], "elapsed_s": "num|null",
        "numbers": "dict", "wall": [WALL, "null"], "steps": ["list", STEP],
        "plots": ["list", {"id": "str", "title": "str"}], "arrangement?": "dict", "netns?": "dict",
        "reason?": "str"}
REPORT = {"schema": "str:" + SCHEMA_ID, "status": "str:running|complete|interrupted",
          "started": "str", "finished": "str|null", "elapsed_s": "num|null", "command": ["list", "str"],
          "budget_s": "int|null", "slo_us": "num", "payload": "str", "host": "dict",
          "host_record": "dict", "plan": {"text": ["list", "str"], "budget_s": "int", "full": "bool",
                                          "tier": "dict", "estimate_s": "int", "rungs": ["list", "dict"],
                                          "fastest_engine_prior": "str"},
          "sysctl_changes": ["list", {"key": "str", "old": "str", "new": "str", "why": "str",
                                      "restored": "bool"}],
          "rungs": ["list", RUNG],
          "answers": ["list", {"question": "str", "answer": "str", "rung?": "str"}]}


def _type_ok(kind, v):
    return {"str": isinstance(v, str), "int": isinstance(v, int) and not isinstance(v, bool),
            "num": isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": isinstance(v, bool), "dict": isinstance(v, dict), "any": True,
            "null": v is None}[kind]


def validate(doc, spec=REPORT, path="$"):
    """The list of problems (empty when `doc` matches `spec`)."""
    errs = []
    if isinstance(spec, list) and spec and spec[0] == "list":
        if not isinstance(doc, list):
            return [f"{path}: expected a list, got {type(doc).__name__}"]
        for i, item in enumerate(doc):
            errs += validate(item, spec[1], f"{path}[{i}]")
        return errs
    if isinstance(spec, list):  # alternatives
        for alt in spec:
            if not validate(doc, alt, path):
                return []
        return [f"{path}: matches none of its alternatives"]
    if isinstance(spec, dict):
        if not isinstance(doc, dict):
            return [f"{path}: expected an object, got {type(doc).__name__}"]
        for key, sub in spec.items():
            k = key.rstrip("?")
            if k not in doc:
                if not key.endswith("?"):
                    errs.append(f"{path}: missing {k}")
                continue
            errs += validate(doc[k], sub, f"{path}.{k}")
        return errs
    nullable = spec.endswith("|null")
    base = spec[:-5] if nullable else spec
    if nullable and doc is None:
        return []
    if base.startswith("str:"):
        allowed = base[4:].split("|")
        if not isinstance(doc, str) or doc not in allowed:
            return [f"{path}: {doc!r} is not one of {allowed}"]
        return []
    if not _type_ok(base, doc):
        return [f"{path}: expected {spec}, got {type(doc).__name__} {str(doc)[:40]!r}"]
    return []


def keys(spec=REPORT, prefix=""):
    """Every documented key path (for the docs' consistency test)."""
    out = []
    if isinstance(spec, list) and spec and spec[0] == "list":
        return keys(spec[1], prefix + "[]")
    if isinstance(spec, list):
        return [k for alt in spec for k in keys(alt, prefix)]
    if isinstance(spec, dict):
        for key, sub in spec.items():
            p = f"{prefix}.{key.rstrip('?')}" if prefix else key.rstrip("?")
            out.append(p)
            out += keys(sub, p)
    return out
