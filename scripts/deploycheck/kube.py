"""The Kubernetes manifests (deploy/kubernetes) and the Helm chart
(deploy/helm/forge-otel-sidecar).

- every plain manifest and every object the chart renders, with its default
  values and with values-full.yaml, passes `kubernetes-validate --strict`;
- `helm lint` passes for both value files;
- with its default values the chart renders the plain manifests (compared as
  data, the embedded config files parsed, Helm's bookkeeping labels and
  checksum annotations aside);
- the collector runs as a native sidecar; selectors match the pod's labels;
  a ServiceMonitor selects the Service and names one of its ports;
- the chart's copies of the alert rules and the dashboard equal deploy/'s;
- the sidecar config the chart renders passes the binary's `check-config`.
"""
import filecmp
import glob
import os
import subprocess
import sys
import tempfile

import yaml

from . import ROOT, rel, tool

CHART = os.path.join(ROOT, "deploy", "helm", "forge-otel-sidecar")
PLAIN = os.path.join(ROOT, "deploy", "kubernetes")
RELEASE = "forge-otel-sidecar"
COPIES = [
    ("files/forge-otel-sidecar.rules.yaml", "deploy/prometheus/forge-otel-sidecar.rules.yaml"),
    ("files/forge-otel-sidecar.json", "deploy/grafana/forge-otel-sidecar.json"),
]
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}


def kubernetes_validate(paths):
    r = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *paths], capture_output=True, text=True
    )
    out = (r.stdout + r.stderr).strip()
    # Custom resources (ServiceMonitor, PrometheusRule) have no schema there:
    # a warning, checked by hand below.
    return [] if r.returncode == 0 else [f"kubernetes-validate --strict failed:\n{out}"]


def helm(*args):
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True)


def render(values=None, release=RELEASE):
    """(failures, objects) of `helm lint` and `helm template` with a values file."""
    extra = ["-f", values] if values else []
    label = f"chart ({rel(values) if values else 'default values'})"
    lint = helm("lint", "--strict", CHART, *extra)
    failures = [] if lint.returncode == 0 else [f"helm lint {label}:\n{lint.stdout}{lint.stderr}"]
    tpl = helm("template", release, CHART, *extra)
    if tpl.returncode != 0:
        return failures + [f"helm template {label}:\n{tpl.stderr}"], []
    objects = [d for d in yaml.safe_load_all(tpl.stdout) if d]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, obj in enumerate(objects):
            p = os.path.join(d, f"{i:02d}-{obj['kind']}-{obj['metadata']['name']}.yaml")
            with open(p, "w") as f:
                yaml.safe_dump(obj, f)
            paths.append(p)
        failures += [f"{label}: {x}" for x in kubernetes_validate(paths)]
    failures += structure(label, objects)
    print(f"{label}: lint, template and kubernetes-validate --strict of {len(objects)} objects")
    return failures, objects


def plain_objects():
    objects = []
    for p in sorted(glob.glob(os.path.join(PLAIN, "*.yaml"))):
        with open(p) as f:
            objects += [d for d in yaml.safe_load_all(f) if d]
    return objects


def structure(label, objects):
    failures = []
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    for dep in by_kind.get("Deployment", []):
        spec = dep["spec"]
        pod_labels = spec["template"]["metadata"].get("labels", {})
        for k, v in spec["selector"]["matchLabels"].items():
            if pod_labels.get(k) != v:
                failures.append(f"{label}: Deployment selector {k}={v} does not match the pod's labels")
        for c in spec["template"]["spec"].get("initContainers", []):
            if "opentelemetry-collector" in c.get("image", "") and c.get("restartPolicy") != "Always":
                failures.append(f"{label}: collector init container {c['name']} needs restartPolicy: Always")
        if any("opentelemetry-collector" in c.get("image", "") for c in spec["template"]["spec"]["containers"]):
            failures.append(f"{label}: the collector must be a native sidecar (initContainers), not a container")
        for svc in by_kind.get("Service", []):
            sel = svc["spec"].get("selector", {})
            if any(pod_labels.get(k) != v for k, v in sel.items()):
                failures.append(f"{label}: Service {svc['metadata']['name']} does not select the pod")
    for sm in by_kind.get("ServiceMonitor", []):
        wanted = sm["spec"]["selector"].get("matchLabels", {})
        ports = [e.get("port") for e in sm["spec"]["endpoints"]]
        matched = [
            s for s in by_kind.get("Service", []) if all(s["metadata"]["labels"].get(k) == v for k, v in wanted.items())
        ]
        if len(matched) != 1:
            failures.append(f"{label}: ServiceMonitor selects {len(matched)} Services")
        for s in matched:
            names = {p.get("name") for p in s["spec"]["ports"]}
            failures += [f"{label}: ServiceMonitor port {p} not on the Service" for p in ports if p not in names]
    return failures


def _normalise(obj):
    obj = yaml.safe_load(yaml.safe_dump(obj))
    for meta in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata", {})):
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in HELM_LABELS}
        notes = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith("checksum/")}
        meta.pop("labels", None)
        meta.pop("annotations", None)
        if labels:
            meta["labels"] = labels
        if notes:
            meta["annotations"] = notes
    if obj["kind"] == "ConfigMap":
        obj["data"] = {k: yaml.safe_load(v) if k.endswith(".yaml") else v for k, v in obj["data"].items()}
    return obj


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'the chart' if k in a else 'deploy/kubernetes'}"
            d = _diff(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = _diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: chart {a!r} != deploy/kubernetes {b!r}"


def equivalent(chart_objects, plain):
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    chart = {key(o): _normalise(o) for o in chart_objects}
    manifests = {key(o): _normalise(o) for o in plain}
    failures = []
    if set(chart) != set(manifests):
        failures.append(f"chart (default values) renders {sorted(chart)}, deploy/kubernetes has {sorted(manifests)}")
    for k in sorted(set(chart) & set(manifests)):
        d = _diff(chart[k], manifests[k])
        if d:
            failures.append(f"chart (default values) and deploy/kubernetes differ in {k[0]}/{k[1]}: {d}")
    print(f"chart with default values == deploy/kubernetes: {len(failures) == 0}")
    return failures


def collector_configs(label, objects):
    """(label, text) of every collector config among `objects`."""
    out = []
    for o in objects:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-collector"):
            out.append((f"{label} ConfigMap {o['metadata']['name']}", o["data"]["config.yaml"]))
    return out


def check():
    """(failures, collector configs, texts holding collector images, rendered objects by label)."""
    failures = []
    plain = plain_objects()
    files = sorted(glob.glob(os.path.join(PLAIN, "*.yaml")))
    failures += kubernetes_validate(files)
    failures += structure("deploy/kubernetes", plain)
    print(f"deploy/kubernetes: kubernetes-validate --strict of {len(files)} files")
    for copy, original in COPIES:
        a, b = os.path.join(CHART, copy), os.path.join(ROOT, original)
        if not (os.path.exists(a) and os.path.exists(b) and filecmp.cmp(a, b, shallow=False)):
            failures.append(f"{rel(a)} must be a copy of {original}")

    f1, default = render()
    f2, full = render(os.path.join(CHART, "values-full.yaml"), release="forge-logs")
    failures += f1 + f2
    if default:
        failures += equivalent(default, plain)
    configs = (
        collector_configs("deploy/kubernetes", plain)
        + collector_configs("chart (default values)", default)
        + collector_configs("chart (values-full.yaml)", full)
    )
    images = [(rel(p), open(p).read()) for p in files]
    images += [("chart render", yaml.safe_dump_all(default + full))]
    return failures, configs, images, {"default": default, "full": full}


def check_sidecar_configs(binary, rendered):
    """Runs `check-config` on the sidecar config of every render, with the
    token file and state directory moved to a temporary directory."""
    failures = []
    for label, objects in rendered.items():
        for o in objects:
            if o["kind"] != "ConfigMap" or "config.yaml" not in o["data"] or o["metadata"]["name"].endswith("-collector"):
                continue
            cfg = yaml.safe_load(o["data"]["config.yaml"])
            with tempfile.TemporaryDirectory() as d:
                token = os.path.join(d, "api-token")
                with open(token, "w") as f:
                    f.write("token\n")
                cfg["forge"]["api_token_file"] = token
                cfg["state"]["dir"] = os.path.join(d, "state")
                path = os.path.join(d, "config.yaml")
                with open(path, "w") as f:
                    yaml.safe_dump(cfg, f)
                r = subprocess.run([binary, "check-config", "--config", path], capture_output=True, text=True, env={})
                if r.returncode != 0:
                    failures.append(f"chart ({label}) ConfigMap {o['metadata']['name']}: check-config: {r.stderr.strip()}")
    print(f"chart sidecar configs: check-config on {len(rendered)} renders")
    return failures
