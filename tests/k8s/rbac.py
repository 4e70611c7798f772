"""Checks recorded API requests against RBAC rules, as the API server's authorizer would.

    calls = [r for r in k8s.requests() if r["token"] == OPERATOR_TOKEN]   # fake_apiserver's log
    denied, unused = audit(calls, chart_rules("default"), "default")

`attributes(request)` turns a logged request into the attributes RBAC decides on (verb, API
group, resource, subresource, namespace, name), following the API server's request-info rules:
GET of a collection is `list` (`watch` with watch=true), GET of one object `get`, POST `create`,
PUT `update`, PATCH `patch`, DELETE of one object `delete`, of a collection `deletecollection`.
A server-side apply (PATCH, application/apply-patch+yaml) that creates its object (201) is also
authorized as `create`, as the API server's patch handler does.
Discovery and other non-resource paths (/api, /apis, /version, /openapi/...) are left out: every
authenticated user may read them (the system:discovery ClusterRole).
A ClusterRole's rules apply in every namespace; a Role's only in its namespace. `audit` returns
the calls no rule allows, and the (group, resource, verb) grants of the rules that no call used.
"""


class Rule:
    def __init__(self, rule, namespace=None):
        self.groups = rule.get("apiGroups") or []
        self.resources = rule.get("resources") or []
        self.verbs = rule.get("verbs") or []
        self.names = rule.get("resourceNames") or []
        self.namespace = namespace  # None: a ClusterRole rule

    def allows(self, a):
        if self.namespace is not None and a["namespace"] != self.namespace:
            return False
        resource = a["resource"] + ("/" + a["subresource"] if a["subresource"] else "")
        return ((a["group"] in self.groups or "*" in self.groups)
                and (resource in self.resources or "*" in self.resources)
                and (a["verb"] in self.verbs or "*" in self.verbs)
                and (not self.names or a["name"] in self.names))

    def grants(self):
        return [(g, r, v) for g in self.groups for r in self.resources for v in self.verbs]

    def __repr__(self):
        scope = f" in {self.namespace}" if self.namespace else ""
        return f"{self.groups} {self.resources} {self.verbs}{scope}"


def attributes(request):
    """The RBAC attributes one logged request is authorized on ([] for a non-resource path)."""
    parts = [p for p in request["path"].split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return []
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""
    if resource == "namespaces" and len(rest) == 2 and not namespace:
        namespace = name
    watch = any(q in ("watch=true", "watch=1") for q in request.get("query", "").split("&"))
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(request["method"])
    if request["method"] == "GET":
        verb = "get" if name else ("watch" if watch else "list")
    elif request["method"] == "DELETE":
        verb = "delete" if name else "deletecollection"
    first = {"verb": verb, "group": group, "resource": resource, "subresource": subresource,
             "namespace": namespace, "name": name}
    creates = (request["method"] == "PATCH" and request.get("status") == 201
               and request.get("content_type", "").startswith("application/apply-patch"))
    return [first, dict(first, verb="create")] if creates else [first]


def rules_of(objects, role_namespace):
    """Rules of the ClusterRoles and Roles among `objects` (Roles bound to role_namespace)."""
    rules = []
    for obj in objects:
        if obj.get("kind") == "ClusterRole":
            rules += [Rule(r) for r in obj.get("rules") or []]
        elif obj.get("kind") == "Role":
            rules += [Rule(r, role_namespace) for r in obj.get("rules") or []]
    return rules


def chart_rules(namespace):
    """The rules charts/kubemoe grants the operator (default values), its Roles placed in
    `namespace`, as Helm's own engine renders them."""
    import chart
    return rules_of(chart.render(namespace), namespace)


def audit(requests, rules, namespace):
    """(denied requests, unused grants) of `requests` under `rules`."""
    denied, used = [], set()
    for a in (a for request in requests for a in attributes(request)):
        allowing = [r for r in rules if r.allows(a)]
        if not allowing:
            denied.append(f"{a['verb']} {a['group'] or 'core'}/{a['resource']}"
                          f"{'/' + a['subresource'] if a['subresource'] else ''}"
                          f" ns={a['namespace']!r} name={a['name']!r}")
        resource = a["resource"] + ("/" + a["subresource"] if a["subresource"] else "")
        used.add((a["group"], resource, a["verb"]))
    unused = sorted({g for r in rules for g in r.grants() if g not in used})
    return denied, unused
