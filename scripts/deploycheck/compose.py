"""docker-compose.yml and docker-compose.datadog.yml.

Compose interpolates every file it loads before it applies profiles, so a
`${VAR:?...}` anywhere in the main file stops `docker compose up` when VAR is
unset. The rule checked here: rendered with an empty environment, no file but
the Datadog override requires a variable; the override requires DD_API_KEY
and renders once it is set. Every rendering (the main file alone, and merged
with the override) is validated against the Compose Specification's schema.
"""
import json
import os
import re

import yaml
from jsonschema import Draft7Validator

from . import ROOT

MAIN = "docker-compose.yml"
DATADOG = "docker-compose.datadog.yml"
# The only file allowed to require variables, and the ones it must require.
REQUIRED_ONLY_IN = {DATADOG: {"DD_API_KEY"}}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Interpolation:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
    ${VAR:?e}, ${VAR?e}, ${VAR:+r}, ${VAR+r}, nested in defaults."""

    def __init__(self, env):
        self.env = env
        self.missing = set()

    def render(self, s):
        out, i = [], 0
        while i < len(s):
            c = s[i]
            if c != "$":
                out.append(c)
                i += 1
            elif s.startswith("$$", i):
                out.append("$")
                i += 2
            elif s.startswith("${", i):
                end = self._closing(s, i + 2)
                out.append(self._braced(s[i + 2 : end]))
                i = end + 1
            else:
                m = _NAME.match(s, i + 1)
                if m:
                    out.append(self.env.get(m.group(0), ""))
                    i = m.end()
                else:
                    out.append(c)
                    i += 1
        return "".join(out)

    @staticmethod
    def _closing(s, start):
        depth = 1
        for j in range(start, len(s)):
            if s.startswith("${", j):
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    return j
        raise ValueError(f"unclosed ${{ in {s!r}")

    def _braced(self, body):
        m = _NAME.match(body)
        if not m:
            raise ValueError(f"bad variable ${{{body}}}")
        name, rest = m.group(0), body[m.end() :]
        value = self.env.get(name)
        if rest == "":
            return value or ""
        for op in (":-", "-", ":?", "?", ":+", "+"):
            if rest.startswith(op):
                arg = rest[len(op) :]
                empty_counts = op.startswith(":")
                unset = value is None or (empty_counts and value == "")
                if op.endswith("-"):
                    return self.render(arg) if unset else value
                if op.endswith("?"):
                    if unset:
                        self.missing.add(name)
                        return ""
                    return value
                return "" if unset else self.render(arg)
        raise ValueError(f"bad variable ${{{body}}}")

    def walk(self, node):
        if isinstance(node, str):
            return self.render(node)
        if isinstance(node, list):
            return [self.walk(x) for x in node]
        if isinstance(node, dict):
            return {k: self.walk(v) for k, v in node.items()}
        return node


def render(name, env):
    """The file interpolated with `env`, and the variables it required but lacked."""
    with open(os.path.join(ROOT, name)) as f:
        doc = yaml.safe_load(f)
    interp = Interpolation(env)
    return interp.walk(doc), interp.missing


# Keys whose values an override replaces; other sequences are appended to.
_REPLACED = {"command", "entrypoint", "healthcheck"}


def merge(base, over):
    """Compose's merge of an override file into a base file (the parts used here)."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if k in out and k not in _REPLACED:
                out[k] = merge(out[k], v)
            else:
                out[k] = v
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + [x for x in over if x not in base]
    return over


def find_schema():
    explicit = os.environ.get("COMPOSE_SCHEMA")
    if explicit:
        return explicit
    # A clone has shared/ beside it; a worktree sits one level deeper.
    d = ROOT
    for _ in range(3):
        d = os.path.dirname(d)
        p = os.path.join(d, "shared", "schemas", "compose-spec.json")
        if os.path.exists(p):
            return p
    return None


def _schema_errors(validator, label, doc):
    return [f"{label}: {'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def check():
    failures = []
    schema_path = find_schema()
    if not schema_path:
        msg = "compose schema not found (set COMPOSE_SCHEMA or put shared/schemas beside the clone)"
        if os.environ.get("CI"):
            return [msg]
        print(f"SKIPPED: {msg}")
        return []
    with open(schema_path) as f:
        validator = Draft7Validator(json.load(f))

    files = sorted(n for n in os.listdir(ROOT) if re.fullmatch(r"docker-compose(\.[a-z0-9-]+)?\.ya?ml", n))
    if MAIN not in files or DATADOG not in files:
        failures.append(f"expected {MAIN} and {DATADOG}, found {files}")
        return failures

    # The interpolation rule, with no variable set at all.
    for name in files:
        _, missing = render(name, {})
        allowed = REQUIRED_ONLY_IN.get(name, set())
        for var in sorted(missing - allowed):
            failures.append(f"{name}: requires ${{{var}}} with an empty environment; only {DATADOG} may require variables")
        for var in sorted(allowed - missing):
            failures.append(f"{name}: expected to require ${{{var}}}")

    main, _ = render(MAIN, {})
    failures += _schema_errors(validator, f"{MAIN} (no variables)", main)
    env = {"DD_API_KEY": "dummy-key"}
    dd, missing = render(DATADOG, env)
    if missing:
        failures.append(f"{DATADOG}: still requires {sorted(missing)} with DD_API_KEY set")
    merged = merge(render(MAIN, env)[0], dd)
    failures += _schema_errors(validator, f"{MAIN} + {DATADOG}", merged)

    # The agent on a laptop needs a host name; the sidecar must reach it.
    services = merged.get("services", {})
    agent = services.get("datadog", {})
    agent_env = agent.get("environment", {})
    if not agent_env.get("DD_HOSTNAME"):
        failures.append(f"{DATADOG}: the datadog service needs DD_HOSTNAME (the agent exits without a host name)")
    endpoint = services.get("sidecar", {}).get("environment", {}).get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    grpc = agent_env.get("DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_GRPC_ENDPOINT", "")
    if not endpoint.startswith("http://datadog:") or endpoint.rsplit(":", 1)[-1] != grpc.rsplit(":", 1)[-1]:
        failures.append(f"{DATADOG}: sidecar endpoint {endpoint!r} is not the agent's OTLP gRPC port ({grpc!r})")
    print(f"compose: {len(files)} files rendered with no variables and with the Datadog override, {len(failures)} problems")
    return failures
