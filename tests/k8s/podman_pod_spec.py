"""Translates one Kubernetes pod (v1 Pod object) into the `podman run` arguments of its container.

Test infrastructure for tests/k8s/pod_runner.py, not product code. Strict: a pod-spec or container
field this module does not translate raises Unsupported naming the field, so a template that
starts using something new fails a test instead of running differently than a kubelet would run
it. What is translated, and how:

  image, command (--entrypoint), args        args/command with $(VAR) expanded as the kubelet does
  env: value, fieldRef (metadata.name/namespace/uid, metadata.labels['k'] /
       metadata.annotations['k'], spec.nodeName, spec.serviceAccountName)
  volumeMounts of configMap, secret, emptyDir, hostPath volumes (hostPath under the node root)
  securityContext: runAsUser/runAsGroup (--user), fsGroup (--group-add), runAsNonRoot (refused
       when the user is root), readOnlyRootFilesystem (--read-only, no extra tmpfs),
       capabilities drop/add, allowPrivilegeEscalation false (no-new-privileges),
       seccompProfile RuntimeDefault (podman's default profile) or Unconfined
  resources.limits memory (--memory) and cpu (--cpus); requests are recorded only
  hostname/subdomain (--hostname), terminationGracePeriodSeconds (the stop timeout)
  serviceAccountName/automountServiceAccountToken: the pod worker mounts a token (see pod_worker)
Not translated (accepted, no effect here): ports (pods share one podman network, so a container
port is reachable at the pod IP without publishing), probes (the pod worker runs them),
nodeSelector, tolerations, affinity, enableServiceLinks (no service variables are injected).
"""

import json
import re

import quantity


class Unsupported(ValueError):
    """A pod field the runner cannot reproduce; the message names it."""


POD_SPEC_FIELDS = {"containers", "volumes", "securityContext", "terminationGracePeriodSeconds",
                   "enableServiceLinks", "nodeSelector", "tolerations", "affinity", "nodeName",
                   "hostname", "subdomain", "restartPolicy", "serviceAccountName",
                   "automountServiceAccountToken", "dnsPolicy", "schedulerName"}
CONTAINER_FIELDS = {"name", "image", "command", "args", "env", "ports", "volumeMounts",
                    "resources", "securityContext", "startupProbe", "readinessProbe",
                    "livenessProbe", "imagePullPolicy", "terminationMessagePath",
                    "terminationMessagePolicy"}
POD_SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "seccompProfile"}
CONTAINER_SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                             "capabilities", "allowPrivilegeEscalation", "seccompProfile",
                             "privileged"}
VOLUME_TYPES = {"configMap", "secret", "emptyDir", "hostPath"}
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_MAP = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]\Z")


def _only(obj, allowed, where):
    extra = sorted(set(obj) - allowed)
    if extra:
        raise Unsupported(f"{where}.{extra[0]} is not supported by the test pod runner")


def expand(text, env):
    """$(VAR) -> env[VAR] when VAR is defined, `$$` -> `$`, anything else verbatim (kubelet)."""
    def repl(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(repl, text)


def field_ref_value(pod, path):
    meta = pod["metadata"]
    simple = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
              "metadata.uid": meta.get("uid", ""), "spec.nodeName": pod["spec"].get("nodeName", ""),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default")}
    if path in simple:
        return simple[path]
    m = _FIELD_MAP.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise Unsupported(f"env fieldRef {path!r} is not supported by the test pod runner")


def container_env(pod, container):
    """The container's environment, in order, each value expanded against the earlier ones."""
    env = {}
    for var in container.get("env") or []:
        _only(var, {"name", "value", "valueFrom"}, f"env[{var.get('name')}]")
        if "valueFrom" in var:
            source = var["valueFrom"]
            _only(source, {"fieldRef"}, f"env[{var['name']}].valueFrom")
            env[var["name"]] = field_ref_value(pod, source["fieldRef"]["fieldPath"])
        else:
            env[var["name"]] = expand(var.get("value", ""), env)
    return env


def _user(pod_sc, sc):
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot", False))
    if non_root and (uid is None or int(uid) == 0):
        # The kubelet would inspect the image's USER; the runner asks for an explicit runAsUser.
        raise Unsupported("runAsNonRoot without a non-zero runAsUser")
    if uid is None:
        return []
    return ["--user", f"{int(uid)}:{int(gid)}" if gid is not None else str(int(uid))]


def security_args(pod_spec, container):
    pod_sc = pod_spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    _only(pod_sc, POD_SECURITY_FIELDS, "spec.securityContext")
    _only(sc, CONTAINER_SECURITY_FIELDS, f"containers[{container['name']}].securityContext")
    args = _user(pod_sc, sc)
    if "fsGroup" in pod_sc:
        args += ["--group-add", str(int(pod_sc["fsGroup"]))]
    if sc.get("privileged"):
        raise Unsupported("privileged containers are not run by the test pod runner")
    if sc.get("readOnlyRootFilesystem"):
        # podman's --read-only would add writable tmpfs on /tmp, /var/tmp and /run; a kubelet does not.
        args += ["--read-only", "--read-only-tmpfs=false"]
    caps = sc.get("capabilities") or {}
    _only(caps, {"drop", "add"}, "securityContext.capabilities")
    args += [f"--cap-drop={c}" for c in caps.get("drop", [])]
    args += [f"--cap-add={c}" for c in caps.get("add", [])]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp not in (None, "RuntimeDefault"):
        raise Unsupported(f"seccompProfile type {seccomp!r}")
    return args


def resource_args(container):
    resources = container.get("resources") or {}
    _only(resources, {"limits", "requests"}, "resources")
    args = []
    for name, value in (resources.get("limits") or {}).items():
        nanos, _ = quantity.parse(str(value))
        if name == "memory":
            args += ["--memory", str(nanos // quantity.NANO)]
        elif name == "cpu":
            args += ["--cpus", f"{nanos / quantity.NANO:g}"]
        else:
            raise Unsupported(f"resource limit {name!r} (no such device on the test node)")
    return args


def volume_args(pod_spec, container, volume_dirs):
    """-v flags. volume_dirs maps a volume name to the host directory the pod worker prepared."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    args = []
    for mount in container.get("volumeMounts") or []:
        _only(mount, {"name", "mountPath", "readOnly"}, "volumeMounts")
        volume = volumes.get(mount["name"])
        if volume is None:
            raise Unsupported(f"volumeMount {mount['name']!r} names no volume")
        options = "ro" if mount.get("readOnly") else "rw"
        args += ["-v", f"{volume_dirs[mount['name']]}:{mount['mountPath']}:{options}"]
    return args


def check_pod_spec(pod_spec):
    """Raises Unsupported for anything the runner would silently drop."""
    _only(pod_spec, POD_SPEC_FIELDS, "spec")
    if len(pod_spec.get("containers") or []) != 1:
        raise Unsupported("the test pod runner runs pods of exactly one container")
    for container in pod_spec["containers"]:
        _only(container, CONTAINER_FIELDS, f"containers[{container.get('name')}]")
        for port in container.get("ports") or []:
            if "hostPort" in port:
                raise Unsupported("hostPort")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if len(kinds) != 1 or not kinds <= VOLUME_TYPES:
            raise Unsupported(f"volume {volume['name']!r} of type {sorted(kinds)}")


def run_args(pod, container, volume_dirs, node_env=None, node_mounts=()):
    """`podman run` arguments after `run`, up to and including the image and its arguments.
    node_env: variables the kubelet adds before the container's own (KUBERNETES_SERVICE_HOST/PORT);
    node_mounts: (host dir, container path) pairs it mounts read-only (the service-account token)."""
    spec = pod["spec"]
    env = dict(node_env or {})
    env.update(container_env(pod, container))
    args = ["--hostname", spec.get("hostname") or pod["metadata"]["name"]]
    args += security_args(spec, container)
    args += resource_args(container)
    args += volume_args(spec, container, volume_dirs)
    for host_dir, path in node_mounts:
        args += ["-v", f"{host_dir}:{path}:ro"]
    for name, value in env.items():
        args += ["-e", f"{name}={value}"]
    if container.get("command"):
        args += ["--entrypoint", json.dumps([expand(c, env) for c in container["command"]])]
    args.append(container["image"])
    args += [expand(a, env) for a in container.get("args") or []]
    return args
