#!/usr/bin/env bash
# The test command: unit, integration and end-to-end tests.
# Installs the real collector the end-to-end tests use (rotel, from PyPI) first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-tools.sh
export ROTEL_AGENT="${ROTEL_AGENT:-$PWD/.tools/rotel/rotel/rotel-agent}"
PYTHONPATH=.tools/py python3 scripts/validate-deploy.py
cargo test --all-targets
