"""site.yml on fresh compute VMs (issue 17): nothing has configured the HIMN NIC, so XAPI is unreachable until the
HIMN bootstrap (role himn_network, discover.yml and bootstrap.yml) finds the NIC without XAPI and brings it up.

One bed per case (class), shared by its tests in file order, down before the next comes up:
- with guest tools (the bed's default): check mode changes nothing and predicts, without XAPI, the pack, the routes,
  the NAT rules, the nova switch and the Dom0 housekeeping; the first run converges (found by
  xenstore); the second changes nothing; a reboot of the compute VM keeps the HIMN address, no default route through
  the HIMN, and Dom0's path to the management network;
- without guest tools (``--no-guest-tools``): the DHCP probe finds the NIC, the run converges;
- a VM whose Python has no XenAPI (``--no-target-xenapi``, its HIMN leased so that only XenAPI is missing): check mode
  predicts the install, installs nothing and asks no XAPI. (tests/integration/test_fuel_site.py installs it, on
  Python 2.7 from the Fuel plugin's wheel.)
"""

import json
import os
import subprocess

import pytest
from bedlib import BED, Bed, ns, task_results
from pythons import line_for
from sitelib import MGMT, SITE, differences, snapshot, tracebacks

pytestmark = pytest.mark.root

COMPUTE, DOM0 = ns("compute-1"), ns("dom0-1")
PLAN = "xenserver.openstack.plan"
HIMN_FILE = os.path.join("etc", "network", "interfaces.d", "xenserver-himn")


def bring_up(tmp_path_factory, *options):
    bed = Bed(str(tmp_path_factory.mktemp("fresh") / "bed"), *options)
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="class")
def bed(tmp_path_factory):
    yield from bring_up(tmp_path_factory)


def unchanged_state(bed):
    """snapshot() of pair 1 without the kernel's "linkdown" flag on the HIMN route: on a fresh VM eth2 is down, so
    Dom0's end of the HIMN loses its carrier whenever the bridge notices, with or without a run."""
    found = snapshot(bed, 1)
    for key in ("dom0 routes", "compute routes"):
        found[key] = found[key].replace(" linkdown", "")
    return found


def himn_address(bed):
    return bed.run(COMPUTE, "ip", "-4", "-o", "address", "show", "dev", "eth2").stdout.split()[3:4]


def default_routes(bed):
    return bed.run(COMPUTE, "ip", "-4", "route", "show", "default").stdout.strip()


def bootstrap(report, name):
    """The result of the HIMN bootstrap's task ``name`` on compute-1 in site.yml's preflight."""
    return task_results(report, "compute-1", "xenserver.openstack.himn_network : " + name)[0]


@pytest.fixture(scope="class")
def first_run(bed):
    return bed.playbook(SITE)


@pytest.fixture(scope="class")
def bare_bed(tmp_path_factory):
    yield from bring_up(tmp_path_factory, "--no-guest-tools")


class TestWithGuestTools:
    """The bed's default fresh VM: the guest tools give vm-data/himn_mac."""

    def test_fresh_vm_has_no_himn_address_and_check_mode_predicts_without_changing_anything(self, bed, tmp_path):
        assert himn_address(bed) == []
        before = unchanged_state(bed)
        plan_file = tmp_path / "plan.json"

        plan_env = dict(ANSIBLE_CALLBACKS_ENABLED=PLAN, XENSERVER_OPENSTACK_PLAN_FILE=str(plan_file))
        code, report, output = bed.playbook(SITE, "--check", "--diff", env=plan_env)

        assert code == 0, output[-3000:]
        assert tracebacks(report, output) == []
        found = bootstrap(report, "Find the HIMN interface without XAPI")
        assert (found["interface"], found["found_by"], found["address"]) == ("eth2", "xenstore", "")
        persisted = bootstrap(report, "Take the HIMN address by DHCP at boot, without the default route (ifupdown)")
        assert persisted["changed"] and "iface eth2 inet dhcp" in persisted["diff"][0]["after"]
        assert "would be configured and brought up" in bootstrap(report, "Say what the rest cannot predict")["msg"]
        assert not task_results(report, "compute-1", "Read the host"), "check mode asked XAPI, unreachable yet"
        assert differences(before, unchanged_state(bed)) == {}
        assert himn_address(bed) == []

        # The compute play went on without XAPI: the plan lists the pack, the routes, the NAT rules, the nova switch
        # and the Dom0 housekeeping, the XAPI-side ones predicted and naming what was not checked.
        plan = json.loads(plan_file.read_text())
        assert plan["check_mode"] and plan["hosts"]["compute-1"]["failed"] is None, plan
        changes = plan["hosts"]["compute-1"]["changes"]
        by_task = dict((change["task"].split(" : ", 1)[-1], change) for change in changes)
        whats = "\n".join("%s: %s" % (task, change["what"]) for task, change in by_task.items())
        assert "pack xenserver-openstack" in whats and "of this VM (not read yet)" in whats, whats
        assert "Dom0 routes: %s.0/24 via <HIMN address of this VM>" % MGMT in whats, whats
        assert "masquerade 169.254.0.1/32 out of br-mgmt" in whats, whats
        assert "compute_driver" in whats and "Dom0 housekeeping" in whats, whats
        predicted = [change for change in changes if change["predicted"]]
        assert len(predicted) >= 3, changes  # the pack, the routes, the Dom0 housekeeping
        assert all(change["not_checked"] for change in predicted), predicted
        assert "XAPI" in output and "cannot be reached from this machine before the HIMN bootstrap" in output
        nova = task_results(report, "compute-1", "xenserver.openstack.nova_xenapi : Say what cannot be checked")
        assert nova and "nova's login" in nova[0]["msg"], nova

    def test_fresh_vm_converges_with_the_himn_up_and_kept_for_boot(self, bed, first_run):
        code, report, output = first_run
        assert code == 0, output[-3000:]
        assert tracebacks(report, output) == []
        assert bootstrap(report, "Find the HIMN interface without XAPI")["found_by"] == "xenstore"
        assert bootstrap(report, "Bring the HIMN interface up now")["changed"]
        assert task_results(report, "compute-1", "Read the host")[0]["himn"]["bridge"] == "xenapi"
        assert himn_address(bed) == ["169.254.0.2/16"]
        assert default_routes(bed) == ""
        with open(os.path.join(bed.root("compute-1"), HIMN_FILE)) as handle:
            assert "iface eth2 inet dhcp" in handle.read()
        assert "198.18.1.0/24 via 169.254.0.2 dev xenapi" in bed.run(DOM0, "ip", "-4", "route").stdout

    def test_second_run_changes_nothing(self, bed, first_run):
        assert first_run[0] == 0, "the first run failed"
        code, report, output = bed.playbook(SITE)
        assert code == 0, output[-3000:]
        assert {host: stats["changed"] for host, stats in report["stats"].items()} == {
            "compute-1": 0,
            "controller-1": 0,
        }

    def test_a_reboot_keeps_the_himn_address_without_its_default_route(self, bed, first_run):
        assert first_run[0] == 0, "the first run failed"
        subprocess.run([*BED, "reboot", "compute-1", "--state-dir", bed.state_dir], check=True, capture_output=True)

        assert himn_address(bed) == ["169.254.0.2/16"]
        assert default_routes(bed) == ""
        # The rest the VM persisted came back too: the noVNC port forward reaches Dom0's xapi over the HIMN again.
        assert bed.http(ns("ctl"), "http://198.18.1.11/_sim/health") == "ok"

    def test_the_bed_reboot_would_show_a_default_route_that_the_configuration_did_not_drop(self, bed, first_run):
        """The reboot above proves something: the bed's DHCP client adds the HIMN's router as default route, as
        dhclient-script does, so only the role's configuration keeps it out."""
        assert first_run[0] == 0, "the first run failed"
        path = os.path.join(bed.root("compute-1"), HIMN_FILE)
        with open(path) as handle:
            kept = handle.read()
        try:
            with open(path, "w") as handle:
                handle.write("".join(line for line in kept.splitlines(True) if "post-up" not in line))
            subprocess.run([*BED, "reboot", "compute-1", "--state-dir", bed.state_dir], check=True, capture_output=True)
            assert default_routes(bed).startswith("default via 169.254.0.1 dev eth2")
        finally:
            with open(path, "w") as handle:
                handle.write(kept)


class TestWithoutGuestTools:
    """A fresh VM without guest tools: only the DHCP probe finds the HIMN NIC."""

    def test_without_guest_tools_the_dhcp_probe_finds_the_himn_and_site_converges(self, bare_bed):
        assert not os.path.exists(os.path.join(bare_bed.root("compute-1"), "usr", "bin", "xenstore-read"))

        code, report, output = bare_bed.playbook(SITE)

        assert code == 0, output[-3000:]
        found = bootstrap(report, "Find the HIMN interface without XAPI")
        assert (found["interface"], found["found_by"], found["probed"]) == ("eth2", "dhcp", ["eth2"])
        assert himn_address(bare_bed) == ["169.254.0.2/16"]
        assert default_routes(bare_bed) == ""


@pytest.fixture(scope="class")
def bed_without_xenapi(tmp_path_factory):
    yield from bring_up(tmp_path_factory, "--himn-lease", "--target-python", "3.8", "--no-target-xenapi")


class TestWithoutXenAPI:
    """The modules' Python has no XenAPI (a Fuel compute's /usr/bin/python2.7; here Python 3.8), the HIMN has its
    address: only XenAPI keeps XAPI out of reach."""

    def test_check_mode_predicts_the_xenapi_install_installs_nothing_and_asks_no_xapi(self, bed_without_xenapi):
        bed = bed_without_xenapi
        python = os.path.join(bed.state_dir, "compute-1", "python", "bin", "python")
        assert bed.run(COMPUTE, python, "-c", "import XenAPI", check=False).returncode != 0
        assert himn_address(bed) == ["169.254.0.2/16"]
        before = unchanged_state(bed)

        code, report, output = bed.playbook(SITE, "--check", line=line_for("3.8"))

        assert code == 0, output[-3000:]
        assert tracebacks(report, output) == []
        found = bootstrap(report, "Find the HIMN interface without XAPI")
        assert found["python"] == dict(executable=python, version=found["python"]["version"], xenapi=False)
        assert found["python"]["version"].startswith("3.8.")
        predicted = bootstrap(report, "Say what the bootstrap would install")
        assert predicted["changed"] and "would install XenAPI with pip" in " ".join(predicted["msg"].split())
        installs = task_results(report, "compute-1", "xenserver.openstack.himn_network : Install XenAPI with pip")
        # Skipped in the preflight play's bootstrap and again in the compute play's (which then predicts without XAPI).
        assert installs and all(result.get("skipped") for result in installs), installs
        assert not task_results(report, "compute-1", "Say what the rest cannot predict"), "the HIMN was up"
        assert not task_results(report, "compute-1", "Read the host"), "check mode went on to ask XAPI"
        assert bed.run(COMPUTE, python, "-c", "import XenAPI", check=False).returncode != 0
        assert differences(before, unchanged_state(bed)) == {}
