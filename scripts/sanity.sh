#!/usr/bin/env bash
# Run `ansible-test sanity` offline on a copy of the collection at
# .build/sanity/ansible_collections/xenserver/openstack (ansible-test needs that path and
# refuses symlinks). Two workarounds make it work without Docker and without the internet:
# a get-pip stand-in that uses ensurepip + PyPI, and a directory of real interpreters
# (not pyenv shims) first on PATH. Extra arguments go to ansible-test.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/env.sh
# Outside the repository (inside it, git would report the copy as ignored and ansible-test would skip it all),
# and one directory per run, so that two runs never share a copy.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xenserver-openstack-sanity.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DEST=$WORK/ansible_collections/xenserver/openstack
PYBIN=$ROOT/.build/pybin

write_get_pip_stand_in() {
  local version cache=$HOME/.ansible/test/cache
  version=$(python - <<'PY'
import re, inspect
from ansible_test._internal import python_requirements as pr
print(re.search(r"pip='([0-9.]+)'", inspect.getsource(pr.get_venv_packages)).group(1).replace(".", "_"))
PY
)
  mkdir -p "$cache"
  cat > "$cache/get_pip_$version.py" <<'PY'
"""Offline stand-in for ansible-test's get-pip download: ensurepip, then pip from the package index."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)
if "--no-setuptools" in sys.argv:
    subprocess.call([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", "setuptools"])
PY
}

link_real_interpreters() {
  rm -rf "$PYBIN" && mkdir -p "$PYBIN"
  command -v pyenv >/dev/null || return 0
  local dir
  for dir in "$(pyenv root)"/versions/3.*; do
    local short
    short=$(basename "$dir" | cut -d. -f1,2)
    [ -x "$dir/bin/python$short" ] && ln -sf "$dir/bin/python$short" "$PYBIN/python$short"
  done
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

write_get_pip_stand_in
link_real_interpreters
copy_collection
cd "$DEST"
PATH=$PYBIN:$PATH ansible-test sanity --requirements --color no "$@"
