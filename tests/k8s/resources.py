"""The kinds the fake API server serves, and the discovery documents built from them.

Built-in kinds are a fixed table. Custom resources come and go with CustomResourceDefinitions:
`Registry.sync_crds` rebuilds the dynamic part from the stored CRDs after every CRD write, so
discovery, routing, tables, scale and schema defaults always follow what is stored.
Every served version of a CRD shares one storage; objects are returned with the apiVersion of the
request (no conversion webhooks).
"""

import dataclasses

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_VERSION = {
    # The gcloud kubectl "dispatcher" picks the kubectl minor matching the server, so report the
    # minor it ships as its default.
    "major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "fake", "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclasses.dataclass
class Scale:
    """Where a scale subresource reads and writes (JSON paths as in a CRD, e.g. `.spec.replicas`)."""
    spec_replicas: str
    status_replicas: str
    label_selector: str = ""  # empty: none; "matchLabels" marker for built-ins (see scale_selector)


@dataclasses.dataclass
class Resource:
    group: str
    versions: list
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list = dataclasses.field(default_factory=list)
    categories: list = dataclasses.field(default_factory=list)
    status: bool = False
    scale: Scale = None
    columns: list = None  # additionalPrinterColumns per version: {version: [column...]}; None: built-in
    schemas: dict = dataclasses.field(default_factory=dict)  # version -> openAPIV3Schema
    crd_name: str = ""  # set for custom resources

    @property
    def key(self):
        return (self.group, self.plural)

    @property
    def qualified(self):
        """`moemodels.kubemoe.io` / `configmaps`: how Status messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version):
        return f"{self.group}/{version}" if self.group else version


def _builtin(group, version, plural, kind, namespaced=True, short=(), cats=(), status=False,
             scale=None):
    return Resource(group, [version], plural, kind.lower(), kind, namespaced, list(short), list(cats),
                    status, scale)


_REPLICAS = Scale(".spec.replicas", ".status.replicas", "matchLabels")

BUILTINS = [
    _builtin("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"], status=True),
    _builtin("", "v1", "configmaps", "ConfigMap", short=["cm"]),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
    _builtin("", "v1", "services", "Service", short=["svc"], cats=["all"], status=True),
    _builtin("", "v1", "endpoints", "Endpoints", short=["ep"]),
    _builtin("", "v1", "pods", "Pod", short=["po"], cats=["all"], status=True),
    _builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"],
             status=True),
    _builtin("", "v1", "events", "Event", short=["ev"]),
    _builtin("apps", "v1", "statefulsets", "StatefulSet", short=["sts"], cats=["all"], status=True,
             scale=_REPLICAS),
    _builtin("apps", "v1", "deployments", "Deployment", short=["deploy"], cats=["all"],
             status=True, scale=_REPLICAS),
    _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"],
             status=True),
    _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=["netpol"]),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
             namespaced=False),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _builtin("events.k8s.io", "v1", "events", "Event", short=["ev"]),
    _builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
             namespaced=False, short=["crd", "crds"], cats=["api-extensions"], status=True),
]
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")


def resource_from_crd(crd):
    """The Resource a stored CRD describes, or None when it serves no version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not served or not names.get("plural") or not names.get("kind"):
        return None
    # Discovery lists the storage version first, like the real server's preferred version.
    served.sort(key=lambda v: not v.get("storage", False))
    res = Resource(
        group=spec.get("group", ""), versions=[v["name"] for v in served], plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(), kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []), columns={}, crd_name=crd["metadata"]["name"])
    for v in served:
        sub = v.get("subresources") or {}
        # One storage serves all versions; take the subresources of the first (preferred) version.
        if v is served[0]:
            res.status = "status" in sub
            if "scale" in sub:
                sc = sub["scale"] or {}
                res.scale = Scale(sc.get("specReplicasPath", ".spec.replicas"),
                                  sc.get("statusReplicasPath", ".status.replicas"),
                                  sc.get("labelSelectorPath", ""))
        res.columns[v["name"]] = list(v.get("additionalPrinterColumns") or [])
        res.schemas[v["name"]] = (v.get("schema") or {}).get("openAPIV3Schema") or {}
    return res


def crd_status(crd):
    """The status the real server would write once a CRD is established (names always accepted)."""
    names = dict((crd.get("spec") or {}).get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", names.get("kind", "") + "List")
    now = crd["metadata"].get("creationTimestamp")
    conditions = [
        {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
        for t, r, m in [("NamesAccepted", "NoConflicts", "no conflicts found"),
                        ("Established", "InitialNamesAccepted", "the initial names have been accepted")]]
    versions = [v["name"] for v in (crd.get("spec") or {}).get("versions") or [] if v.get("storage")]
    return {"acceptedNames": names, "conditions": conditions, "storedVersions": versions}


class Registry:
    """Looks resources up by group/version/plural, and builds discovery documents."""

    def __init__(self):
        self.custom = {}  # (group, plural) -> Resource

    def all(self):
        return BUILTINS + list(self.custom.values())

    def sync_crds(self, crds):
        """Rebuilds the custom resources from all stored CRDs (those being deleted included)."""
        custom = {}
        for crd in crds:
            res = resource_from_crd(crd)
            if res is not None:
                custom[res.key] = res
        self.custom = custom

    def by_key(self, key):
        for res in self.all():
            if res.key == key:
                return res
        return None

    def lookup(self, group, version, plural):
        for res in self.all():
            if res.group == group and res.plural == plural and version in res.versions:
                return res
        return None

    def group_versions(self):
        """{group: [versions in preferred order]} over every served resource."""
        out = {}
        for res in self.all():
            versions = out.setdefault(res.group, [])
            for v in res.versions:
                if v not in versions:
                    versions.append(v)
        return out

    # --- discovery documents -------------------------------------------------------------------
    def api_versions(self, server_address):
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": server_address}]}

    def api_group_list(self):
        groups = []
        for group, versions in self.group_versions().items():
            if group == "":
                continue
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group):
        versions = self.group_versions().get(group)
        if not versions or group == "":
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs,
                "preferredVersion": gvs[0]}

    def api_resource_list(self, group, version):
        entries = []
        for res in self.all():
            if res.group != group or version not in res.versions:
                continue
            entry = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced,
                     "kind": res.kind, "verbs": VERBS}
            if res.short_names:
                entry["shortNames"] = res.short_names
            if res.categories:
                entry["categories"] = res.categories
            entries.append(entry)
            if res.status:
                entries.append({"name": res.plural + "/status", "singularName": "",
                                "namespaced": res.namespaced, "kind": res.kind,
                                "verbs": ["get", "patch", "update"]})
            if res.scale:
                entries.append({"name": res.plural + "/scale", "singularName": "",
                                "namespaced": res.namespaced, "group": "autoscaling",
                                "version": "v1", "kind": "Scale",
                                "verbs": ["get", "patch", "update"]})
        if not entries:
            return None
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": entries}
