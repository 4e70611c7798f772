"""Shared by the Python-client tests: the pass/fail tally every test prints, and a free loopback
port. Import with `from checks import check, free_port, results` (tests/py is on sys.path when a
test runs as a script)."""
import socket

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
