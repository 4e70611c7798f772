"""In-memory object storage with Kubernetes write semantics and a bounded watch history.

One lock guards everything. Every write takes the next value of a single global counter as its
resourceVersion and appends a watch event (with the object's previous state, so watches can
apply selectors to transitions and lists can be served at an exact older resourceVersion).
The history keeps the last `history_size` events; `compact()` forgets all of it. A watch or an
exact list from before the kept history is answered with 410 Gone.

Semantics kept from the real server: uid/creationTimestamp/resourceVersion/generation,
optimistic concurrency on PUT and on patches that carry metadata.resourceVersion, no-op writes
that change nothing are not stored, status subresource split (the main endpoint keeps the stored
status, /status keeps everything else, create drops status), finalizers and deletionTimestamp,
ownerReference garbage collection (synchronous: Background deletes the owner then its
dependents, Foreground the dependents first, Orphan strips the ownerReferences), namespace
deletion removes the namespace's objects, CRD deletion removes the CRD's objects, quantity
fields of built-in kinds stored in canonical form ("1000m" as "1"; quantity.py).
"""

import base64
import collections
import copy
import datetime
import random
import re
import threading
import uuid

import quantity
import resources
import schema as crd_schema

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_GENERATION_KINDS = {"StatefulSet", "Deployment", "PodDisruptionBudget", "NetworkPolicy",
                     "CustomResourceDefinition"}


class ApiError(Exception):
    def __init__(self, code, reason, message, name=None, res=None, causes=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.name, self.res, self.causes = name, res, causes

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        details = {}
        if self.name:
            details["name"] = self.name
        if self.res is not None:
            details["kind"] = self.res.plural
            if self.res.group:
                details["group"] = self.res.group
        if self.causes:
            details["causes"] = self.causes
        if details:
            body["details"] = details
        return body


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', name, res)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


Event = collections.namedtuple("Event", "rv key type obj old")


def _strip_volatile(obj):
    """The parts of an object whose change makes a write real (not a no-op)."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata", {})
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    return out


def _spec_part(obj, res):
    """Everything whose change bumps metadata.generation."""
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if res.status else set())
    return {k: v for k, v in obj.items() if k not in skip}


class Store:
    def __init__(self, history_size=1000):
        self.cond = threading.Condition()
        self.registry = resources.Registry()
        self.rv = 1
        self.objects = collections.defaultdict(dict)  # (group, plural) -> {(ns, name): obj}
        self.history = collections.deque()
        self.history_size = history_size
        self.oldest = 0  # every event with rv > oldest is in history
        self.drop_epoch = 0  # bumped to end every open watch
        self.abrupt = False  # whether the last drop closed streams without their last chunk
        self.closed = False
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(self.registry.by_key(("", "namespaces")), None,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # --- history ---------------------------------------------------------------------------------
    def _record(self, key, kind, obj, old):
        self.history.append(Event(self.rv, key, kind, copy.deepcopy(obj), copy.deepcopy(old)))
        while len(self.history) > self.history_size:
            self.oldest = self.history.popleft().rv
        self.cond.notify_all()

    def _next_rv(self):
        self.rv += 1
        return str(self.rv)

    def compact(self):
        with self.cond:
            self.oldest = self.rv
            self.history.clear()

    def drop_watches(self, abrupt=False):
        with self.cond:
            self.drop_epoch += 1
            self.abrupt = abrupt
            self.cond.notify_all()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def check_rv(self, rv_text, res):
        """Raises 410 Gone for a resourceVersion older than the kept history, 504 for a future one."""
        try:
            rv = int(rv_text)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resource version: {rv_text!r}")
        if rv < self.oldest:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.oldest + 1})")
        if rv > self.rv:
            raise ApiError(504, "Timeout", f"Too large resource version: {rv}, current: {self.rv}")
        return rv

    # --- reads -----------------------------------------------------------------------------------
    def get(self, res, ns, name):
        with self.cond:
            obj = self.objects[res.key].get((ns, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def list(self, res, ns, predicate, rv_text="", exact=False):
        """(items sorted by namespace/name, list resourceVersion)."""
        with self.cond:
            state = dict(self.objects[res.key])
            list_rv = self.rv
            if rv_text not in ("", "0"):
                rv = self.check_rv(rv_text, res)
                if exact:  # roll back the events after rv
                    for event in reversed(self.history):
                        if event.rv <= rv:
                            break
                        if event.key != res.key:
                            continue
                        k = (event.obj["metadata"].get("namespace"), event.obj["metadata"]["name"])
                        if event.old is None:
                            state.pop(k, None)
                        else:
                            state[k] = event.old
                    list_rv = rv
            items = [copy.deepcopy(o) for k, o in sorted(state.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                     if (ns is None or k[0] == ns) and predicate(o)]
            return items, str(list_rv)

    # --- writes ----------------------------------------------------------------------------------
    def create(self, res, ns, obj):
        with self.cond:
            return self._create(res, ns, obj)

    def _create(self, res, ns, obj):
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
            if (None, ns) not in self.objects[("", "namespaces")]:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', ns,
                               self.registry.by_key(("", "namespaces")))
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
            ns = None
        if not meta.get("name") and meta.get("generateName"):
            for _ in range(100):
                name = meta["generateName"] + "".join(random.choice(_GENERATE_CHARS) for _ in range(5))
                if (ns, name) not in self.objects[res.key]:
                    meta["name"] = name
                    break
        name = meta.get("name", "")
        if not name:
            raise ApiError(422, "Invalid", f"{res.kind}.{res.group or 'core'} \"\" is invalid: "
                           "metadata.name: Required value: name or generateName is required",
                           None, res, [{"reason": "FieldValueRequired", "field": "metadata.name",
                                        "message": "Required value"}])
        if len(name) > 253 or not _NAME_RE.match(name):
            raise ApiError(422, "Invalid", f'{res.kind} "{name}" is invalid: metadata.name: Invalid '
                           f'value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                           "case alphanumeric characters, '-' or '.'", name, res,
                           [{"reason": "FieldValueInvalid", "field": "metadata.name",
                             "message": "Invalid value"}])
        if (ns, name) in self.objects[res.key]:
            raise ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', name, res)
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if res.status and res.key != resources.CRD_KEY:
            obj.pop("status", None)
        if res.crd_name or res.kind in _GENERATION_KINDS:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._admit(res, obj, name)
        if res.key == resources.CRD_KEY:
            obj["status"] = resources.crd_status(obj)
        meta["resourceVersion"] = self._next_rv()
        self.objects[res.key][(ns, name)] = obj
        self._record(res.key, "ADDED", obj, None)
        if res.key == resources.CRD_KEY:
            self._sync_crds()
        return copy.deepcopy(obj)

    def _admit(self, res, obj, name):
        """Canonical quantities for built-in kinds; defaulting, pruning and validation for custom resources."""
        if res.kind == "Secret" and obj.get("stringData"):  # write-only field, folded into data
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        if not res.crd_name:
            if res.key != resources.CRD_KEY:
                try:  # decoded into Go types and written back: quantities come out canonical
                    quantity.canonicalize_fields(obj)
                except quantity.QuantityError as e:
                    raise ApiError(400, "BadRequest", f"{res.kind} \"{name}\": {e}") from None
            return
        version = obj.get("apiVersion", "").split("/")[-1]
        spec_schema = res.schemas.get(version) or res.schemas.get(res.versions[0]) or {}
        if not spec_schema:
            return
        crd_schema.prune(obj, spec_schema, root=True)
        crd_schema.apply_defaults(obj, spec_schema)
        causes = crd_schema.validate(obj, spec_schema)
        if causes:
            details = ", ".join(c["message"] for c in causes)
            raise ApiError(422, "Invalid", f'{res.kind}.{res.group} "{name}" is invalid: [{details}]'
                           if len(causes) > 1 else f'{res.kind}.{res.group} "{name}" is invalid: {details}',
                           name, res, causes)

    def modify(self, res, ns, name, mutate, subresource=None):
        """Replaces an object with `mutate(copy of current)`, with update semantics.

        `mutate` may raise ApiError. A metadata.resourceVersion in its result that differs from
        the stored one is a Conflict; an empty one is an unconditional update.
        """
        with self.cond:
            current = self.objects[res.key].get((ns, name))
            if current is None:
                raise not_found(res, name)
            new = mutate(copy.deepcopy(current))
            if not isinstance(new, dict):
                raise ApiError(400, "BadRequest", "the object must be a JSON object")
            meta = new.setdefault("metadata", {})
            want_rv = meta.get("resourceVersion")
            if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} '
                               f'"{name}": the object has been modified; please apply your changes '
                               "to the latest version and try again", name, res)
            if meta.get("name") not in (None, name):
                raise ApiError(400, "BadRequest", f'the name of the object ({meta.get("name")}) does '
                               f"not match the name on the URL ({name})")
            new = self._merge_update(res, current, new, subresource)
            self._admit(res, new, name)
            if _strip_volatile(new) == _strip_volatile(current):
                return copy.deepcopy(current)
            return self._store_update(res, ns, name, current, new)

    def _merge_update(self, res, current, new, subresource):
        if subresource == "status":
            merged = copy.deepcopy(current)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        if res.status and res.key != resources.CRD_KEY:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        meta, old_meta = new["metadata"], current["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        new["apiVersion"], new["kind"] = current.get("apiVersion"), current.get("kind")
        if res.key == resources.CRD_KEY:
            new["status"] = resources.crd_status(new)
            new["status"]["conditions"] = current.get("status", {}).get("conditions", [])
        return new

    def _store_update(self, res, ns, name, current, new):
        meta = new["metadata"]
        if "generation" in meta and _spec_part(new, res) != _spec_part(current, res):
            meta["generation"] = current["metadata"].get("generation", 1) + 1
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(res, ns, name, new, "Background")
        meta["resourceVersion"] = self._next_rv()
        self.objects[res.key][(ns, name)] = new
        self._record(res.key, "MODIFIED", new, current)
        if res.key == resources.CRD_KEY:
            self._sync_crds()
        return copy.deepcopy(new)

    def delete(self, res, ns, name, propagation="Background", preconditions=None):
        with self.cond:
            current = self.objects[res.key].get((ns, name))
            if current is None:
                raise not_found(res, name)
            pre = preconditions or {}
            meta = current["metadata"]
            if (pre.get("uid") and pre["uid"] != meta["uid"]) or (
                    pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]):
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} '
                               f'"{name}": Precondition failed: UID in precondition: '
                               f'{pre.get("uid")}, UID in object meta: {meta["uid"]}', name, res)
            return self._delete(res, ns, name, propagation or "Background")

    def _delete(self, res, ns, name, propagation):
        current = self.objects[res.key][(ns, name)]
        if current["metadata"].get("deletionTimestamp"):
            return copy.deepcopy(current)
        uid = current["metadata"]["uid"]
        if propagation == "Foreground":
            self._collect_dependents(uid, "Foreground")
        elif propagation == "Orphan":
            self._orphan(uid)
        if current["metadata"].get("finalizers"):
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[res.key][(ns, name)] = new
            self._record(res.key, "MODIFIED", new, current)
            return copy.deepcopy(new)
        return self._remove(res, ns, name, current, propagation)

    def _remove(self, res, ns, name, obj, propagation):
        """Removes an object for good, then whatever only existed because of it."""
        old = self.objects[res.key].pop((ns, name))
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._record(res.key, "DELETED", obj, old)
        if res.key == ("", "namespaces"):
            for key, objs in list(self.objects.items()):
                for (o_ns, o_name) in [k for k in objs if k[0] == name]:
                    if (o_ns, o_name) in objs:
                        self._remove(self.registry.by_key(key), o_ns, o_name, objs[(o_ns, o_name)], "Background")
        if res.key == resources.CRD_KEY:
            gone = resources.resource_from_crd(old)
            if gone is not None:
                for (o_ns, o_name), o in list(self.objects[gone.key].items()):
                    self._remove(gone, o_ns, o_name, o, "Background")
            self._sync_crds()
        if propagation != "Orphan":
            self._collect_dependents(obj["metadata"]["uid"], "Background")
        return obj

    def _dependents(self, uid):
        for key, objs in list(self.objects.items()):
            for (ns, name), obj in list(objs.items()):
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    yield key, ns, name

    def _collect_dependents(self, uid, propagation):
        for key, ns, name in list(self._dependents(uid)):
            res = self.registry.by_key(key)
            if res is not None and (ns, name) in self.objects[key]:
                self._delete(res, ns, name, propagation)

    def _orphan(self, uid):
        for key, ns, name in list(self._dependents(uid)):
            current = self.objects[key][(ns, name)]
            new = copy.deepcopy(current)
            new["metadata"]["ownerReferences"] = [r for r in new["metadata"]["ownerReferences"]
                                                  if r.get("uid") != uid]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            new["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[key][(ns, name)] = new
            self._record(key, "MODIFIED", new, current)

    def _sync_crds(self):
        self.registry.sync_crds(list(self.objects[resources.CRD_KEY].values()))
