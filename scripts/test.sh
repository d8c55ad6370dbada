#!/usr/bin/env bash
# The test command: unit, integration and end-to-end tests.
# End-to-end tests use the rotel collector installed by scripts/install-test-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .tools/rotel/rotel/rotel-agent ]; then
  export ROTEL_AGENT="${ROTEL_AGENT:-$PWD/.tools/rotel/rotel/rotel-agent}"
fi
cargo test --all-targets
