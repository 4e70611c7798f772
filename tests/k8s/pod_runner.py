#!/usr/bin/env python3
"""A test-side node for the fake API server: runs the pods of StatefulSets and Deployments as
podman containers. Test infrastructure, not product code.

Usage:
  python tests/k8s/pod_runner.py --server URL --namespace NS --node-root DIR --state-dir DIR
      --network NAME --run-id ID [--time-scale 1.0] [--backoff 10] [--max-grace 30]
      [--podman-flags "..."] [--ready-file PATH]
      [--ca PEM --service-host ADDRESS --service-port PORT]   (pods that call the API server)

It plays four parts of a cluster for one namespace:
  * the StatefulSet and Deployment controllers: creates the Pods of each workload's template
    (StatefulSet pods NAME-i with the pod-index label, Parallel creation, RollingUpdate one pod at
    a time from the highest ordinal once all are Ready; Deployment pods NAME-HASH-XXXXX owned by
    the Deployment itself, RollingUpdate honouring maxSurge/maxUnavailable), deletes the extra
    ones on scale-down, and writes each workload's status (replicas, ready, updated, available,
    revisions, observedGeneration);
  * the scheduler: binds every Pod to this node (spec.nodeName);
  * the garbage collector, for pods only: deletes a Pod whose StatefulSet or Deployment is gone;
  * the kubelet (pod_worker.PodWorker per Pod): volumes, the container, probes, restarts, status.
Every Pod gets the DNS names its Services give it (SERVICE, SERVICE.NS, SERVICE.NS.svc and the
.cluster.local form for every Service selecting it; HOSTNAME.SUBDOMAIN.NS.svc for StatefulSet
pods) as podman network aliases, fixed when its container starts.
It wakes on watch events (StatefulSets, Deployments, Pods, ConfigMaps, Services) and resyncs
every second. On SIGTERM it stops every container and exits. What a real kubelet and scheduler
do that this does not is listed in docs/containers.md ("The test pod runner").
"""

import argparse
import hashlib
import http.client
import json
import os
import random
import shlex
import signal
import ssl
import string
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pod_worker  # noqa: E402
import testing  # noqa: E402

NODE_NAME = "podman-node"


class Api:
    """JSON over HTTP(S) to the API server; a new connection per request (thread safe)."""

    def __init__(self, url, ca_file=None):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.ssl_context = ssl.create_default_context(cafile=ca_file) if parsed.scheme == "https" else None

    def connection(self, timeout):
        if self.ssl_context:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, content_type="application/json", timeout=10):
        return testing.api_request(self.host, self.port, method, path, body, content_type,
                                   {"Authorization": "Bearer pod-runner"}, timeout, self.ssl_context)

    def list(self, path):
        code, body = self.request("GET", path)
        return body.get("items", []) if code == 200 else None

    def watch_lines(self, path, timeout_seconds=30):
        """Yields one decoded event per line until the stream ends."""
        conn = self.connection(timeout_seconds + 10)
        try:
            conn.request("GET", f"{path}?watch=true&timeoutSeconds={timeout_seconds}",
                         headers={"Authorization": "Bearer pod-runner"})
            resp = conn.getresponse()
            if resp.status != 200:
                return
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def template_hash(template):
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def owned_by(pod, owner):
    return any(r.get("uid") == owner["metadata"]["uid"]
               for r in pod["metadata"].get("ownerReferences") or [])


def int_or_percent(value, total, round_up):
    if isinstance(value, str) and value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return int(-(-exact // 1)) if round_up else int(exact)
    return int(value)


class PodRunner:
    def __init__(self, args):
        self.api = Api(args.server, args.ca or None)
        self.api_ca = args.ca or None
        self.service_host, self.service_port = args.service_host, args.service_port
        self.ns = args.namespace
        self.node_root = os.path.abspath(args.node_root)
        self.state_dir = os.path.abspath(args.state_dir)
        self.network = args.network
        self.run_id = args.run_id
        self.time_scale = args.time_scale
        self.backoff = args.backoff * args.time_scale
        self.max_grace = args.max_grace
        self.podman = ["podman", "--runtime", os.environ.get("OCI_RUNTIME", "runc")]
        self.podman_limits = shlex.split(args.podman_flags)
        self.host_ip = "127.0.0.1"
        self.workers = {}  # pod uid -> PodWorker
        self.cache = {"configmaps": {}, "secrets": {}, "services": []}
        self.lock = threading.Lock()
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self.logs_dir = os.path.join(self.state_dir, "logs")
        os.makedirs(self.logs_dir, exist_ok=True)
        os.chmod(self.state_dir, 0o755)

    def log(self, msg):
        print(f"[pod-runner {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def wake(self):
        self.wakeup.set()

    # --- what pod workers ask ---------------------------------------------------------------------
    def cached(self, kind, name):
        """The ConfigMap or Secret (kind "configmaps" / "secrets") `name`, as last listed."""
        with self.lock:
            return self.cache[kind].get(name)

    def service_env(self):
        """What every kubelet puts in every container: where the API server is."""
        if not self.service_host:
            return {}
        return {"KUBERNETES_SERVICE_HOST": self.service_host, "KUBERNETES_SERVICE_PORT": str(self.service_port)}

    def dns_names(self, pod):
        meta, spec = pod["metadata"], pod["spec"]
        names = []
        with self.lock:
            services = list(self.cache["services"])
        for svc in services:
            name = svc["metadata"]["name"]
            if not matches(svc["spec"].get("selector") or {}, meta.get("labels") or {}):
                continue
            base = [name, f"{name}.{self.ns}", f"{name}.{self.ns}.svc", f"{name}.{self.ns}.svc.cluster.local"]
            names += base
            if spec.get("subdomain") == name and spec.get("hostname"):
                names += [f"{spec['hostname']}.{b}" for b in base]
        return names

    def patch_pod_status(self, pod, status):
        path = f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}/status"
        code, _ = self.api.request("PATCH", path, {"status": status}, "application/merge-patch+json")
        return code == 200

    def save_logs(self, container_name):
        out = os.path.join(self.logs_dir, container_name + ".log")
        with open(out, "wb") as f:
            subprocess.run(self.podman + ["logs", container_name], stdout=f, stderr=subprocess.STDOUT,
                           timeout=60)

    # --- the loop ----------------------------------------------------------------------------------
    def watch(self, path):
        while not self.stopping.is_set():
            try:
                for _ in self.api.watch_lines(path):
                    self.wake()
                    if self.stopping.is_set():
                        return
            except (OSError, ValueError, http.client.HTTPException):
                pass
            self.stopping.wait(0.5)

    def run(self):
        base = f"/namespaces/{self.ns}"
        for path in (f"/apis/apps/v1{base}/statefulsets", f"/apis/apps/v1{base}/deployments",
                     f"/api/v1{base}/pods", f"/api/v1{base}/configmaps", f"/api/v1{base}/secrets",
                     f"/api/v1{base}/services"):
            threading.Thread(target=self.watch, args=(path,), daemon=True).start()
        while not self.stopping.is_set():
            try:
                self.sync_once()
            except (OSError, http.client.HTTPException) as e:
                self.log(f"sync failed, retrying: {e!r}")
            self.wakeup.wait(1.0)
            self.wakeup.clear()
        self.shutdown()

    def sync_once(self):
        base = f"/namespaces/{self.ns}"
        sets = self.api.list(f"/apis/apps/v1{base}/statefulsets")
        deployments = self.api.list(f"/apis/apps/v1{base}/deployments")
        pods = self.api.list(f"/api/v1{base}/pods")
        config_maps = self.api.list(f"/api/v1{base}/configmaps")
        secrets = self.api.list(f"/api/v1{base}/secrets")
        services = self.api.list(f"/api/v1{base}/services")
        if None in (sets, deployments, pods, config_maps, secrets, services):
            return
        with self.lock:
            self.cache = {"configmaps": {c["metadata"]["name"]: c for c in config_maps},
                          "secrets": {s["metadata"]["name"]: s for s in secrets},
                          "services": services}
        # The garbage collector's part for pods: one whose controller is gone goes too (a pass can
        # create a pod for a workload deleted after it was listed).
        owners = {o["metadata"]["uid"] for o in sets + deployments}

        def orphan(pod):
            refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")]
            return bool(refs) and refs[0].get("kind") in ("StatefulSet", "Deployment") and refs[0]["uid"] not in owners
        for pod in [p for p in pods if orphan(p)]:
            self.delete_pod(pod)
        pods = [p for p in pods if not orphan(p)]
        for sts in sets:
            self.sync_stateful_set(sts, [p for p in pods if owned_by(p, sts)])
        for deployment in deployments:
            self.sync_deployment(deployment, [p for p in pods if owned_by(p, deployment)])
        self.sync_pod_workers(pods)

    # --- the kubelet part ----------------------------------------------------------------------------
    def sync_pod_workers(self, pods):
        live = {}
        for pod in pods:
            if not pod["spec"].get("nodeName"):
                pod["spec"]["nodeName"] = NODE_NAME  # the scheduler part: one node
                code, pod = self.api.request(
                    "PATCH", f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}",
                    {"spec": {"nodeName": NODE_NAME}}, "application/merge-patch+json")
                if code != 200:
                    continue
            if pod["spec"]["nodeName"] != NODE_NAME:
                continue
            live[pod["metadata"]["uid"]] = pod
        for uid, pod in live.items():
            if uid not in self.workers:
                self.log(f"pod {pod['metadata']['name']}: starting")
                worker = pod_worker.PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
        for uid in list(self.workers):
            if uid not in live:
                self.log(f"pod {self.workers[uid].name}: deleted, stopping its container")
                self.workers.pop(uid).stop()
        for worker in self.workers.values():
            if worker.projected:
                worker.sync_projected_volumes()

    def pod_ready(self, pod):
        worker = self.workers.get(pod["metadata"]["uid"])
        return worker is not None and worker.is_ready()

    def shutdown(self):
        workers = list(self.workers.values())
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(timeout=self.max_grace + 30)

    # --- the controllers -------------------------------------------------------------------------------
    def new_pod(self, owner, name, extra_labels, spec_extra):
        template = owner["spec"]["template"]
        meta = template.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        labels.update(extra_labels)
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": self.ns, "labels": labels,
                            "annotations": dict(meta.get("annotations") or {}),
                            "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                                 "name": owner["metadata"]["name"],
                                                 "uid": owner["metadata"]["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": dict(template["spec"], **spec_extra)}
        code, body = self.api.request("POST", f"/api/v1/namespaces/{self.ns}/pods", pod)
        if code not in (200, 201):
            self.log(f"creating pod {name} failed: {code} {body}")
        else:
            self.log(f"created pod {name}")

    def delete_pod(self, pod):
        self.log(f"deleting pod {pod['metadata']['name']}")
        self.api.request("DELETE", f"/api/v1/namespaces/{self.ns}/pods/{pod['metadata']['name']}")

    def put_status(self, obj, kind, status):
        if obj.get("status") == status:
            return
        obj = dict(obj, status=status)
        path = f"/apis/apps/v1/namespaces/{self.ns}/{kind}/{obj['metadata']['name']}/status"
        self.api.request("PUT", path, obj)

    def sync_stateful_set(self, sts, pods):
        name = sts["metadata"]["name"]
        replicas = int(sts["spec"].get("replicas", 1))
        revision = f"{name}-{template_hash(sts['spec']['template'])}"
        by_ordinal = {}
        for pod in pods:
            ordinal = int(pod["metadata"]["name"].rsplit("-", 1)[1])
            by_ordinal[ordinal] = pod
        for ordinal, pod in by_ordinal.items():
            if ordinal >= replicas:
                self.delete_pod(pod)
        for ordinal in range(replicas):
            if ordinal not in by_ordinal:
                pod_name = f"{name}-{ordinal}"
                self.new_pod(sts, pod_name, {"apps.kubernetes.io/pod-index": str(ordinal),
                                             "statefulset.kubernetes.io/pod-name": pod_name,
                                             "controller-revision-hash": revision},
                             {"hostname": pod_name, "subdomain": sts["spec"].get("serviceName", "")})
        current = [p for o, p in by_ordinal.items() if o < replicas]
        outdated = sorted((o for o, p in by_ordinal.items() if o < replicas
                           and p["metadata"]["labels"].get("controller-revision-hash") != revision),
                          reverse=True)
        if outdated and len(current) == replicas and all(self.pod_ready(p) for p in current):
            self.delete_pod(by_ordinal[outdated[0]])
        ready = sum(1 for p in current if self.pod_ready(p))
        updated = len(current) - len(outdated)
        old_revision = (sts.get("status") or {}).get("currentRevision") or revision
        self.put_status(sts, "statefulsets", {
            "observedGeneration": sts["metadata"].get("generation", 1), "replicas": len(current),
            "readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": updated,
            "currentReplicas": updated if not outdated else len(current) - updated,
            "currentRevision": revision if not outdated else old_revision,
            "updateRevision": revision, "collisionCount": 0})

    def sync_deployment(self, deployment, pods):
        name = deployment["metadata"]["name"]
        replicas = int(deployment["spec"].get("replicas", 1))
        rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = int_or_percent(rolling.get("maxSurge", "25%"), replicas, round_up=True)
        unavailable = int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        revision = template_hash(deployment["spec"]["template"])
        new = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == revision]
        old = [p for p in pods if p not in new]
        if len(new) < replicas and len(pods) < replicas + max(surge, 1 if not unavailable else 0):
            suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            self.new_pod(deployment, f"{name}-{revision}-{suffix}", {"pod-template-hash": revision}, {})
        for pod in new[replicas:]:
            self.delete_pod(pod)
        ready = sum(1 for p in pods if self.pod_ready(p))
        for pod in sorted(old, key=self.pod_ready):  # unready old pods go first
            if not self.pod_ready(pod) or ready - 1 >= replicas - unavailable:
                ready -= self.pod_ready(pod)
                self.delete_pod(pod)
        new_ready = sum(1 for p in new[:replicas] if self.pod_ready(p))
        all_ready = sum(1 for p in pods if self.pod_ready(p))
        available = all_ready >= replicas - unavailable
        self.put_status(deployment, "deployments", {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(pods), "updatedReplicas": len(new[:replicas]), "readyReplicas": all_ready,
            "availableReplicas": all_ready, "unavailableReplicas": max(0, replicas - all_ready),
            "conditions": [{"type": "Available", "status": "True" if available else "False"},
                           {"type": "Progressing",
                            "status": "True" if new_ready < replicas or old else "False"}]})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--node-root", required=True, help="host directory that hostPath paths are under")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--network", required=True, help="an existing podman network")
    parser.add_argument("--run-id", required=True, help="label value put on every container")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplies probe periods, delays and back-offs (tests use < 1)")
    parser.add_argument("--backoff", type=float, default=10.0, help="first restart back-off (s)")
    parser.add_argument("--max-grace", type=int, default=30, help="cap on stop timeouts (s)")
    parser.add_argument("--podman-flags", default="", help="extra `podman run` flags (ulimits)")
    parser.add_argument("--ready-file", default="")
    parser.add_argument("--ca", default="", help="the API server's CA (HTTPS); pods get it as ca.crt")
    parser.add_argument("--service-host", default="", help="KUBERNETES_SERVICE_HOST for pods")
    parser.add_argument("--service-port", type=int, default=0, help="KUBERNETES_SERVICE_PORT for pods")
    args = parser.parse_args()
    runner = PodRunner(args)
    signal.signal(signal.SIGTERM, lambda *_: (runner.stopping.set(), runner.wake()))
    signal.signal(signal.SIGINT, lambda *_: (runner.stopping.set(), runner.wake()))
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    runner.log(f"node {NODE_NAME}: namespace {args.namespace}, network {args.network}")
    runner.run()
    runner.log("stopped")


if __name__ == "__main__":
    main()
