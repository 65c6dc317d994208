#!/usr/bin/env bash
# Install the real OpenStack Glance (glance-api from PyPI, under gunicorn) in its own virtualenv,
# .build/glance-venv, for the guest_images tests and benchmarks. The tests start and stop it
# themselves (tests/glancebed): this script only installs. Safe to run again: it does nothing
# when the installed packages already match GLANCE_REQUIREMENTS below.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.build/glance-venv
# Glance has no Python upper bound in its metadata but is released for its OpenStack cycle's
# interpreters; 3.12 is one of them. Override with GLANCE_PYTHON=/path/to/python3.x.
GLANCE_REQUIREMENTS=(glance==33.0.0 gunicorn==27.0.1)

log() { printf '[setup-glance] %s\n' "$*"; }

find_python() {
  local candidate
  if [ -n "${GLANCE_PYTHON:-}" ]; then echo "$GLANCE_PYTHON"; return; fi
  for candidate in \
    "$(command -v pyenv >/dev/null && echo "$(pyenv root)/versions/3.12.1/bin/python3.12")" \
    python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info < (3, 13))' 2>/dev/null; then
      command -v "$candidate"; return
    fi
  done
  log "needs Python 3.10 to 3.12 for Glance (set GLANCE_PYTHON=/path/to/python3.12)" >&2
  exit 1
}

stamp() { printf '%s\n' "${GLANCE_REQUIREMENTS[@]}"; }

if [ -x "$VENV/bin/gunicorn" ] && [ -x "$VENV/bin/glance-manage" ] && stamp | cmp -s - "$VENV/.requirements"; then
  log "Glance already installed in $VENV"
  exit 0
fi
log "installing ${GLANCE_REQUIREMENTS[*]} in $VENV"
rm -rf "$VENV"
"$(find_python)" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "${GLANCE_REQUIREMENTS[@]}" 2> >(grep -v "^WARNING: Location" >&2)
stamp > "$VENV/.requirements"
log "ready: $("$VENV/bin/pip" list 2>/dev/null | grep -Ei '^(glance|glance-store|gunicorn) ' | tr -s ' ' | paste -sd ',')"
