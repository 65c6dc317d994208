"""xen_route against the XAPI simulator: the real XenAPI client, host.call_plugin running the real Dom0 plugin.

Its refusals come before any XAPI call or the plugin's; routing itself (the kernel's routes in a Dom0 of its own)
is tested on the bed (tests/integration/test_himn_network.py) and in tests/integration/test_himn_nat_netns.py.
"""

import os
import shutil

from ansible_collections.xenserver.openstack.plugins.modules import xen_route

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = os.path.join(TESTS, "scenarios")


def args_for(sim, **extra):
    return sim.module_args(**dict(dict(networks=["198.18.1.0/24"]), **extra))


def test_bad_networks_are_refused_before_any_call(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_route, args_for(sim, networks=["198.18.1.1/24", "198.18.300.0/24", "198.18.2.0/24"]))
    assert result["failed"]
    assert "networks[0] '198.18.1.1/24' has host bits set: the network is 198.18.1.0/24" in result["msg"]
    assert "networks[1] '198.18.300.0/24' is not an IPv4 network in CIDR form" in result["msg"]
    assert sim.counts() == {}


def test_a_vm_without_himn_vif_gets_the_fix(xapi_sim, run_module):
    result = run_module(xen_route, args_for(xapi_sim("no-himn-vif")))
    assert result["failed"] and "xe vif-create" in result["msg"]


def test_without_the_dom0_plugin_the_module_says_to_install_it(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    assert not os.path.exists(os.path.join(sim.plugin_dir, "xenserver_openstack"))
    result = run_module(xen_route, args_for(sim))
    assert result["failed"]
    assert "Install the Dom0 plugins first (role xenserver.openstack.dom0_suppack)" in result["msg"]
    assert result["xapi_error"] == ["XENAPI_MISSING_PLUGIN", "xenserver_openstack"]


def test_a_halted_compute_vm_is_refused_by_name_before_the_plugin_is_called(xapi_sim, run_module, tmp_path):
    for name in os.listdir(SCENARIOS):  # extends: names a file of the same directory
        shutil.copy(os.path.join(SCENARIOS, name), tmp_path)
    scenario = tmp_path / "halted.yml"
    scenario.write_text("extends: xcpng-8.3.yml\nvms:\n  compute:\n    power_state: Halted\n")
    sim = xapi_sim(str(scenario))
    result = run_module(xen_route, args_for(sim, gateway="169.254.0.2"))
    assert result["failed"] and result["msg"] == "VM %s is not running on any host: start it first." % (
        sim.scenario["vms"]["compute"].get("name_label", "compute")
    )
    assert "host.call_plugin" not in sim.counts()


def test_xapi_pending_predicts_every_route_without_any_xapi_call(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_route, args_for(sim, networks=["198.18.2.0/24", "198.18.1.0/24"], xapi_pending=True), True)
    assert result["changed"] and result["predicted"], result
    assert sorted(result["routes"]) == ["198.18.1.0/24", "198.18.2.0/24"]
    assert result["diff"]["after"] == "".join(
        "%s via <HIMN address of this VM> dev xenapi\n" % network for network in ("198.18.1.0/24", "198.18.2.0/24")
    )
    assert any("whose address is the gateway" in what for what in result["not_checked"]), result
    assert result["gateway"] == "<HIMN address of this VM>"  # the routes' gateway, one value
    assert sim.counts() == {}  # not even a login: XAPI is unreachable from a fresh VM


def test_xapi_pending_outside_check_mode_changes_nothing_of_the_module(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")  # no Dom0 plugin: the real path asks XAPI, which says so
    result = run_module(xen_route, args_for(sim, xapi_pending=True))
    assert result["failed"] and result["xapi_error"] == ["XENAPI_MISSING_PLUGIN", "xenserver_openstack"], result
    assert sim.counts()["session.login_with_password"] == 1


def test_a_rewrite_of_the_boot_replay_alone_says_why_in_the_result_and_the_diff(xapi_sim, run_module, monkeypatch):
    """The routes are in place, but Dom0's udev rule is an older pack's: the plugin rewrites it (its own answer,
    tested in test_dom0_plugin.py) and the module's changed comes with the reason, in the result and the diff."""
    route = {"198.18.1.0/24": {"gateway": "169.254.0.2", "device": "xenapi"}}
    boot = "the udev rule that replays the routes at boot is an older pack's: it is rewritten"
    answer = dict(changed=True, before=route, after=route, persisted={"198.18.1.0/24": "169.254.0.2"}, boot=boot)
    monkeypatch.setattr(xen_route.XenRouteModule, "call_dom0_plugin", lambda self, host, function, params: answer)
    result = run_module(xen_route, args_for(xapi_sim("xcpng-8.3"), gateway="169.254.0.2"), True)
    assert result["changed"] and result["boot"] == boot, result
    assert result["diff"]["before"] == "198.18.1.0/24 via 169.254.0.2 dev xenapi\n"
    assert result["diff"]["after"] == result["diff"]["before"] + "# at boot: %s\n" % boot
    answer.update(changed=False, boot="")
    result = run_module(xen_route, args_for(xapi_sim("xcpng-8.3"), gateway="169.254.0.2"), True)
    assert not result["changed"] and "boot" not in result and result["diff"]["after"] == result["diff"]["before"]
