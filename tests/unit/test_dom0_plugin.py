"""The Dom0 plugin, run the way xapi runs it (one argv holding an XML-RPC call), under Dom0's Pythons.

Route operations run inside a network namespace made for the test, with a bridge ``xenapi`` holding
169.254.0.1/16 as in Dom0; the plugin's files go to a temporary root (XENSERVER_OPENSTACK_ROOT).
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
import xmlrpc.client

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = os.path.join(os.path.dirname(TESTS), "dom0", "etc", "xapi.d", "plugins", "xenserver_openstack")
DOM0LIB = os.path.join(TESTS, "xapisim", "dom0lib")


def pyenv_python(version):
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False).stdout.strip()
    short = ".".join(version.split(".")[:2])
    candidate = os.path.join(root, "versions", version, "bin", "python" + short) if root else ""
    return candidate if os.access(candidate, os.X_OK) else shutil.which("python" + short)


INTERPRETERS = {"python2.7": pyenv_python("2.7.18"), "python3.6": pyenv_python("3.6.15"), "venv": sys.executable}


def test_plugin_source_is_python_2_7_and_3_6_compatible():
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    check = subprocess.run(
        [vermin, "-t=2.7-", "-t=3.6-", "--violations", "--no-tips", PLUGIN], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def dom0(tmp_path):
    """A Dom0-like namespace: bridge xenapi with 169.254.0.1/16, a veth to a peer at 169.254.0.2."""
    name = "xs-plugin-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            "ip link set lo up",
            "ip link add xenapi type bridge",
            "ip addr add 169.254.0.1/16 dev xenapi",
            "ip link add vif9 type veth peer name peer9",
            "ip link set vif9 master xenapi",
            "ip link set xenapi up",
            "ip link set vif9 up",
            "ip link set peer9 up",
            "ip link add eth0 type veth peer name eth0p",
            "ip addr add 192.0.2.10/24 dev eth0",
            "ip link set eth0p up",
            "ip link set eth0 up",
        ):
            subprocess.run(["ip", "netns", "exec", name, *command.split()], check=True)
        yield Dom0(name, str(tmp_path / "dom0root"))
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Dom0:
    def __init__(self, netns, root):
        self.netns, self.root = netns, root

    def call(self, function, params=None, python="venv"):
        """Run the plugin as xapi does; return (Status, Value or ErrorDescription)."""
        args = {"params": json.dumps(params)} if params is not None else {}
        call = xmlrpc.client.dumps(("OpaqueRef:session", args), methodname=function)
        env = dict(os.environ, PYTHONPATH=DOM0LIB, XENSERVER_OPENSTACK_ROOT=self.root)
        run = subprocess.run(
            ["ip", "netns", "exec", self.netns, INTERPRETERS[python], PLUGIN, call],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        answer = xmlrpc.client.loads(run.stdout)[0][0]
        if answer["Status"] == "Success":
            return "Success", json.loads(answer["Value"])
        return "Failure", answer["ErrorDescription"]

    def routes(self):
        out = subprocess.run(
            ["ip", "netns", "exec", self.netns, "ip", "-4", "route", "show"], capture_output=True, text=True, check=True
        ).stdout
        return sorted(line.split(" proto ")[0].strip() for line in out.splitlines())

    def ip(self, *args):
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", *args], check=True)

    def file(self, relative):
        return os.path.join(self.root, relative)


pytestmark = pytest.mark.root

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
    dom0.ip("route", "add", "198.18.6.0/24", "via", "192.0.2.1", "dev", "eth0")
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
    dom0.ip("route", "add", "198.18.9.0/24", "via", "192.0.2.1", "dev", "eth0")
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
    dom0.ip("route", "flush", "proto", "boot")
    assert not any("xenapi" in r and "via" in r for r in dom0.routes())
    env = dict(os.environ, XENSERVER_OPENSTACK_ROOT=dom0.root)
    subprocess.run(["ip", "netns", "exec", dom0.netns, sys.executable, PLUGIN, "replay-routes"], env=env, check=True)
    for route in ROUTES:
        assert "%s via 169.254.0.2 dev xenapi" % route["network"] in dom0.routes()


def test_unknown_function_and_version(dom0):
    assert dom0.call("no_such_function", {}) == ("Failure", ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "no_such_function"])
    status, version = dom0.call("version")
    assert status == "Success"
    assert {"route_ensure", "route_remove", "route_list"} <= set(version["functions"])
