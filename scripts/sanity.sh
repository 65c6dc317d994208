#!/usr/bin/env bash
# Run `ansible-test sanity` offline, for the current ansible-core line (2.21, .venv: module code on Python
# 3.9-3.14) and the old line (2.16, .build/lines/2.16: module code on Python 2.7 and 3.6-3.12), each on a
# copy of the collection at .../ansible_collections/xenserver/openstack (ansible-test needs that path and
# refuses symlinks). Two workarounds make it work without Docker and without the internet: get-pip
# stand-ins that use ensurepip + the package index, and a directory of real interpreters (not pyenv shims)
# first on PATH. For its import test on Python 2.7, ansible-test 2.16 itself installs virtualenv 16.7.12 (the
# last without dependencies) into that Python's user site, from the package index.
#   scripts/sanity.sh [--line 2.16|2.21] [ansible-test sanity arguments, e.g. --test pylint]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/env.sh
LINES=(2.21 2.16)
if [ "${1:-}" = --line ]; then
  LINES=("$2")
  shift 2
fi
# Outside the repository (inside it, git would report the copy as ignored and ansible-test would skip it all),
# and one directory per run, so that two runs never share a copy.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xenserver-openstack-sanity.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DEST=$WORK/ansible_collections/xenserver/openstack
PYBIN=$WORK/pybin

line_bin() {
  case $1 in
    2.21) echo "$ROOT/.venv/bin" ;;
    *) echo "$ROOT/.build/lines/$1/venv/bin" ;;
  esac
}

# ansible-test bootstraps pip in each of its venvs with get-pip-<version>.py, downloaded on first use; the
# stand-in runs ensurepip, then installs the pinned pip (and what else was asked) from the package index.
# One per pip version the line pins (2.16 pins older pips for Python 2.7 and 3.6). Python 2.7 runs it too.
write_get_pip_stand_ins() {
  local python=$1 cache=$HOME/.ansible/test/cache version
  mkdir -p "$cache"
  for version in $("$python" - <<'PY'
import inspect
import re

from ansible_test._internal import python_requirements as pr

print(" ".join(sorted(set(re.findall(r"pip='([0-9.]+)'", inspect.getsource(pr.get_venv_packages))))))
PY
  ); do
    cat >"$cache/get_pip_${version//./_}.py" <<'PY'
"""Offline stand-in for ansible-test's get-pip download: ensurepip, then pip from the package index."""
import os
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
with open(os.devnull, "w") as devnull:
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=devnull)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)
if "--no-setuptools" in sys.argv:
    subprocess.call([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", "setuptools"])
PY
  done
}

# Every pyenv Python, as pythonX.Y: ansible-test tests the module code with each one its line supports
# (2.16: 2.7 and 3.6-3.12; 2.21: 3.9-3.14), and these links come before pyenv's shims and the system's.
link_real_interpreters() {
  mkdir -p "$PYBIN"
  command -v pyenv >/dev/null || return 0
  local dir short
  for dir in "$(pyenv root)"/versions/[23].*; do
    short=$(basename "$dir" | cut -d. -f1,2)
    [ -x "$dir/bin/python$short" ] && ln -sf "$dir/bin/python$short" "$PYBIN/python$short"
  done
  return 0
}

copy_collection() {
  mkdir -p "$DEST"
  # What the collection ships, plus ansible-test's own configuration. The pytest suites, the benchmarks and the
  # test bed under tests/ are not collection content; ruff checks them.
  git ls-files -z --cached --others --exclude-standard | grep -zEv '^(tests|benchmarks)/' |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    xargs -0 cp --parents -t "$DEST"
  cp --parents -t "$DEST" tests/config.yml tests/sanity/ignore-*.txt
}

link_real_interpreters
copy_collection
status=0
for line in "${LINES[@]}"; do
  bin=$(line_bin "$line")
  [ -x "$bin/ansible-test" ] || { echo "no ansible-core $line in $bin: run scripts/setup.sh" >&2; exit 1; }
  write_get_pip_stand_ins "$bin/python"
  printf '\n--- ansible-test sanity, ansible-core %s\n' "$("$bin/python" -c 'import ansible; print(ansible.__version__)')"
  start=$SECONDS
  (cd "$DEST" && PATH=$PYBIN:$bin:$PATH "$bin/ansible-test" sanity --requirements --color no "$@") || status=1
  printf -- '--- ansible-core %s sanity: %s s\n' "$line" $((SECONDS - start))
done
exit $status
