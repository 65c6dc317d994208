"""The Dom0 plugin, run the way xapi runs it (one argv holding an XML-RPC call), under Dom0's Pythons.

Route operations run inside a network namespace made for the test, with a bridge ``xenapi`` holding
169.254.0.1/16 as in Dom0; the plugin's files go to a temporary root (XENSERVER_OPENSTACK_ROOT).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from dom0harness import DOM0_NETWORK, DOM0_SOURCES, INTERPRETERS, Dom0, Netns


def test_plugin_library_and_jobs_are_python_2_7_and_3_6_compatible():
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    check = subprocess.run(
        [vermin, "-t=2.7-", "-t=3.6-", "--violations", "--no-tips", *DOM0_SOURCES],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def dom0(tmp_path):
    """A Dom0-like namespace: bridge xenapi with 169.254.0.1/16, a veth to a peer at 169.254.0.2, eth0 on
    192.0.2.10/24; the plugin's files in a directory of the test."""
    netns = Netns("xs-plugin-", DOM0_NETWORK)
    try:
        yield Dom0(tmp_path, netns=netns.name)
    finally:
        netns.delete()


pytestmark = pytest.mark.root

REPLAY = "/usr/libexec/xenserver-openstack/replay-routes"
OLDER_RULE = (
    'SUBSYSTEM=="net", ACTION=="add", KERNEL=="xenapi", RUN+="/etc/xapi.d/plugins/xenserver_openstack replay-routes"\n'
)
ROUTES = [
    {"network": "198.19.0.0/16", "gateway": "169.254.0.2"},
    {"network": "198.18.4.0/23", "gateway": "169.254.0.2"},
    {"network": "198.18.6.0/24", "gateway": "169.254.0.2"},
    {"network": "198.18.7.16/28", "gateway": "169.254.0.2"},
]


@pytest.mark.parametrize("python", sorted(INTERPRETERS))
def test_route_ensure_adds_persists_and_is_idempotent(dom0, python):
    assert INTERPRETERS[python], "%s is not installed" % python
    status, result = dom0.call("route_ensure", {"routes": ROUTES}, python)
    assert status == "Success", result
    assert result["changed"] is True
    assert all(result["before"][r["network"]] is None for r in ROUTES)
    for route in ROUTES:
        assert "%s via 169.254.0.2 dev xenapi" % route["network"] in dom0.routes()
    with open(dom0.file("etc/sysconfig/xenserver-openstack-routes.json")) as handle:
        assert json.load(handle) == {r["network"]: r["gateway"] for r in ROUTES}
    with open(dom0.file("etc/udev/rules.d/90-xenserver-openstack-routes.rules")) as handle:
        assert 'KERNEL=="xenapi"' in handle.read()

    status, again = dom0.call("route_ensure", {"routes": ROUTES}, python)
    assert (status, again["changed"]) == ("Success", False)


def test_check_mode_reports_and_changes_nothing(dom0):
    before = dom0.routes()
    status, result = dom0.call("route_ensure", {"routes": ROUTES[:1], "check": True})
    assert (status, result["changed"]) == ("Success", True)
    assert dom0.routes() == before
    assert not os.path.exists(dom0.file("etc/sysconfig/xenserver-openstack-routes.json"))


def test_a_route_through_the_himn_with_an_old_gateway_is_replaced(dom0):
    dom0.call("route_ensure", {"routes": [{"network": "198.18.6.0/24", "gateway": "169.254.0.9"}]})
    status, result = dom0.call("route_ensure", {"routes": [{"network": "198.18.6.0/24", "gateway": "169.254.0.2"}]})
    assert status == "Success" and result["changed"]
    assert result["before"]["198.18.6.0/24"] == {"gateway": "169.254.0.9", "device": "xenapi"}
    assert "198.18.6.0/24 via 169.254.0.2 dev xenapi" in dom0.routes()
    assert "198.18.6.0/24 via 169.254.0.9 dev xenapi" not in dom0.routes()


def test_a_route_through_another_interface_is_never_touched(dom0):
    dom0.sh("ip", "route", "add", "198.18.6.0/24", "via", "192.0.2.1", "dev", "eth0")
    status, error = dom0.call("route_ensure", {"routes": ROUTES[2:3]})
    assert status == "Failure"
    assert error[:3] == ["XENAPI_PLUGIN_FAILURE", "route_ensure", "PluginError"]
    assert "already routes 198.18.6.0/24 via eth0" in error[3]
    assert "198.18.6.0/24 via 192.0.2.1 dev eth0" in dom0.routes()


@pytest.mark.parametrize(
    ("network", "message"),
    [("198.18.1.1/24", "has host bits set: the network is 198.18.1.0/24"), ("198.18.1/24", "not an IPv4 network")],
)
def test_bad_networks_are_refused_with_the_reason(dom0, network, message):
    status, error = dom0.call("route_ensure", {"routes": [{"network": network, "gateway": "169.254.0.2"}]})
    assert status == "Failure" and message in error[3]


def test_a_gateway_off_the_himn_is_refused(dom0):
    status, error = dom0.call("route_ensure", {"routes": [{"network": "198.18.6.0/24", "gateway": "192.0.2.1"}]})
    assert status == "Failure" and "is not on the HIMN" in error[3]


def test_remove_deletes_only_its_routes_and_forgets_them(dom0):
    dom0.sh("ip", "route", "add", "198.18.9.0/24", "via", "192.0.2.1", "dev", "eth0")
    before = dom0.routes()
    dom0.call("route_ensure", {"routes": ROUTES})
    status, result = dom0.call("route_remove", {"networks": [r["network"] for r in ROUTES] + ["198.18.9.0/24"]})
    assert (status, result["changed"]) == ("Success", True)
    assert dom0.routes() == before
    assert not os.path.exists(dom0.file("etc/sysconfig/xenserver-openstack-routes.json"))
    assert not os.path.exists(dom0.file("etc/udev/rules.d/90-xenserver-openstack-routes.rules"))
    status, again = dom0.call("route_remove", {"networks": [r["network"] for r in ROUTES]})
    assert (status, again["changed"]) == ("Success", False)


def test_boot_replays_persisted_routes(dom0):
    dom0.call("route_ensure", {"routes": ROUTES})
    rule = dom0.file("etc/udev/rules.d/90-xenserver-openstack-routes.rules").read_text()
    assert rule == 'SUBSYSTEM=="net", ACTION=="add", KERNEL=="xenapi", RUN+="%s"\n' % REPLAY
    dom0.sh("ip", "route", "flush", "proto", "boot")
    assert not any("xenapi" in r and "via" in r for r in dom0.routes())
    subprocess.run(dom0.job("venv", "replay-routes"), env=dom0.env, check=True)
    for route in ROUTES:
        assert "%s via 169.254.0.2 dev xenapi" % route["network"] in dom0.routes()


@pytest.mark.parametrize("python", ["python2.7", "python3.6"])
def test_the_udev_rule_of_an_older_pack_still_works_until_the_routes_rewrite_it(dom0, python):
    """An older pack's udev rule runs ``xenserver_openstack replay-routes``: the plugin runs the job's own file for
    it until the next route_ensure (or route_remove that keeps routes) rewrites the rule, once; route_remove of the
    last route removes a rule of either form."""
    dom0.ok("route_ensure", {"routes": ROUTES[:2]}, python)
    rule = dom0.file("etc/udev/rules.d/90-xenserver-openstack-routes.rules")
    rule.write_text(OLDER_RULE)
    dom0.sh("ip", "route", "flush", "proto", "boot")
    subprocess.run(dom0.argv(python, "replay-routes"), env=dom0.env, check=True)
    assert all("%s via 169.254.0.2 dev xenapi" % r["network"] in dom0.routes() for r in ROUTES[:2])

    answer = dom0.ok("route_ensure", {"routes": ROUTES[:2], "check": True}, python)
    assert answer["changed"] is True and "older pack's" in answer["boot"], answer  # it says why
    assert rule.read_text() == OLDER_RULE  # check mode changes nothing
    assert dom0.ok("route_ensure", {"routes": ROUTES[:1]}, python)["changed"] is True
    assert rule.read_text() == 'SUBSYSTEM=="net", ACTION=="add", KERNEL=="xenapi", RUN+="%s"\n' % REPLAY
    assert dom0.ok("route_ensure", {"routes": ROUTES[:1]}, python)["changed"] is False
    rule.write_text(OLDER_RULE)
    assert dom0.ok("route_remove", {"networks": [ROUTES[1]["network"]]}, python)["changed"] is True
    assert "replay-routes" in rule.read_text() and "xenserver_openstack" not in rule.read_text()
    rule.write_text(OLDER_RULE)
    assert dom0.ok("route_remove", {"networks": [ROUTES[0]["network"]]}, python)["changed"] is True
    assert not rule.exists()


def test_unknown_function_and_version(dom0):
    assert dom0.call("no_such_function", {}) == ("Failure", ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "no_such_function"])
    status, version = dom0.call("version")
    assert status == "Success"
    assert {"route_ensure", "route_remove", "route_list"} <= set(version["functions"])


def fail_ip_for(dom0, network):
    """Make the plugin's ``ip`` fail on one network (the machine's ip for everything else)."""
    real = shutil.which("ip")
    dom0.standin(
        "ip",
        '#!/bin/sh\ncase " $* " in *" %s "*) [ "$1" = route ] && [ "$2" != show ] && '
        '{ echo "RTNETLINK answers: No buffer space available" >&2; exit 2; };; esac\nexec %s "$@"\n' % (network, real),
    )


@pytest.mark.parametrize("python", ["python2.7", "python3.6"])
def test_route_ensure_sets_all_routes_or_none(dom0, python):
    dom0.ok("route_ensure", {"routes": ROUTES[:1]}, python)
    saved = open(dom0.file("etc/sysconfig/xenserver-openstack-routes.json")).read()
    before = dom0.routes()
    fail_ip_for(dom0, ROUTES[3]["network"])
    message = dom0.refused("route_ensure", {"routes": [dict(ROUTES[0], gateway="169.254.0.3"), *ROUTES[1:]]}, python)
    assert "No buffer space available" in message and "nothing was changed" in message
    # The routes added and replaced before the failure were taken back; the saved routes are as they were.
    assert dom0.routes() == before
    assert open(dom0.file("etc/sysconfig/xenserver-openstack-routes.json")).read() == saved


def test_route_remove_leaves_a_saved_route_someone_changed(dom0):
    dom0.ok("route_ensure", {"routes": ROUTES[:2]})
    dom0.sh("ip", "route", "replace", ROUTES[0]["network"], "via", "169.254.0.7", "dev", "xenapi")
    result = dom0.ok("route_remove", {"networks": [r["network"] for r in ROUTES[:2]]})
    assert result["left_alone"] == [ROUTES[0]["network"]]
    assert "%s via 169.254.0.7 dev xenapi" % ROUTES[0]["network"] in dom0.routes()
    assert not any(r.startswith(ROUTES[1]["network"]) for r in dom0.routes())
    assert not os.path.exists(dom0.file("etc/sysconfig/xenserver-openstack-routes.json"))


def test_boot_replays_only_valid_saved_routes(dom0):
    """A routes file from an older plugin may hold what this one refuses: only valid routes come back."""
    saved = dom0.file("etc/sysconfig/xenserver-openstack-routes.json")
    os.makedirs(os.path.dirname(saved))
    with open(saved, "w") as handle:
        json.dump({"198.18.6.0/24": "169.254.0.2", "0.0.0.0/1": "169.254.0.2", "0x0a.0.0.0/8": "169.254.0.2"}, handle)
    subprocess.run(dom0.job("venv", "replay-routes"), env=dom0.env, check=True)
    assert [r for r in dom0.routes() if "via" in r] == ["198.18.6.0/24 via 169.254.0.2 dev xenapi"]
    assert dom0.ok("route_list", None)["persisted"] == {"198.18.6.0/24": "169.254.0.2"}
