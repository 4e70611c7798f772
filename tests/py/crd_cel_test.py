"""The CRD's CEL rules, run by a real CEL implementation, agree with ParseMoEModel.

Every `x-kubernetes-validations` rule of operator/crd/ is compiled and evaluated with
cel-expr-python (Google's cel-cpp) the way the API server does on create:
- the object is pruned, its nulls dropped and its schema defaults filled first (tests/k8s/schema.py,
  the fake API server's structural-schema code), then checked against the openAPIV3Schema;
- a rule runs once for each value its schema node matches (array items and map values each), with
  `self` bound to that value, and is skipped where the value is absent;
- a rule that names `oldSelf` is a transition rule: it runs only on update and only where the old
  object has a value at the same place (list items are correlated only for listType=map, which no
  rule here uses); `optionalOldSelf` is not handled and fails the test. The CRD has no transition
  rule today; updates are still checked (object against itself) so one added later runs;
- a rule that does not evaluate to true, or fails to evaluate, rejects the object.
The resulting verdict (schema and CEL together, as the API server gives it) must equal
ParseMoEModel's (tests/tools/moemodel_check_main.cc) on the samples in manifests/samples/, on one
case per rule that breaks only that rule, and on grids of specs around every rule's boundary.
"""

import copy
import glob
import itertools
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s"))
import schema as crd_schema  # noqa: E402  (defaulting, pruning, schema validation)
from checks import check, results  # noqa: E402

try:
    from cel_expr_python import cel
except ImportError:
    print("FAIL cel_expr_python is not in the test venv; update it: bash scripts/setup.sh")
    sys.exit(1)

CRD_FILES = sorted(glob.glob(os.path.join(ROOT, "operator", "crd", "*.yaml")))
MOEMODEL_CRD = os.path.join(ROOT, "operator", "crd", "moemodels.kubemoe.io.yaml")


def load_yaml(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def rules_under(node, path=()):
    """(path, validation) for every rule under a schema node; a path step is a property name, "[]"
    for every array item or "{}" for every map value."""
    if not isinstance(node, dict):
        return []
    found = [(path, v) for v in node.get("x-kubernetes-validations") or []]
    for key, sub in (node.get("properties") or {}).items():
        found += rules_under(sub, path + (key,))
    if isinstance(node.get("items"), dict):
        found += rules_under(node["items"], path + ("[]",))
    if isinstance(node.get("additionalProperties"), dict):
        found += rules_under(node["additionalProperties"], path + ("{}",))
    return found


def schema_at(root, path):
    node = root
    for step in path:
        node = node["items"] if step == "[]" else (
            node["additionalProperties"] if step == "{}" else node["properties"][step])
    return node


def is_transition(rule):
    return re.search(r"\boldSelf\b", rule) is not None


class Rule:
    def __init__(self, env, path, validation):
        self.path = path
        self.text = validation["rule"]
        self.message = validation.get("message") or f"failed rule: {self.text}"
        self.transition = is_transition(self.text)
        self.optional_old_self = validation.get("optionalOldSelf", False)
        self.error = None
        try:
            self.expression = env.compile(self.text)
        except RuntimeError as e:
            self.expression, self.error = None, str(e)

    def where(self):
        return ".".join(self.path) or "<root>"

    def failures(self, value, old):
        """Messages for each value this rule rejects (absent values are not evaluated)."""
        out = []
        for node, old_node in values_at(value, old, self.path):
            if self.transition and old_node is None:
                continue  # transition rules: only on update, where the old value exists
            data = {"self": node}
            if self.transition:
                data["oldSelf"] = old_node
            result = self.expression.eval(data=data)
            if result.type() == cel.Type.ERROR:
                out.append(f"{self.where()}: {self.message} (evaluation error: {result.value()})")
            elif result.value() is not True:
                out.append(f"{self.where()}: {self.message}")
        return out


def values_at(value, old, path):
    """(value, old value or None) pairs at `path`."""
    if not path:
        yield value, old
        return
    step, rest = path[0], path[1:]
    if step == "[]":
        for item in value if isinstance(value, list) else []:
            yield from values_at(item, None, rest)
    elif step == "{}":
        for key, item in (value.items() if isinstance(value, dict) else []):
            yield from values_at(item, old.get(key) if isinstance(old, dict) else None, rest)
    elif isinstance(value, dict) and step in value:
        yield from values_at(value[step], old.get(step) if isinstance(old, dict) else None, rest)


def drop_nulls(value, schema):
    """The API server drops null values of non-nullable fields before defaulting."""
    if isinstance(value, dict) and isinstance(schema, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if value[key] is None and isinstance(sub, dict) and not sub.get("nullable"):
                del value[key]
            elif sub is not None:
                drop_nulls(value[key], sub)
    elif isinstance(value, list) and isinstance(schema, dict):
        for item in value:
            drop_nulls(item, schema.get("items"))


class Version:
    """One served version of a CRD: its schema and compiled rules."""

    def __init__(self, env, crd, version):
        self.name = f"{crd['metadata']['name']}/{version['name']}"
        self.schema = version["schema"]["openAPIV3Schema"]
        self.rules = [Rule(env, path, v) for path, v in rules_under(self.schema)]

    def decode(self, obj):
        value = copy.deepcopy(obj)
        drop_nulls(value, self.schema)
        crd_schema.prune(value, self.schema, root=True)
        return crd_schema.apply_defaults(value, self.schema)

    def admit(self, obj, old=None):
        """The API server's verdict on creating `obj` (updating `old` to it): rejection messages,
        empty when accepted."""
        value = self.decode(obj)
        old_value = self.decode(old) if old is not None else None
        errors = [c["message"] for c in crd_schema.validate(value, self.schema)]
        # validate() skips metadata; a CRD may bound metadata.name (ours does).
        name_schema = ((self.schema["properties"].get("metadata") or {}).get("properties") or {})
        name = (value.get("metadata") or {}).get("name")
        if not name:
            errors.append("metadata.name: Required value")
        elif "name" in name_schema:
            errors += [c["message"] for c in
                       crd_schema.validate(name, name_schema["name"], "metadata.name")]
        for rule in self.rules:
            errors += rule.failures(value, old_value)
        return errors


def self_references(rule):
    """The `self.a.b` field chains a rule reads (has(self.a.b) included)."""
    chains = re.findall(r"\bself((?:\.[A-Za-z_]\w*)+)(\s*\()?", rule)
    # A chain followed by "(" ends in a method (self.path.contains(...)).
    return [c.split(".")[1:-1] if call else c.split(".")[1:] for c, call in chains]


def check_rules_compile_and_name_real_fields(versions):
    total = 0
    for v in versions:
        for rule in v.rules:
            total += 1
            where = f"{v.name} {rule.where()}: {rule.text}"
            check(f"compiles: {where}", rule.error is None, rule.error)
            check(f"optionalOldSelf is not used (not handled here): {where}",
                  not rule.optional_old_self)
            # Rules are compiled against dyn, so the field names are checked here instead.
            node = schema_at(v.schema, rule.path)
            for chain in self_references(rule.text):
                sub, ok = node, True
                for field in chain:
                    props = sub.get("properties") if isinstance(sub, dict) else None
                    if props is None or field not in props:
                        ok = False
                        break
                    sub = props[field]
                check(f"self.{'.'.join(chain)} is in the schema: {where}", ok)
    check("the CRDs have CEL rules", total > 0)
    print(f"{total} CEL rules in {len(versions)} CRD versions "
          f"({sum(r.transition for v in versions for r in v.rules)} transition rules)")


class CxxParser:
    """ParseMoEModel's verdicts through tests/tools/moemodel_check_main, many objects per run."""

    def __init__(self):
        self.binary = os.environ.get("KUBEMOE_MOEMODEL_CHECK_BIN") or os.path.join(
            os.environ.get("KUBEMOE_BINARY_DIR", os.path.join(ROOT, "build")), "tests",
            "moemodel_check_main")

    def verdicts(self, objects):
        lines = "".join(json.dumps(o) + "\n" for o in objects)
        out = subprocess.run([self.binary], input=lines, capture_output=True, text=True,
                             check=True, timeout=60).stdout
        answers = [json.loads(line) for line in out.splitlines()]
        assert len(answers) == len(objects), (len(answers), len(objects))
        return [None if a["ok"] else a["error"] for a in answers]


def moemodel(spec, name="m"):
    return {"apiVersion": "kubemoe.io/v1alpha1", "kind": "MoEModel",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def base_spec(routed=16, layers=2, k=4, shards=2, devices=1):
    return {"model": {"source": {"pvc": {"claimName": "weights"}}, "routedExperts": routed,
                      "moeLayers": layers, "expertsPerToken": k},
            "experts": {"shards": shards, "devicesPerShard": devices}}


def with_fields(spec, **fields):
    """A copy of `spec` with fields set by path, steps joined by "__" (experts__shards=3); None
    removes the field."""
    out = copy.deepcopy(spec)
    for dotted, value in fields.items():
        *parents, last = dotted.split("__")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return out


# One case per rule that breaks that rule alone (its message is the only rejection).
RULE_CASES = [
    ("devices above experts", with_fields(base_spec(routed=4), experts__shards=5),
     "experts.shards x experts.devicesPerShard must be <= model.routedExperts"),
    ("topK above experts", with_fields(base_spec(routed=4, shards=1), routing__topK=5),
     "routing.topK must be <= model.routedExperts"),
    ("deviceLimit above devices", with_fields(base_spec(), routing__deviceLimit=3),
     "routing.deviceLimit must be <= experts.shards x experts.devicesPerShard"),
    ("deviceLimit too small for topK", with_fields(base_spec(routed=16, k=6, shards=4),
                                                   routing__deviceLimit=1),
     "routing.deviceLimit x experts per device must be >= topK"),
    ("nccl on cpu", with_fields(base_spec(), transport="nccl", experts__deviceType="cpu"),
     "transport nccl requires experts.deviceType gpu"),
    ("tls with nccl", with_fields(base_spec(), transport="nccl", experts__deviceType="gpu",
                                  tls={"secretName": "model-tls"}),
     "tls applies to transport grpc only"),
    ("redundant expert out of range", with_fields(base_spec(), experts__redundant=[{"expert": 16}]),
     "experts.redundant: expert must be < model.routedExperts"),
    ("expertsPerToken above experts", base_spec(routed=2, k=3, shards=1),
     "expertsPerToken must be <= routedExperts"),
    ("two sources", with_fields(base_spec(), model__source={
        "pvc": {"claimName": "w"}, "hostPath": {"path": "/w"}}),
     "set exactly one of pvc, hostPath, image"),
    ("path with ..", with_fields(base_spec(), model__source={
        "image": {"reference": "r"}, "path": "a/../b"}),
     "path must not contain '..'"),
    ("empty metricsFrom peer", with_fields(base_spec(), networkPolicy__metricsFrom=[{}]),
     "a metricsFrom peer must set podSelector, namespaceSelector or ipBlock"),
    ("ipBlock with a selector", with_fields(base_spec(), networkPolicy__metricsFrom=[
        {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]),
     "a metricsFrom peer's ipBlock cannot be combined with podSelector or namespaceSelector"),
    ("In without values", with_fields(base_spec(), networkPolicy__metricsFrom=[
        {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]),
     "matchExpressions: In and NotIn need values; Exists and DoesNotExist take none"),
]


def check_samples(version, parser):
    paths = sorted(glob.glob(os.path.join(ROOT, "manifests", "samples", "*.yaml")))
    samples = [(os.path.relpath(p, ROOT), d) for p in paths for d in load_yaml(p)
               if d.get("kind") == "MoEModel"]
    check("found the samples", len(samples) >= 3, str(paths))
    cxx = parser.verdicts([d for _, d in samples])
    for (name, doc), cxx_error in zip(samples, cxx):
        check(f"CRD accepts {name}", not version.admit(doc), version.admit(doc))
        check(f"CRD accepts {name} as an update of itself", not version.admit(doc, old=doc))
        check(f"ParseMoEModel accepts {name}", cxx_error is None, cxx_error)


def check_rule_cases(version, parser):
    objects = [moemodel(spec) for _, spec, _ in RULE_CASES]
    cxx = parser.verdicts(objects)
    hit = set()
    for (name, _, message), obj, cxx_error in zip(RULE_CASES, objects, cxx):
        errors = version.admit(obj)
        only_rule = len(errors) == 1 and message in errors[0]
        check(f"CRD rejects '{name}' by that rule alone", only_rule, errors)
        check(f"ParseMoEModel rejects '{name}'", cxx_error is not None)
        hit.update(r.message for r in version.rules if only_rule and r.message in errors[0])
    for rule in version.rules:
        check(f"a case breaks rule {rule.where()}: {rule.text}", rule.message in hit,
              "add one to RULE_CASES")


def grid_cases():
    """Specs around every rule's boundaries: most are accepted by neither or both."""
    cases = []
    for routed, k, shards, devices, top_k, limit in itertools.product(
            (1, 3, 4, 16), (1, 4, 6), (1, 2, 4), (1, 2), (None, 1, 5, 17), (None, 1, 2, 3)):
        cases.append(with_fields(base_spec(routed, 2, k, shards, devices), routing__topK=top_k,
                                 routing__deviceLimit=limit))
    for transport, device_type in itertools.product((None, "grpc", "nccl"), (None, "gpu", "cpu")):
        cases.append(with_fields(base_spec(), transport=transport,
                                 experts__deviceType=device_type))
    for (shards, devices), expert, layer, replicas in itertools.product(
            ((1, 1), (2, 1), (2, 2)), (0, 3, 4), (None, 0, 1, 2), (None, 1, 2, 3, 4, 5)):
        item = {"expert": expert}
        if layer is not None:
            item["layer"] = layer
        if replicas is not None:
            item["replicas"] = replicas
        cases.append(with_fields(base_spec(routed=4, shards=shards, devices=devices),
                                 experts__redundant=[{"expert": 0, "replicas": 1}, item]))
    kinds = {"pvc": {"claimName": "w"}, "hostPath": {"path": "/w"}, "image": {"reference": "r"}}
    for choice in itertools.product((None, "empty", "set"), repeat=3):
        for path in (None, "", "a/b", "../a", "a..b", "a/./b"):
            source = {kind: ({} if how == "empty" else kinds[kind])
                      for kind, how in zip(kinds, choice) if how}
            if path is not None:
                source["path"] = path
            cases.append(with_fields(base_spec(), model__source=source))
    for routed, k in itertools.product((0, 1, 4096, 4097), (0, 1, 4096, 4097)):
        cases.append(base_spec(routed=routed, k=k, shards=1))
    selectors = (None, {}, {"matchLabels": {"a": "b"}},
                 {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
                 {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                 {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
                 {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]})
    for pods, namespaces, block in itertools.product(
            selectors, selectors, (None, {"cidr": "10.0.0.0/8"}, {"cidr": ""}, {})):
        peer = {k: v for k, v in (("podSelector", pods), ("namespaceSelector", namespaces),
                                  ("ipBlock", block)) if v is not None}
        cases.append(with_fields(base_spec(), networkPolicy__metricsFrom=[peer]))
    for enabled, metrics_from in itertools.product((None, True, False, "yes"), (None, [], {})):
        cases.append(with_fields(base_spec(), networkPolicy__enabled=enabled,
                                 networkPolicy__metricsFrom=metrics_from))
    return [moemodel(spec) for spec in cases]


def check_grid(version, parser):
    objects = grid_cases()
    cxx = parser.verdicts(objects)
    accepted = disagree = 0
    for obj, cxx_error in zip(objects, cxx):
        errors = version.admit(obj)
        accepted += not errors
        if bool(errors) != (cxx_error is not None):
            disagree += 1
            if disagree <= 10:
                check("CRD and ParseMoEModel agree", False,
                      f"{json.dumps(obj['spec'])}\n  CRD: {errors or 'accepted'}\n"
                      f"  ParseMoEModel: {cxx_error or 'accepted'}")
    check(f"CRD and ParseMoEModel agree on {len(objects)} grid specs", disagree == 0,
          f"{disagree} disagree")
    check("the grid has both verdicts", 0 < accepted < len(objects), f"{accepted} accepted")
    print(f"grid: {len(objects)} specs, {accepted} accepted, {disagree} disagreements")


def main():
    env = cel.NewEnv(variables={"self": cel.Type.DYN, "oldSelf": cel.Type.DYN})
    versions = [Version(env, crd, v) for path in CRD_FILES for crd in load_yaml(path)
                if crd.get("kind") == "CustomResourceDefinition" for v in crd["spec"]["versions"]]
    check_rules_compile_and_name_real_fields(versions)
    if results["failed"] == 0:
        (moemodel_crd,) = load_yaml(MOEMODEL_CRD)
        (version,) = [v for v in versions if v.name.startswith(moemodel_crd["metadata"]["name"])]
        parser = CxxParser()
        check_samples(version, parser)
        check_rule_cases(version, parser)
        check_grid(version, parser)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 0 if results["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
