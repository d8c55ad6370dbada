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
