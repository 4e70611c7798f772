"""Checks tests/k8s/fake_apiserver.py with the real kubectl and with raw HTTP.

kubectl part (skipped with a SKIP line when no kubectl is found): namespace and CRD apply,
discovery, client-side and server-side apply of a MoEModel, schema defaults/pruning/validation,
`kubectl get` tables built from the CRD's printer columns, `kubectl scale` through the scale
subresource, `kubectl patch --subresource=status`, finalizers, owner-reference garbage
collection, and the project's own CRD when the repository has one.
Raw HTTP part: AlreadyExists/NotFound/Conflict Status bodies, generateName, selectors, patch
formats, watch replay and live delivery in order, bookmarks, 410 Gone after compaction, exact
lists at an older resourceVersion, injected faults and delays, dropped watch streams, CRD removal.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import glob
import json
import os
import re
import sys
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s"))

from testing import FakeApiServer, kubectl_path  # noqa: E402
from checks import check, results

TESTDATA = os.path.join(ROOT, "tests", "k8s", "testdata")
NS = "moe-test"
MOE = f"/apis/kubemoe.io/v1alpha1/namespaces/{NS}/moemodels"
CM = "/api/v1/namespaces/default/configmaps"
STS = "/apis/apps/v1/namespaces/default/statefulsets"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"



def table_rows(text):
    """kubectl's table output as a header list and rows split on runs of 2+ spaces."""
    lines = [l for l in text.splitlines() if l.strip()]
    split = lambda l: re.split(r"\s{2,}", l.strip())
    return split(lines[0]), [split(l) for l in lines[1:]]


def kubectl_json(k8s, *args):
    return json.loads(k8s.kubectl(*args, "-o", "json").stdout)


def moe_yaml(name, shards, model="deepseek-v2-lite"):
    return (f"apiVersion: kubemoe.io/v1alpha1\nkind: MoEModel\nmetadata:\n  name: {name}\n"
            f"  namespace: {NS}\nspec:\n  model:\n    name: {model}\n  experts:\n"
            f"    shards: {shards}\n  unknownField: pruned\n")


def test_kubectl(k8s):
    k8s.apply_namespace(NS)
    check("namespace created", kubectl_json(k8s, "get", "ns", NS)["metadata"]["name"] == NS)
    k8s.kubectl("create", "configmap", "typed", "-n", NS, "--from-literal=a=b", "--from-literal=c=d")
    check("kubectl create configmap (protobuf body)",
          kubectl_json(k8s, "get", "cm", "typed", "-n", NS).get("data") == {"a": "b", "c": "d"})
    k8s.kubectl("apply", "-f", os.path.join(TESTDATA, "moemodels-crd.yaml"))
    crd = kubectl_json(k8s, "get", "crd", "moemodels.kubemoe.io")
    conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
    check("crd established", conds.get("Established") == "True", conds)
    out = k8s.kubectl("api-resources", "--api-group=kubemoe.io", "--no-headers").stdout.split()
    check("api-resources lists moemodels", out[:5] == ["moemodels", "moe", "kubemoe.io/v1alpha1",
                                                       "true", "MoEModel"], out)

    # Client-side apply, defaults and pruning.
    out = k8s.kubectl("apply", "-f", os.path.join(TESTDATA, "moemodel.yaml")).stdout
    check("client-side apply creates", "moemodel.kubemoe.io/tiny created" in out, out)
    obj = kubectl_json(k8s, "get", "moe", "tiny", "-n", NS)
    spec = obj["spec"]
    check("schema defaults applied", spec["experts"].get("placement") == "balanced"
          and spec.get("transport") == "grpc" and spec["experts"]["shards"] == 2, spec)
    check("unknown fields pruned", "unknownField" not in spec, spec)
    check("generation starts at 1", obj["metadata"]["generation"] == 1, obj["metadata"])

    header, rows = table_rows(k8s.kubectl("get", "moe", "-n", NS).stdout)
    check("table header from printer columns",
          header == ["NAME", "MODEL", "SHARDS", "READY-SHARDS", "READY", "AGE"], header)
    check("table row values", len(rows) == 1 and rows[0][:3] == ["tiny", "deepseek-v2-lite", "2"]
          and re.fullmatch(r"\d+s", rows[0][-1]) is not None, rows)

    # Scale subresource.
    k8s.clear_requests()
    k8s.kubectl("scale", "moe/tiny", "-n", NS, "--replicas=4")
    obj = kubectl_json(k8s, "get", "moe", "tiny", "-n", NS)
    check("scale writes specReplicasPath", obj["spec"]["experts"]["shards"] == 4, obj["spec"])
    check("scale bumps generation", obj["metadata"]["generation"] == 2, obj["metadata"])
    scale_writes = [r for r in k8s.requests() if r["path"].endswith("/tiny/scale") and r["method"] != "GET"]
    check("kubectl scale used the scale subresource", len(scale_writes) == 1, scale_writes)

    # Status subresource.
    status = {"status": {"readyShards": 3, "selector": "app=tiny",
                         "conditions": [{"type": "Progressing", "status": "False"},
                                        {"type": "Ready", "status": "True"}]}}
    k8s.kubectl("patch", "moe", "tiny", "-n", NS, "--subresource=status", "--type=merge",
                "-p", json.dumps(status))
    obj = kubectl_json(k8s, "get", "moe", "tiny", "-n", NS)
    check("status patched", obj.get("status", {}).get("readyShards") == 3, obj.get("status"))
    check("status change keeps generation", obj["metadata"]["generation"] == 2, obj["metadata"])
    _, rows = table_rows(k8s.kubectl("get", "moe", "-n", NS).stdout)
    check("table shows status columns", rows and rows[0][:5] == ["tiny", "deepseek-v2-lite", "4", "3", "True"], rows)
    code, scale = k8s.request("GET", f"{MOE}/tiny/scale")
    check("scale GET", code == 200 and scale["spec"]["replicas"] == 4 and scale["status"] ==
          {"replicas": 3, "selector": "app=tiny"}, scale)
    k8s.kubectl("patch", "moe", "tiny", "-n", NS, "--type=merge", "-p",
                '{"status":{"readyShards":9},"metadata":{"labels":{"tier":"gold"}}}')
    obj = kubectl_json(k8s, "get", "moe", "tiny", "-n", NS)
    check("main endpoint ignores status", obj["status"]["readyShards"] == 3
          and obj["metadata"]["labels"] == {"tier": "gold"} and obj["metadata"]["generation"] == 2, obj)
    proc = k8s.kubectl("patch", "moe", "tiny", "-n", NS, "-p", '{"spec":{"transport":"nccl"}}', check=False)
    check("strategic merge refused for custom resources", proc.returncode != 0
          and "not supported" in proc.stderr, proc.stderr)

    # Validation errors come back as Invalid.
    proc = k8s.kubectl("apply", "-f", "-", input=moe_yaml("bad", 0), check=False)
    check("schema minimum rejected", proc.returncode != 0 and "Invalid" in proc.stderr
          and "spec.experts.shards" in proc.stderr, proc.stderr)

    # Server-side apply: create, then update.
    out = k8s.kubectl("apply", "--server-side", "-f", "-", input=moe_yaml("ssa", 3)).stdout
    check("server-side apply creates", "serverside-applied" in out, out)
    k8s.kubectl("apply", "--server-side", "-f", "-", input=moe_yaml("ssa", 5, "other"))
    obj = kubectl_json(k8s, "get", "moe", "ssa", "-n", NS)
    managers = [m["manager"] for m in k8s.request("GET", f"{MOE}/ssa")[1]["metadata"].get("managedFields", [])]
    check("server-side apply updates", obj["spec"]["experts"]["shards"] == 5
          and obj["spec"]["model"]["name"] == "other" and obj["metadata"]["generation"] == 2, obj)
    check("server-side apply records manager", "kubectl" in managers, managers)
    out = k8s.kubectl("apply", "-f", "-", input=moe_yaml("ssa", 6)).stdout
    check("client-side apply on an ssa object", "configured" in out, out)

    # Garbage collection through ownerReferences and finalizers.
    owner = kubectl_json(k8s, "get", "moe", "tiny", "-n", NS)["metadata"]["uid"]
    ref = [{"apiVersion": "kubemoe.io/v1alpha1", "kind": "MoEModel", "name": "tiny", "uid": owner,
            "controller": True, "blockOwnerDeletion": True}]
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "tiny-shard", "namespace": NS, "ownerReferences": ref},
           "spec": {"replicas": 4, "serviceName": "tiny", "selector": {"matchLabels": {"app": "tiny"}},
                    "template": {"metadata": {"labels": {"app": "tiny"}},
                                 "spec": {"containers": [{"name": "w", "image": "kubemoe"}]}}}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
          "metadata": {"name": "tiny-config", "namespace": NS, "ownerReferences": ref}}
    k8s.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [sts, cm]}))
    header, rows = table_rows(k8s.kubectl("get", "sts", "-n", NS).stdout)
    check("statefulset table", header == ["NAME", "READY", "AGE"] and rows[0][:2] == ["tiny-shard", "0/4"],
          (header, rows))
    k8s.kubectl("delete", "moe", "tiny", "-n", NS, "--timeout=10s")
    proc = k8s.kubectl("get", "sts", "tiny-shard", "-n", NS, check=False)
    check("statefulset garbage-collected", proc.returncode != 0 and "NotFound" in proc.stderr, proc.stderr)
    proc = k8s.kubectl("get", "cm", "tiny-config", "-n", NS, check=False)
    check("configmap garbage-collected", proc.returncode != 0 and "NotFound" in proc.stderr, proc.stderr)

    k8s.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": NS, "finalizers": ["kubemoe.io/cleanup"]}}))
    k8s.kubectl("delete", "cm", "held", "-n", NS, "--wait=false")
    obj = kubectl_json(k8s, "get", "cm", "held", "-n", NS)
    check("finalizer keeps object", "deletionTimestamp" in obj["metadata"], obj["metadata"])
    k8s.kubectl("patch", "cm", "held", "-n", NS, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    proc = k8s.kubectl("get", "cm", "held", "-n", NS, check=False)
    check("removing finalizer deletes", "NotFound" in proc.stderr, proc.stderr)

    # The project's own CRD, when it exists.
    crds = [p for pattern in ("manifests/crds/*.yaml", "manifests/crd/*.yaml", "operator/crd/*.yaml",
                              "operator/crds/*.yaml")
            for p in sorted(glob.glob(os.path.join(ROOT, pattern)))]
    for path in crds:
        proc = k8s.kubectl("apply", "-f", path, check=False)
        check(f"project CRD {os.path.relpath(path, ROOT)} applies", proc.returncode == 0, proc.stderr)
    if not crds:
        print("SKIP project CRD: none under manifests/ or operator/ yet")


def test_http(k8s):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "x"}},
          "data": {"k": "1"}}
    code, created = k8s.request("POST", CM, cm)
    check("create 201", code == 201 and created["metadata"]["resourceVersion"].isdigit(), created)
    code, body = k8s.request("POST", CM, cm)
    check("AlreadyExists", code == 409 and body["reason"] == "AlreadyExists" and body["kind"] == "Status"
          and body["details"] == {"name": "a", "kind": "configmaps"}, body)
    code, body = k8s.request("GET", CM + "/missing")
    check("NotFound", code == 404 and body["reason"] == "NotFound"
          and body["message"] == 'configmaps "missing" not found', body)
    code, gen = k8s.request("POST", CM, {"metadata": {"generateName": "gen-", "labels": {"app": "y"}}})
    check("generateName", code == 201 and re.fullmatch(r"gen-[a-z0-9]{5}", gen["metadata"]["name"]), gen)
    code, lst = k8s.request("GET", CM + "?labelSelector=app%20in%20(x,z)")
    check("labelSelector", [i["metadata"]["name"] for i in lst["items"]] == ["a"], lst)
    code, lst = k8s.request("GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Da")
    check("fieldSelector across namespaces", [i["metadata"]["name"] for i in lst["items"]] == ["a"], lst)

    # Optimistic concurrency.
    stale = dict(created, data={"k": "2"})
    code, updated = k8s.request("PUT", CM + "/a", stale)
    check("update with current RV", code == 200 and updated["data"] == {"k": "2"}, updated)
    code, body = k8s.request("PUT", CM + "/a", dict(created, data={"k": "3"}))
    check("stale update Conflict", code == 409 and body["reason"] == "Conflict", body)
    code, same = k8s.request("PUT", CM + "/a", updated)
    check("no-op update keeps resourceVersion",
          same["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"], same)

    # Patch formats.
    code, obj = k8s.request("PATCH", CM + "/a", [{"op": "add", "path": "/data/j", "value": "x"},
                                                 {"op": "test", "path": "/data/k", "value": "2"}],
                            "application/json-patch+json")
    check("json patch", code == 200 and obj["data"] == {"k": "2", "j": "x"}, obj)
    code, obj = k8s.request("PATCH", CM + "/a", {"data": {"j": None}}, "application/merge-patch+json")
    check("merge patch deletes with null", obj["data"] == {"k": "2"}, obj)
    code, body = k8s.request("PATCH", CM + "/a", {"metadata": {"resourceVersion": "1"}, "data": {"k": "9"}},
                             "application/merge-patch+json")
    check("patch with stale RV Conflict", code == 409, body)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "router"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "r"}}, "template": {
               "metadata": {"labels": {"app": "r"}},
               "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}}
    k8s.request("POST", "/apis/apps/v1/namespaces/default/deployments", dep)
    code, obj = k8s.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/router",
                            {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}},
                            "application/strategic-merge-patch+json")
    images = [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]]
    check("strategic merge by name", images == ["a:1", "b:2"] and obj["metadata"]["generation"] == 2, obj)
    code, obj = k8s.request("PUT", "/apis/apps/v1/namespaces/default/deployments/router/status",
                            dict(obj, status={"readyReplicas": 1, "replicas": 1}))
    check("deployment status write", code == 200 and obj["status"]["readyReplicas"] == 1
          and obj["metadata"]["generation"] == 2, obj)

    # Watch: replay from an RV in order, live delivery, bookmarks.
    _, lst = k8s.request("GET", CM)
    rv0 = lst["metadata"]["resourceVersion"]
    k8s.request("POST", CM, {"metadata": {"name": "w"}, "data": {"n": "1"}})
    k8s.request("PATCH", CM + "/w", {"data": {"n": "2"}}, "application/merge-patch+json")
    _, mid = k8s.request("GET", CM + "/w")
    k8s.request("DELETE", CM + "/w")
    events = list(k8s.watch(CM, resource_version=rv0, timeout_seconds=1))
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events if e["type"] != "BOOKMARK"]
    check("watch replays in order", seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")], seen)
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    check("watch RVs increase", rvs == sorted(rvs) and len(set(rvs)) == len(rvs), rvs)
    code, lst = k8s.request("GET", CM + "?resourceVersion=" + mid["metadata"]["resourceVersion"]
                            + "&resourceVersionMatch=Exact")
    exact = {i["metadata"]["name"]: i.get("data") for i in lst.get("items", [])}
    check("exact list at an older RV", code == 200 and exact.get("w") == {"n": "2"}, lst)

    live = []
    def run_watch():
        try:
            for e in k8s.watch(CM, resource_version=rv0, timeout_seconds=3, bookmarks=True, selector="app=live"):
                live.append(e)
        except Exception as e:  # recorded as a failure below
            live.append({"type": "EXCEPTION", "object": repr(e)})
    t = threading.Thread(target=run_watch)
    t.start()
    time.sleep(0.3)
    k8s.request("POST", CM, {"metadata": {"name": "l", "labels": {"app": "live"}}})
    k8s.request("PATCH", CM + "/l", {"metadata": {"labels": {"app": "gone"}}}, "application/merge-patch+json")
    k8s.request("POST", CM, {"metadata": {"name": "other"}})
    time.sleep(1.5)
    t.join(10)
    kinds = [e["type"] for e in live if e["type"] != "BOOKMARK"]
    check("live watch with selector", kinds == ["ADDED", "DELETED"], live)
    marks = [e for e in live if e["type"] == "BOOKMARK"]
    check("bookmarks carry only a resourceVersion", marks and all(
        set(m["object"]["metadata"]) == {"resourceVersion"} for m in marks), marks)
    check("watch ended by timeoutSeconds", not t.is_alive())

    # Compaction gives 410 Gone.
    k8s.compact()
    events = list(k8s.watch(CM, resource_version=rv0, timeout_seconds=2))
    check("410 after compaction", len(events) == 1 and events[0]["type"] == "ERROR"
          and events[0]["object"]["code"] == 410, events)
    code, body = k8s.request("GET", CM + f"?resourceVersion={rv0}&resourceVersionMatch=Exact")
    check("exact list too old 410", code == 410, body)

    # Faults.
    k8s.clear_requests()
    k8s.add_fault(method="PUT", path_regex="/configmaps/a$", status=500, times=1)
    _, cur = k8s.request("GET", CM + "/a")
    code, body = k8s.request("PUT", CM + "/a", dict(cur, data={"k": "f"}))
    check("injected 500", code == 500 and body.get("reason") == "InternalError" and body.get("kind") == "Status", body)
    code, _ = k8s.request("PUT", CM + "/a", dict(cur, data={"k": "f"}))
    check("fault used up after times", code == 200)
    log = [(r["method"], r["status"]) for r in k8s.requests()]
    check("request log", log == [("GET", 200), ("PUT", 500), ("PUT", 200)], log)
    k8s.add_fault(method="*", path_regex="/configmaps/a$", status=429, times=None)
    codes = [k8s.request("GET", CM + "/a")[0] for _ in range(3)]
    check("unlimited 429 fault", codes == [429] * 3, codes)
    k8s.clear_faults()
    check("faults cleared", k8s.request("GET", CM + "/a")[0] == 200)
    k8s.add_fault(method="GET", path_regex="/configmaps/a$", delay_seconds=0.4, times=1)
    start = time.monotonic()
    code, _ = k8s.request("GET", CM + "/a")
    check("injected delay", code == 200 and time.monotonic() - start >= 0.4)

    # Dropped watch streams end (cleanly, or abruptly when asked).
    for abrupt in (False, True):
        outcome = []
        def run_drop():
            try:
                outcome.extend(k8s.watch(CM, timeout_seconds=30))
                outcome.append("clean-end")
            except ConnectionError:
                outcome.append("broken")
        t = threading.Thread(target=run_drop)
        t.start()
        time.sleep(0.4)
        k8s.drop_watches(abrupt=abrupt)
        t.join(5)
        check(f"drop_watches abrupt={abrupt}", not t.is_alive() and outcome[-1:] == (
            ["broken"] if abrupt else ["clean-end"]), outcome[-1:])

    # Scale subresource on a built-in; Orphan and Foreground propagation.
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "s"}}}}
    _, sts = k8s.request("POST", STS, sts)
    code, scale = k8s.request("GET", STS + "/s/scale")
    check("sts scale", scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=s", scale)
    code, body = k8s.request("PUT", STS + "/s/scale", dict(scale, metadata=dict(scale["metadata"], resourceVersion="2"),
                                                         spec={"replicas": 5}))
    check("stale scale update Conflict", code == 409, body)
    code, body = k8s.request("PUT", STS + "/s/scale", dict(scale, spec={"replicas": 5}))
    check("scale update", code == 200 and k8s.request("GET", STS + "/s")[1]["spec"]["replicas"] == 5, body)
    ref = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "s", "uid": sts["metadata"]["uid"]}]
    k8s.request("POST", CM, {"metadata": {"name": "orphan", "ownerReferences": ref}})
    code, _ = k8s.request("DELETE", STS + "/s", {"propagationPolicy": "Orphan"})
    _, orphan = k8s.request("GET", CM + "/orphan")
    check("Orphan keeps dependents", code == 200 and "ownerReferences" not in orphan["metadata"], orphan)

    code, table = k8s.request("GET", CM, headers={"Accept": TABLE})
    check("raw Table", table.get("kind") == "Table" and [c["name"] for c in table["columnDefinitions"]]
          == ["Name", "Age"] and table["rows"][0]["object"]["kind"] == "PartialObjectMetadata", table)

    # Deleting the CRD removes its resources and discovery.
    code, _ = k8s.request("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/moemodels.kubemoe.io")
    check("CRD delete", code == 200)
    check("CRD discovery gone", k8s.request("GET", "/apis/kubemoe.io/v1alpha1")[0] == 404)
    groups = [g["name"] for g in k8s.request("GET", "/apis")[1]["groups"]]
    check("CRD group gone", "kubemoe.io" not in groups, groups)


def main():
    with FakeApiServer(bookmark_interval=0.5) as k8s:
        try:
            if kubectl_path():
                print("kubectl:", k8s.kubectl("version", "--client").stdout.splitlines()[0])
                test_kubectl(k8s)
            else:
                print("SKIP kubectl checks: no kubectl found")
                with open(os.path.join(TESTDATA, "moemodels-crd.yaml")) as f:
                    k8s.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                yaml.safe_load(f))
            test_http(k8s)
        except Exception as e:
            import traceback
            traceback.print_exc()
            check("no exception", False, repr(e))
            print(k8s.server_log())
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
