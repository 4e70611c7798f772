"""Patch formats the fake API server accepts.

- JSON merge patch (RFC 7386): `merge_patch`.
- Strategic merge patch: `strategic_merge_patch`. Simplified: lists whose elements are objects are
  merged by a key field chosen from the list's name (`containers`/`env`/`volumes`... by `name`,
  `ports` by `containerPort` or `port`, `volumeMounts` by `mountPath`, `conditions` by `type`,
  and any list whose elements all carry `name`); other lists are replaced. Directives: `$patch:
  delete` / `$patch: replace` on list elements and maps, `$deleteFromPrimitiveList/<field>`; the
  `$setElementOrder/<field>` and `$retainKeys` directives are accepted and ignored (order kept as
  merged, unlisted keys kept).
- JSON patch (RFC 6902): `json_patch`, all six operations.
Errors are raised as PatchError; the server turns them into 422/400 Status bodies.
"""

import copy
import json


class PatchError(Exception):
    pass


def merge_patch(target, patch):
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_LIST_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name",
    "conditions": "type", "volumeClaimTemplates": "name", "tolerations": "key",
    "ownerReferences": "uid", "envFrom": None, "args": None, "command": None,
}


def _merge_key(field, target_list, patch_list):
    if field in _LIST_KEYS:
        return _LIST_KEYS[field]
    items = [x for x in list(target_list or []) + list(patch_list) if isinstance(x, dict)]
    if not items or len(items) != len(target_list or []) + len(patch_list):
        return None
    if field == "ports":
        for key in ("containerPort", "port"):
            if all(key in x for x in items):
                return key
    if all("name" in x for x in items):
        return "name"
    return None


def strategic_merge_patch(target, patch):
    """Merges `patch` into a deep copy of `target` with the simplified strategic rules above."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key in ("$retainKeys", "$patch") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            merged = _merge_list(key, result.get(key), value)
            result[key] = merged
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(field, target_list, patch_list):
    key = _merge_key(field, target_list, patch_list)
    if key is None or not isinstance(target_list, list):
        return [copy.deepcopy(x) for x in patch_list
                if not (isinstance(x, dict) and x.get("$patch"))]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch_list):
        return [copy.deepcopy(x) for x in patch_list if not x.get("$patch")]
    result = [copy.deepcopy(x) for x in target_list]
    for item in patch_list:
        index = next((i for i, x in enumerate(result) if x.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


# --- RFC 6902 ------------------------------------------------------------------------------------
def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts, op):
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"{op}: path element {part!r} does not exist")
    return node


def _get(doc, path, op):
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError(f"{op}: {path!r} does not exist")


def _remove(doc, path, op):
    parts = _pointer(path)
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"{op}: {path!r} does not exist")


def _add(doc, path, value, op, replace=False):
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, op)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"replace: {path!r} does not exist")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise PatchError(f"{op}: index {last!r} out of range")
    else:
        raise PatchError(f"{op}: parent of {path!r} is not a container")
    return doc


def json_patch(target, operations):
    """RFC 6902 on a deep copy of `target`; a failed `test` raises PatchError."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        op = operation.get("op")
        path = operation.get("path", "")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")), op)
        elif op == "replace":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")), op, replace=True)
        elif op == "remove":
            _remove(doc, path, op)
        elif op == "move":
            value = _remove(doc, operation.get("from", ""), op)
            doc = _add(doc, path, value, op)
        elif op == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, operation.get("from", ""), op)), op)
        elif op == "test":
            if _get(doc, path, op) != operation.get("value"):
                raise PatchError(f"test failed at {path!r}: {json.dumps(operation.get('value'))}")
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return doc


# --- simple dotted paths (scale subresource) --------------------------------------------------------
def get_path(obj, dotted):
    node = obj
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_path(obj, dotted, value):
    parts = [p for p in dotted.split(".") if p]
    node = obj
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
