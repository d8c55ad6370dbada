"""The shipped OpenTelemetry Collector configs: at-least-once past the sidecar.

The sidecar moves a checkpoint when the collector answers its export, so a
collector must answer only for records it has exported or persisted:
- no `batch` processor in a logs pipeline (it answers before exporting);
- every exporter of a logs pipeline names its `sending_queue`, and that queue
  is off (`enabled: false`), waits for the export (`wait_for_result: true`),
  or persists on a `file_storage` extension that the service enables;
- memory_limiter first, every component used is defined;
- one pinned collector release across compose, manifests and the chart.
"""
import glob
import os
import re

import yaml

from . import ROOT

FILE = "collector-config.yaml"
IMAGE = re.compile(r"otel/opentelemetry-collector-contrib:([0-9][0-9.]*)\b")


def _kind(component_id):
    return component_id.split("/", 1)[0]


def check_config(label, cfg):
    failures = []
    if not isinstance(cfg, dict) or "service" not in cfg:
        return [f"{label}: not a collector config"]
    service = cfg["service"] or {}
    enabled_ext = set(service.get("extensions") or [])
    extensions = cfg.get("extensions") or {}
    for ext in enabled_ext:
        if ext not in extensions:
            failures.append(f"{label}: service enables undefined extension {ext}")
    pipelines = service.get("pipelines") or {}
    if not any(_kind(p) == "logs" for p in pipelines):
        failures.append(f"{label}: no logs pipeline")
    for name, p in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for comp in p.get(section) or []:
                if comp not in (cfg.get(section) or {}):
                    failures.append(f"{label}: pipeline {name} uses undefined {section[:-1]} {comp}")
        processors = p.get("processors") or []
        if processors and _kind(processors[0]) != "memory_limiter":
            failures.append(f"{label}: pipeline {name}: memory_limiter must come first")
        if _kind(name) != "logs":
            continue
        for proc in processors:
            if _kind(proc) == "batch":
                failures.append(
                    f"{label}: pipeline {name}: processor {proc} acknowledges before exporting; "
                    "batch in the exporter's sending_queue instead"
                )
        for exp in p.get("exporters") or []:
            failures += _check_queue(label, exp, (cfg.get("exporters") or {}).get(exp) or {}, extensions, enabled_ext)
    return failures


def _check_queue(label, exp, conf, extensions, enabled_ext):
    queue = conf.get("sending_queue")
    where = f"{label}: exporter {exp}"
    if not isinstance(queue, dict):
        return [f"{where}: sending_queue must be set (the default queue acknowledges before exporting)"]
    if queue.get("enabled") is False:
        return []
    storage = queue.get("storage")
    if storage:
        if _kind(storage) != "file_storage" or storage not in extensions:
            return [f"{where}: sending_queue.storage {storage} is not a defined file_storage extension"]
        if storage not in enabled_ext:
            return [f"{where}: extension {storage} is not enabled in service.extensions"]
        if queue.get("wait_for_result"):
            return [f"{where}: wait_for_result cannot be combined with storage"]
        return []
    if queue.get("wait_for_result") is not True:
        return [f"{where}: sending_queue must wait_for_result (or be disabled, or persist to file_storage)"]
    return []


def check(extra):
    """`extra`: (label, collector config text) pairs from the manifests and the chart."""
    failures = []
    with open(os.path.join(ROOT, FILE)) as f:
        configs = [(FILE, f.read())] + list(extra)
    # The recipes' collector configs (docs/recipes/*.collector.yaml).
    for p in sorted(glob.glob(os.path.join(ROOT, "docs", "recipes", "*.collector.yaml"))):
        with open(p) as f:
            configs.append((os.path.relpath(p, ROOT), f.read()))
    for label, text in configs:
        failures += check_config(label, yaml.safe_load(text))
    print(f"collector configs: {len(configs)} checked for acknowledge-after-export")
    return failures


def check_pinned(texts):
    """Every collector image in `texts` ((label, text) pairs) is the same release."""
    seen = {}
    for label, text in texts:
        for m in IMAGE.finditer(text):
            seen.setdefault(m.group(1), []).append(label)
    if len(seen) != 1:
        return [f"collector image releases differ or are missing: {seen}"]
    print(f"collector image: {next(iter(seen))} everywhere")
    return []
