"""playbooks/site.yml --check --diff on a fresh bed (one that site.yml never touched): it completes, changes nothing
anywhere on the bed, and says what it would do - the pack install, the Dom0 routes, the NAT rules, the nova switch -,
naming what it could not check before the change; then a real run; then a second --check has nothing to change.
One bed, runs in file order.
"""

import glob
import json
import os

import pytest
from bedlib import Bed, ns, task_results
from sitelib import MGMT, SITE, STORAGE, Simulator, differences, iptables, tracebacks, tree

pytestmark = pytest.mark.root

COMPUTE = "compute-1"
NAMESPACES = ("dom0-1", "compute-1", "ctl", "sw")
PLAN = "xenserver.openstack.plan"
DOM0_SUPPACK, HIMN_NETWORK = "xenserver.openstack.dom0_suppack : ", "xenserver.openstack.himn_network : "
NOVA_XENAPI, MISC_PATCHES = "xenserver.openstack.nova_xenapi : ", "xenserver.openstack.misc_patches : "


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("checkmode")
    # Pre-leased: XAPI is reachable before site.yml runs, so the check run can predict everything after the HIMN
    # bootstrap. On a fresh VM (the bed's default) check mode ends after the bootstrap: test_fresh_vm.py.
    bed = Bed(str(work / "bed"), "--himn-lease")
    bed.work = work
    try:
        yield bed
    finally:
        bed.down()


def everything(bed):
    """Every file of every bed host (Dom0, compute VM, controller), and each namespace's addresses, routes and
    iptables, and what XAPI holds."""
    found = {"xapi": Simulator(bed, 1).objects()}
    for root in sorted(glob.glob(os.path.join(bed.state_dir, "*", "root"))):
        found["files " + os.path.basename(os.path.dirname(root))] = tree(root)
    for name in NAMESPACES:
        netns = ns(name)
        found["addresses " + name] = bed.run(netns, "ip", "-4", "-o", "addr").stdout
        found["routes " + name] = bed.run(netns, "ip", "-4", "route").stdout
        found["iptables " + name] = iptables(bed, netns)
        found["ip_forward " + name] = bed.run(netns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout
    return found


def check_run(bed, name):
    """site.yml --check --diff with the plan callback; (rc, json report, output, plan)."""
    path = bed.work / (name + ".json")
    code, report, output = bed.playbook(
        SITE,
        "--check",
        "--diff",
        env=dict(ANSIBLE_CALLBACKS_ENABLED=PLAN, XENSERVER_OPENSTACK_PLAN_FILE=str(path)),
    )
    plan = json.loads(path.read_text()) if path.exists() else None
    return code, report, output, plan


def diff_text(result):
    """The --diff of a task result (one dict or a list), as one text."""
    diffs = result.get("diff") or []
    diffs = diffs if isinstance(diffs, list) else [diffs]
    return "\n".join(str(diff.get("before", "")) + "\n" + str(diff.get("after", "")) for diff in diffs)


def changed(report, host, prefix):
    results = task_results(report, host, prefix)
    assert results, "no task %r ran on %s" % (prefix, host)
    return results[0]


@pytest.fixture(scope="module")
def first_check(bed):
    before = everything(bed)
    code, report, output, plan = check_run(bed, "plan-fresh")
    return before, everything(bed), code, report, output, plan


def test_check_on_a_fresh_node_completes_and_changes_nothing(first_check):
    before, after, code, report, output, _plan = first_check
    assert code == 0, output[-4000:]
    assert tracebacks(report, output) == []
    assert differences(before, after) == {}


def test_check_says_what_it_would_do_with_the_diff(bed, first_check):
    _before, _after, _code, report, output, _plan = first_check
    pack = changed(report, COMPUTE, DOM0_SUPPACK + "Apply the pack on the host through XenAPI")
    assert pack["changed"] and pack["name"] == "xenserver-openstack", pack

    routes = changed(report, COMPUTE, HIMN_NETWORK + "Route the OpenStack networks from Dom0 through this VM")
    assert routes["changed"] and routes["predicted"], routes
    text = diff_text(routes)
    for network in (MGMT + ".0/24", STORAGE + ".0/24"):
        assert "%s via 169.254.0.2 dev xenapi" % network in text, text
    # What only the Dom0 plugin can check, named, not failed on.
    assert any("routes already in place" in what for what in routes["not_checked"]), routes
    preflight = changed(report, COMPUTE, HIMN_NETWORK + "Check the networks, the gateway and the Dom0 plugin")
    assert not preflight.get("failed") and preflight["predicted"], preflight

    nat = changed(report, COMPUTE, HIMN_NETWORK + "Forward and masquerade Dom0's traffic")
    assert nat["changed"], nat
    assert any("MASQUERADE" in rule for rule in nat["rules_added"]), nat
    assert "MASQUERADE" in diff_text(nat)

    switch = changed(report, COMPUTE, NOVA_XENAPI + "Switch nova-compute to the XenAPI driver, last")
    assert switch["changed"], switch
    assert "compute_driver" in diff_text(switch) and "xenapi.XenAPIDriver" in diff_text(switch)

    settings = changed(report, COMPUTE, NOVA_XENAPI + "Set the XenAPI connection, VNC and image settings")
    assert settings["changed"] and "connection_password" in diff_text(settings)

    dom0 = changed(report, COMPUTE, MISC_PATCHES + "Dom0 housekeeping")
    assert dom0["changed"] and dom0["predicted"], dom0

    # The XenServer password is masked everywhere (the bed's inventory has it).
    import yaml

    with open(bed.inventory) as handle:
        password = yaml.safe_load(handle)["all"]["children"]["compute"]["hosts"][COMPUTE]["xenserver_password"]
    assert password not in output


def test_the_plan_lists_the_pack_the_routes_the_nat_rules_and_the_nova_switch(first_check):
    _before, _after, _code, _report, output, plan = first_check
    assert plan is not None and plan["check_mode"], output[-2000:]
    changes = plan["hosts"][COMPUTE]["changes"]
    whats = "\n".join(change["task"] + ": " + change["what"] for change in changes)
    assert "pack xenserver-openstack" in whats, whats
    assert "Dom0 routes: %s.0/24 via 169.254.0.2" % MGMT in whats, whats
    assert "iptables rules:" in whats and "masquerade 169.254.0.1/32 out of br-mgmt" in whats, whats
    assert "compute_driver" in whats, whats
    assert any(change["predicted"] and change["not_checked"] for change in changes), changes
    assert plan["hosts"][COMPUTE]["failed"] is None


def test_a_real_run_then_a_second_check_has_nothing_to_change(bed, first_check):
    code, report, output = bed.playbook(SITE)
    assert code == 0, output[-4000:]
    # The pack apply, a long step, ran in the background and was polled (each poll is printed).
    (applied,) = task_results(report, COMPUTE, DOM0_SUPPACK + "Apply the pack on the host through XenAPI")
    assert applied["changed"] and applied["ansible_job_id"] and applied["finished"] == 1, applied

    before = everything(bed)
    code, report, output, plan = check_run(bed, "plan-converged")
    assert code == 0, output[-4000:]
    assert differences(before, everything(bed)) == {}
    assert {host: stats["changed"] for host, stats in report["stats"].items()} == {
        host: 0 for host in report["stats"]
    }, plan
    assert all(not entry["changes"] for entry in plan["hosts"].values()), plan
    assert "nothing to change" in output
