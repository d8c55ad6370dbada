#!/usr/bin/env python3
"""Validates the deployment files offline.

- docker-compose.yml against the Compose Specification's JSON schema
  (../shared/schemas/compose-spec.json, or COMPOSE_SCHEMA);
- deploy/kubernetes/*.yaml with kubernetes-validate --strict;
- collector-config.yaml: every pipeline names defined components, and
  memory_limiter runs first.

The cross-checks between these files and the binary (commands, flags,
ports, paths, environment variables) live in tests/deploy.rs.
"""
import glob
import json
import os
import subprocess
import sys

import yaml
from jsonschema import Draft7Validator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def check_compose():
    schema_path = os.environ.get("COMPOSE_SCHEMA") or os.path.join(ROOT, "..", "shared", "schemas", "compose-spec.json")
    if not os.path.exists(schema_path):
        if os.environ.get("CI"):
            failures.append(f"compose schema not found at {schema_path}")
        else:
            print(f"SKIPPED: compose schema not found at {schema_path}")
        return
    with open(schema_path) as f:
        schema = json.load(f)
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        doc = yaml.safe_load(f)
    errors = list(Draft7Validator(schema).iter_errors(doc))
    for e in errors:
        failures.append(f"docker-compose.yml: {'/'.join(map(str, e.path))}: {e.message}")
    print(f"docker-compose.yml: {len(errors)} schema errors")


def check_kubernetes():
    files = sorted(glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "*.yaml")))
    r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", *files], capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode != 0:
        failures.append(f"kubernetes-validate failed:\n{r.stdout}\n{r.stderr}")


def check_collector():
    with open(os.path.join(ROOT, "collector-config.yaml")) as f:
        cfg = yaml.safe_load(f)
    for name, p in cfg["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for comp in p.get(kind, []):
                if comp not in (cfg.get(kind) or {}):
                    failures.append(f"collector-config.yaml: pipeline {name} uses undefined {kind[:-1]} {comp}")
        if p.get("processors") and p["processors"][0] != "memory_limiter":
            failures.append(f"collector-config.yaml: pipeline {name}: memory_limiter must come first")
    print("collector-config.yaml: pipelines checked")


check_compose()
check_kubernetes()
check_collector()
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print("deployment files: ok")
