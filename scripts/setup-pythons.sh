#!/usr/bin/env bash
# The old fleet, for the tests that run the collection on the compute VMs' old Pythons:
#   .build/lines/2.16  ansible-core 2.16 (the last line that manages Python 2.7 and 3.6 targets) and
#   .build/lines/2.19  ansible-core 2.19 (the last that manages Python 3.8 targets): each a venv on a controller
#                      Python both lines accept (3.12), and a collections path with this collection (symlink) and
#                      the ansible.posix / community.general of the PyPI `ansible` release made for that line;
#   .build/targets/pyX.Y  venvs of pyenv's Python 2.7, 3.6 and 3.8 with what the modules need on such a node
#                      (tests/targets/requirements-pyX.Y.txt: XenAPI and openstacksdk at OpenStack's pins);
#   .build/dom0-python/pythonX.Y+six  venvs of pyenv's Python 2.7 and 3.6 as a Dom0 has them, for the XAPI
#                      simulator's plugins (tests/xapisim/dom0-requirements.txt and the XenAPIPlugin stand-in).
# Safe to run again: it builds only what is missing or whose pins changed, and says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/.build
# line  ansible-core pin  the `ansible` release whose collections go with it (ansible 9 = core 2.16, 12 = 2.19)
LINES=(
  "2.16 ansible-core==2.16.19 ansible==9.13.0"
  "2.19 ansible-core==2.19.14 ansible==12.3.0"
)
TARGET_PYTHONS=(2.7 3.6 3.8)
DOM0_PYTHONS=(2.7 3.6) # /usr/bin/python of XenServer 7.x-XCP-ng 8.3, and XCP-ng 8.3's python3
VIRTUALENV=virtualenv==20.15.1 # the last virtualenv that runs on Python 2.7 (it has no venv module)

log() { printf '[setup-pythons] %s\n' "$*"; }
quiet_pip() { "$@" 2> >(grep -v -e "WARNING: Location" -e "DEPRECATION:" -e "is ignored: it is neither" >&2); }

# A pyenv interpreter of that version (the newest patch release present), or one on PATH.
find_interpreter() {
  local version=$1 found=""
  if command -v pyenv >/dev/null; then
    found=$(ls -d "$(pyenv root)"/versions/"$version".*/bin/python"$version" 2>/dev/null | sort -V | tail -n 1)
  fi
  if [ -z "$found" ]; then
    found=$(command -v "python$version" || true)
  fi
  [ -n "$found" ] && "$found" -c 'import sys' 2>/dev/null && echo "$found"
}

# The controller Python of the old lines: 2.16 accepts 3.10-3.12, 2.19 accepts 3.11-3.13.
controller_python() {
  local python
  python=$(find_interpreter 3.12) || {
    log "needs Python 3.12 for the ansible-core 2.16 and 2.19 controllers (pyenv install 3.12)" >&2
    return 1
  }
  echo "$python"
}

make_line() {
  local line=$1 core=$2 bundle=$3
  local dir=$BUILD/lines/$line
  local venv=$dir/venv collections=$dir/collections
  local stamp="$core $bundle"
  if [ -x "$venv/bin/ansible-playbook" ] && [ "$(cat "$dir/.pins" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "ansible-core $line: $core in $venv, ansible.posix and community.general from $bundle"
  rm -rf "$dir"
  mkdir -p "$collections/ansible_collections/xenserver"
  "$(controller_python)" -m venv "$venv"
  quiet_pip "$venv/bin/pip" install -q "$core"
  bash scripts/collections-from-ansible.sh "$venv" "$bundle" "$collections"
  ln -sfn "$ROOT" "$collections/ansible_collections/xenserver/openstack"
  echo "$stamp" >"$dir/.pins"
}

# A venv of Python VERSION in DIR with the pins of REQUIREMENTS, unless it is there with the same pins.
make_python_venv() {
  local version=$1 venv=$2 requirements=$3 label=$4
  if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$venv/.requirements"; then
    return 0
  fi
  local python
  python=$(find_interpreter "$version") || {
    log "no Python $version (pyenv install $version): $label cannot be built" >&2
    return 1
  }
  log "$label: $venv from $python with $(grep -Eo '^(XenAPI|openstacksdk|six)==[^ ]+' "$requirements" | paste -sd ' ')"
  rm -rf "$venv"
  if [ "$version" = 2.7 ]; then
    local tool=$BUILD/targets/virtualenv
    if [ ! -d "$tool/virtualenv" ]; then
      quiet_pip "$python" -m pip install -q --disable-pip-version-check --target "$tool" "$VIRTUALENV"
    fi
    PYTHONPATH=$tool "$python" -m virtualenv -q "$venv"
  else
    "$python" -m venv "$venv"
  fi
  quiet_pip "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.requirements"
}

make_target() {
  make_python_venv "$1" "$BUILD/targets/py$1" "$ROOT/tests/targets/requirements-py$1.txt" "target Python $1" || true
}

# Dom0's Pythons for the XAPI simulator's plugins (tests/xapisim/dom0.py): what a Dom0's site-packages hold, and
# the project's XenAPIPlugin stand-in through a .pth file. The environment's name is what the scenarios' `dom0`
# section selects (python2.7+six: /usr/bin/python with python-six).
make_dom0_python() {
  local version=$1 venv=$BUILD/dom0-python/python$1+six
  make_python_venv "$version" "$venv" "$ROOT/tests/xapisim/dom0-requirements.txt" "Dom0's Python $version" || return 0
  echo "$ROOT/tests/xapisim/dom0lib" >"$(echo "$venv"/lib/python*/site-packages)/xapisim-dom0lib.pth"
}

for entry in "${LINES[@]}"; do
  # shellcheck disable=SC2086 # the entry is three words
  make_line $entry
done
for version in "${TARGET_PYTHONS[@]}"; do
  make_target "$version"
done
for version in "${DOM0_PYTHONS[@]}"; do
  make_dom0_python "$version"
done
log "ready: $(cd "$BUILD" && ls -d lines/* targets/py* dom0-python/* 2>/dev/null | paste -sd ' ')"
