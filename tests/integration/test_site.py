"""playbooks/site.yml against the namespace test bed, through Ansible as a user runs it."""

import json
import os

import pytest
import yaml
from bedlib import PREFIX, ROOT, Bed, ns, task_results

pytestmark = pytest.mark.root

SITE = os.path.join(ROOT, "playbooks", "site.yml")


# Where the XenServer password may be written: the service configuration files that must hold it.
SERVICE_CONFIGS = {"nova", "neutron", "ceilometer"}
# The bed's own files that carry the password because they describe the simulated host, not the product's.
BED_FILES = {"inventory.yml", "scenario.yml"}


def files_holding(state_dir, secret):
    """{path relative to the bed: mode} of every file under the bed's host roots and state that holds ``secret``."""
    found = {}
    for folder, _dirs, names in os.walk(state_dir):
        for name in names:
            path = os.path.join(folder, name)
            if name in BED_FILES or os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                if secret in handle.read():
                    found[os.path.relpath(path, state_dir)] = os.stat(path).st_mode & 0o777
    return found


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
        password = scenario["credentials"]["password"]
        assert password not in output
        holders = files_holding(bed.state_dir, password.encode())
        assert "compute-1/root/etc/nova/nova-compute.conf" in holders, holders
        for path, mode in holders.items():
            assert path.split("/root/etc/")[-1].split("/")[0] in SERVICE_CONFIGS, "password written to %s" % path
            assert mode & 0o007 == 0 and mode & 0o020 == 0, "%s is mode %o" % (path, mode)
    finally:
        bed.down()
    assert leftovers(pids) == ([], [])
