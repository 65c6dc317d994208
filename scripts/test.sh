#!/usr/bin/env bash
# Run the test suites: `scripts/test.sh` runs all of them; `scripts/test.sh lint|sanity|unit|integration`
# runs one. Integration tests need root (network namespaces); with XO_REQUIRE_ROOT=1 (set by CI)
# a root-only test that cannot run fails instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

step() { printf '\n=== %s\n' "$*"; }

lint() {
  step "ruff"
  ruff check . && ruff format --check .
  step "ansible-lint (production profile)"
  ansible-lint
}

sanity() {
  step "ansible-test sanity"
  bash scripts/sanity.sh
}

unit() {
  step "pytest: unit"
  python -m pytest -ra tests/unit
}

integration() {
  step "pytest: integration"
  python -m pytest -ra tests/integration
}

if [ $# -eq 0 ]; then set -- lint sanity unit integration; fi
for suite in "$@"; do "$suite"; done
