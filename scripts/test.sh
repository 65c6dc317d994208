#!/usr/bin/env bash
# Run the test suites: `scripts/test.sh` runs all of them; `scripts/test.sh lint|sanity|unit|integration|realclients|
# molecule` runs one. Integration tests and the molecule scenarios (on the namespace bed, the simulator or a real Glance)
# need root; with XO_REQUIRE_ROOT=1 (set by CI)
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
  step "antsibull-changelog: lint, and the release as a dry run"
  bash scripts/changelog.sh
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
  # Two workers (pytest-xdist), a test file at a time each: a file's tests share its bed, and each worker's beds
  # have namespace names of their own (tests/conftest.py). Most files run one compute VM, about one CPU's work.
  step "pytest: integration (two workers)"
  python -m pytest -ra -n 2 --dist loadfile --durations=15 tests/integration
}

realclients() {
  step "pytest: real clients (nova, neutron, ceilometer against the bed's Dom0)"
  python -m pytest -ra tests/realclients
}

molecule() {
  local scenario
  for scenario in roles/*/molecule/default; do
    step "molecule: $(basename "$(dirname "$(dirname "$scenario")")")"
    (cd "$(dirname "$(dirname "$scenario")")" && command molecule test)
  done
}

if [ $# -eq 0 ]; then set -- lint sanity unit integration realclients molecule; fi
for suite in "$@"; do "$suite"; done
