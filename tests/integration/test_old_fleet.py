"""playbooks/site.yml end to end on compute VMs of the old fleet, with the ansible-core line that manages them.

- A compute VM on Python 2.7 (nova up to Train), managed by ansible-core 2.16.
- A compute VM on Python 3.8 (Ussuri, Ubuntu 20.04), managed by ansible-core 2.19 (2.20+ refuse Python 3.8).

The bed runs the compute VM's modules, nova's stand-in Python and the roles' scripts with the target venv of
that Python (``bed.py up --target-python X.Y``); the simulator, Dom0 and the controller keep the bed's Python.
The first run converges (pack applied, Dom0 routing through the compute VM, nova on XenAPI); the second changes
nothing. The images play has no primary_controller here: Glance is the controller's, not the old compute's.
"""

import configparser
import json
import os
import subprocess

import pytest
from bedlib import Bed, ansible_env, changed_tasks, ns, task_results
from pythons import BUILD, line_for
from sitelib import CONTROLLER_MGMT, MGMT, SITE, STORAGE, PeerListener, Simulator, bed_pids, leftovers, tracebacks

pytestmark = pytest.mark.root

PORT = 5681


@pytest.fixture(scope="module", params=["2.7", "3.8"])
def fleet(request, tmp_path_factory):
    """A bed whose compute VM runs Python ``version``; site.yml run twice with the line that manages it."""
    version = request.param
    bed = Bed(str(tmp_path_factory.mktemp("old-fleet") / "bed"), "--target-python", version)
    pids = bed_pids(bed)
    try:
        bed.version, bed.line = version, line_for(version)
        bed.runs = [bed.playbook(SITE, line=bed.line), bed.playbook(SITE, line=bed.line)]
        yield bed
    finally:
        bed.down()
    assert leftovers(pids) == ([], [])


def test_the_compute_runs_its_modules_on_the_old_python(fleet):
    """What Ansible runs the compute VM's modules with, as the setup module reports it from there."""
    run = subprocess.run(
        [
            fleet.line.tool("ansible"),
            "compute-1",
            "-i",
            fleet.inventory,
            "-m",
            "ansible.builtin.setup",
            "-a",
            "filter=ansible_python",
            "-o",
        ],
        capture_output=True,
        text=True,
        env=fleet.line.env(ansible_env()),
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    facts = json.loads(run.stdout[run.stdout.index("{") :])["ansible_facts"]["ansible_python"]
    assert "%(major)s.%(minor)s" % facts["version"] == fleet.version
    assert facts["executable"] == os.path.join(BUILD, "targets", "py" + fleet.version, "bin", "python")


def test_site_converges_on_the_old_python_then_changes_nothing(fleet):
    (code, report, output), (code2, report2, output2) = fleet.runs
    assert code == 0, output[-3000:]
    assert tracebacks(report, output) == []
    assert report["stats"]["compute-1"]["failures"] == 0 and report["stats"]["compute-1"]["changed"] > 0
    sim, dom0 = Simulator(fleet, 1), ns("dom0-1")
    facts = task_results(report, "compute-1", "Read the host")[0]
    assert facts["vm"]["uuid"] == sim.scenario()["vms"]["compute"]["uuid"]
    assert [u["hosts"] for u in sim.objects()["updates"] if u["name_label"] == "xenserver-openstack"] == [["dom0-1"]]
    routes = fleet.run(dom0, "ip", "-4", "route").stdout
    for network in (MGMT, STORAGE):
        assert "%s.0/24 via 169.254.0.2 dev xenapi" % network in routes, routes
    listener = PeerListener(ns("ctl"), CONTROLLER_MGMT, PORT)
    try:
        assert listener.source_of(fleet, dom0) == "%s.11" % MGMT  # through the compute VM, masqueraded
    finally:
        listener.stop()
    nova = configparser.ConfigParser(interpolation=None)
    nova.read(os.path.join(fleet.root("compute-1"), "etc", "nova", "nova-compute.conf"))
    assert nova.get("DEFAULT", "compute_driver") == "xenapi.XenAPIDriver"

    assert code2 == 0, output2[-3000:]
    changed = {host: stats["changed"] for host, stats in report2["stats"].items() if stats["changed"]}
    assert changed == {}, changed_tasks(report2)
