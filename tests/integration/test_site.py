"""playbooks/site.yml against the namespace test bed, through Ansible as a user runs it."""

import json
import os

import pytest
import yaml
from bedlib import PREFIX, ROOT, Bed, ns, task_results

pytestmark = pytest.mark.root

SITE = os.path.join(ROOT, "playbooks", "site.yml")


def alive(pid):
    """Whether a process runs (a zombie has ended; this sandbox's init may never reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def leftovers(pids):
    """The bed's namespaces that still exist, and the given processes that still run."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return sorted(n for n in names if n.startswith(PREFIX)), [p for p in pids if alive(p)]


def test_site_yml_against_the_bed_then_nothing_left_behind(tmp_path):
    bed = Bed(str(tmp_path / "bed"))
    try:
        with open(os.path.join(bed.state_dir, "state.json")) as handle:
            pids = [pid for pid, _started in json.load(handle)["processes"].values()]
        with open(os.path.join(bed.state_dir, "dom0-1", "scenario.yml")) as handle:
            scenario = yaml.safe_load(handle)
        assert leftovers(pids)[0] and leftovers(pids)[1] == pids, "the bed did not come up"

        code, report, output = bed.playbook(SITE, "-vvv")

        assert code == 0, output[-3000:]
        facts = task_results(report, "compute-1", "Read the host")[0]
        vm = scenario["vms"]["compute"]
        host = scenario["hosts"][vm["resident_on"]]
        assert facts["host"]["product_version"] == str(host["software_version"]["product_version"])
        assert facts["vm"]["uuid"] == vm["uuid"]
        assert facts["himn"]["bridge"] == "xenapi"
        pack = task_results(report, "compute-1", "xenserver.openstack.dom0_suppack : Apply the pack on the host")
        assert pack and pack[0]["changed"], "the pack was not applied"
        assert os.path.exists(os.path.join(bed.root("dom0-1"), "etc", "xapi.d", "plugins", "xenserver_openstack"))
        assert "198.18.1.0/24 via 169.254.0.2 dev xenapi" in bed.run(ns("dom0-1"), "ip", "-4", "route").stdout
        assert scenario["credentials"]["password"] not in output
    finally:
        bed.down()
    assert leftovers(pids) == ([], [])
