"""plugin_pending of xen_route and xen_dom0_config against the XAPI simulator, on a host without the collection's Dom0
plugin (as on a fresh host in a check run, before dom0_suppack installs the pack): in check mode the change is
predicted from the options and what only the plugin can check is named; everywhere else the missing plugin is the
failure it always was. The real XenAPI client over HTTP, the simulator's host.call_plugin answering
XENAPI_MISSING_PLUGIN.
"""

import pytest
from ansible_collections.xenserver.openstack.plugins.modules import xen_dom0_config, xen_route
from xapisim.dom0 import install_collection_files

NETWORKS = ["198.18.1.0/24", "198.18.2.0/24"]
HOUSEKEEPING = dict(firewall=dict(ports=[dict(protocol="tcp", port=6640)]), unblacklist_modules=["bridge"])

pytestmark = pytest.mark.root


def test_route_check_before_the_plugin_is_installed_predicts_the_routes(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_route, sim.module_args(networks=NETWORKS, plugin_pending=True), check_mode=True)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["predicted"] is True
    gateway = result["gateway"]
    assert set(result["routes"]) == set(NETWORKS)
    assert result["diff"]["after"] == "".join("%s via %s dev xenapi\n" % (n, gateway) for n in NETWORKS)
    assert result["diff"]["before"] == ""
    assert any("routes already in place" in what for what in result["not_checked"])
    assert any("Not checked in check mode" in str(warning) for warning in result["warnings"])


def test_route_checks_that_the_module_makes_itself_still_fail_a_prediction(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    bad = run_module(xen_route, sim.module_args(networks=["198.18.1.1/24"], plugin_pending=True), check_mode=True)
    assert bad["failed"] and "host bits set" in bad["msg"]


@pytest.mark.parametrize("check_mode, pending", [(False, True), (True, False)])
def test_without_check_mode_or_plugin_pending_a_missing_plugin_still_fails(xapi_sim, run_module, check_mode, pending):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_route, sim.module_args(networks=NETWORKS, plugin_pending=pending), check_mode=check_mode)
    assert result["failed"] and "is not installed on the host" in result["msg"], result
    result = run_module(xen_dom0_config, sim.module_args(plugin_pending=pending, **HOUSEKEEPING), check_mode=check_mode)
    assert result["failed"] and "is not installed on the host" in result["msg"], result


def test_housekeeping_before_the_plugin_is_installed_predicts_each_part(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_dom0_config, sim.module_args(plugin_pending=True, **HOUSEKEEPING), check_mode=True)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["predicted"] is True
    assert set(result["operations"]) == {"firewall", "unblacklist_modules"}
    calls = result["operations"]["firewall"]["calls"]
    assert calls[0]["params"]["rules"] == [dict(protocol="tcp", port=6640)]
    headers = [diff["after_header"] for diff in result["diff"]]
    assert any("firewall" in header for header in headers) and any("unblacklist" in header for header in headers)
    assert "firewall" in result["not_checked"][0]


def test_with_the_plugin_installed_plugin_pending_changes_nothing(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    install_collection_files(sim.root)
    args = sim.module_args(unblacklist_modules=["bridge"])
    plain = run_module(xen_dom0_config, args, check_mode=True)
    pending = run_module(xen_dom0_config, dict(args, plugin_pending=True), check_mode=True)
    assert "predicted" not in pending and "not_checked" not in pending, pending
    assert pending == plain
