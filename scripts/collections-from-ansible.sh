#!/usr/bin/env bash
# Usage: collections-from-ansible.sh VENV REQUIREMENT COLLECTIONS_DIR
# Put ansible.posix, community.general and its dependency community.library_inventory_filtering_v1, as the PyPI `ansible` release REQUIREMENT (for example
# 'ansible>=13,<15') bundles them, under COLLECTIONS_DIR/ansible_collections, with VENV's pip: Galaxy is not
# needed, and each ansible-core line gets the collection versions released for it.
set -euo pipefail
venv=$1 requirement=$2 target=$3
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
"$venv/bin/pip" download -q --no-deps -d "$download" "$requirement" 2> >(grep -v "WARNING: Location" >&2)
"$venv/bin/python" - "$download"/ansible-*.whl "$target" <<'PY'
import sys
import zipfile

wheel, target = sys.argv[1:3]
wanted = (
    "ansible_collections/ansible/posix/",
    "ansible_collections/community/general/",
    "ansible_collections/community/library_inventory_filtering_v1/",
)
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(target, [n for n in archive.namelist() if n.startswith(wanted)])
PY
