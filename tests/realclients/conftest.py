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
from bedlib import Bed  # noqa: E402
from realbed import HOSTS, SITE, nova_file  # noqa: E402

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


@pytest.fixture(scope="session")
def bed(realclients, tmp_path_factory):
    """The bed of realbed.HOSTS, shared by the nova, neutron and ceilometer tests (one bed, one site.yml)."""
    state = str(tmp_path_factory.mktemp("realclients") / "bed")
    scenarios = ",".join(scenario for scenario, _venv in HOSTS.values())
    novas = ",".join(venv for _scenario, venv in HOSTS.values())
    bed = Bed(state, "--pairs", str(len(HOSTS)), "--scenario", scenarios, "--nova", novas)
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="session")
def converged(bed):
    """Without nova's plugins, then with plugins too old (test_nova's refusals), then the default site.yml on every
    host."""
    refusal = ("--limit", "compute-2", "--tags", "preflight,pack,nova")  # the pack, the patches, nova_xenapi
    missing = bed.playbook(SITE, *refusal, "-e", "dom0_suppack_plugin_set=none")
    old = bed.playbook(SITE, *refusal, "-e", "dom0_suppack_plugin_set=os-xenapi-0.1.1")
    after_refusals = os.path.exists(nova_file(bed, "compute-2"))
    first = bed.playbook(SITE)
    return dict(missing=missing, old=old, nova_written_before=after_refusals, first=first)
