"""Every pod spec kubemoe ships must meet the Kubernetes Pod Security Standards, "restricted" level.

Pod specs checked:
- charts/kubemoe rendered with Helm's own engine (helm-python-sdk): default values, and with
  every value that changes the operator pod or adds objects (serviceMonitor, leader election off,
  watchNamespace, pull secrets, scheduling, pod annotations, replicas, no ServiceAccount);
- manifests/operator.yaml (the chart's default render, committed);
- the operator's desired objects in tests/data/operator/golden/<sample>/ (worker StatefulSet and
  router Deployment templates), plus the pvc golden with its model volume swapped for the image
  volume operator/api/objects.cc builds for `model.source.image` (no sample uses that source).

Rules: the Pod Security Standards as published at
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (latest version: Kubernetes
1.34, which added the probe/lifecycle host rule; `image` volumes are allowed by "restricted" from
1.33), restated here in our own words as one small function per control. Baseline: HostProcess,
host namespaces, privileged, added capabilities, hostPath volumes, host ports, probe/lifecycle
hosts, AppArmor, SELinux, /proc mount, seccomp (not Unconfined), sysctls. Restricted adds: volume
types, privilege escalation, non-root (runAsNonRoot, runAsUser), seccomp required, capabilities
(drop ALL, add at most NET_BIND_SERVICE). Each rule returns its violations as (field path, what is
wrong); a negative self-test feeds each rule pod specs it must reject and one it must accept.

The one accepted violation: a MoEModel with `model.source.hostPath` (manifests/samples/tiny-cpu
.yaml) mounts that node directory as volume `model`, which baseline and restricted both forbid.
The user chose that source; such a namespace cannot enforce either level (docs/operator.md says
so). The exemption is keyed exactly: only volume `model`, only of type hostPath, only the
hostPath and volume-type rules, only in objects made from a hostPath sample; it must be used
(a stale exemption fails), and the pvc/image sources must have no violation at all.
"""

import copy
import glob
import json
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "k8s"))
import chart  # noqa: E402
from checks import check, results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


# ---- walking a pod spec -------------------------------------------------------------------------

def containers(spec):
    """(path, container) for every container, init container and ephemeral container."""
    for key in CONTAINER_LISTS:
        for i, c in enumerate(spec.get(key) or []):
            yield f"spec.{key}[{i}]", c


def pod_sc(spec):
    return spec.get("securityContext") or {}


def sc(container):
    return container.get("securityContext") or {}


def security_contexts(spec):
    """(path, securityContext) for the pod and for every container."""
    yield "spec.securityContext", pod_sc(spec)
    for path, c in containers(spec):
        yield f"{path}.securityContext", sc(c)


# ---- baseline -----------------------------------------------------------------------------------

def rule_host_process(pod):
    spec = pod["spec"]
    return [(f"{path}.windowsOptions.hostProcess", "must be unset or false")
            for path, s in security_contexts(spec)
            if (s.get("windowsOptions") or {}).get("hostProcess") not in (None, False)]


def rule_host_namespaces(pod):
    return [(f"spec.{k}", "must be unset or false") for k in ("hostNetwork", "hostPID", "hostIPC")
            if pod["spec"].get(k) not in (None, False)]


def rule_privileged(pod):
    return [(f"{path}.securityContext.privileged", "must be unset or false")
            for path, c in containers(pod["spec"]) if sc(c).get("privileged") not in (None, False)]


BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def rule_baseline_capabilities(pod):
    out = []
    for path, c in containers(pod["spec"]):
        added = set((sc(c).get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            out.append((f"{path}.securityContext.capabilities.add",
                        f"{sorted(added - BASELINE_CAPABILITIES)} beyond the baseline set"))
    return out


def rule_host_path_volumes(pod):
    return [(f"spec.volumes[{i}].hostPath", f"hostPath volume {v.get('name')!r}")
            for i, v in enumerate(pod["spec"].get("volumes") or []) if "hostPath" in v]


def rule_host_ports(pod):
    return [(f"{path}.ports[{j}].hostPort", "must be unset or 0")
            for path, c in containers(pod["spec"])
            for j, p in enumerate(c.get("ports") or []) if p.get("hostPort") not in (None, 0)]


def rule_probe_and_lifecycle_hosts(pod):
    out = []
    for path, c in containers(pod["spec"]):
        handlers = [(f"{path}.{probe}", c.get(probe))
                    for probe in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [(f"{path}.lifecycle.{hook}", (c.get("lifecycle") or {}).get(hook))
                     for hook in ("postStart", "preStop")]
        for hpath, handler in handlers:
            for kind in ("httpGet", "tcpSocket"):
                if ((handler or {}).get(kind) or {}).get("host") not in (None, ""):
                    out.append((f"{hpath}.{kind}.host", "must be unset or empty"))
    return out


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def rule_apparmor(pod):
    out = []
    for key, value in ((pod.get("metadata") or {}).get("annotations") or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and not (
                value == "runtime/default" or value.startswith("localhost/")):
            out.append((f"metadata.annotations[{key}]", f"{value!r} is neither runtime/default nor localhost/*"))
    for path, s in security_contexts(pod["spec"]):
        kind = (s.get("appArmorProfile") or {}).get("type")
        if kind not in (None, "RuntimeDefault", "Localhost"):
            out.append((f"{path}.appArmorProfile.type", f"{kind!r} is neither RuntimeDefault nor Localhost"))
    return out


SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def rule_selinux(pod):
    out = []
    for path, s in security_contexts(pod["spec"]):
        opts = s.get("seLinuxOptions") or {}
        if opts.get("type", "") not in SELINUX_TYPES:
            out.append((f"{path}.seLinuxOptions.type", f"{opts['type']!r} is not a container type"))
        for field in ("user", "role"):
            if opts.get(field, "") != "":
                out.append((f"{path}.seLinuxOptions.{field}", "must be unset or empty"))
    return out


def rule_proc_mount(pod):
    return [(f"{path}.securityContext.procMount", "must be unset or Default")
            for path, c in containers(pod["spec"]) if sc(c).get("procMount") not in (None, "Default")]


def rule_baseline_seccomp(pod):
    return [(f"{path}.seccompProfile.type", "Unconfined is not allowed")
            for path, s in security_contexts(pod["spec"])
            if (s.get("seccompProfile") or {}).get("type") == "Unconfined"]


SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
                "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
                "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def rule_sysctls(pod):
    return [(f"spec.securityContext.sysctls[{i}].name", f"{s.get('name')!r} is not a safe sysctl")
            for i, s in enumerate(pod_sc(pod["spec"]).get("sysctls") or [])
            if s.get("name") not in SAFE_SYSCTLS]


# ---- restricted ---------------------------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                           "persistentVolumeClaim", "projected", "secret"}


def rule_volume_types(pod):
    out = []
    for i, v in enumerate(pod["spec"].get("volumes") or []):
        for kind in sorted(set(v) - {"name"} - RESTRICTED_VOLUME_TYPES):
            out.append((f"spec.volumes[{i}].{kind}", f"volume {v.get('name')!r}: type {kind} not allowed"))
    return out


def rule_privilege_escalation(pod):
    return [(f"{path}.securityContext.allowPrivilegeEscalation", "must be false")
            for path, c in containers(pod["spec"]) if sc(c).get("allowPrivilegeEscalation") is not False]


def rule_run_as_non_root(pod):
    spec = pod["spec"]
    pod_level = pod_sc(spec).get("runAsNonRoot")
    out = [] if pod_level in (None, True) else [("spec.securityContext.runAsNonRoot", "must be true")]
    for path, c in containers(spec):
        own = sc(c).get("runAsNonRoot")
        if own is False or (own is None and pod_level is not True):
            out.append((f"{path}.securityContext.runAsNonRoot",
                        "must be true here or at the pod level"))
    return out


def rule_run_as_user(pod):
    return [(f"{path}.runAsUser", "must not be 0")
            for path, s in security_contexts(pod["spec"]) if s.get("runAsUser") == 0]


SECCOMP_CONFINED = ("RuntimeDefault", "Localhost")


def rule_restricted_seccomp(pod):
    spec = pod["spec"]
    pod_type = (pod_sc(spec).get("seccompProfile") or {}).get("type")
    out = []
    if pod_type not in (None,) + SECCOMP_CONFINED:
        out.append(("spec.securityContext.seccompProfile.type", "must be RuntimeDefault or Localhost"))
    for path, c in containers(spec):
        own = (sc(c).get("seccompProfile") or {}).get("type")
        if own not in (None,) + SECCOMP_CONFINED or (own is None and pod_type not in SECCOMP_CONFINED):
            out.append((f"{path}.securityContext.seccompProfile.type",
                        "must be RuntimeDefault or Localhost here or at the pod level"))
    return out


def rule_restricted_capabilities(pod):
    out = []
    for path, c in containers(pod["spec"]):
        caps = sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append((f"{path}.securityContext.capabilities.drop", "must include ALL"))
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append((f"{path}.securityContext.capabilities.add", "only NET_BIND_SERVICE may be added"))
    return out


RULES = [rule_host_process, rule_host_namespaces, rule_privileged, rule_baseline_capabilities,
         rule_host_path_volumes, rule_host_ports, rule_probe_and_lifecycle_hosts, rule_apparmor,
         rule_selinux, rule_proc_mount, rule_baseline_seccomp, rule_sysctls,
         rule_volume_types, rule_privilege_escalation, rule_run_as_non_root, rule_run_as_user,
         rule_restricted_seccomp, rule_restricted_capabilities]


def violations(pod):
    """[(rule name, field path, detail)] for one pod template {metadata, spec}."""
    return [(rule.__name__, path, detail) for rule in RULES for path, detail in rule(pod)]


# ---- the one accepted violation -----------------------------------------------------------------

HOSTPATH_MODEL = re.compile(r"^spec\.volumes\[(\d+)\]\.hostPath$")


def exempt(violation, pod, source_kind):
    """The reason a violation is accepted, or None: the model volume of a hostPath-source MoEModel."""
    rule, path, _ = violation
    match = HOSTPATH_MODEL.match(path)
    if source_kind != "hostPath" or rule not in ("rule_host_path_volumes", "rule_volume_types") or not match:
        return None
    volume = pod["spec"]["volumes"][int(match.group(1))]
    if volume.get("name") != "model" or set(volume) != {"name", "hostPath"}:
        return None
    return "model.source.hostPath is the user's opt-in; that namespace cannot enforce baseline/restricted"


# ---- the pod specs kubemoe ships ----------------------------------------------------------------

def pod_templates(obj):
    """The pod templates ({metadata, spec}) inside a Kubernetes object, if it holds any."""
    kind = obj.get("kind")
    if kind == "Pod":
        return [obj]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [obj["spec"]["template"]]
    if kind == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]]
    return []


CHART_VALUES = {
    "default": None,
    "serviceMonitor, one namespace, no leader election": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "watchNamespace": "models", "leaderElection": {"enabled": False}},
    "every pod option": {
        "replicaCount": 2, "imagePullSecrets": [{"name": "regcred"}],
        "image": {"repository": "registry.example/kubemoe-operator", "tag": "dev", "pullPolicy": "Always"},
        "serviceAccount": {"create": False, "name": "existing"}, "rbac": {"create": False},
        "leaderElection": {"enabled": True, "namespace": "leases"},
        "metricsPort": 9443, "healthPort": 9444,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
        "podAnnotations": {"example.com/owner": "ml-platform"},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "serviceMonitor": {"enabled": True}},
}


def chart_pods():
    """(label, pod template, model source kind) for every chart render."""
    for label, values in CHART_VALUES.items():
        templates = [(o, t) for o in chart.render("kubemoe-system", values) for t in pod_templates(o)]
        check(f"chart [{label}] renders exactly one pod template", len(templates) == 1,
              str([o["kind"] for o, _ in templates]))
        for o, t in templates:
            yield f"chart [{label}] {o['kind']}/{o['metadata']['name']}", t, None


def operator_manifest_pods():
    with open(os.path.join(ROOT, "manifests/operator.yaml"), encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    templates = [(o, t) for o in docs for t in pod_templates(o)]
    check("manifests/operator.yaml holds one pod template", len(templates) == 1, str(len(templates)))
    for o, t in templates:
        yield f"manifests/operator.yaml {o['kind']}/{o['metadata']['name']}", t, None


def sample_source_kind(sample):
    with open(os.path.join(ROOT, "manifests/samples", sample + ".yaml"), encoding="utf-8") as f:
        source = yaml.safe_load(f)["spec"]["model"]["source"]
    (kind,) = [k for k in ("pvc", "hostPath", "image") if k in source]
    return kind


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def golden_pods():
    dirs = sorted(glob.glob(os.path.join(ROOT, "tests/data/operator/golden/*/")))
    check("golden samples found", len(dirs) >= 3, str(dirs))
    for d in dirs:
        sample = os.path.basename(os.path.dirname(d))
        source = sample_source_kind(sample)
        objects = [read_json(p) for p in sorted(glob.glob(d + "*.json"))]
        templates = [(o, t) for o in objects for t in pod_templates(o)]
        check(f"golden {sample}: a StatefulSet and a Deployment template",
              sorted(o["kind"] for o, _ in templates) == ["Deployment", "StatefulSet"],
              str([o["kind"] for o, _ in templates]))
        for o, t in templates:
            yield f"golden {sample} ({source}) {o['kind']}/{o['metadata']['name']}", t, source
            if source == "pvc":
                yield (f"golden {sample} with model.source.image {o['kind']}/{o['metadata']['name']}",
                       with_image_model_volume(t), "image")


def with_image_model_volume(template):
    """The template as objects.cc builds it for model.source.image: only volume `model` differs."""
    t = copy.deepcopy(template)
    (model,) = [v for v in t["spec"]["volumes"] if v["name"] == "model"]
    model.clear()
    model.update({"name": "model", "image": {"reference": "registry.example/models/deepseek:v1"}})
    return t


def test_shipped_pods():
    exempted = {}
    count = 0
    for gen in (chart_pods, operator_manifest_pods, golden_pods):
        for label, pod, source in gen():
            count += 1
            found = violations(pod)
            accepted = [v for v in found if exempt(v, pod, source)]
            rest = [v for v in found if v not in accepted]
            check(f"{label}: restricted", not rest,
                  "; ".join(f"{r}: {p}: {d}" for r, p, d in rest))
            exempted[label] = accepted
            for r, p, _ in accepted:
                print(f"expected {label}: {r} {p}: {exempt((r, p, ''), pod, source)}")
            if source == "hostPath":
                # Exactly the two rules on the model volume: the exemption is neither stale nor wide.
                check(f"{label}: the hostPath exemption is used, exactly twice",
                      sorted(r for r, _, _ in accepted) == ["rule_host_path_volumes", "rule_volume_types"],
                      str(accepted))
            else:
                check(f"{label}: no exemption for a {source or 'chart'} pod", not accepted, str(accepted))
    check("pod templates checked", count >= 5 + 6, str(count))
    print(f"{count} pod templates checked; "
          f"{sum(len(v) for v in exempted.values())} accepted hostPath-source violations")


# ---- negative self-test -------------------------------------------------------------------------

def good_pod():
    """A pod every rule must accept (and the base the bad ones are made from)."""
    return {"metadata": {"annotations": {APPARMOR_ANNOTATION + "app": "runtime/default"}},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                    "sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}],
                                    "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"}},
                "containers": [{"name": "app", "image": "app",
                                "ports": [{"containerPort": 80, "hostPort": 0}],
                                "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                                "securityContext": {"allowPrivilegeEscalation": False,
                                                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                                                    "appArmorProfile": {"type": "Localhost",
                                                                        "localhostProfile": "p"}}}],
                "initContainers": [{"name": "init", "image": "init",
                                    "securityContext": {"allowPrivilegeEscalation": False,
                                                        "capabilities": {"drop": ["ALL"]}}}],
                "volumes": [{"name": v, k: {}} for v, k in
                            [("a", "configMap"), ("b", "emptyDir"), ("c", "persistentVolumeClaim"),
                             ("d", "image"), ("e", "projected"), ("f", "secret")]]}}


def bad(mutate):
    pod = good_pod()
    mutate(pod)
    return pod


def app(pod):
    return pod["spec"]["containers"][0]


def init(pod):
    return pod["spec"]["initContainers"][0]


def ephemeral(pod):
    pod["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]
    return pod["spec"]["ephemeralContainers"][0]


# rule -> pod specs it must reject, each with the field path it must name.
BAD_PODS = {
    rule_host_process: [
        (lambda p: app(p)["securityContext"].update(windowsOptions={"hostProcess": True}),
         "spec.containers[0].securityContext.windowsOptions.hostProcess"),
        (lambda p: p["spec"]["securityContext"].update(windowsOptions={"hostProcess": True}),
         "spec.securityContext.windowsOptions.hostProcess")],
    rule_host_namespaces: [(lambda p: p["spec"].update(hostNetwork=True), "spec.hostNetwork"),
                           (lambda p: p["spec"].update(hostPID=True), "spec.hostPID"),
                           (lambda p: p["spec"].update(hostIPC=True), "spec.hostIPC")],
    rule_privileged: [(lambda p: init(p)["securityContext"].update(privileged=True),
                       "spec.initContainers[0].securityContext.privileged"),
                      (lambda p: ephemeral(p)["securityContext"].update(privileged=True),
                       "spec.ephemeralContainers[0].securityContext.privileged")],
    rule_baseline_capabilities: [
        (lambda p: app(p)["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
         "spec.containers[0].securityContext.capabilities.add")],
    rule_host_path_volumes: [(lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
                              "spec.volumes[6].hostPath")],
    rule_host_ports: [(lambda p: app(p)["ports"][0].update(hostPort=8080),
                       "spec.containers[0].ports[0].hostPort")],
    rule_probe_and_lifecycle_hosts: [
        (lambda p: app(p)["readinessProbe"]["httpGet"].update(host="10.0.0.1"),
         "spec.containers[0].readinessProbe.httpGet.host"),
        (lambda p: app(p).update(lifecycle={"preStop": {"tcpSocket": {"port": 1, "host": "node"}}}),
         "spec.containers[0].lifecycle.preStop.tcpSocket.host")],
    rule_apparmor: [
        (lambda p: p["metadata"]["annotations"].update({APPARMOR_ANNOTATION + "app": "unconfined"}),
         f"metadata.annotations[{APPARMOR_ANNOTATION}app]"),
        (lambda p: p["spec"]["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
         "spec.securityContext.appArmorProfile.type")],
    rule_selinux: [(lambda p: p["spec"]["securityContext"]["seLinuxOptions"].update(type="spc_t"),
                    "spec.securityContext.seLinuxOptions.type"),
                   (lambda p: app(p)["securityContext"].update(seLinuxOptions={"user": "system_u"}),
                    "spec.containers[0].securityContext.seLinuxOptions.user")],
    rule_proc_mount: [(lambda p: app(p)["securityContext"].update(procMount="Unmasked"),
                       "spec.containers[0].securityContext.procMount")],
    rule_baseline_seccomp: [(lambda p: init(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
                             "spec.initContainers[0].securityContext.seccompProfile.type")],
    rule_sysctls: [(lambda p: p["spec"]["securityContext"]["sysctls"].append({"name": "kernel.msgmax", "value": "1"}),
                    "spec.securityContext.sysctls[1].name")],
    rule_volume_types: [(lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
                         "spec.volumes[6].nfs"),
                        (lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
                         "spec.volumes[6].hostPath")],
    rule_privilege_escalation: [
        (lambda p: init(p)["securityContext"].pop("allowPrivilegeEscalation"),
         "spec.initContainers[0].securityContext.allowPrivilegeEscalation"),
        (lambda p: ephemeral(p)["securityContext"].update(allowPrivilegeEscalation=True),
         "spec.ephemeralContainers[0].securityContext.allowPrivilegeEscalation")],
    rule_run_as_non_root: [
        (lambda p: p["spec"]["securityContext"].pop("runAsNonRoot"),
         "spec.containers[0].securityContext.runAsNonRoot"),
        (lambda p: init(p)["securityContext"].update(runAsNonRoot=False),
         "spec.initContainers[0].securityContext.runAsNonRoot")],
    rule_run_as_user: [(lambda p: app(p)["securityContext"].update(runAsUser=0),
                        "spec.containers[0].securityContext.runAsUser"),
                       (lambda p: p["spec"]["securityContext"].update(runAsUser=0),
                        "spec.securityContext.runAsUser")],
    rule_restricted_seccomp: [
        (lambda p: p["spec"]["securityContext"].pop("seccompProfile"),
         "spec.initContainers[0].securityContext.seccompProfile.type"),
        (lambda p: app(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
         "spec.containers[0].securityContext.seccompProfile.type")],
    rule_restricted_capabilities: [
        (lambda p: init(p)["securityContext"].pop("capabilities"),
         "spec.initContainers[0].securityContext.capabilities.drop"),
        (lambda p: app(p)["securityContext"]["capabilities"].update(add=["CHOWN"]),
         "spec.containers[0].securityContext.capabilities.add")],
}


def test_rules_reject_bad_pods():
    good = violations(good_pod())
    check("self-test: the good pod passes every rule", not good, str(good))
    check("self-test: every rule has bad pods", set(BAD_PODS) == set(RULES),
          str({r.__name__ for r in set(RULES) ^ set(BAD_PODS)}))
    for rule, cases in BAD_PODS.items():
        for mutate, path in cases:
            paths = [p for p, _ in rule(bad(mutate))]
            check(f"self-test: {rule.__name__} rejects {path}", path in paths, str(paths))


def test_exemption_is_narrow():
    pod = {"spec": {"volumes": [{"name": "model", "hostPath": {"path": "/m"}},
                                {"name": "other", "hostPath": {"path": "/o"}}]}}
    found = violations(pod)
    model = [v for v in found if v[1] == "spec.volumes[0].hostPath"]
    other = [v for v in found if v[1] == "spec.volumes[1].hostPath"]
    check("exemption: model hostPath from a hostPath source", all(exempt(v, pod, "hostPath") for v in model))
    check("exemption: not for another volume", not any(exempt(v, pod, "hostPath") for v in other))
    check("exemption: not for a pvc source", not any(exempt(v, pod, "pvc") for v in model))
    check("exemption: not for the chart", not any(exempt(v, pod, None) for v in model))
    run_as_root = ("rule_run_as_user", "spec.volumes[0].hostPath", "")
    check("exemption: not for another rule", not exempt(run_as_root, pod, "hostPath"))


def main():
    test_rules_reject_bad_pods()
    test_exemption_is_narrow()
    test_shipped_pods()
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
