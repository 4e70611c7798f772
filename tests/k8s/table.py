"""meta.k8s.io/v1 Table output for `kubectl get`.

Custom resources use their CRD's additionalPrinterColumns (NAME first, then the columns; NAME and
AGE when the CRD lists none). Column values come from a small JSONPath evaluator that knows the
simple paths CRDs use: `.a.b`, `.a[0]`, `.a[*].b`, `.a['k.with.dots']` and filters
`[?(@.f=="v")]` / `[?(@.f!="v")]`. Columns of type `date` are rendered as an age ("5m") by the
server, as the real apiextensions server does; integers and numbers stay numbers.
Built-in kinds get NAME and AGE, plus READY for StatefulSets/Deployments and READY/STATUS for
pods.
"""

import datetime
import json
import re


def parse_time(value):
    try:
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_duration(seconds):
    """The compact age format kubectl prints (`45s`, `3m20s`, `5h`, `2d3h`, `400d`, `3y`)."""
    if seconds < -1:
        return "<invalid>"
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp):
    t = parse_time(timestamp)
    if t is None:
        return "<unknown>"
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())


_TOKEN = re.compile(r"""\.([A-Za-z0-9_\-$]+)|\[(\d+|\*)\]|\['([^']*)'\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|([^)\s]+))\)\]|\.\.?\*""")


def jsonpath(obj, path):
    """Every value `path` selects in `obj` (a list; empty when nothing matches)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    nodes = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {path!r} at {pos}")
        pos = m.end()
        field, index, quoted, ffield, fop, fv1, fv2, fv3 = m.groups()
        out = []
        for node in nodes:
            if field is not None or quoted is not None:
                key = field if field is not None else quoted
                if isinstance(node, dict) and key in node:
                    out.append(node[key])
            elif index is not None:
                if isinstance(node, list):
                    out.extend(node if index == "*" else node[int(index):int(index) + 1])
            elif ffield is not None:
                want = next(v for v in (fv1, fv2, fv3) if v is not None)
                for item in node if isinstance(node, list) else []:
                    got = item
                    for part in ffield.split("."):
                        got = got.get(part) if isinstance(got, dict) else None
                    text = got if isinstance(got, str) else json.dumps(got)
                    if (text == want) == (fop == "=="):
                        out.append(item)
            else:  # .* / [*] on objects
                if isinstance(node, dict):
                    out.extend(node.values())
                elif isinstance(node, list):
                    out.extend(node)
        nodes = out
    return nodes


def _cell(column, obj):
    try:
        values = jsonpath(obj, column.get("jsonPath", ""))
    except ValueError:
        return None
    if not values or values[0] is None:
        return None
    value, kind = values[0], column.get("type", "string")
    if kind == "date":
        return age(value) if isinstance(value, str) else None
    if kind == "integer":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)


_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."}
_AGE = {"name": "Age", "type": "string", "format": "", "priority": 0,
        "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}


def _col(name, description=""):
    return {"name": name, "type": "string", "format": "", "priority": 0, "description": description}


def _builtin_columns(res):
    """(column definitions, cell function) for a built-in kind."""
    created = lambda o: age(o["metadata"].get("creationTimestamp"))
    if res.kind in ("StatefulSet", "Deployment"):
        def ready(o):
            status = o.get("status") or {}
            return f"{status.get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}"
        return [_NAME, _col("Ready"), _AGE], lambda o: [o["metadata"]["name"], ready(o), created(o)]
    if res.kind == "Pod":
        def ready(o):
            statuses = (o.get("status") or {}).get("containerStatuses") or []
            total = len((o.get("spec") or {}).get("containers") or [])
            return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"
        phase = lambda o: (o.get("status") or {}).get("phase", "Pending")
        return ([_NAME, _col("Ready"), _col("Status"), _AGE],
                lambda o: [o["metadata"]["name"], ready(o), phase(o), created(o)])
    return [_NAME, _AGE], lambda o: [o["metadata"]["name"], created(o)]


def _custom_columns(res, version):
    columns = (res.columns or {}).get(version) or []
    if not columns:
        return [_NAME, _AGE], lambda o: [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp"))]
    defs = [_NAME] + [{"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                       "description": c.get("description", ""), "priority": c.get("priority", 0)}
                      for c in columns]
    return defs, lambda o: [o["metadata"]["name"]] + [_cell(c, o) for c in columns]


def to_table(res, version, objects, list_rv=None, include_object="Metadata"):
    """A meta.k8s.io/v1 Table of `objects` (each row carries PartialObjectMetadata by default)."""
    defs, cells = _custom_columns(res, version) if res.crd_name else _builtin_columns(res)
    rows = []
    for obj in objects:
        row = {"cells": cells(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    table = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
             "columnDefinitions": defs, "rows": rows}
    if list_rv is not None:
        table["metadata"]["resourceVersion"] = list_rv
    return table
