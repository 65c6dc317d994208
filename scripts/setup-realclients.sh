#!/usr/bin/env bash
# The real clients of the tests' real-client layer (tests/realclients): the OpenStack code that talks to Dom0 on a
# XenServer compute, as operators ran it, each release in a venv of the Python it ran on:
#   .build/realclients/ussuri-py3.8   nova 21.2.4, neutron 16.4.2, ceilometer 14.1.0, os-xenapi 0.3.4 (Ubuntu 20.04)
#   .build/realclients/train-py2.7    nova 20.6.1, neutron 15.3.4, ceilometer 13.1.2, os-xenapi 0.3.4 (Ubuntu 18.04)
# from tests/realclients/requirements-*.txt (the sets pip resolved from OpenStack's upper-constraints, frozen), both
# at once. Built once and kept (a few minutes on a fresh machine); rebuilt only when a pin file changes.
#   --background   build in the background, holding .build/realclients.lock (the tests wait on it); its output
#                  goes to .build/realclients/setup.log. `make test` starts it first, so it overlaps the static
#                  checks and the unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=$ROOT/.build/realclients
VIRTUALENV=virtualenv==20.15.1 # the last virtualenv that runs on Python 2.7 (it has no venv module)

log() { printf '[setup-realclients] %s\n' "$*"; }

interpreter() {
  local version=$1 found=""
  command -v pyenv >/dev/null && found=$(ls -d "$(pyenv root)"/versions/"$version".*/bin/python"$version" 2>/dev/null | sort -V | tail -n 1)
  [ -n "$found" ] || found=$(command -v "python$version" || true)
  [ -n "$found" ] || { log "no Python $version (pyenv install $version): the real-client tests of $2 cannot run" >&2; return 1; }
  echo "$found"
}

build() {
  local name=$1 version=$2
  local venv=$TARGET/$name pins=$ROOT/tests/realclients/requirements-$name.txt python
  if [ -x "$venv/bin/python" ] && cmp -s "$pins" "$venv/.pins"; then
    return 0
  fi
  python=$(interpreter "$version" "$name") || return 0
  rm -rf "$venv"
  mkdir -p "$TARGET"
  if [ "$version" = 2.7 ]; then
    "$python" -m pip install -q --disable-pip-version-check --target "$TARGET/virtualenv" "$VIRTUALENV" 2>/dev/null
    PYTHONPATH=$TARGET/virtualenv "$python" -m virtualenv -q "$venv"
  else
    "$python" -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$pins" >"$venv.log" 2>&1 || {
    log "$name: pip failed, see $venv.log" >&2
    tail -n 20 "$venv.log" >&2
    return 1
  }
  cp "$pins" "$venv/.pins"
  log "$name: $(grep -Eo '^(nova|neutron|ceilometer|os-xenapi)==[^ ]+' "$pins" | paste -sd ' ') in $venv"
}

if [ "${1:-}" = --background ]; then
  mkdir -p "$TARGET"
  # Take the lock here, before the background build starts, and hand it over (fd 9 is inherited): a test that waits
  # on the lock can never run between this script's end and the build's start.
  exec 9>"$ROOT/.build/realclients.lock"
  flock -n 9 || { log "a build is running already"; exit 0; }
  nohup bash "$0" >"$TARGET/setup.log" 2>&1 &
  log "building in the background (pid $!, log $TARGET/setup.log)"
  exit 0
fi

started=$(date +%s)
build ussuri-py3.8 3.8 &
ussuri=$!
build train-py2.7 2.7 &
train=$!
status=0
wait "$ussuri" || status=1
wait "$train" || status=1
log "ready in $(($(date +%s) - started)) s: $(cd "$TARGET" && ls -d ussuri-py3.8 train-py2.7 2>/dev/null | paste -sd ' ')"
exit $status
