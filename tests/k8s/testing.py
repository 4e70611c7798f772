"""Test helper: runs tests/k8s/fake_apiserver.py for the length of a `with` block.

    with FakeApiServer() as k8s:
        k8s.kubectl("apply", "-f", "crd.yaml")             # --kubeconfig, --validate=false added
        code, obj = k8s.request("GET", "/api/v1/namespaces/default")
        k8s.add_fault(method="PUT", path_regex="/moemodels/", status=409, times=1)
        for event in k8s.watch("/api/v1/namespaces/default/configmaps", resource_version="5"):
            ...

The server listens on `host` (127.0.0.1 by default) with a port the kernel picks; `kubeconfig` is
a file for it (token auth with a dummy token, namespace `default`), and every kubectl call gets
its own discovery cache directory under the server's temporary directory. With `tls=True` it
serves HTTPS with a certificate for `host` from a throw-away CA (tests/tools/make_test_certs.sh;
`ca_file` is that CA, and the kubeconfig and these helpers trust it), as in-cluster clients
require. Every wait is bounded.
kubectl's typed `create` commands send protobuf; the server decodes only `create ns`,
`create configmap` and `create secret generic` (use `kubectl apply -f` for other kinds).
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_apiserver.py")
CERT_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                           "make_test_certs.sh")


def kubectl_path():
    """The kubectl to drive: $KUBECTL, else kubectl on PATH, else None."""
    return os.environ.get("KUBECTL") or shutil.which("kubectl")


class FakeApiServer:
    def __init__(self, bookmark_interval=1.0, watch_cache_size=1000, python=None, verbose=False,
                 host="127.0.0.1", tls=False):
        self.args = ["--bookmark-interval", str(bookmark_interval),
                     "--watch-cache-size", str(watch_cache_size)] + (["--verbose"] if verbose else [])
        self.python = python or sys.executable
        self.bind_host, self.tls = host, tls
        self.ca_file = None
        self.ssl_context = None
        self.proc = None
        self.dir = None

    # --- lifetime --------------------------------------------------------------------------------
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="fake-apiserver-")
        ready = os.path.join(self.dir, "ready")
        self.log_path = os.path.join(self.dir, "server.log")
        self._log = open(self.log_path, "wb")
        tls_args = []
        if self.tls:
            certs = os.path.join(self.dir, "certs")
            subprocess.run(["bash", CERT_SCRIPT, certs, f"IP:{self.bind_host}"], check=True,
                           capture_output=True, timeout=60)
            tls_args = ["--tls-cert", os.path.join(certs, "server", "tls.crt"),
                        "--tls-key", os.path.join(certs, "server", "tls.key")]
            self.ca_file = os.path.join(certs, "ca", "ca.crt")
            self.ssl_context = ssl.create_default_context(cafile=self.ca_file)
        self.proc = subprocess.Popen([self.python, SERVER, "--host", self.bind_host, "--port", "0",
                                      "--ready-file", ready] + tls_args + self.args,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"fake apiserver did not start; log: {self.server_log()}")
            time.sleep(0.05)
        with open(ready) as f:
            self.url = f.read().strip()
        parsed = urllib.parse.urlsplit(self.url)
        self.host, self.port = parsed.hostname, parsed.port
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            ca = f"\n    certificate-authority: {self.ca_file}" if self.ca_file else ""
            f.write(KUBECONFIG.format(url=self.url, ca=ca))
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "_log", None):
            self._log.close()
        if self.dir and not os.environ.get("KUBEMOE_KEEP_FAKE_APISERVER_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def server_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # --- kubectl -----------------------------------------------------------------------------------
    def kubectl(self, *args, input=None, check=True, timeout=30, validate=False):
        """Runs kubectl against this server; returns CompletedProcess (text). Raises on failure
        when `check`. `--validate=false` is added to apply/create/replace unless `validate`."""
        binary = kubectl_path()
        if binary is None:
            raise RuntimeError("kubectl not found (set KUBECTL or put it on PATH)")
        cmd = [binary, "--kubeconfig", self.kubeconfig, "--cache-dir", os.path.join(self.dir, "cache")]
        cmd += list(args)
        if not validate and args and args[0] in ("apply", "create", "replace"):
            cmd.append("--validate=false")
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def apply_namespace(self, name):
        return self.kubectl("apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\n"
                            f"metadata:\n  name: {name}\n")

    # --- raw HTTP ----------------------------------------------------------------------------------
    def request(self, method, path, body=None, content_type="application/json", headers=None,
                timeout=10):
        """(status code, decoded JSON body or text) of one request."""
        return api_request(self.host, self.port, method, path, body, content_type,
                           {"Authorization": "Bearer test-token", **(headers or {})}, timeout,
                           self.ssl_context)

    def watch(self, path, resource_version=None, timeout_seconds=10, bookmarks=False, selector=None,
              read_timeout=15):
        """Yields (event dict) from a watch until the server ends the stream.
        Raises ConnectionError if the stream breaks without its last chunk."""
        query = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version is not None:
            query["resourceVersion"] = resource_version
        if bookmarks:
            query["allowWatchBookmarks"] = "true"
        if selector:
            query["labelSelector"] = selector
        sock = socket.create_connection((self.host, self.port), timeout=read_timeout)
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        try:
            target = path + "?" + urllib.parse.urlencode(query)
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                         "Accept: application/json\r\n\r\n".encode())
            stream = sock.makefile("rb")
            status = stream.readline().split(b" ")
            headers = {}
            for line in iter(stream.readline, b"\r\n"):
                if not line:
                    raise ConnectionError("watch response ended inside its headers")
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            if len(status) < 2 or status[1] != b"200":
                body = stream.read(int(headers.get("content-length", "0")))
                raise RuntimeError(f"watch {path} answered {status[1:2]}: {body[:500]!r}")
            # Chunks are decoded here (not by http.client) so that a stream cut without its
            # last chunk is told apart from a clean end.
            pending = b""
            while True:
                size_line = stream.readline()
                if not size_line:
                    raise ConnectionError("watch stream broke without its last chunk")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    return
                chunk = stream.read(size + 2)
                if len(chunk) < size + 2:
                    raise ConnectionError("watch stream broke inside a chunk")
                pending += chunk[:size]
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except OSError as e:
            raise ConnectionError(f"watch stream failed: {e!r}")
        finally:
            sock.close()

    # --- test control ------------------------------------------------------------------------------
    def add_fault(self, **spec):
        self._control("POST", "/_test/faults", spec)

    def clear_faults(self):
        self._control("DELETE", "/_test/faults")

    def drop_watches(self, abrupt=False):
        self._control("POST", "/_test/faults", {"drop_watches": True, "abrupt": abrupt})

    def requests(self):
        return self._control("GET", "/_test/requests")

    def clear_requests(self):
        self._control("DELETE", "/_test/requests")

    def compact(self):
        return self._control("POST", "/_test/compact")

    def _control(self, method, path, body=None):
        code, out = self.request(method, path, body)
        if code != 200:
            raise RuntimeError(f"{method} {path} answered {code}: {out}")
        return out


def api_request(host, port, method, path, body=None, content_type="application/json", headers=None,
                timeout=10, ssl_context=None):
    """(status code, decoded JSON body or text) of one request on a new connection (HTTPS when
    `ssl_context` is given). `body` may be bytes, text, or an object sent as JSON."""
    conn = (http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
            if ssl_context else http.client.HTTPConnection(host, port, timeout=timeout))
    try:
        data = body if isinstance(body, (bytes, type(None))) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": content_type, **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")
    finally:
        conn.close()


KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}{ca}
users:
- name: tester
  user:
    token: test-token
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: default
current-context: fake
"""
