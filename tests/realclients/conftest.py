"""The real-client layer: OpenStack's own code (nova, neutron, ceilometer, with OpenStack's pins, on the Pythons they
ran on) against the bed's Dom0 after playbooks/site.yml. Needs root, the bed, and the venvs of
scripts/setup-realclients.sh (tests wait for a background build of them to finish)."""

import fcntl
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))  # bedlib

REALCLIENTS = os.path.join(ROOT, ".build", "realclients")
VENVS = ("train-py2.7", "ussuri-py3.8")


@pytest.fixture(scope="session")
def realclients():
    """The real-client venvs, built (waiting for a background build that holds the lock, else building now)."""
    lock = os.path.join(ROOT, ".build", "realclients.lock")
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a background build (make test starts one) holds it until it is done
    build = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "setup-realclients.sh")], capture_output=True, text=True, check=False
    )
    missing = [name for name in VENVS if not os.access(os.path.join(REALCLIENTS, name, "bin", "python"), os.X_OK)]
    assert not missing, "no real-client venv %s: %s" % (", ".join(missing), build.stdout + build.stderr)
    return {name: os.path.join(REALCLIENTS, name) for name in VENVS}
