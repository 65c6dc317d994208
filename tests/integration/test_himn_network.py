"""The himn_network role on the namespace bed, proven with packets: real iptables, real routes, real TCP.

The steps share one bed and run in file order: check mode on the fresh bed, the missing plugin, the real run,
idempotence, Dom0 reboot, prefixes, removal.
"""

import json
import os

import pytest
from bedlib import ROOT, Bed, failures, ns
from xapisim.dom0 import install_collection_files

pytestmark = pytest.mark.root

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "himn_network.yml")
DOM0, COMPUTE, CTL = ns("dom0-1"), ns("compute-1"), ns("ctl")
MGMT, STORAGE = "198.18.1.2", "198.18.2.2"
COMPUTE_MGMT = "198.18.1.11"
PORT = 9999
BUILT_IN_CHAINS = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    # The pre-leased VM (HIMN address given by hand, nothing persisted): the role keeps it for boot without ifup.
    bed = Bed(str(tmp_path_factory.mktemp("bed")), "--himn-lease")
    listener = bed.listen(CTL, PORT)
    try:
        yield bed
    finally:
        listener.terminate()
        listener.wait()
        bed.down()


def snapshot(bed):
    """What the role may change: compute's iptables and files, Dom0's routes and files."""
    files = {}
    for host in ("compute-1", "dom0-1"):
        for folder, _dirs, names in os.walk(bed.root(host)):
            for name in names:
                path = os.path.join(folder, name)
                if os.path.isfile(path):  # not xapi's socket in Dom0's /var/lib/xcp
                    with open(path, "rb") as handle:
                        files[path] = handle.read()
    return dict(
        # The rules and the chains of their own (a table that exists but holds nothing is the same as none).
        iptables=[
            line.split(" [")[0]
            for line in bed.run(COMPUTE, "iptables-save").stdout.splitlines()
            if line.startswith("-A") or (line.startswith(":") and line.split()[0][1:] not in BUILT_IN_CHAINS)
        ],
        forward=bed.run(COMPUTE, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip(),
        routes=bed.run(DOM0, "ip", "-4", "route").stdout,
        files=files,
    )


def reachable(bed):
    return bed.tcp_ok(DOM0, MGMT, PORT), bed.tcp_ok(DOM0, STORAGE, PORT)


FRESH = {}


def test_check_mode_on_a_fresh_bed_reports_changes_and_changes_nothing(bed):
    install_collection_files(bed.root("dom0-1"))
    before = snapshot(bed)
    FRESH.update(before)
    code, report, output = bed.playbook(PLAYBOOK, "--check", "--diff")
    assert code == 0, output[-3000:]
    assert report["stats"]["compute-1"]["changed"] > 0
    assert snapshot(bed) == before
    assert reachable(bed) == (False, False)


def test_without_the_dom0_plugin_the_role_says_to_install_it(bed):
    plugin = os.path.join(bed.root("dom0-1"), "etc", "xapi.d", "plugins", "xenserver_openstack")
    os.rename(plugin, plugin + ".away")
    try:
        code, report, output = bed.playbook(PLAYBOOK)
    finally:
        os.rename(plugin + ".away", plugin)
    assert code != 0
    assert "Install the Dom0 plugins first (role xenserver.openstack.dom0_suppack)" in failures(report), output[-2000:]


def test_role_makes_dom0_reach_mgmt_and_storage_through_the_compute_vm(bed):
    code, _report, output = bed.playbook(PLAYBOOK)
    assert code == 0, output[-3000:]
    assert reachable(bed) == (True, True)
    assert bed.http(CTL, "http://%s/_sim/health" % COMPUTE_MGMT) == "ok"


def test_second_run_changes_nothing_and_each_rule_is_there_once(bed):
    code, report, output = bed.playbook(PLAYBOOK)
    assert code == 0, output[-3000:]
    assert report["stats"]["compute-1"]["changed"] == 0, output[-3000:]
    rules = [line for line in bed.run(COMPUTE, "iptables-save").stdout.splitlines() if line.startswith("-A")]
    assert rules and len(rules) == len(set(rules))


def test_routes_come_back_after_a_dom0_reboot(bed):
    bed.http(DOM0, "http://169.254.0.1/_sim/reboot", method="POST")
    assert reachable(bed) == (True, True)


def test_prefixes_of_any_length_route_through_the_himn(bed):
    networks = ["198.19.0.0/16", "198.18.4.0/23", "198.18.6.0/24", "198.18.7.16/28"]
    code, _report, output = bed.playbook(PLAYBOOK, "-e", json.dumps({"himn_network_routes": networks}))
    assert code == 0, output[-3000:]
    for address in ("198.19.200.1", "198.18.5.9", "198.18.6.200", "198.18.7.30"):
        route = bed.run(DOM0, "ip", "route", "get", address).stdout
        assert "via 169.254.0.2 dev xenapi" in route, (address, route)
    assert "via 169.254.0.2" not in bed.run(DOM0, "ip", "route", "get", "198.18.7.32", check=False).stdout
    extra = json.dumps({"himn_network_routes": networks, "himn_network_state": "absent"})
    code, _report, output = bed.playbook(PLAYBOOK, "-e", extra)
    assert code == 0, output[-3000:]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('{"himn_network_routes": ["198.18.1.1/24"]}', "has host bits set: the network is 198.18.1.0/24"),
        ('{"himn_network_routes": ["198.18.1.0/33"]}', "is not an IPv4 network in CIDR form"),
        (
            '{"himn_network_forward_interfaces": ["br-mgmt", "br-nope"]}',
            "himn_network_forward_interfaces is 'br-nope', which is not an interface of compute-1",
        ),
        (
            '{"himn_network_port_forwards": [{"interface": "br-ex", "protocol": "tcp", "port": 80}]}',
            "himn_network_port_forwards[0].interface is 'br-ex', which is not an interface of compute-1",
        ),
    ],
)
def test_bad_input_is_one_clear_error_and_changes_nothing(bed, extra, message):
    before = snapshot(bed)
    code, report, output = bed.playbook(PLAYBOOK, "-e", extra)
    assert code != 0
    assert message in failures(report), output[-2000:]
    assert snapshot(bed) == before


def test_absent_restores_the_rules_and_routes_of_before(bed):
    code, _report, output = bed.playbook(PLAYBOOK, "-e", "himn_network_state=absent")
    assert code == 0, output[-3000:]
    assert reachable(bed) == (False, False)
    after = snapshot(bed)
    assert FRESH, "the first test of this file did not run"
    for what in ("iptables", "forward", "routes"):
        assert after[what] == FRESH[what], what
