"""Decodes the protobuf request bodies kubectl's typed commands send (`kubectl create ns`,
`kubectl create configmap`, `kubectl create secret generic`).

Only what those commands carry: the `k8s\\0` + runtime.Unknown envelope, ObjectMeta (names,
labels, annotations, ownerReferences, finalizers), and the Namespace, ConfigMap and Secret bodies.
Any other kind raises ValueError (the server answers 415 and names `kubectl apply -f` instead).
Responses are always JSON; clients read the response Content-Type.
"""

import base64

MAGIC = b"k8s\x00"


def _varint(data, pos):
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data):
    """Yields (field number, value) with length-delimited values as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _map_entry(data, bytes_value=False):
    key, value = "", b"" if bytes_value else ""
    for number, v in _fields(data):
        if number == 1:
            key = v.decode()
        elif number == 2:
            value = v if bytes_value else v.decode()
    return key, value


def _owner_reference(data):
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    ref = {}
    for number, v in _fields(data):
        if number in names:
            ref[names[number]] = v.decode()
        elif number == 6:
            ref["controller"] = bool(v)
        elif number == 7:
            ref["blockOwnerDeletion"] = bool(v)
    return ref


def _object_meta(data):
    strings = {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}
    meta = {}
    for number, v in _fields(data):
        if number in strings:
            meta[strings[number]] = v.decode()
        elif number in (11, 12):
            k, val = _map_entry(v)
            meta.setdefault("labels" if number == 11 else "annotations", {})[k] = val
        elif number == 13:
            meta.setdefault("ownerReferences", []).append(_owner_reference(v))
        elif number == 14:
            meta.setdefault("finalizers", []).append(v.decode())
    return meta


def decode(body):
    """The JSON-shaped object a protobuf request body holds."""
    if not body.startswith(MAGIC):
        raise ValueError("protobuf body lacks the k8s\\0 prefix")
    api_version = kind = ""
    raw = b""
    for number, v in _fields(body[len(MAGIC):]):
        if number == 1:
            for n, tv in _fields(v):
                if n == 1:
                    api_version = tv.decode()
                elif n == 2:
                    kind = tv.decode()
        elif number == 2:
            raw = v
    obj = {"apiVersion": api_version, "kind": kind}
    for number, v in _fields(raw):
        if number == 1:
            obj["metadata"] = _object_meta(v)
        elif kind == "Namespace" and number == 2:
            obj["spec"] = {"finalizers": [f.decode() for n, f in _fields(v) if n == 1]}
        elif kind == "ConfigMap" and number == 2:
            k, val = _map_entry(v)
            obj.setdefault("data", {})[k] = val
        elif kind == "ConfigMap" and number == 3:
            k, val = _map_entry(v, bytes_value=True)
            obj.setdefault("binaryData", {})[k] = base64.b64encode(val).decode()
        elif kind in ("ConfigMap", "Secret") and number in (4, 5) and not (kind == "Secret" and number == 4):
            obj["immutable"] = bool(v)
        elif kind == "Secret" and number == 2:
            k, val = _map_entry(v, bytes_value=True)
            obj.setdefault("data", {})[k] = base64.b64encode(val).decode()
        elif kind == "Secret" and number == 3:
            obj["type"] = v.decode()
        elif kind == "Secret" and number == 4:
            k, val = _map_entry(v)
            obj.setdefault("stringData", {})[k] = val
    if kind not in ("Namespace", "ConfigMap", "Secret"):
        raise ValueError(f"protobuf bodies of kind {kind!r} are not decoded by the fake API server; "
                         "use `kubectl apply -f` (JSON) instead")
    return obj
