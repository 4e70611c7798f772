"""Test helper: a podman-backed node (tests/k8s/pod_runner.py) for a FakeApiServer, for the length
of a `with` block.

    with PodmanNode(time_scale=0.1) as node, FakeApiServer(host=node.gateway, tls=True) as k8s:
        node.start_runner(k8s)              # pods can now reach the API server at node.gateway
        os.makedirs(node.host_path("/var/lib/kubemoe/models/tiny"))   # the node's filesystem
        ...kubectl apply...; node.containers() lists this run's pod containers

Makes a podman network of its own (pods reach each other by IP and by their Services' DNS names;
the host reaches every pod IP, and pods reach the host at `gateway`), held up by an idle "node"
container so the gateway address exists before any pod runs (an API server can bind it), a node
root directory (hostPath volumes resolve under it) and a state directory. start_runner runs the
pod runner as a child process; pods get KUBERNETES_SERVICE_HOST/PORT and, with an HTTPS API
server, a service-account token and its CA. On exit it stops the runner (which stops its
containers), then force-removes any container still carrying this run's labels, the network and
the directories. `skip_reason()` says why containers cannot run here (None when
they can): not root, podman or runc missing, or an image missing or older than the binary
next to the test (each image carries its binary's sha256 as a label, scripts/build_images.sh).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "pod_runner.py")
ROOT = os.path.dirname(os.path.dirname(HERE))
OCI_RUNTIME = os.environ.get("OCI_RUNTIME", "runc")


def podman(*args, check=True, timeout=120):
    proc = subprocess.run(["podman", "--runtime", OCI_RUNTIME, *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc


def podman_limit_flags():
    """The ulimit flags of scripts/podman_env.sh (this host's hard limits)."""
    out = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/podman_env.sh && echo \"${{podman_limits[*]}}\""],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def image_tag():
    with open(os.path.join(ROOT, "charts", "kubemoe", "Chart.yaml")) as f:
        for line in f:
            if line.startswith("appVersion:"):
                return line.split(":", 1)[1].strip().strip('"')
    raise RuntimeError("no appVersion in charts/kubemoe/Chart.yaml")


def image_name(component):
    return f"ghcr.io/kubemoe/kubemoe-{component}:{image_tag()}"


def skip_reason(binaries):
    """None when containers of `binaries` ({component: host binary path}) can run here."""
    if os.geteuid() != 0:
        return "not root (the container tests use rootful podman)"
    for tool in ("podman", OCI_RUNTIME):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (bash scripts/setup.sh installs it)"
    for component, binary in binaries.items():
        image = image_name(component)
        inspect = podman("image", "inspect", image, check=False)
        if inspect.returncode != 0:
            return f"image {image} is missing; build it with: bash scripts/build_images.sh"
        labels = json.loads(inspect.stdout)[0].get("Config", {}).get("Labels") or {}
        with open(binary, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if labels.get("io.kubemoe.binary.sha256") != digest:
            return f"image {image} holds another build than {binary}; rebuild: bash scripts/build_images.sh"
    return None


class PodmanNode:
    def __init__(self, namespace="default", time_scale=0.1, backoff=10.0, max_grace=5):
        self.namespace = namespace
        self.time_scale, self.backoff, self.max_grace = time_scale, backoff, max_grace
        self.run_id = "t" + uuid.uuid4().hex[:10]
        self.network = f"kubemoe-{self.run_id}"
        self.proc = None
        self._log = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="podman-node-")
        os.chmod(self.dir, 0o755)  # containers run as 65532 and must reach hostPath volumes under it
        self.node_root = os.path.join(self.dir, "root")
        self.state_dir = os.path.join(self.dir, "state")
        os.makedirs(self.node_root, mode=0o755)
        os.makedirs(self.state_dir, mode=0o755)
        try:
            podman("network", "create", self.network)
            self.gateway = podman("network", "inspect", self.network, "--format",
                                  "{{range .Subnets}}{{.Gateway}}{{end}}").stdout.strip()
            # netavark makes the bridge (and the gateway address) when a first container joins.
            podman("run", "-d", "--name", f"kubemoe-node-{self.run_id}", "--label",
                   f"kubemoe.test/node={self.run_id}", "--network", self.network, "--pull", "never",
                   *podman_limit_flags().split(), "--entrypoint", "sleep", image_name("worker"), "infinity")
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def start_runner(self, k8s):
        """Runs the pod runner against `k8s` (a FakeApiServer) until the block ends."""
        self.log_path = os.path.join(self.dir, "pod-runner.log")
        self._log = open(self.log_path, "wb")
        ready = os.path.join(self.dir, "ready")
        api = ["--ca", k8s.ca_file] if k8s.ca_file else []
        if k8s.host == self.gateway:
            api += ["--service-host", self.gateway, "--service-port", str(k8s.port)]
        self.proc = subprocess.Popen(
            [sys.executable, RUNNER, "--server", k8s.url, "--namespace", self.namespace,
             "--node-root", self.node_root, "--state-dir", self.state_dir, "--network", self.network,
             "--run-id", self.run_id, "--time-scale", str(self.time_scale), "--backoff",
             str(self.backoff), "--max-grace", str(self.max_grace), "--podman-flags",
             podman_limit_flags(), "--ready-file", ready, *api],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pod runner did not start: {self.runner_log()}")
            time.sleep(0.05)

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for label in ("runner", "node"):
            out = podman("ps", "-aq", "--filter", f"label=kubemoe.test/{label}={self.run_id}", check=False)
            for container in out.stdout.split():
                podman("rm", "-f", "-t", "0", container, check=False)
        podman("network", "rm", "-f", self.network, check=False)
        if self._log:
            self._log.close()
        if not os.environ.get("KUBEMOE_KEEP_PODMAN_NODE_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def host_path(self, path):
        """Where the node's `path` (a hostPath) is on this machine."""
        return os.path.join(self.node_root, path.lstrip("/"))

    def containers(self, all_states=False):
        """Names of this run's containers (running ones unless all_states)."""
        args = ["ps", "--filter", f"label=kubemoe.test/runner={self.run_id}", "--format", "{{.Names}}"]
        out = podman(*(args + (["-a"] if all_states else [])), check=False).stdout
        return sorted(out.split())

    def container_of(self, pod_name):
        """The running container of a pod, or None."""
        names = [n for n in self.containers() if n.startswith(f"k8s_{pod_name}_")]
        return names[0] if names else None

    def runner_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def container_logs(self, pod_name, tail=40):
        """The last lines of a pod's running container, else of its last exited one."""
        name = self.container_of(pod_name)
        if name:
            return podman("logs", "--tail", str(tail), name, check=False).stdout
        logs = os.path.join(self.state_dir, "logs")
        saved = sorted(f for f in os.listdir(logs) if f.startswith(f"k8s_{pod_name}_")) if os.path.isdir(logs) else []
        if not saved:
            return ""
        with open(os.path.join(logs, saved[-1]), errors="replace") as f:
            return "".join(f.readlines()[-tail:])
