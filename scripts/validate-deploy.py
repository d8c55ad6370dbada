#!/usr/bin/env python3
"""Validates the deployment files offline (no Docker engine, no cluster).

- compose: docker-compose.yml rendered with no variables, and merged with
  docker-compose.datadog.yml, against the Compose Specification's schema;
  only the Datadog override may require a variable (scripts/deploycheck/compose.py);
- Kubernetes: deploy/kubernetes and the Helm chart (default values and
  values-full.yaml) through helm lint, helm template and
  kubernetes-validate --strict; the chart's defaults equal the plain
  manifests; the chart's sidecar configs pass check-config (deploycheck/kube.py);
- collector configs: acknowledge only exported or persisted records, one
  pinned release (deploycheck/collector.py);
- alert rules and dashboard: promtool, and every metric they name is on a
  running sidecar's /metrics (deploycheck/prom.py).

Tools come from .tools/ (scripts/install-test-tools.sh). The cross-checks
between these files and the binary's commands, flags and config live in
tests/deploy.rs.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from deploycheck import collector, compose, kube, prom  # noqa: E402


def main():
    start = time.monotonic()
    failures = []
    binary = prom.build_binary()
    failures += compose.check()
    kube_failures, collector_configs, image_texts, rendered = kube.check()
    failures += kube_failures
    failures += kube.check_sidecar_configs(binary, rendered)
    failures += collector.check(collector_configs)
    with open(os.path.join(kube.ROOT, "docker-compose.yml")) as f:
        image_texts.append(("docker-compose.yml", f.read()))
    failures += collector.check_pinned(image_texts)
    failures += prom.check_rules(rendered["full"])
    failures += prom.check_dashboard()
    failures += prom.check_metric_names()
    if failures:
        print("\n".join(f"FAILED: {f}" for f in failures), file=sys.stderr)
        sys.exit(1)
    print(f"deployment files: ok ({time.monotonic() - start:.1f}s)")


if __name__ == "__main__":
    main()
