#!/usr/bin/env bash
# Bring up the namespace test bed (Dom0 with the XAPI simulator, a compute VM, a controller),
# run playbooks/site.yml against it, and take the bed down again (KEEP_BED=1 keeps it up).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BED="python tests/bed/bed.py"
[ "${KEEP_BED:-0}" = 1 ] || trap '$BED down' EXIT
$BED up --pairs "${PAIRS:-1}"
ansible-playbook playbooks/site.yml -i "$($BED inventory)" "$@"
