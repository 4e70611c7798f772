"""From `kubectl apply` to an answer with the real images: the operator's pods run as podman
containers (tests/k8s/pod_runner.py plays the StatefulSet/Deployment controllers, scheduler and
kubelet for the fake API server).

Run by ctest (test `containers_e2e`). Skips (77) when containers cannot run here (not root, no
podman, images missing or older than build/; see tests/k8s/podman_node.py) unless
KUBEMOE_REQUIRE_CONTAINERS=1 (CI), when that is a failure. Covers, in order:
  1. The operator is installed from the chart (rendered by Helm's engine, applied by kubectl) and
     runs from its image with in-cluster credentials (a service-account token, the API server's
     CA) against the test API server over HTTPS. kubectl applies the CRD and
     manifests/samples/tiny-cpu.yaml unchanged (its hostPath model directory made on the node);
     the operator reconciles; the worker and router containers start with the pods' security
     context; the MoEModel turns Ready.
  2. The official `openai` client streams a chat completion through the router container's pod IP;
     the workers' /metrics show the experts ran in the worker containers.
  3. `kubectl scale moe/tiny --replicas=3`: three worker containers, the pods roll to the new
     placement version, Ready again, and a request succeeds.
  4. A worker container is killed: requests during the outage end (an answer or an error) within
     a bound, none hangs; the runner restarts the container (restartCount 1), and requests
     succeed again.
  5. `spec.networkPolicy.enabled: false` deletes the workers' NetworkPolicy; `kubectl delete moe
     tiny` removes every pod and container.
  6. `spec.tls` with a Secret (made with tests/tools/make_test_certs.sh, created with kubectl):
     router and workers speak mutual TLS, an answer still streams, and a worker container refuses
     gRPC (the `grpcio` client) in plaintext, without a client certificate and with another CA's.
  7. Uninstalling the chart stops the operator's container. Every request the operator made (its
     service account's token) is allowed by the chart's RBAC rules, and every rule was used
     (tests/k8s/rbac.py).
Every wait is a bounded poll; the operator, the runner and every container are stopped at the end.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE, "tests", "k8s"))
from checks import check, http_get, results  # noqa: E402
from podman_node import PodmanNode, podman, skip_reason  # noqa: E402
from testing import FakeApiServer, kubectl_path  # noqa: E402
import chart  # noqa: E402
import rbac  # noqa: E402

KUBEMOE = os.environ["KUBEMOE_BIN"]
BIN_DIR = os.environ["KUBEMOE_BINARY_DIR"]
CRD = os.path.join(SOURCE, "operator", "crd", "moemodels.kubemoe.io.yaml")
SAMPLE = os.path.join(SOURCE, "manifests", "samples", "tiny-cpu.yaml")
MODEL_HOST_PATH = "/var/lib/kubemoe/models/tiny"  # the sample's spec.model.source.hostPath.path
NS = "default"
OPERATOR_TOKEN = f"serviceaccount:{NS}:kubemoe"  # the chart's ServiceAccount, as the runner mounts it
OPERATOR_COMPONENT = "operator"
WORKERS, ROUTER = "expert-shard", "router"  # app.kubernetes.io/component of the operator's pods
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def poll(what, fn, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = fn()
        except Exception:  # a step may race with the cluster; keep trying
            value = None
        if value:
            return value
        time.sleep(interval)
    log(f"timed out waiting for {what}")
    return value


class Cluster:
    """The fake API server, the podman node and the operator, with the queries the test needs."""

    def __init__(self, k8s, node):
        self.k8s, self.node = k8s, node
        self.chart_file = None

    def install_operator(self):
        """`helm install`: the chart rendered by Helm's engine, applied with kubectl; the runner
        starts the operator's Deployment from its image, with in-cluster credentials."""
        self.chart_file = os.path.join(self.node.dir, "chart.yaml")
        with open(self.chart_file, "w") as f:
            f.write(chart.render_yaml(NS))
        self.k8s.kubectl("apply", "-f", self.chart_file)
        return poll("the operator pod Ready", lambda: self.ready_pods(OPERATOR_COMPONENT), 90, 1.0)

    def uninstall_operator(self):
        """`helm uninstall`: the chart's objects deleted; the runner stops the operator's pod."""
        self.k8s.kubectl("delete", "-f", self.chart_file, "--wait=false")
        return poll("the operator container to go",
                    lambda: not [c for c in self.node.containers() if c.startswith("k8s_kubemoe-")], 60, 1.0)

    def operator_logs(self):
        pods = self.pods(OPERATOR_COMPONENT)
        return self.node.container_logs(pods[0]["metadata"]["name"], 40) if pods else self.node.runner_log()

    def model_containers(self):
        return [c for c in self.node.containers() if c.startswith("k8s_tiny-")]

    def get(self, path):
        code, obj = self.k8s.request("GET", path)
        return obj if code == 200 else None

    def model(self):
        return self.get(f"/apis/kubemoe.io/v1alpha1/namespaces/{NS}/moemodels/tiny")

    def model_ready(self, shards):
        status = (self.model() or {}).get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        return ready and status.get("shards") == shards and status.get("readyShards") == shards

    def pods(self, component):
        out = self.k8s.kubectl("get", "pods", "-l", f"app.kubernetes.io/component={component}",
                               "-o", "json").stdout
        return json.loads(out)["items"]

    def ready_pods(self, component):
        return [p for p in self.pods(component) if any(
            c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))]

    def router_url(self):
        pods = self.ready_pods(ROUTER)
        return f"http://{pods[0]['status']['podIP']}:8000" if len(pods) == 1 else None

    def diagnose(self):
        lines = [f"model status: {json.dumps((self.model() or {}).get('status'))}",
                 f"containers: {self.node.containers()}", "runner log:", self.node.runner_log()[-2500:]]
        for component in (WORKERS, ROUTER):
            for pod in self.pods(component):
                name = pod["metadata"]["name"]
                lines += [f"--- {name}: {json.dumps(pod.get('status', {}).get('containerStatuses'))}",
                          self.node.container_logs(name, 15)]
        return "\n".join(lines)


def stream_chat(url, max_tokens=12, timeout=60):
    import openai
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", timeout=timeout, max_retries=0)
    stream = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hello"}],
                                            max_tokens=max_tokens, temperature=0, stream=True)
    chunks, finish = [], None
    for chunk in stream:
        if chunk.choices:
            chunks.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    return chunks, finish


def expert_tokens(pod):
    code, text = http_get(f"http://{pod['status']['podIP']}:9090/metrics", timeout=3)
    return sum(float(v) for v in re.findall(r"^kubemoe_worker_expert_tokens_total\S* (\S+)$", text, re.M)) \
        if code == 200 else None


def run(cluster):
    k8s, node = cluster.k8s, cluster.node
    # --- 1. apply, reconcile, containers, Ready ---------------------------------------------------
    model_dir = node.host_path(MODEL_HOST_PATH)
    subprocess.run([KUBEMOE, "make-model", "--preset", "tiny", "--seed", "1", "--out", model_dir],
                   check=True, capture_output=True, timeout=120)
    for dirpath, dirnames, filenames in os.walk(node.node_root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    k8s.kubectl("apply", "-f", CRD)
    applied = poll("the MoEModel kind to be served",
                   lambda: k8s.kubectl("apply", "-f", SAMPLE, check=False).returncode == 0, 15)
    if not check("sample applied", applied):
        return
    if not check("the chart's operator pod runs and is Ready", cluster.install_operator(),
                 cluster.node.runner_log()[-3000:]):
        return
    ready = poll("MoEModel Ready with 2 shards", lambda: cluster.model_ready(2), 180, 1.0)
    log(f"Ready: {bool(ready)}; containers {node.containers()}")
    if not check("MoEModel Ready from running containers", ready, cluster.diagnose() + cluster.operator_logs()):
        return
    check("three model containers run (2 workers, 1 router)", len(cluster.model_containers()) == 3,
          node.containers())
    worker = node.container_of("tiny-experts-0")
    inspect = json.loads(podman("inspect", worker).stdout)[0]
    host = inspect["HostConfig"]
    check("worker runs as 65532", inspect["Config"]["User"] == "65532:65532", inspect["Config"]["User"])
    check("worker root filesystem read-only", host.get("ReadonlyRootfs") is True)
    check("worker drops every capability", not inspect.get("EffectiveCaps"), inspect.get("EffectiveCaps"))
    check("worker no-new-privileges", "no-new-privileges" in (host.get("SecurityOpt") or []), host.get("SecurityOpt"))
    check("worker memory limit 2Gi", host.get("Memory") == 2 * 1024**3, host.get("Memory"))
    check("model mounted read-only", any(m["Destination"] == "/models" and not m["RW"] for m in inspect["Mounts"]),
          inspect["Mounts"])

    # --- 2. a streamed answer through the router container -----------------------------------------
    url = cluster.router_url()
    log(f"router at {url}")
    try:
        chunks, finish = stream_chat(url)
    except Exception as e:  # report, do not crash the test
        chunks, finish = [], repr(e)
    check("openai client streams an answer", len(chunks) >= 3 and finish in ("length", "stop"), (chunks, finish))
    counts = [expert_tokens(p) for p in cluster.ready_pods(WORKERS)]
    log(f"expert tokens per worker: {counts}")
    check("every worker container ran experts", len(counts) == 2 and all(c and c > 0 for c in counts), counts)

    # --- 3. scale to 3 shards ------------------------------------------------------------------------
    version_before = cluster.model()["status"].get("placementVersion")
    k8s.kubectl("scale", "moe/tiny", "--replicas=3")
    ready = poll("Ready with 3 shards", lambda: cluster.model_ready(3)
                 and cluster.model()["status"].get("placementVersion") != version_before
                 and len(cluster.model_containers()) == 4 and cluster.router_url(), 180, 1.0)
    log(f"scaled: {bool(ready)}; containers {node.containers()}")
    check("scaled to 3 shards, Ready", ready, cluster.diagnose())
    router_args = cluster.ready_pods(ROUTER)[0]["spec"]["containers"][0]["args"] if ready else []
    check("the router pod rolled to 3 shards", "--shards=3" in router_args, router_args)
    try:
        chunks, finish = stream_chat(cluster.router_url())
    except Exception as e:
        chunks, finish = [], repr(e)
    check("a request after scaling succeeds", len(chunks) >= 3 and finish in ("length", "stop"), (chunks, finish))

    # --- 4. a worker container dies; the runner restarts it ------------------------------------------
    url = cluster.router_url()
    victim = node.container_of("tiny-experts-1")
    outcomes = []

    def one_request(i):
        t = time.monotonic()
        try:
            chunks, finish = stream_chat(url, max_tokens=24, timeout=60)
            outcomes.append(("answer" if finish else "truncated", time.monotonic() - t))
        except Exception as e:  # an error is an acceptable outcome; a hang is not
            outcomes.append((type(e).__name__, time.monotonic() - t))

    threads = [threading.Thread(target=one_request, args=(i,)) for i in range(6)]
    for t in threads[:3]:
        t.start()
    podman("kill", victim)
    log(f"killed {victim}")
    for t in threads[3:]:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join(timeout=90)
    log(f"requests during the outage: {outcomes}")
    check("no request hangs during the outage", len(outcomes) == 6 and all(s < 60 for _, s in outcomes), outcomes)
    check("none ends truncated without an error", all(o != "truncated" for o, _ in outcomes), outcomes)
    check("requests sent during the outage get errors", any(o != "answer" for o, _ in outcomes[3:]), outcomes)
    restarted = poll("tiny-experts-1 restarted", lambda: [p for p in cluster.pods(WORKERS)
                     if p["metadata"]["name"] == "tiny-experts-1"
                     and p["status"]["containerStatuses"][0]["restartCount"] >= 1], 60)
    check("the runner restarts the killed container", restarted, cluster.diagnose())
    if restarted:
        last = restarted[0]["status"]["containerStatuses"][0].get("lastState", {}).get("terminated", {})
        check("its last state records the kill", last.get("exitCode") == 137, last)
    ready = poll("Ready after the restart", lambda: cluster.model_ready(3) and cluster.router_url(), 120, 1.0)
    check("Ready again after the restart", ready, cluster.diagnose())

    def succeeds():
        try:
            chunks, finish = stream_chat(cluster.router_url())
            return finish in ("length", "stop")
        except Exception:
            return False
    check("requests succeed after the restart", poll("a request to succeed", succeeds, 60, 1.0), cluster.diagnose())

    # --- 5. the NetworkPolicy can be turned off; then delete ---------------------------------------
    policy = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/tiny-experts"
    check("the operator wrote the workers' NetworkPolicy", cluster.get(policy) is not None)
    k8s.kubectl("patch", "moe", "tiny", "--type", "merge", "-p", '{"spec":{"networkPolicy":{"enabled":false}}}')
    check("networkPolicy.enabled false deletes it", poll("the policy to go", lambda: cluster.get(policy) is None, 20))
    return delete_model(cluster)


def delete_model(cluster):
    cluster.k8s.kubectl("delete", "moe", "tiny")
    gone = poll("every model container to go", lambda: not [
        c for c in cluster.node.containers(all_states=True) if c.startswith("k8s_tiny-")]
        and not cluster.pods(WORKERS) and not cluster.pods(ROUTER), 90, 1.0)
    return check("kubectl delete removes every pod and container of the model", gone,
                 cluster.node.containers(all_states=True))


def grpc_health(address, credentials, host):
    """The worker's gRPC health status through `credentials` (None: plaintext), or the error code."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    options = [("grpc.ssl_target_name_override", host)] if credentials else []
    channel = grpc.secure_channel(address, credentials, options) if credentials else grpc.insecure_channel(address)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as e:
            return e.code().name


def run_tls(cluster):
    """spec.tls: the router and workers speak mutual TLS from a Secret; clients without the
    CA's certificate are refused by the worker containers."""
    import grpc
    import yaml
    k8s, node = cluster.k8s, cluster.node
    certs = os.path.join(node.dir, "certs")
    subprocess.run(["bash", os.path.join(SOURCE, "tests", "tools", "make_test_certs.sh"), certs,
                    f"*.tiny-experts.{NS}.svc", f"*.tiny-experts.{NS}.svc.cluster.local"],
                   check=True, capture_output=True, timeout=60)
    k8s.kubectl("create", "secret", "generic", "tiny-tls",
                *[f"--from-file={f}={os.path.join(certs, 'server', f)}" for f in ("tls.crt", "tls.key", "ca.crt")])
    with open(SAMPLE) as f:
        sample = yaml.safe_load(f)
    sample["spec"]["tls"] = {"secretName": "tiny-tls"}
    k8s.kubectl("apply", "-f", "-", input=yaml.safe_dump(sample))
    ready = poll("the TLS model Ready", lambda: cluster.model_ready(2) and cluster.router_url(), 120, 1.0)
    if not check("MoEModel with spec.tls Ready", ready, cluster.diagnose()):
        return
    worker = [p for p in cluster.ready_pods(WORKERS) if p["metadata"]["name"] == "tiny-experts-0"][0]
    args = worker["spec"]["containers"][0]["args"]
    check("the worker serves with --tls-dir", "--tls-dir=/etc/kubemoe/tls" in args, args)
    try:
        chunks, finish = stream_chat(cluster.router_url())
    except Exception as e:
        chunks, finish = [], repr(e)
    check("an answer through router -> workers over mutual TLS", len(chunks) >= 3 and finish in ("length", "stop"),
          (chunks, finish, cluster.diagnose()))
    address, host = f"{worker['status']['podIP']}:50051", f"tiny-experts-0.tiny-experts.{NS}.svc"

    def read(*names):
        return [open(os.path.join(certs, *n.split("/")), "rb").read() for n in names]
    ca, key, cert = read("ca/ca.crt", "client/tls.key", "client/tls.crt")
    other_key, other_cert = read("other/tls.key", "other/tls.crt")
    outcomes = {
        "plaintext": grpc_health(address, None, host),
        "TLS without a client certificate": grpc_health(address, grpc.ssl_channel_credentials(ca), host),
        "a certificate of another CA": grpc_health(address, grpc.ssl_channel_credentials(ca, other_key, other_cert), host),
        "the CA's client certificate": grpc_health(address, grpc.ssl_channel_credentials(ca, key, cert), host),
    }
    log(f"gRPC health of a TLS worker container: {outcomes}")
    for who in ("plaintext", "TLS without a client certificate", "a certificate of another CA"):
        check(f"worker refuses {who}", outcomes[who] == "UNAVAILABLE", outcomes[who])
    check("worker serves the CA's client certificate", outcomes["the CA's client certificate"] == "SERVING",
          outcomes)
    delete_model(cluster)


def audit_rbac(cluster):
    """Every request the operator made is allowed by the chart's RBAC, and every rule was used."""
    k8s = cluster.k8s
    check("uninstalling the chart stops the operator's container", cluster.uninstall_operator(),
          cluster.node.containers())
    calls = [r for r in k8s.requests() if r.get("token") == OPERATOR_TOKEN]
    rules = rbac.chart_rules(namespace=NS)
    denied, unused = rbac.audit(calls, rules, NS)
    log(f"operator made {len(calls)} requests; {len(rules)} RBAC rules")
    check("every operator request is allowed by its RBAC", not denied, denied[:10])
    check("every RBAC rule is used by some request", not unused, unused)


def main():
    if kubectl_path() is None:
        print("FAIL: kubectl not found (set KUBECTL or put it on PATH)")
        return 1
    binaries = {c: os.path.join(BIN_DIR, f"kubemoe-{c}") for c in ("operator", "router", "worker")}
    reason = skip_reason(binaries)
    if reason:
        if os.environ.get("KUBEMOE_REQUIRE_CONTAINERS") == "1":
            print(f"FAIL: KUBEMOE_REQUIRE_CONTAINERS=1 but {reason}")
            return 1
        print(f"SKIPPED: {reason}")
        return 77
    # The API server listens on the pod network's gateway with HTTPS, so the operator's pod can
    # reach it with in-cluster credentials.
    with PodmanNode(NS, time_scale=0.1, backoff=10.0) as node, \
            FakeApiServer(bookmark_interval=1.0, host=node.gateway, tls=True) as k8s:
        node.start_runner(k8s)
        cluster = Cluster(k8s, node)
        if run(cluster):  # the TLS model reuses the name, so only after a clean delete
            run_tls(cluster)
        audit_rbac(cluster)
    print(f"{results['passed']} passed, {results['failed']} failed in {time.monotonic() - T0:.1f}s")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
