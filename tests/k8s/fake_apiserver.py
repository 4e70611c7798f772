#!/usr/bin/env python3
"""A Kubernetes API server for tests: real HTTP on loopback, state in memory, no kubelet.

Usage:
  python tests/k8s/fake_apiserver.py --host 127.0.0.1 --port 0 --ready-file PATH
      [--bookmark-interval SECONDS] [--watch-cache-size N] [--verbose]
      [--tls-cert PEM --tls-key PEM]

Writes its base URL (http://127.0.0.1:PORT) into PATH once it listens and exits cleanly on
SIGTERM/SIGINT. HTTP, or HTTPS with --tls-cert/--tls-key; any bearer token (or none) is accepted. The real `kubectl` and the
kubemoe operator both talk to it; tests mark StatefulSets, Deployments and pods ready by writing
their status through the /status subresource.

Test control endpoints (never logged, never faulted):
  POST   /_test/faults    {"method": "PUT"|"*", "path_regex": "...", "query_regex": "...",
                           "status": 500, "times": N, "delay_seconds": 0.0,
                           "retry_after_seconds": 1}
                          Matching requests (re.search on the path, and on the query string when
                          query_regex is given) wait delay_seconds, then fail with `status` as a
                          Kubernetes Status body (no status: only the delay). `times` absent or
                          null: every matching request; N: the next N. The first matching fault
                          with requests left applies.
  POST   /_test/faults    {"drop_watches": true [, "abrupt": true]}: ends every open watch stream
                          now (cleanly with the last chunk, or abruptly by closing the socket).
  DELETE /_test/faults    clears all faults.
  GET    /_test/requests  [{method, path, query, content_type, status, token}, ...] in arrival
                          order; token is the request's bearer token ("" without one).
  DELETE /_test/requests  clears that log.
  POST   /_test/compact   forgets the watch history: older resourceVersions get 410 Gone.

What is served and how it is simplified is described in the docstrings of api.py (routes and
verbs), storage.py (write semantics, garbage collection, watch history), resources.py (kinds and
discovery), patch.py, schema.py (CRD defaulting/validation; CEL rules are ignored) and table.py.
"""

import argparse
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import api  # noqa: E402
from storage import ApiError, Store  # noqa: E402

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Gone", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}


class Control:
    """Faults to inject and the log of requests, shared by all handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []
        self.requests = []

    def add_fault(self, spec):
        fault = {"method": str(spec.get("method", "*")).upper(),
                 "path": re.compile(spec.get("path_regex", "")),
                 "query": re.compile(spec["query_regex"]) if spec.get("query_regex") else None,
                 "status": int(spec.get("status") or 0), "times": spec.get("times"),
                 "delay": float(spec.get("delay_seconds") or 0.0),
                 "retry_after": spec.get("retry_after_seconds")}
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, method, path, query):
        with self.lock:
            for fault in self.faults:
                if fault["method"] not in ("*", method) or not fault["path"].search(path):
                    continue
                if fault["query"] is not None and not fault["query"].search(query):
                    continue
                if fault["times"] is not None:
                    if fault["times"] <= 0:
                        continue
                    fault["times"] -= 1
                return dict(fault)
        return None

    def log(self, entry):
        with self.lock:
            self.requests.append(entry)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-apiserver: " + (fmt % args) + "\n")

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def dispatch(self):
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, parsed.query
        body = self.read_body()
        if path.startswith("/_test/"):
            return self.control(path, body)
        # The bearer token stands for the user (any token is accepted), so tests can tell
        # whose requests these were, e.g. to check the operator's against its RBAC rules.
        auth = self.headers.get("Authorization", "")
        entry = {"method": self.command, "path": path, "query": query,
                 "content_type": self.headers.get("Content-Type", ""), "status": 0,
                 "token": auth[len("Bearer "):] if auth.startswith("Bearer ") else ""}
        self.server.control.log(entry)
        fault = self.server.control.take_fault(self.command, path, query)
        if fault:
            if fault["delay"] > 0:
                time.sleep(fault["delay"])
            if fault["status"]:
                code = fault["status"]
                entry["status"] = code
                err = ApiError(code, _REASONS.get(code, "InternalError"),
                               f"injected fault: {self.command} {path} answered {code}")
                extra = {"Retry-After": str(fault["retry_after"])} if fault["retry_after"] else {}
                return self.send_json(code, err.status(), extra)
        headers = {k.lower(): v for k, v in self.headers.items()}
        qs = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        req = api.Request(self.command, path, qs, headers, body)
        try:
            resp = api.handle(self.server.store, req, self.server.address_text, self.server.bookmark_interval)
        except ApiError as e:
            resp = api.Response(e.code, e.status())
        except Exception as e:  # a bug here must still answer like an API server
            import traceback
            traceback.print_exc()
            resp = api.Response(500, ApiError(500, "InternalError", f"fake apiserver bug: {e!r}").status())
        entry["status"] = resp.code
        if resp.stream is not None:
            return self.send_stream(resp)
        if resp.content_type == "text/plain":
            return self.send_bytes(resp.code, str(resp.body).encode(), "text/plain")
        self.send_json(resp.code, resp.body)

    def send_bytes(self, code, data, content_type, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, code, body, extra=None):
        self.send_bytes(code, json.dumps(body).encode(), "application/json", extra)

    def send_stream(self, resp):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

        def emit(event):
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.close_connection = True
        try:
            how = resp.stream(emit)
            if how == "abrupt":
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def control(self, path, body):
        try:
            spec = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError as e:
            return self.send_json(400, {"error": f"bad JSON: {e}"})
        ctl = self.server.control
        if path == "/_test/faults" and self.command == "POST":
            if spec.get("drop_watches"):
                self.server.store.drop_watches(bool(spec.get("abrupt")))
            else:
                try:
                    ctl.add_fault(spec)
                except (re.error, ValueError, TypeError) as e:
                    return self.send_json(400, {"error": str(e)})
            return self.send_json(200, {"ok": True})
        if path == "/_test/faults" and self.command == "DELETE":
            with ctl.lock:
                ctl.faults.clear()
            return self.send_json(200, {"ok": True})
        if path == "/_test/requests" and self.command == "GET":
            with ctl.lock:
                return self.send_json(200, list(ctl.requests))
        if path == "/_test/requests" and self.command == "DELETE":
            with ctl.lock:
                ctl.requests.clear()
            return self.send_json(200, {"ok": True})
        if path == "/_test/compact" and self.command == "POST":
            self.server.store.compact()
            return self.send_json(200, {"ok": True, "resourceVersion": str(self.server.store.rv)})
        return self.send_json(404, {"error": f"unknown test endpoint {self.command} {path}"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            return  # a TLS client that refused our certificate, or one that went away
        super().handle_error(request, client_address)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--bookmark-interval", type=float, default=1.0)
    parser.add_argument("--watch-cache-size", type=int, default=1000)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--tls-cert", default="", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", default="", help="and this key (PEM)")
    args = parser.parse_args(argv)

    server = Server((args.host, args.port), Handler)
    scheme = "http"
    if args.tls_cert:
        # HTTPS as a real API server serves it (in-cluster clients insist on it). The handshake
        # runs on the handler's thread (first read), so a slow client cannot stall accept().
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
        scheme = "https"
    server.store = Store(args.watch_cache_size)
    server.control = Control()
    server.bookmark_interval = args.bookmark_interval
    server.verbose = args.verbose
    host, port = server.server_address[:2]
    server.address_text = f"{host}:{port}"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{scheme}://{host}:{port}\n")
    os.replace(tmp, args.ready_file)
    while not stop.wait(0.5):
        pass
    server.store.close()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
