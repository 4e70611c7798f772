"""The generated manifests must equal what tools/gen_manifests.py makes from their sources.

Regenerates into a temporary directory and compares byte for byte with the committed copies
(CRD copies in manifests/crds/ and charts/kubemoe/crds/, manifests/rbac.yaml and
manifests/operator.yaml). Also checks, with libraries we did not write:
- the CRD itself against the Kubernetes CustomResourceDefinition schema (kubernetes-validate);
- every sample in manifests/samples/ against the CRD's own openAPIV3Schema (jsonschema);
- every golden desired object in tests/data/operator/golden/ against the Kubernetes schemas,
  strictly (unknown fields fail), so the operator never builds objects the API server rejects.
On a drift failure: run `.venv/bin/python tools/gen_manifests.py` and commit the result.
"""

import glob
import json
import os
import subprocess
import sys
import tempfile

import jsonschema
import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S_VERSION = "1.33.0"  # image volumes (spec.model.source.image) are beta from 1.33
GENERATED = [
    "charts/kubemoe/crds/moemodels.kubemoe.io.yaml",
    "manifests/crds/moemodels.kubemoe.io.yaml",
    "manifests/rbac.yaml",
    "manifests/operator.yaml",
]

results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_no_drift():
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, os.path.join(ROOT, "tools/gen_manifests.py"), "--out", out],
                       check=True, stdout=subprocess.DEVNULL)
        for rel in GENERATED:
            committed = os.path.join(ROOT, rel)
            fresh = read(os.path.join(out, rel))
            same = os.path.exists(committed) and read(committed) == fresh
            check(f"no drift: {rel}", same,
                  "differs from tools/gen_manifests.py output; rerun it and commit")


def crd():
    return yaml.safe_load(read(os.path.join(ROOT, "operator/crd/moemodels.kubemoe.io.yaml")))


def test_crd_is_a_valid_crd():
    try:
        kubernetes_validate.validate(crd(), K8S_VERSION, strict=True)
        check("CRD validates as apiextensions.k8s.io/v1 CustomResourceDefinition", True)
    except kubernetes_validate.ValidationError as e:
        check("CRD validates as apiextensions.k8s.io/v1 CustomResourceDefinition", False, str(e))
    version = crd()["spec"]["versions"][0]
    scale = version["subresources"]["scale"]
    check("scale subresource paths", scale == {
        "specReplicasPath": ".spec.experts.shards",
        "statusReplicasPath": ".status.shards",
        "labelSelectorPath": ".status.selector"})
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    check("printer columns", all(c in columns for c in ["Model", "Shards", "Ready", "Phase", "Age"]),
          str(columns))


def test_samples_match_crd_schema():
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    samples = sorted(glob.glob(os.path.join(ROOT, "manifests/samples/*.yaml")))
    check("three samples", len(samples) == 3, str(samples))
    for path in samples:
        doc = yaml.safe_load(read(path))
        errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(doc)]
        check(f"sample {os.path.basename(path)} matches the CRD schema", not errors, "; ".join(errors))
    # The schema rejects what it should (a negative control for the check above).
    bad = yaml.safe_load(read(samples[0]))
    bad["spec"]["experts"]["shards"] = 0
    bad["spec"]["transport"] = "carrier-pigeon"
    errors = list(jsonschema.Draft4Validator(schema).iter_errors(bad))
    check("schema rejects shards 0 and an unknown transport", len(errors) == 2, str(errors))


def test_golden_objects_are_valid_kubernetes():
    files = sorted(glob.glob(os.path.join(ROOT, "tests/data/operator/golden/*/*.json")))
    check("golden files exist", len(files) >= 21, str(len(files)))
    for path in files:
        name = os.path.relpath(path, ROOT)
        try:
            kubernetes_validate.validate(json.loads(read(path)), K8S_VERSION, strict=True)
            check(f"valid: {name}", True)
        except kubernetes_validate.ValidationError as e:
            check(f"valid: {name}", False, str(e))


def main():
    test_no_drift()
    test_crd_is_a_valid_crd()
    test_samples_match_crd_schema()
    test_golden_objects_are_valid_kubernetes()
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
