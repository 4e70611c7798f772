"""Kubernetes REST semantics: routes one parsed request to discovery, CRUD, subresources or watch.

`handle()` returns a Response; watches return one whose `stream` callable writes WatchEvents
through the `emit` function the HTTP layer gives it. Nothing here touches sockets.

Simplifications (see also storage.py, patch.py, table.py, schema.py): no dryRun (the write
happens), no protobuf except the request bodies
of `kubectl create ns|configmap|secret` (protobuf.py; everything else JSON, 415 otherwise), no aggregated discovery v2 (the legacy format is
served with a plain application/json content type, which clients take as "not aggregated"),
no OpenAPI documents (404), no sendInitialEvents/watch-list, server-side apply merges the applied
object into the live one (no field-ownership conflicts, fields dropped from the applied config are
not removed), strategic merge patch is refused for custom resources as on a real server.
"""

import copy
import dataclasses
import json
import time

import yaml

import patch as patches
import protobuf
import resources
import table
from label_selectors import parse_field_selector, parse_label_selector
from storage import ApiError, now


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict  # name -> first value
    headers: dict  # lower-case name -> value
    body: bytes


@dataclasses.dataclass
class Response:
    code: int = 200
    body: object = None
    content_type: str = "application/json"
    stream: object = None  # callable(emit) for watches


def _json(code, body):
    return Response(code, body)


def handle(store, req, server_address, bookmark_interval):
    segs = [s for s in req.path.split("/") if s]
    if req.method == "GET":
        if req.path in ("/healthz", "/readyz", "/livez"):
            return Response(200, "ok", "text/plain")
        if req.path == "/version":
            return _json(200, resources.SERVER_VERSION)
        if req.path == "/api":
            return _json(200, store.registry.api_versions(server_address))
        if req.path == "/apis":
            return _json(200, store.registry.api_group_list())
        if len(segs) == 2 and segs[0] == "apis":
            found = store.registry.api_group(segs[1])
            return _json(200, found) if found else _not_found_path()
        if (len(segs) == 2 and segs[0] == "api") or (len(segs) == 3 and segs[0] == "apis"):
            group, version = ("", segs[1]) if segs[0] == "api" else (segs[1], segs[2])
            found = store.registry.api_resource_list(group, version)
            return _json(200, found) if found else _not_found_path()
    if segs[:1] == ["api"] and len(segs) >= 3:
        group, version, rest = "", segs[1], segs[2:]
    elif segs[:1] == ["apis"] and len(segs) >= 4:
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        return _not_found_path()
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        inner = store.registry.lookup(group, version, rest[2])
        if inner is not None and inner.namespaced:
            ns, rest = rest[1], rest[2:]
    res = store.registry.lookup(group, version, rest[0])
    if res is None or len(rest) > 3 or (ns is not None and not res.namespaced):
        return _not_found_path()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub not in (None, "status", "scale") or (sub == "status" and not res.status) or (
            sub == "scale" and not res.scale):
        return _not_found_path()
    return _Call(store, req, res, version, ns, name, sub, bookmark_interval).run()


def _not_found_path():
    return _json(404, ApiError(404, "NotFound", "the server could not find the requested resource").status())


class _Call:
    def __init__(self, store, req, res, version, ns, name, sub, bookmark_interval):
        self.store, self.req, self.res, self.version = store, req, res, version
        self.ns, self.name, self.sub = ns, name, sub
        self.bookmark_interval = bookmark_interval
        accept = req.headers.get("accept", "")
        self.as_table = "as=Table" in accept
        self.as_meta = "as=PartialObjectMetadata" in accept

    def run(self):
        m, q = self.req.method, self.req.query
        if self.name is None:
            if m == "GET":
                return self.watch() if q.get("watch") in ("true", "1") else self.list()
            if m == "POST":
                return self.create()
            if m == "DELETE":
                return self.delete_collection()
        else:
            if m == "GET":
                return self.get()
            if m == "PUT":
                return self.update()
            if m == "PATCH":
                return self.patch()
            if m == "DELETE" and self.sub is None:
                return self.delete()
        return _json(405, ApiError(405, "MethodNotAllowed",
                                   f"the server does not allow this method on the requested resource").status())

    # --- presentation ----------------------------------------------------------------------------
    def present(self, obj):
        obj["apiVersion"], obj["kind"] = self.res.api_version(self.version), self.res.kind
        if self.as_meta:
            return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"]}
        return obj

    def one(self, code, obj):
        if self.sub == "scale":
            return _json(code, self.scale_of(obj))
        obj = self.present(obj)
        if self.as_table:
            return _json(code, table.to_table(self.res, self.version, [obj],
                                              include_object=self.req.query.get("includeObject", "Metadata")))
        return _json(code, obj)

    def predicate(self):
        try:
            labels = parse_label_selector(self.req.query.get("labelSelector", ""))
            fields = parse_field_selector(self.req.query.get("fieldSelector", ""))
        except ValueError as e:
            raise ApiError(400, "BadRequest", str(e))
        return lambda o: labels(o["metadata"].get("labels")) and fields(o)

    def body(self):
        ctype = self.req.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(self.req.body)
            except (ValueError, IndexError, UnicodeDecodeError) as e:
                raise ApiError(415, "UnsupportedMediaType", f"could not decode the protobuf body: {e}")
        try:
            text = self.req.body.decode("utf-8")
            if ctype == "application/apply-patch+yaml" or ctype.endswith("yaml"):
                return yaml.safe_load(text)
            if ctype.startswith("application/") and "json" in ctype:
                return json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, "BadRequest", f"the body of the request could not be decoded: {e}")
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                       f"format {ctype!r}: accepted media types include application/json")

    # --- verbs ----------------------------------------------------------------------------------
    def get(self):
        return self.one(200, self.store.get(self.res, self.ns, self.name))

    def list(self):
        q = self.req.query
        items, rv = self.store.list(self.res, self.ns, self.predicate(), q.get("resourceVersion", ""),
                                    q.get("resourceVersionMatch") == "Exact")
        start = 0
        if q.get("continue"):
            try:
                start = int(q["continue"])
            except ValueError:
                raise ApiError(400, "BadRequest", "invalid continue token")
        limit = int(q.get("limit") or 0)
        end = start + limit if limit > 0 else len(items)
        page, cont = items[start:end], (str(end) if end < len(items) else "")
        page = [self.present(o) for o in page]
        if self.as_table:
            out = table.to_table(self.res, self.version, page, rv, q.get("includeObject", "Metadata"))
        elif self.as_meta:
            out = {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "items": page,
                   "metadata": {"resourceVersion": rv}}
        else:
            out = {"kind": self.res.kind + "List", "apiVersion": self.res.api_version(self.version),
                   "metadata": {"resourceVersion": rv}, "items": page}
        if cont:
            out["metadata"]["continue"] = cont
            out["metadata"]["remainingItemCount"] = len(items) - end
        return _json(200, out)

    def create(self):
        obj = self.body()
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body of a create must be an object")
        self.check_kind(obj)
        return self.one(201, self.store.create(self.res, self.ns, obj))

    def check_kind(self, obj):
        if obj.get("kind") not in (None, "", self.res.kind):
            raise ApiError(400, "BadRequest", f"the kind {obj.get('kind')!r} of the object does not "
                           f"match the resource {self.res.qualified} ({self.res.kind})")
        obj["apiVersion"] = self.res.api_version(self.version)
        obj["kind"] = self.res.kind

    def update(self):
        body = self.body()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of an update must be an object")
        if self.sub == "scale":
            return self.one(200, self.store.modify(self.res, self.ns, self.name,
                                                   lambda cur: self.apply_scale(cur, body), None))
        self.check_kind(body)
        return self.one(200, self.store.modify(self.res, self.ns, self.name, lambda cur: body, self.sub))

    def patch(self):
        ctype = self.req.headers.get("content-type", "").split(";")[0].strip()
        body = self.body()
        if ctype == "application/strategic-merge-patch+json" and self.res.crd_name:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                           "format - accepted media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml")
        known = {"application/merge-patch+json": patches.merge_patch,
                 "application/strategic-merge-patch+json": patches.strategic_merge_patch,
                 "application/json-patch+json": patches.json_patch,
                 "application/apply-patch+yaml": self.apply_merge}
        if ctype not in known:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                           f"format {ctype!r}")
        apply_fn = known[ctype]

        def mutate(cur):
            try:
                if self.sub == "scale":
                    return self.apply_scale(cur, apply_fn(self.scale_of(cur), body))
                new = apply_fn(cur, body)
            except patches.PatchError as e:
                raise ApiError(422, "Invalid", str(e), self.name, self.res)
            if isinstance(new, dict) and ctype == "application/apply-patch+yaml":
                self.record_manager(new)
            return new
        try:
            return self.one(200, self.store.modify(self.res, self.ns, self.name, mutate, self.sub))
        except ApiError as e:
            if e.code != 404 or ctype != "application/apply-patch+yaml" or self.sub:
                raise
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "an applied configuration must be an object")
        self.check_kind(body)
        body.setdefault("metadata", {})["name"] = self.name
        self.record_manager(body)
        return self.one(201, self.store.create(self.res, self.ns, body))

    def apply_merge(self, live, applied):
        if not isinstance(applied, dict):
            raise patches.PatchError("an applied configuration must be an object")
        applied = copy.deepcopy(applied)
        (applied.get("metadata") or {}).pop("managedFields", None)
        merge = patches.merge_patch if self.res.crd_name else patches.strategic_merge_patch
        return merge(live, applied)

    def record_manager(self, obj):
        manager = self.req.query.get("fieldManager") or "unknown"
        meta = obj.setdefault("metadata", {})
        entries = [e for e in meta.get("managedFields") or []
                   if not (e.get("manager") == manager and e.get("operation") == "Apply")]
        entries.append({"manager": manager, "operation": "Apply",
                        "apiVersion": self.res.api_version(self.version), "time": now(),
                        "fieldsType": "FieldsV1", "fieldsV1": {}})
        meta["managedFields"] = entries

    def delete_options(self):
        opts = {}
        if self.req.body.strip():
            try:
                opts = json.loads(self.req.body.decode("utf-8")) or {}
            except ValueError as e:
                raise ApiError(400, "BadRequest", f"invalid DeleteOptions: {e}")
        policy = self.req.query.get("propagationPolicy") or opts.get("propagationPolicy")
        if not policy and (opts.get("orphanDependents") or self.req.query.get("orphanDependents") == "true"):
            policy = "Orphan"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise ApiError(400, "BadRequest", f"unknown propagationPolicy {policy!r}")
        return policy or "Background", opts.get("preconditions")

    def delete(self):
        policy, pre = self.delete_options()
        obj = self.store.delete(self.res, self.ns, self.name, policy, pre)
        return self.one(202 if obj["metadata"].get("deletionTimestamp") else 200, obj)

    def delete_collection(self):
        policy, _ = self.delete_options()
        items, rv = self.store.list(self.res, self.ns, self.predicate())
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                deleted.append(self.present(self.store.delete(self.res, meta.get("namespace"),
                                                              meta["name"], policy)))
            except ApiError as e:
                if e.code != 404:
                    raise
        return _json(200, {"kind": self.res.kind + "List", "apiVersion": self.res.api_version(self.version),
                           "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted})

    # --- scale subresource --------------------------------------------------------------------------
    def scale_of(self, obj):
        sc = self.res.scale
        meta = obj["metadata"]
        if sc.label_selector == "matchLabels":
            labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        else:
            selector = patches.get_path(obj, sc.label_selector) if sc.label_selector else None
        status = {"replicas": int(patches.get_path(obj, sc.status_replicas) or 0)}
        if selector:
            status["selector"] = selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": int(patches.get_path(obj, sc.spec_replicas) or 0)},
                "status": status}

    def apply_scale(self, cur, scale):
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{self.name}" is invalid: spec.replicas: '
                           f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                           self.name, self.res, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                                  "message": "must be greater than or equal to 0"}])
        patches.set_path(cur, self.res.scale.spec_replicas, replicas)
        cur["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get("resourceVersion")
        return cur

    # --- watch ------------------------------------------------------------------------------------
    def watch(self):
        q = self.req.query
        predicate = self.predicate()
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        rv_text = q.get("resourceVersion", "")
        store, res = self.store, self.res
        if rv_text not in ("", "0"):
            try:
                int(rv_text)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version: {rv_text!r}")

        def matches(obj):
            return obj is not None and (self.ns is None or obj["metadata"].get("namespace") == self.ns) \
                and predicate(obj)

        def wrap(kind, obj):
            obj = self.present(copy.deepcopy(obj))
            if self.as_table:
                obj = table.to_table(res, self.version, [obj], include_object=q.get("includeObject", "Metadata"))
            return {"type": kind, "object": obj}

        def stream(emit):
            deadline = time.monotonic() + timeout
            with store.cond:
                epoch = store.drop_epoch
                initial = []
                if rv_text in ("", "0"):
                    pos = store.rv
                    initial = [o for _, o in sorted(store.objects[res.key].items(),
                                                   key=lambda kv: (kv[0][0] or "", kv[0][1])) if matches(o)]
                    initial = [copy.deepcopy(o) for o in initial]
                else:
                    pos = int(rv_text)
                    gone = pos < store.oldest
            if not initial and rv_text not in ("", "0") and gone:
                emit({"type": "ERROR", "object": ApiError(
                    410, "Expired", f"too old resource version: {pos} ({store.oldest + 1})").status()})
                return "end"
            for obj in initial:
                emit(wrap("ADDED", obj))
            next_bookmark = time.monotonic() + self.bookmark_interval
            while True:
                out, end = [], None
                with store.cond:
                    if not (store.closed or store.drop_epoch != epoch or pos < store.oldest):
                        if not any(e.rv > pos for e in reversed(store.history)):
                            wait = min(deadline, next_bookmark if bookmarks else deadline) - time.monotonic()
                            if wait > 0:
                                store.cond.wait(wait)
                    if store.closed or store.drop_epoch != epoch:
                        end = "abrupt" if getattr(store, "abrupt", False) else "end"
                    elif pos < store.oldest:
                        end = "gone"
                    else:
                        for e in [e for e in store.history if e.rv > pos]:
                            pos = e.rv
                            if e.key == res.key:
                                out.append(e)
                for e in out:
                    new_m, old_m = matches(e.obj), matches(e.old)
                    if e.type == "ADDED" and new_m:
                        emit(wrap("ADDED", e.obj))
                    elif e.type == "MODIFIED" and (new_m or old_m):
                        emit(wrap("MODIFIED" if new_m and old_m else "ADDED" if new_m else "DELETED", e.obj))
                    elif e.type == "DELETED" and (new_m or old_m):
                        emit(wrap("DELETED", e.obj))
                if end == "gone":
                    emit({"type": "ERROR", "object": ApiError(
                        410, "Expired", f"too old resource version: {pos} ({store.oldest + 1})").status()})
                    return "end"
                if end:
                    return end
                t = time.monotonic()
                if bookmarks and t >= next_bookmark:
                    emit({"type": "BOOKMARK", "object": {
                        "kind": res.kind, "apiVersion": res.api_version(self.version),
                        "metadata": {"resourceVersion": str(pos)}}})
                    next_bookmark = t + self.bookmark_interval
                if t >= deadline:
                    return "end"
        return Response(200, None, "application/json", stream)
