"""Label and field selectors as they appear in `labelSelector=` and `fieldSelector=` query parameters.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-joined.
Field selectors: `path=v`, `path==v`, `path!=v` comma-joined, where path is any dotted field path
(`metadata.name`, `metadata.namespace`, `status.phase`, `involvedObject.name`, ...). The real
server only allows a few fields per kind; this one allows any, and a missing field reads as "".
A malformed selector raises ValueError (the server answers 400 BadRequest).
"""

import re

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./\-]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([A-Za-z0-9_.\-]*))?\s*$")


def _split_top(text):
    """Splits on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def parse_label_selector(text):
    """A predicate over a labels dict."""
    requirements = []
    for part in _split_top(text or ""):
        m = _SET_RE.match(part)
        if not m:
            raise ValueError(f"unable to parse requirement: {part.strip()!r}")
        negate, key, set_op, set_values, op, value = m.groups()
        if negate and (set_op or op):
            raise ValueError(f"unable to parse requirement: {part.strip()!r}")
        if set_op:
            values = {v.strip() for v in set_values.split(",") if v.strip()}
            requirements.append((key, set_op, values))
        elif op:
            requirements.append((key, "!=" if op == "!=" else "=", value))
        else:
            requirements.append((key, "!exists" if negate else "exists", None))

    def matches(labels):
        labels = labels or {}
        for key, op, arg in requirements:
            present = key in labels
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
            if op == "=" and labels.get(key) != arg:
                return False
            if op == "!=" and present and labels[key] == arg:
                return False
            if op == "in" and labels.get(key) not in arg:
                return False
            if op == "notin" and present and labels[key] in arg:
                return False
        return True
    return matches


def parse_field_selector(text):
    """A predicate over a whole object."""
    requirements = []
    for part in [p for p in (text or "").split(",") if p.strip()]:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ValueError(f"invalid field selector: {part.strip()!r}")
        requirements.append((m.group(1), m.group(2) != "!=", m.group(3)))

    def field(obj, path):
        node = obj
        for p in path.split("."):
            node = node.get(p) if isinstance(node, dict) else None
        if node is None:
            return ""
        if isinstance(node, bool):
            return "true" if node else "false"
        return str(node)

    def matches(obj):
        return all((field(obj, path) == value) == equal for path, equal, value in requirements)
    return matches
