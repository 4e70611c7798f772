"""Shared by the Python-client tests: the pass/fail tally every test prints, a free loopback
port and a plain HTTP GET. Import with `from checks import check, free_port, http_get, results`
(tests/py is on sys.path when a test runs as a script)."""
import socket
import urllib.error
import urllib.request

results = {"passed": 0, "failed": 0}


def check(name, condition, detail=""):
    """Counts one check; a failure prints its name and `detail` and fails the test at the end.
    Returns the condition, so a test can stop when later checks depend on this one."""
    if condition:
        results["passed"] += 1
    else:
        results["failed"] += 1
        print(f"FAIL {name}: {detail}", flush=True)
    return condition


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body text) of a GET; an HTTP error is its status and body, a connection failure
    (None, why)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)
