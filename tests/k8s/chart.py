"""charts/kubemoe rendered by Helm's own Go engine (helm-python-sdk, in the test venv), as
`helm install kubemoe charts/kubemoe --namespace NAMESPACE` would render it.

    objects = render("default")                  # the chart's objects (dicts), in file order
    yaml_text = render_yaml("default", values)   # the same, as one multi-document YAML text
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = "kubemoe"


def render(namespace, values=None):
    import yaml
    from helm_python import chart as helm_chart
    rendered = helm_chart.Chart.load(os.path.join(ROOT, "charts", "kubemoe")).render(
        values or {}, name=RELEASE, namespace=namespace, is_install=True)
    objects = []
    for path in sorted(rendered):
        if path.endswith(".yaml"):  # NOTES.txt is text for people
            objects += [d for d in yaml.safe_load_all(rendered[path]) if d]
    return objects


def render_yaml(namespace, values=None):
    import yaml
    return yaml.safe_dump_all(render(namespace, values))
