#!/usr/bin/env bash
# Bring up the namespace test bed (Dom0s with the XAPI simulator, compute VMs, a controller with a real Glance),
# run playbooks/site.yml against it, show the result and take everything down again (KEEP_BED=1 keeps it up;
# PAIRS=N for N Dom0 / compute VM pairs). Arguments go to ansible-playbook.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
exec python scripts/demo.py "$@"
