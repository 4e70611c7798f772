"""Checks kubemoe's Prometheus text exposition with the official Python client's parser.

For several seeds this script writes a random registry description (tricky label values and help
text, NaN/Inf values, many children, exponential buckets, names the registry must reject), runs
tests/tools/metrics_demo on it, parses stdout with prometheus_client, and compares every sample's
name, labels and value with what it computed itself from the same description. Values are
compared exactly: the exposition must print doubles that round-trip.

Environment: KUBEMOE_METRICS_DEMO_BIN (set by ctest) or KUBEMOE_BINARY_DIR; KUBEMOE_METRICS_SEEDS
(comma-separated) to replay particular seeds.
"""

import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile

from prometheus_client.parser import text_string_to_metric_families

TRICKY_CHARS = ['"', "\\", "\n", "ü", "✓", "😀", "{", "}", ",", "=", " ", "#", "a", "Z", "0", "\t"]
RANDOM_VALUE_KINDS = ["small", "int", "huge", "tiny", "special"]


def demo_binary():
    path = os.environ.get("KUBEMOE_METRICS_DEMO_BIN")
    if not path:
        path = os.path.join(os.environ.get("KUBEMOE_BINARY_DIR", "build"), "tests", "metrics_demo")
    return path


def rand_text(rng, max_len=8):
    return "".join(rng.choice(TRICKY_CHARS) for _ in range(rng.randint(0, max_len)))


def rand_value(rng):
    kind = rng.choice(RANDOM_VALUE_KINDS)
    if kind == "small":
        return rng.uniform(-10, 10)
    if kind == "int":
        return float(rng.randint(-1000, 1000))
    if kind == "huge":
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(15, 300)
    if kind == "tiny":
        return rng.uniform(-1, 1) * 10.0 ** -rng.randint(5, 300)
    return rng.choice([math.inf, -math.inf, math.nan, 0.0, -0.0])


def enc(x):
    # repr() is the shortest string that parses back to the same double; strtod reads all of them.
    return repr(float(x))


def gen_spec(rng, index):
    """One family description plus the samples it must expose (None when it must be rejected)."""
    kind = rng.choice(["counter", "gauge", "histogram"])
    base = f"kubemoe_demo_{index:03d}_{kind}"
    name = base + ("_total" if kind == "counter" else "")
    nlabels = rng.randint(0, 3)
    labels = [f"l{i}_{rng.choice(['expert', 'device', 'x'])}" for i in range(nlabels)]
    spec = {"type": kind, "name": name, "help": rand_text(rng, 20), "labels": labels, "children": []}
    if kind == "histogram":
        if rng.random() < 0.5:
            start, factor, count = rng.uniform(1e-4, 1), rng.uniform(1.5, 4), rng.randint(1, 12)
            spec["buckets"] = {"exponential": [enc(start), enc(factor), count]}
            bounds, b = [], start
            for _ in range(count):
                bounds.append(b)
                b *= factor
        else:
            bounds = sorted(set(rng.uniform(-5, 5) for _ in range(rng.randint(0, 6))))
            spec["buckets"] = [enc(b) for b in bounds]
    # Many children for some families; an unlabelled family has exactly one.
    nchildren = 1 if nlabels == 0 else rng.choice([1, 3, 40, 250])
    seen = set()
    expected = {}  # (sample name, frozenset(labels)) -> value
    for _ in range(nchildren):
        values = tuple(rand_text(rng) for _ in labels)
        if values in seen:
            continue
        seen.add(values)
        lab = dict(zip(labels, values))
        if kind == "counter":
            ops = [rand_value(rng) for _ in range(rng.randint(0, 5))]
            total = 0.0
            for v in ops:
                if v >= 0:  # counters ignore negative and NaN increments
                    total += v
            expected[(name, frozenset(lab.items()))] = total
            spec["children"].append({"values": list(values), "ops": [enc(v) for v in ops]})
        elif kind == "gauge":
            ops, g = [], 0.0
            for _ in range(rng.randint(0, 5)):
                op, v = rng.choice(["set", "add"]), rand_value(rng)
                g = v if op == "set" else g + v
                ops.append([op, enc(v)])
            expected[(name, frozenset(lab.items()))] = g
            spec["children"].append({"values": list(values), "ops": ops})
        else:
            obs = [rng.choice([rand_value(rng), rng.choice(bounds or [0.0])])
                   for _ in range(rng.randint(0, 30))]
            s = 0.0
            for v in obs:
                s += v
            cumulative = [sum(1 for v in obs if v <= b) for b in bounds] + [len(obs)]
            for b, c in zip(bounds + [math.inf], cumulative):
                le = dict(lab, le=b)
                expected[(name + "_bucket", frozenset(le.items()))] = float(c)
            expected[(name + "_sum", frozenset(lab.items()))] = s
            expected[(name + "_count", frozenset(lab.items()))] = float(len(obs))
            spec["children"].append({"values": list(values), "ops": [enc(v) for v in obs]})
    return spec, expected


def invalid_specs():
    """Registrations the registry must refuse; the demo reports each on stderr."""
    return [
        {"type": "counter", "name": "kubemoe_demo_no_suffix", "help": "h"},
        {"type": "gauge", "name": "kubemoe demo space", "help": "h"},
        {"type": "gauge", "name": "kubemoe_demo_bad_label", "help": "h", "labels": ["__x"]},
        {"type": "histogram", "name": "kubemoe_demo_le", "help": "h", "labels": ["le"]},
        {"type": "histogram", "name": "kubemoe_demo_unsorted", "help": "h", "buckets": ["2", "1"]},
        # Clashes with the _count sample of the first histogram family (kept valid by gen_specs).
        {"type": "gauge", "name": "kubemoe_demo_clash_count", "help": "h"},
    ]


SAMPLE_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\\\|\\"|\\n|[^"\\\n])*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\\\|\\"|\\n|[^"\\\n])*")*)\})? '
    r"(\+Inf|-Inf|NaN|-?[0-9.]+(e[+-][0-9]+)?)$")


def check_raw_text(text, failures):
    """Structure the lenient parser does not enforce: header order, sorting, strict line grammar."""
    lines = text.split("\n")
    if lines[-1] != "":
        failures.append("output does not end with a newline")
    names, current = [], None
    for i, line in enumerate(lines[:-1]):
        if line.startswith("# HELP "):
            current = line.split(" ")[2]
            names.append(current)
            if i + 1 >= len(lines) or not lines[i + 1].startswith(f"# TYPE {current} "):
                failures.append(f"# HELP {current} is not followed by its # TYPE line")
        elif line.startswith("# TYPE "):
            continue
        else:
            m = SAMPLE_LINE.match(line)
            if not m:
                failures.append(f"line {i + 1} is not a valid sample line: {line!r}")
            elif current is None or not m.group(1).startswith(current):
                failures.append(f"line {i + 1} sample {m.group(1)} outside its family {current}")
    if names != sorted(names):
        failures.append("families are not sorted by name")
    if len(names) != len(set(names)):
        failures.append("a family appears twice")


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def run_seed(seed):
    rng = random.Random(seed)
    families, expected, helps, types = [], {}, {}, {}
    for i in range(rng.randint(8, 16)):
        spec, exp = gen_spec(rng, i)
        families.append(spec)
        expected.update(exp)
        # Blanks around help text cannot be represented in the format; the registry trims them.
        helps[spec["name"]] = spec["help"].strip(" \t")
        types[spec["name"]] = spec["type"]
    # The clash case needs a histogram named kubemoe_demo_clash; add it valid, then the clashing gauge.
    families.append({"type": "histogram", "name": "kubemoe_demo_clash", "help": "clash",
                     "buckets": ["1"], "children": [{"values": [], "ops": ["1"]}]})
    helps["kubemoe_demo_clash"], types["kubemoe_demo_clash"] = "clash", "histogram"
    expected[("kubemoe_demo_clash_bucket", frozenset({("le", 1.0)}))] = 1.0
    expected[("kubemoe_demo_clash_bucket", frozenset({("le", math.inf)}))] = 1.0
    expected[("kubemoe_demo_clash_sum", frozenset())] = 1.0
    expected[("kubemoe_demo_clash_count", frozenset())] = 1.0
    invalid = invalid_specs()
    families += invalid
    rng.shuffle(families)
    # The clash must come after the histogram it clashes with to be the one rejected.
    hi = next(i for i, f in enumerate(families) if f["name"] == "kubemoe_demo_clash")
    ci = next(i for i, f in enumerate(families) if f["name"] == "kubemoe_demo_clash_count")
    if ci < hi:
        families[ci], families[hi] = families[hi], families[ci]

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump({"families": families}, f)
        spec_path = f.name
    try:
        proc = subprocess.run([demo_binary(), spec_path], capture_output=True, timeout=60)
    finally:
        os.unlink(spec_path)
    failures = []
    if proc.returncode != 0:
        return [f"metrics_demo exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"], 0
    text = proc.stdout.decode("utf-8")
    rejected = {json.loads(l)["rejected"] for l in proc.stderr.decode().splitlines() if l.strip()}
    if rejected != {f["name"] for f in invalid}:
        failures.append(f"rejected {sorted(rejected)}, expected {sorted(f['name'] for f in invalid)}")
    check_raw_text(text, failures)

    try:
        parsed = list(text_string_to_metric_families(text))
    except ValueError as e:
        return failures + [f"prometheus_client cannot parse the exposition: {e}"], 0
    got = {}
    parsed_families = set()
    for fam in parsed:
        full = fam.name + "_total" if fam.type == "counter" else fam.name
        parsed_families.add(full)
        if types.get(full) != fam.type:
            failures.append(f"{full}: type {fam.type}, expected {types.get(full)}")
        if helps.get(full) != fam.documentation:
            failures.append(f"{full}: help {fam.documentation!r}, expected {helps.get(full)!r}")
        for s in fam.samples:
            labels = dict(s.labels)
            if "le" in labels and s.name.endswith("_bucket"):
                labels["le"] = float(labels["le"])
            key = (s.name, frozenset(labels.items()))
            if key in got:
                failures.append(f"duplicate sample {key}")
            got[key] = s.value
    if parsed_families != set(types):
        failures.append(f"families {sorted(parsed_families ^ set(types))} differ")
    for key, value in expected.items():
        if key not in got:
            failures.append(f"missing sample {key}")
        elif not same(got[key], value):
            failures.append(f"sample {key}: got {got[key]!r}, expected {value!r}")
    for key in got.keys() - expected.keys():
        failures.append(f"unexpected sample {key}")
    return failures, len(expected)


def main():
    seeds = os.environ.get("KUBEMOE_METRICS_SEEDS", "1,2,3,4,5,6,7,8")
    passed = failed = 0
    for seed in (int(s) for s in seeds.split(",")):
        failures, nsamples = run_seed(seed)
        if failures:
            failed += 1
            print(f"seed {seed}: FAILED ({len(failures)} problems)")
            for f in failures[:20]:
                print("   ", f)
        else:
            passed += 1
            print(f"seed {seed}: ok, {nsamples} samples")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
