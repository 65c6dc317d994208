#!/usr/bin/env bash
# Set up everything the demo and the tests need on a fresh Debian/Ubuntu machine:
# system packages (as root), a virtualenv in .venv, and a collections path in .build/collections
# holding this collection (symlink) and ansible.posix / community.general taken from the PyPI
# `ansible` package (Galaxy is not needed); then Glance (setup-glance.sh) and the old ansible-core
# lines and target Pythons (setup-pythons.sh). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
COLLECTIONS=$ROOT/.build/collections
APT_PACKAGES=(iproute2 iptables dnsmasq-base busybox isc-dhcp-client procps rpm qemu-utils sudo
  rpm2cpio cpio createrepo-c xorriso genisoimage gnupg openssl patch pciutils
  openvswitch-switch) # the bed's Dom0 Open vSwitch (ovsdb-server, ovs-vswitchd in user space, ovs-vsctl)

log() { printf '[setup] %s\n' "$*"; }

install_system_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages (${missing[*]}): run this script as root once, or install them"
    return 0
  fi
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

find_python() {
  local candidate
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for candidate in \
    "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.12.1/bin/python3.12")" \
    "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.13.0/bin/python3.13")" \
    python3.13 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"; return
    fi
  done
  log "needs Python >= 3.12 for ansible-core 2.21 (set PYTHON=/path/to/python3.12)" >&2
  exit 1
}

make_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$(find_python)" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  if ! cmp -s tests/requirements.txt "$VENV/.requirements.txt"; then
    log "installing Python packages"
    "$VENV/bin/pip" install -q -r tests/requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
    cp tests/requirements.txt "$VENV/.requirements.txt"
  fi
}

make_collections_path() {
  mkdir -p "$COLLECTIONS/ansible_collections/xenserver"
  ln -sfn "$ROOT" "$COLLECTIONS/ansible_collections/xenserver/openstack"
  [ -d "$COLLECTIONS/ansible_collections/ansible/posix" ] && \
    [ -d "$COLLECTIONS/ansible_collections/community/general" ] && \
    [ -d "$COLLECTIONS/ansible_collections/community/library_inventory_filtering_v1" ] && return 0
  log "taking ansible.posix, community.general and its dependency from the PyPI ansible package"
  bash scripts/collections-from-ansible.sh "$VENV" 'ansible>=13,<15' "$COLLECTIONS"
}

install_system_packages
# The real clients (nova, neutron, ceilometer of Train and Ussuri) take minutes to install: they build in the
# background while the rest is set up and the first suites run; their tests wait for them.
bash scripts/setup-realclients.sh --background
make_venv
make_collections_path
bash scripts/setup-glance.sh
bash scripts/setup-pythons.sh
log "ready: source scripts/env.sh to use the tools"
