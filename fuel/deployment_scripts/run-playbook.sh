#!/usr/bin/env bash
# Fuel runs this on a node, in the plugin folder (/etc/fuel/plugins/xenserver-openstack-X.Y/), as
# `./run-playbook.sh TAG`: it runs the plays of the xenserver.openstack collection's playbooks/site.yml tagged
# TAG, for this node only, with the inventory that the xenserver.openstack.fuel plugin makes of this node's
# /etc/astute.yaml (or of the file FUEL_ASTUTE_YAML names).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 TAG   (a tag of playbooks/site.yml: preflight, compute, controller or images)" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# Fuel gives its tasks a minimal root environment: the standard PATH and maybe no HOME. Ansible (ansible-core
# 2.19 or later, on Python 3.11 or later) is taken from /opt/xenserver-openstack first: see docs/fuel.md.
export HOME=${HOME:-/root}
export PATH=/opt/xenserver-openstack/bin:$PATH
export ANSIBLE_CONFIG=$here/ansible.cfg
# The collection this plugin carries first; its dependencies from Ansible's usual places (or its site-packages).
export ANSIBLE_COLLECTIONS_PATH=$here:$HOME/.ansible/collections:/usr/share/ansible/collections
export FUEL_ASTUTE_YAML=${FUEL_ASTUTE_YAML:-/etc/astute.yaml}
python=$(command -v python3)
# Modules run on this node with Ansible's own interpreter, not the distribution's older one.
export ANSIBLE_PYTHON_INTERPRETER=$python

# This node's inventory host name, read from its data by the inventory plugin's own parser.
node=$(PYTHONPATH=$here "$python" - "$FUEL_ASTUTE_YAML" <<'PY'
import sys

from ansible_collections.xenserver.openstack.plugins.plugin_utils._fuel import FuelDataError, load_astute, parse_node

try:
    print(parse_node(load_astute(sys.argv[1]), sys.argv[1]).name)
except FuelDataError as error:
    sys.exit(str(error))
PY
)

exec ansible-playbook -i fuel_inventory.yml --limit "$node" --tags "$1" --connection local \
  ansible_collections/xenserver/openstack/playbooks/site.yml
