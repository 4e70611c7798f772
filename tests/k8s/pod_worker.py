"""One pod's life on the test node: volumes, its podman container, probes, restarts, pod status.

Test infrastructure for tests/k8s/pod_runner.py (which creates one PodWorker per Pod bound to the
node and stops it when the Pod is gone). Like a kubelet's pod worker, it

  * prepares the volumes: configMap and secret volumes as directories that follow their object
    (keys as symlinks into a `..data` directory swapped atomically, as the kubelet does; secret
    values base64-decoded), emptyDir as an empty world-writable directory, hostPath under the
    node root (type Directory is checked);
  * runs the container (podman_pod_spec.run_args) on the runner's podman network with the DNS
    names the pod's Services give it, KUBERNETES_SERVICE_HOST/PORT (the API server, as every
    kubelet sets them) and, unless automountServiceAccountToken is false, the service account's
    token, ca.crt and namespace at /var/run/secrets/kubernetes.io/serviceaccount (the token is the
    text `serviceaccount:NAMESPACE:NAME`, which the test API server logs as the caller), and
    waits for it to exit;
  * runs the startup, readiness and liveness probes the container declares (httpGet, grpc,
    tcpSocket, exec) from the node against the pod IP, with periods multiplied by the runner's
    time scale; a failed startup or liveness probe kills the container;
  * restarts an exited container (restartPolicy Always) after a back-off that doubles from
    `backoff` seconds up to 300 x time scale, and resets after 10 minutes x time scale running;
  * writes the Pod's status (phase, conditions, podIP, containerStatuses with state, lastState
    and restartCount) through the status subresource whenever it changes.
"""

import base64
import datetime
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import podman_pod_spec


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProbeRunner:
    """Runs one probe spec against the pod IP; True when it succeeds."""

    def __init__(self, spec, container, podman, container_name):
        self.spec = spec
        self.ports = {p["name"]: p["containerPort"] for p in container.get("ports") or [] if "name" in p}
        self.podman = podman
        self.container_name = container_name
        self.timeout = float(spec.get("timeoutSeconds", 1))

    def _port(self, port):
        return self.ports[port] if isinstance(port, str) and not port.isdigit() else int(port)

    def __call__(self, ip):
        try:
            if "httpGet" in self.spec:
                get = self.spec["httpGet"]
                conn = http.client.HTTPConnection(ip, self._port(get["port"]), timeout=self.timeout)
                try:
                    conn.request("GET", get.get("path", "/"))
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if "grpc" in self.spec:
                return self._grpc(ip, self.spec["grpc"])
            if "tcpSocket" in self.spec:
                with socket.create_connection((ip, self._port(self.spec["tcpSocket"]["port"])),
                                              timeout=self.timeout):
                    return True
            if "exec" in self.spec:
                cmd = self.podman + ["exec", self.container_name] + self.spec["exec"]["command"]
                return subprocess.run(cmd, capture_output=True, timeout=self.timeout + 5).returncode == 0
        except (OSError, subprocess.TimeoutExpired, http.client.HTTPException):
            return False
        raise podman_pod_spec.Unsupported(f"probe {sorted(self.spec)}")

    def _grpc(self, ip, spec):
        # The gRPC health checking protocol, as the kubelet's gRPC probe speaks it.
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        with grpc.insecure_channel(f"{ip}:{int(spec['port'])}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=spec.get("service", "")), timeout=self.timeout)
            except grpc.RpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING


class Probe:
    """A probe's schedule and its consecutive successes/failures (kubelet semantics)."""

    def __init__(self, spec, runner, scale):
        self.runner = runner
        self.period = max(0.2, float(spec.get("periodSeconds", 10)) * scale)
        self.failure_threshold = int(spec.get("failureThreshold", 3))
        self.success_threshold = int(spec.get("successThreshold", 1))
        self.next_at = time.monotonic() + float(spec.get("initialDelaySeconds", 0)) * scale
        self.successes = self.failures = 0

    def due(self):
        return time.monotonic() >= self.next_at

    def run(self, ip):
        """Probes once; returns 'success', 'failure' (threshold reached) or None (undecided)."""
        self.next_at = time.monotonic() + self.period
        if self.runner(ip):
            self.successes, self.failures = self.successes + 1, 0
            return "success" if self.successes >= self.success_threshold else None
        self.successes, self.failures = 0, self.failures + 1
        return "failure" if self.failures >= self.failure_threshold else None


class PodWorker(threading.Thread):
    def __init__(self, runner, pod):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.runner = runner
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.name = pod["metadata"]["name"]
        self.container = pod["spec"]["containers"][0]
        self.dir = os.path.join(runner.state_dir, "pods", self.uid)
        self.stopping = threading.Event()
        self.restart_count = 0
        self.container_name = None
        self.ip = ""
        self.ready = self.started = False
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.last_status = None
        self.start_time = now_rfc3339()
        self.projected = {}  # volume dir -> ("configmaps" | "secrets", object name)
        self.volume_lock = threading.Lock()  # the runner's loop also syncs projected volumes

    # --- lifetime -------------------------------------------------------------------------------
    def stop(self):
        self.stopping.set()

    def run(self):
        try:
            podman_pod_spec.check_pod_spec(self.pod["spec"])
            os.makedirs(self.dir, exist_ok=True)
            volume_dirs = self.prepare_volumes()
        except (podman_pod_spec.Unsupported, OSError) as e:
            self.runner.log(f"pod {self.name}: cannot run: {e}")
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            self.write_status()
            self.stopping.wait()
            self.cleanup()
            return
        # Like the kubelet, start the container only once every ConfigMap and Secret it mounts exists.
        while not self.stopping.is_set() and not all(
                os.path.exists(os.path.join(path, "..data")) for path in self.projected):
            self.stopping.wait(0.5)
            self.sync_projected_volumes()
        backoff = self.runner.backoff
        while not self.stopping.is_set():
            started_at = time.monotonic()
            exit_code, reason = self.run_container_once(volume_dirs)
            if self.stopping.is_set():
                break
            self.restart_count += 1
            if time.monotonic() - started_at > 600 * self.runner.time_scale:
                backoff = self.runner.backoff
            self.runner.log(f"pod {self.name}: container exited ({reason}, code {exit_code}); "
                            f"restart {self.restart_count} in {backoff:.1f}s")
            self.state = {"waiting": {"reason": "CrashLoopBackOff" if self.restart_count > 1 else reason}}
            self.write_status()
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, 300 * self.runner.time_scale)
        self.cleanup()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- volumes ----------------------------------------------------------------------------------
    def prepare_volumes(self):
        dirs = {}
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "hostPath" in volume:
                path = os.path.join(self.runner.node_root, volume["hostPath"]["path"].lstrip("/"))
                if volume["hostPath"].get("type") == "Directory" and not os.path.isdir(path):
                    raise OSError(f"hostPath {volume['hostPath']['path']} is not a directory on the node")
                dirs[name] = path
            elif "emptyDir" in volume:
                dirs[name] = os.path.join(self.dir, "empty-dir", name)
                os.makedirs(dirs[name], exist_ok=True)
                os.chmod(dirs[name], 0o777)  # as the kubelet makes emptyDir volumes
            else:
                kind, source = (("configmaps", volume["configMap"]["name"]) if "configMap" in volume
                                else ("secrets", volume["secret"]["secretName"]))
                dirs[name] = os.path.join(self.dir, kind, name)
                os.makedirs(dirs[name], exist_ok=True)
                self.projected[dirs[name]] = (kind, source)
        os.chmod(self.dir, 0o755)
        self.sync_projected_volumes()
        return dirs

    def sync_projected_volumes(self):
        """Projects each configMap/secret volume's object; the runner calls this on every pass."""
        with self.volume_lock:
            for path, (kind, name) in list(self.projected.items()):
                self._project(path, self.runner.cached(kind, name), kind == "secrets")

    @staticmethod
    def _project(path, obj, base64_values):
        if obj is None:
            return
        data = {k: base64.b64decode(v) if base64_values else v.encode()
                for k, v in (obj.get("data") or {}).items()}
        digest = hashlib.sha256(b"".join(k.encode() + b"\0" + v + b"\0" for k, v in sorted(data.items()))).hexdigest()[:12]
        target = f"..{digest}"
        if os.path.isdir(os.path.join(path, target)):
            return
        os.makedirs(os.path.join(path, target))
        for key, value in data.items():
            with open(os.path.join(path, target, key), "wb") as f:
                f.write(value)
        link = os.path.join(path, "..data_tmp")
        os.symlink(target, link)
        old = os.path.realpath(os.path.join(path, "..data"))
        os.replace(link, os.path.join(path, "..data"))
        for key in data:
            if not os.path.islink(os.path.join(path, key)):
                os.symlink(os.path.join("..data", key), os.path.join(path, key))
        if os.path.isdir(old) and os.path.basename(old) != target:
            shutil.rmtree(old, ignore_errors=True)

    # --- the container ------------------------------------------------------------------------------
    def run_container_once(self, volume_dirs):
        """Runs the container until it exits or a probe kills it: (exit code, reason)."""
        self.container_name = f"k8s_{self.name}_{self.uid[:8]}_{self.restart_count}"
        podman = self.runner.podman
        cmd = podman + ["run", "-d", "--pull", "never", "--name", self.container_name,
                        "--label", f"kubemoe.test/runner={self.runner.run_id}",
                        "--network", self.runner.network] + self.runner.podman_limits
        for alias in self.runner.dns_names(self.pod):
            cmd += ["--network-alias", alias]
        cmd += podman_pod_spec.run_args(self.pod, self.container, volume_dirs,
                                        self.runner.service_env(), self.service_account_mounts())
        started = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if started.returncode != 0:
            return started.returncode, "StartError: " + started.stderr.strip()[-300:]
        inspect = subprocess.run(podman + ["inspect", self.container_name, "--format",
                                           "{{json .NetworkSettings.Networks}}"],
                                 capture_output=True, text=True, timeout=60)
        networks = json.loads(inspect.stdout or "{}") if inspect.returncode == 0 else {}
        self.ip = (networks.get(self.runner.network) or {}).get("IPAddress", "")
        self.state = {"running": {"startedAt": now_rfc3339()}}
        self.ready = self.started = False
        self.write_status()

        exited = {}
        waiter = threading.Thread(target=self._wait_exit, args=(exited,), daemon=True)
        waiter.start()
        kill_reason = self.probe_until_exit(waiter)
        if kill_reason or self.stopping.is_set():
            grace = int(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
            subprocess.run(podman + ["stop", "-t", str(min(grace, self.runner.max_grace)),
                                     self.container_name], capture_output=True, timeout=120)
        waiter.join(timeout=60)
        self.ready = self.started = False
        code = exited.get("code", -1)
        reason = kill_reason or ("Completed" if code == 0 else "Error")
        self.last_state = {"terminated": {"exitCode": code, "reason": reason,
                                          "finishedAt": now_rfc3339()}}
        self.runner.save_logs(self.container_name)
        subprocess.run(podman + ["rm", "-f", self.container_name], capture_output=True, timeout=120)
        return code, reason

    def service_account_mounts(self):
        if self.pod["spec"].get("automountServiceAccountToken") is False or not self.runner.api_ca:
            return []
        account = self.pod["spec"].get("serviceAccountName") or "default"
        path = os.path.join(self.dir, "serviceaccount")
        os.makedirs(path, exist_ok=True)
        namespace = self.pod["metadata"]["namespace"]
        for name, text in (("token", f"serviceaccount:{namespace}:{account}"), ("namespace", namespace)):
            with open(os.path.join(path, name), "w") as f:
                f.write(text)
        shutil.copyfile(self.runner.api_ca, os.path.join(path, "ca.crt"))
        return [(path, "/var/run/secrets/kubernetes.io/serviceaccount")]

    def _wait_exit(self, exited):
        out = subprocess.run(self.runner.podman + ["wait", self.container_name],
                             capture_output=True, text=True)
        try:
            exited["code"] = int(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            exited["code"] = -1

    def probe_until_exit(self, waiter):
        """Probes while the container runs; returns a reason when a probe kills it, else None."""
        scale = self.runner.time_scale
        probes = {kind: Probe(self.container[kind], ProbeRunner(self.container[kind], self.container,
                                                               self.runner.podman, self.container_name), scale)
                  for kind in ("startupProbe", "readinessProbe", "livenessProbe") if kind in self.container}
        self.started = "startupProbe" not in probes
        if "readinessProbe" not in probes:
            self.ready = self.started
        while waiter.is_alive() and not self.stopping.is_set():
            changed = False
            if not self.started:
                verdict = probes["startupProbe"].run(self.ip) if probes["startupProbe"].due() else None
                if verdict == "failure":
                    return "StartupProbeFailed"
                if verdict == "success":
                    self.started = changed = True
                    self.ready = "readinessProbe" not in probes
            else:
                liveness = probes.get("livenessProbe")
                if liveness and liveness.due() and liveness.run(self.ip) == "failure":
                    return "LivenessProbeFailed"
                readiness = probes.get("readinessProbe")
                if readiness and readiness.due():
                    verdict = readiness.run(self.ip)
                    if verdict is not None and (verdict == "success") != self.ready:
                        self.ready, changed = verdict == "success", True
            if changed:
                self.write_status()
            waiter.join(timeout=0.1)
        return None

    # --- status ------------------------------------------------------------------------------------
    def status(self):
        running = "running" in self.state
        ready = running and self.ready

        def cond(ctype, ok):
            return {"type": ctype, "status": "True" if ok else "False"}
        container_status = {"name": self.container["name"], "image": self.container["image"],
                            "imageID": "", "ready": ready, "started": running and self.started,
                            "restartCount": self.restart_count, "state": self.state}
        if self.container_name and running:
            container_status["containerID"] = f"podman://{self.container_name}"
        if self.last_state:
            container_status["lastState"] = self.last_state
        status = {"phase": "Running" if running or self.restart_count else "Pending",
                  "conditions": [cond("PodScheduled", True), cond("Initialized", True),
                                 cond("ContainersReady", ready), cond("Ready", ready)],
                  "hostIP": self.runner.host_ip, "startTime": self.start_time,
                  "containerStatuses": [container_status]}
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        return status

    def write_status(self):
        status = self.status()
        # A stopped worker's pod is gone; a StatefulSet pod of the same name may already exist.
        if status == self.last_status or self.stopping.is_set():
            return
        if self.runner.patch_pod_status(self.pod, status):
            self.last_status = status
        self.runner.wake()

    def is_ready(self):
        return "running" in self.state and self.ready
