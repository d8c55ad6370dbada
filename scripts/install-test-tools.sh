#!/usr/bin/env bash
# Installs what the test suites need into .tools/ (ignored by git):
# rotel, a real OpenTelemetry collector shipped as a Python wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
ROTEL_VERSION=0.0.1a15
if [ ! -x .tools/rotel/rotel/rotel-agent ]; then
  echo "installing rotel ${ROTEL_VERSION} into .tools/rotel"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target .tools/rotel "rotel==${ROTEL_VERSION}"
fi
# Offline validators for the deployment files (scripts/validate-deploy.py).
if ! PYTHONPATH=.tools/py python3 -c "import yaml, jsonschema, kubernetes_validate" 2>/dev/null; then
  echo "installing deployment validators into .tools/py"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target .tools/py "kubernetes-validate==1.37.0" "jsonschema==4.26.0" "pyyaml==6.0.3"
fi
