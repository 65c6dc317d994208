# Source this file to use the project's tools: . scripts/env.sh
_xo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_xo_root/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$_xo_root/.build/collections"
export ANSIBLE_CONNECTION_PLUGINS="$_xo_root/tests/bed/connection_plugins"
export ANSIBLE_HOST_KEY_CHECKING=False
export PYTHONPATH="$_xo_root/tests${PYTHONPATH:+:$PYTHONPATH}"
unset _xo_root
