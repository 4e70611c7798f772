"""End-to-end test of kubemoe-operator against the fake API server, driven by the real kubectl.

Run by ctest (test `operator_e2e`) with KUBEMOE_OPERATOR_BIN pointing at the operator. Covers:
children with owner references, `kubectl get moe` printer columns, `kubectl scale`, readiness
from workload status, convergence under injected faults (500s, 409s, dropped watches, slow
responses), garbage collection on delete, leader election hand-over after SIGKILL, and the exit
of a leader whose Lease renewal stalls.
Every wait is a bounded poll; every process started here is killed at the end.
"""
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE, "tests", "k8s"))
from testing import FakeApiServer, kubectl_path  # noqa: E402
from checks import check, results

OPERATOR = os.environ["KUBEMOE_OPERATOR_BIN"]
CRD = os.path.join(SOURCE, "operator", "crd", "moemodels.kubemoe.io.yaml")
SAMPLE = os.path.join(SOURCE, "manifests", "samples", "tiny-cpu.yaml")
NS = "default"
T0 = time.monotonic()
processes = []


def log(msg):
    print(f"[{time.monotonic() - T0:5.1f}s] {msg}", flush=True)



def poll(what, fn, timeout=15.0, interval=0.2):
    """Calls fn until it returns a truthy value or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = fn()
        except Exception as e:  # a poll step may race with the server; keep trying
            value = None
            last_error = e
        if value:
            return value
        time.sleep(interval)
    log(f"timed out waiting for {what}")
    return value


class Operator:
    def __init__(self, k8s, name, *extra):
        self.name = name
        self.log_path = os.path.join(k8s.dir, f"operator-{name}.log")
        self._log = open(self.log_path, "wb")
        cmd = [OPERATOR, "--kubeconfig", k8s.kubeconfig, "--namespace", NS, "--health-port", "0",
               "--metrics-port", "0", "--workers", "2", "--resync-period", "20",
               "--watch-timeout", "15", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log)
        processes.append(self.proc)
        self.health_port = self.metrics_port = None
        deadline = time.monotonic() + 10
        buf = b""
        while (self.health_port is None or self.metrics_port is None) and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                m = re.search(rb"health port (\d+)", buf)
                if m:
                    self.health_port = int(m.group(1))
                m = re.search(rb"metrics port (\d+)", buf)
                if m:
                    self.metrics_port = int(m.group(1))
        if self.health_port is None or self.metrics_port is None:
            raise RuntimeError(f"operator {name} did not report its ports: {self.logs()}")

    def http(self, port, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def ready(self):
        return self.http(self.health_port, "/readyz")[0] == 200

    def metric(self, name):
        code, text = self.http(self.metrics_port, "/metrics")
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if code == 200 and m else None

    def logs(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""


def get(k8s, path):
    code, obj = k8s.request("GET", path)
    return obj if code == 200 else None


def sts(k8s, name="tiny-experts"):
    return get(k8s, f"/apis/apps/v1/namespaces/{NS}/statefulsets/{name}")


def model(k8s):
    return get(k8s, f"/apis/kubemoe.io/v1alpha1/namespaces/{NS}/moemodels/tiny")


def condition(obj, ctype):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c.get("type") == ctype:
            return c.get("status")
    return None


def mark_workloads_ready(k8s):
    """Plays the StatefulSet and Deployment controllers: reports every replica of the current
    spec ready. Called on every poll step, since the operator may still be rolling out."""
    for kind, name, ready_field in (("statefulsets", "tiny-experts", "readyReplicas"),
                                    ("deployments", "tiny-router", "availableReplicas")):
        path = f"/apis/apps/v1/namespaces/{NS}/{kind}/{name}"
        obj = get(k8s, path)
        if obj is None:
            return False
        n = obj["spec"].get("replicas", 1)
        obj["status"] = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": n,
                         "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n,
                         "currentReplicas": n, "currentRevision": "r1", "updateRevision": "r1"}
        code, _ = k8s.request("PUT", path + "/status", obj)
        if code != 200:
            return False
    return True


def writes(k8s, exclude="/leases/"):
    return [r for r in k8s.requests() if r["method"] not in ("GET",) and exclude not in r["path"]]


def main():
    if kubectl_path() is None:
        print("FAIL: kubectl not found (set KUBECTL or put it on PATH)")
        return 1
    with FakeApiServer(bookmark_interval=1.0) as k8s:
        try:
            run(k8s)
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=5)
    print(f"{results['passed']} passed, {results['failed']} failed in {time.monotonic() - T0:.1f}s")
    return 1 if results["failed"] else 0


def run(k8s):
    # "--namespace=" with nothing after it: CLI11 takes the next argument as the value. The
    # operator must refuse that instead of watching a namespace called "--leader-elect=true".
    bad = subprocess.run([OPERATOR, "--kubeconfig", k8s.kubeconfig, "--namespace=", "--leader-elect=true"],
                         capture_output=True, text=True, timeout=10)
    check("a flag taken as --namespace is refused", bad.returncode != 0 and
          '"--leader-elect=true" is not a namespace name' in bad.stderr, (bad.returncode, bad.stderr))
    k8s.kubectl("apply", "-f", CRD)
    applied = poll("the MoEModel kind to be served",
                   lambda: k8s.kubectl("apply", "-f", SAMPLE, check=False).returncode == 0, 10)
    if not check("sample applied", applied):
        return
    le_flags = ["--leader-elect", "--leader-election-namespace", NS, "--lease-duration", "6",
                "--renew-deadline", "4", "--retry-period", "1"]
    a = Operator(k8s, "a", *le_flags, "--leader-election-identity", "operator-a")
    log(f"operator a: health {a.health_port}, metrics {a.metrics_port}")

    # --- children with owner references ----------------------------------------------------------
    uid = model(k8s)["metadata"]["uid"]
    children = [("/api/v1", "configmaps", "tiny-placement"), ("/api/v1", "services", "tiny-experts"),
                ("/apis/apps/v1", "statefulsets", "tiny-experts"),
                ("/apis/policy/v1", "poddisruptionbudgets", "tiny-experts"),
                ("/apis/networking.k8s.io/v1", "networkpolicies", "tiny-experts"),
                ("/apis/apps/v1", "deployments", "tiny-router"), ("/api/v1", "services", "tiny-router")]

    def all_children():
        objs = [get(k8s, f"{prefix}/namespaces/{NS}/{plural}/{name}") for prefix, plural, name in children]
        return objs if all(objs) else None

    objs = poll("child objects", all_children, 20)
    if not check("children created", objs, a.logs()):
        return
    for (prefix, plural, name), obj in zip(children, objs):
        refs = obj["metadata"].get("ownerReferences", [])
        check(f"{plural}/{name} owner", any(r.get("uid") == uid and r.get("kind") == "MoEModel"
                                            and r.get("controller") for r in refs), refs)
    check("a ready", poll("a /readyz", a.ready, 10), a.logs())
    check("a leads", poll("a leader metric", lambda: a.metric("kubemoe_operator_leader") == 1, 10))

    # --- printer columns ---------------------------------------------------------------------------
    out = poll("status phase column", lambda: (lambda o: o if re.search(r"tiny\s+tiny\s+2\s+\d+\s+\w+", o) else None)(
        k8s.kubectl("get", "moe").stdout), 10) or k8s.kubectl("get", "moe").stdout
    check("kubectl get moe columns", re.search(r"NAME\s+MODEL\s+SHARDS\s+READY\s+PHASE", out), out)
    check("kubectl get moe row", re.search(r"tiny\s+tiny\s+2\s+\d+\s+\w+", out), out)

    # --- scale ----------------------------------------------------------------------------------------
    cm_before = get(k8s, f"/api/v1/namespaces/{NS}/configmaps/tiny-placement")
    version_before = cm_before["data"].get("version")
    k8s.kubectl("scale", "moe/tiny", "--replicas=4")
    scaled = poll("StatefulSet at 4 replicas", lambda: (sts(k8s) or {}).get("spec", {}).get("replicas") == 4, 15)
    check("scaled to 4", scaled, a.logs())
    cm = poll("new placement version",
              lambda: (lambda c: c if c and c["data"].get("version") != version_before else None)(
                  get(k8s, f"/api/v1/namespaces/{NS}/configmaps/tiny-placement")), 10)
    check("placement version changed", cm, version_before)
    if cm:
        st = poll("status with the new version", lambda: (lambda m: m if str(m.get("status", {}).get(
            "placementVersion")) == cm["data"]["version"] and m["status"].get("shards") == 4 else None)(model(k8s)), 10)
        check("status placement version", st, model(k8s).get("status"))

    # --- Ready once the workloads report ready ------------------------------------------------------------
    ready = poll("Ready condition", lambda: mark_workloads_ready(k8s) and condition(model(k8s), "Ready") == "True", 15)
    check("Ready after workloads ready", ready, json.dumps(model(k8s).get("status"), indent=1))
    check("phase Ready", (model(k8s) or {}).get("status", {}).get("phase") == "Ready", model(k8s).get("status"))

    # --- faults --------------------------------------------------------------------------------------------
    k8s.add_fault(method="PATCH", path_regex="/statefulsets/", status=500, times=3)
    k8s.add_fault(method="PUT", path_regex="/moemodels/.*/status", status=409, times=2)
    k8s.add_fault(method="GET", path_regex="/deployments", query_regex="watch=true", delay_seconds=1.5, times=3)
    k8s.drop_watches(abrupt=True)
    k8s.kubectl("scale", "moe/tiny", "--replicas=3")
    k8s.drop_watches()
    check("converged under faults", poll("StatefulSet at 3 replicas under faults",
                                         lambda: (sts(k8s) or {}).get("spec", {}).get("replicas") == 3, 30), a.logs())
    k8s.clear_faults()
    check("Ready again after faults", poll("Ready after faults", lambda: mark_workloads_ready(k8s)
                                           and condition(model(k8s), "Ready") == "True"
                                           and model(k8s)["status"].get("shards") == 3, 20),
          json.dumps(model(k8s).get("status"), indent=1))

    # --- leader election: a standby that does not write -------------------------------------------------
    b = Operator(k8s, "b", *le_flags, "--leader-election-identity", "operator-b")
    check("b ready as standby", poll("b /readyz", b.ready, 10), b.logs())
    check("b not leader", b.metric("kubemoe_operator_leader") == 0)
    time.sleep(1.0)
    k8s.clear_requests()
    time.sleep(2.5)
    check("no writes while converged with a standby", writes(k8s) == [], writes(k8s))
    lease = get(k8s, f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/kubemoe-operator")
    check("a holds the lease", lease and lease["spec"].get("holderIdentity") == "operator-a", lease)

    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(timeout=5)
    killed_at = time.monotonic()
    took_over = poll("b to take over", lambda: b.metric("kubemoe_operator_leader") == 1, 15)
    check("b takes over", took_over, b.logs())
    check("not before the lease expired", time.monotonic() - killed_at >= 3.0, time.monotonic() - killed_at)
    lease = get(k8s, f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/kubemoe-operator")
    check("lease moved to b", lease and lease["spec"].get("holderIdentity") == "operator-b"
          and lease["spec"].get("leaseTransitions", 0) >= 1, lease)
    k8s.kubectl("scale", "moe/tiny", "--replicas=2")
    check("b reconciles", poll("b to scale", lambda: (sts(k8s) or {}).get("spec", {}).get("replicas") == 2, 15),
          b.logs())

    # --- delete: the server garbage-collects the children -------------------------------------------------
    k8s.kubectl("delete", "moe", "tiny")
    gone = poll("children to go", lambda: all(get(k8s, f"{p}/namespaces/{NS}/{pl}/{n}") is None
                                             for p, pl, n in children), 15)
    check("children garbage-collected", gone,
          [f"{pl}/{n}" for p, pl, n in children if get(k8s, f"{p}/namespaces/{NS}/{pl}/{n}") is not None])

    # --- graceful shutdown releases the lease --------------------------------------------------------------
    b.proc.send_signal(signal.SIGTERM)
    try:
        code = b.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = None
    check("b exits cleanly on SIGTERM", code == 0, f"exit {code}; {b.logs()}")
    lease = get(k8s, f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/kubemoe-operator")
    check("lease released", lease and not lease["spec"].get("holderIdentity"), lease)

    # --- a lost Lease ends the process at once ---------------------------------------------------------
    c = Operator(k8s, "c", *le_flags, "--leader-election-identity", "operator-c")
    check("c leads", poll("c leader metric", lambda: c.metric("kubemoe_operator_leader") == 1, 15), c.logs())
    # c's next renewal hangs past the Lease duration. Its last successful renewal started at most
    # a retry period (1 s) before this, so the Lease may look expired to others 6 - 1 = 5 s from now.
    k8s.add_fault(method="PUT", path_regex="/leases/", delay_seconds=10, times=1)
    stalled_at = time.monotonic()
    try:
        code = c.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - stalled_at
    k8s.clear_faults()
    log(f"operator c: exit {code} {took:.1f}s after its renewal stalled")
    check("c exits non-zero when its renewal stalls", code == 1, f"exit {code}; {c.logs()}")
    check("c exits before its Lease could expire", took < 5.0, f"{took:.1f}s")
    check("c says why it exits", "lost the Lease" in c.logs(), c.logs())


if __name__ == "__main__":
    sys.exit(main())
