"""Renders charts/kubemoe with Helm's own template engine and validates every object.

Helm: helm-python-sdk, which binds Helm's Go SDK (libhelm_c, a C ABI over helm.sh/helm/v4) with
ctypes; no helm binary is involved. Schemas: kubernetes-validate, offline, strict (unknown
fields fail). The ServiceMonitor (monitoring.coreos.com/v1) is a prometheus-operator CRD whose
schema kubernetes-validate does not ship: it is skipped explicitly and checked by hand instead.
Checked for the default values and with serviceMonitor.enabled, plus: restricted pod security on
the operator Deployment, no '*' anywhere in RBAC, the exact ClusterRole resources, the flags the
operator binary takes, and the operator's NetworkPolicy (metrics port from networkPolicy.metricsFrom,
health port open, nothing else; none with networkPolicy.enabled false).
"""

import os
import sys

import kubernetes_validate
import yaml
from helm_python import chart as helm_chart

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S_VERSION = "1.33.0"
NOT_SHIPPED = {("monitoring.coreos.com/v1", "ServiceMonitor")}

results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))


def render(values):
    rendered = helm_chart.Chart.load(os.path.join(ROOT, "charts/kubemoe")).render(
        values, name="kubemoe", namespace="kubemoe-system", is_install=True)
    objects = []
    for path in sorted(rendered):
        if path.endswith(".yaml"):
            objects += [d for d in yaml.safe_load_all(rendered[path]) if d]
    return objects, rendered


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def validate_all(label, objects):
    for o in objects:
        name = f"{label}: {o['kind']}/{o['metadata']['name']}"
        if (o["apiVersion"], o["kind"]) in NOT_SHIPPED:
            print(f"skip {name} (schema not shipped by kubernetes-validate; checked by hand)")
            continue
        try:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
            check(f"schema-valid {name}", True)
        except kubernetes_validate.ValidationError as e:
            check(f"schema-valid {name}", False, str(e).splitlines()[0])


def check_security(objects):
    (deployment,) = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    check("pod runAsNonRoot", pod["securityContext"].get("runAsNonRoot") is True)
    check("pod seccompProfile RuntimeDefault",
          pod["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        check(f"container {c['name']} readOnlyRootFilesystem", sc.get("readOnlyRootFilesystem") is True)
        check(f"container {c['name']} allowPrivilegeEscalation false",
              sc.get("allowPrivilegeEscalation") is False)
        check(f"container {c['name']} drops ALL capabilities",
              sc.get("capabilities", {}).get("drop") == ["ALL"] and "add" not in sc.get("capabilities", {}))
        args = c["args"]
        check("operator args (default values: every namespace, so no --namespace)",
              args == ["--leader-elect=true", "--leader-election-namespace=kubemoe-system",
                       "--metrics-port=8080", "--health-port=8081"], str(args))
        # The operator's parser (CLI11) reads "--flag=" as taking the NEXT argument as its value.
        check("no flag with an empty value", not any(a.endswith("=") for a in args), str(args))


def check_rbac(objects):
    for o in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in o["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                check(f"{o['kind']}/{o['metadata']['name']} has no '*' in {key}", "*" not in rule[key],
                      str(rule))
    (cluster_role,) = by_kind(objects, "ClusterRole")
    resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    want = {"moemodels", "moemodels/status", "configmaps", "services",
            "statefulsets", "deployments", "poddisruptionbudgets", "networkpolicies", "events"}
    check("ClusterRole covers exactly the operator's resources", resources == want,
          str(resources ^ want))
    verbs = {r: rule["verbs"] for rule in cluster_role["rules"] for r in rule["resources"]}
    # The verbs themselves are checked against the operator's recorded requests by
    # tests/py/containers_e2e_test.py; here, the shape: children read by informers, written by apply.
    check("children are listed, watched, created and patched; only networkpolicies deleted",
          all(set(verbs[r]) == {"list", "watch", "create", "patch"} for r in
              ("configmaps", "services", "statefulsets", "deployments", "poddisruptionbudgets"))
          and set(verbs["networkpolicies"]) == {"list", "watch", "create", "patch", "delete"}, str(verbs))
    (role,) = by_kind(objects, "Role")
    check("leader-election Role covers only leases",
          [r["resources"] for r in role["rules"]] == [["leases"]] and
          role["metadata"]["namespace"] == "kubemoe-system")


def check_network_policy(objects):
    (policy,) = by_kind(objects, "NetworkPolicy")
    (deployment,) = by_kind(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    spec = policy["spec"]
    check("NetworkPolicy selects the operator pod", spec["podSelector"]["matchLabels"].items() <= labels.items())
    check("NetworkPolicy is ingress-only", spec["policyTypes"] == ["Ingress"])
    ports = {p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    rules = {r["ports"][0]["port"]: r for r in spec["ingress"]}
    check("NetworkPolicy admits exactly the metrics and health ports",
          sorted(rules) == sorted(ports.values()) and all(len(r["ports"]) == 1 for r in spec["ingress"]),
          str(spec["ingress"]))
    check("metrics port from networkPolicy.metricsFrom",
          rules.get(ports["metrics"], {}).get("from") == [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}], str(spec["ingress"]))
    check("health port from anywhere (kubelet probes)", "from" not in rules.get(ports["health"], {"from": 1}))


def main():
    objects, rendered = render(None)
    kinds = sorted(o["kind"] for o in objects)
    check("default render kinds", kinds == sorted(
        ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service",
         "ServiceAccount", "NetworkPolicy"]), str(kinds))
    check("NOTES.txt renders", "kubectl scale moe/" in rendered.get("kubemoe/templates/NOTES.txt", ""))
    check("chart ships the CRD", os.path.exists(os.path.join(ROOT, "charts/kubemoe/crds/moemodels.kubemoe.io.yaml")))
    validate_all("default", objects)
    check_security(objects)
    check_rbac(objects)
    check_network_policy(objects)

    monitored, _ = render({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    monitors = by_kind(monitored, "ServiceMonitor")
    check("serviceMonitor.enabled renders one ServiceMonitor", len(monitors) == 1)
    validate_all("serviceMonitor", monitored)
    if monitors:
        m = monitors[0]
        (service,) = [s for s in by_kind(monitored, "Service") if s["metadata"]["name"].endswith("-metrics")]
        check("ServiceMonitor selects the metrics Service",
              m["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items())
        check("ServiceMonitor scrapes the metrics port",
              m["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"])
        check("ServiceMonitor carries extra labels", m["metadata"]["labels"].get("release") == "prom")

    one_ns, _ = render({"watchNamespace": "models", "leaderElection": {"enabled": False}})
    (dep,) = by_kind(one_ns, "Deployment")
    check("watchNamespace reaches --namespace", "--namespace=models" in dep["spec"]["template"]["spec"]["containers"][0]["args"])
    check("no leader-election Role when disabled", not by_kind(one_ns, "Role"))

    scraper = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    scoped, _ = render({"networkPolicy": {"metricsFrom": scraper}})
    validate_all("networkPolicy.metricsFrom", scoped)
    (policy,) = by_kind(scoped, "NetworkPolicy")
    check("networkPolicy.metricsFrom reaches the metrics rule", policy["spec"]["ingress"][0]["from"] == scraper)
    closed, _ = render({"networkPolicy": {"metricsFrom": []}})
    (policy,) = by_kind(closed, "NetworkPolicy")
    check("metricsFrom [] leaves only the health rule (no rule without from on metrics)",
          [r["ports"][0]["port"] for r in policy["spec"]["ingress"]] == [8081], str(policy["spec"]))
    off, _ = render({"networkPolicy": {"enabled": False}})
    check("no NetworkPolicy when networkPolicy.enabled is false", not by_kind(off, "NetworkPolicy"))

    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
