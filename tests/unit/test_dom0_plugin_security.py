"""Issue 18's findings on the Dom0 plugin, each reproduced and shown fixed by its effect in Dom0.

A pool-admin session can call any plugin function (host.call_plugin); the plugin runs as root in Dom0. Each test
calls the plugin as xapi does, under Dom0's Pythons, and looks at what Dom0 has afterwards: files, routes and
iptables rules in a network namespace of the test, and the commands the plugin ran.
"""

import json
import os
import shutil
import stat
import subprocess
import xmlrpc.client

import pytest
import XenAPI
from dom0harness import CHAIN, INTERPRETERS, Dom0, firewalled_dom0, listing
from xapisim.dom0 import install_collection_files
from xapisim.pytest_plugin import scenario_path

PYTHONS = pytest.mark.parametrize("python", ["python2.7", "python3.6"])
ROUTES_FILE = "etc/sysconfig/xenserver-openstack-routes.json"
RULES = [{"protocol": "tcp", "port": 6640}, {"protocol": "udp", "port": 4789}]


@pytest.fixture
def dom0(tmp_path):
    return Dom0(tmp_path)


@pytest.fixture
def netns_dom0(tmp_path):
    with firewalled_dom0(tmp_path, "hd-plugin-") as dom0:
        yield dom0


def failed(dom0, function, params, python):
    status, error = dom0.call(function, params, python)
    assert status == "Failure", error
    return error


# --- finding 1: free-form file content (logrotate postrotate, modprobe install) runs any command as root ----------

HOSTILE_LOGROTATE = "/var/log/messages {\n\tdaily\n\tpostrotate\n\t\ttouch /tmp/owned\n\tendscript\n}\n"


@PYTHONS
def test_finding_1_no_free_text_reaches_a_dom0_file(dom0, python):
    assert INTERPRETERS[python], "%s is not installed" % python
    syslog = dom0.file("etc/logrotate.d/syslog")
    syslog.parent.mkdir(parents=True)
    syslog.write_text("/var/log/messages {\n\tsharedscripts\n}\n")
    conf = dom0.file("etc/conntrackd/conntrackd.conf")
    conf.parent.mkdir(parents=True)
    conf.write_text("# conntrack-tools' conntrackd.conf\n")
    before = dom0.listing()
    hostile = [
        ("file_ensure", {"path": "/etc/logrotate.d/evil", "content": HOSTILE_LOGROTATE}),
        ("file_ensure", {"path": "/etc/modprobe.d/evil.conf", "content": "install dummy /bin/sh -c 'touch /x'\n"}),
        ("file_ensure", {"path": "/etc/logrotate.d/syslog", "state": "absent"}),
        ("conntrackd_config", {"content": "General {\n}\n", "logrotate": HOSTILE_LOGROTATE}),
        ("conntrackd_config", {"hash_size": 32768, "log_maxsize": "50M\n\tpostrotate\n\t\ttouch /x\n\tendscript"}),
    ]
    for function, params in hostile:
        failed(dom0, function, params, python)
        batch = {"calls": [{"function": function, "params": params}]}
        failed(dom0, "batch", batch, python)
    # Nothing was written, the distribution's logrotate file is still there, conntrackd was not restarted.
    assert dom0.listing() == before
    assert dom0.logged("service") == []


# --- finding 2: the route functions take any route on the xenapi device as their own -----------------------------


@pytest.mark.root
@PYTHONS
def test_finding_2_himn_default_and_dom0_networks_are_never_routed_or_removed(netns_dom0, python):
    dom0 = netns_dom0
    dom0.sh("ip", "route", "add", "198.18.50.0/24", "via", "169.254.0.7", "dev", "xenapi")  # not the plugin's
    before = dom0.routes()
    assert any(route.startswith("169.254.0.0/16 dev xenapi") for route in before), before
    for network in ("169.254.0.0/16", "198.18.50.0/24"):
        status, _answer = dom0.call("route_remove", {"networks": [network]}, python)
        assert dom0.routes() == before, (network, status)
    for routes, message in [
        ([{"network": "0.0.0.0/0", "gateway": "169.254.0.2"}], "'0.0.0.0/0' is wider than /8"),
        (
            [{"network": "0.0.0.0/1", "gateway": "169.254.0.2"}, {"network": "128.0.0.0/1", "gateway": "169.254.0.2"}],
            "'0.0.0.0/1' is wider than /8",
        ),
        ([{"network": "169.254.0.0/16", "gateway": "169.254.0.2"}], "overlaps the HIMN 169.254.0.0/16"),
        ([{"network": "169.254.128.0/17", "gateway": "169.254.0.2"}], "overlaps the HIMN 169.254.0.0/16"),
        ([{"network": "192.0.2.0/25", "gateway": "169.254.0.2"}], "overlaps 192.0.2.0/24, a network Dom0 is on"),
        ([{"network": "192.0.0.0/16", "gateway": "169.254.0.2"}], "overlaps 192.0.2.0/24, a network Dom0 is on"),
        ([{"network": "198.18.6.0/24", "gateway": "169.254.0.1"}], "is Dom0's own address"),
        ([{"network": "198.18.6.0/24", "gateway": "169.254.0.0"}], "is the HIMN's network address"),
        ([{"network": "198.18.6.0/24", "gateway": "169.254.255.255"}], "is the HIMN's broadcast address"),
        ([{"network": "198.18.6.0/24", "gateway": "192.0.2.1"}], "is not on the HIMN"),
        ([{"network": "127.0.0.0/8", "gateway": "169.254.0.2"}], "overlaps 127.0.0.0/8 (loopback)"),
        ([{"network": "224.0.0.0/8", "gateway": "169.254.0.2"}], "overlaps 224.0.0.0/4 (multicast)"),
    ]:
        assert message in dom0.refused("route_ensure", {"routes": routes}, python), routes
        assert dom0.routes() == before, routes
    assert not dom0.file(ROUTES_FILE).exists()


# --- finding 7: iptables-save lines split without quoting; INPUT jumps deleted by number -------------------------


@pytest.mark.root
@PYTHONS
def test_finding_7_rules_with_quoted_comments_do_not_break_the_chain(netns_dom0, python):
    dom0 = netns_dom0
    # Every iptables call the plugin makes is logged, then run for real in the namespace.
    for command in ("iptables", "iptables-restore"):
        real = shutil.which(command)
        dom0.standin(command, '#!/bin/sh\necho "%s $*" >> "$FAKE_LOG.iptables"\nexec %s "$@"\n' % (command, real))
    assert dom0.ok("iptables_chain", {"rules": RULES}, python)["changed"] is True
    # Someone adds a rule with a two-word comment to the chain, a second jump, and a commented rule of their own.
    dom0.sh("iptables", "-A", CHAIN, "-m", "comment", "--comment", "two words", "-j", "ACCEPT")
    dom0.sh("iptables", "-A", "INPUT", "-j", CHAIN)
    dom0.sh(
        "iptables",
        "-I",
        "INPUT",
        "1",
        "-p",
        "tcp",
        "--dport",
        "8080",
        "-m",
        "comment",
        "--comment",
        "a b",
        "-j",
        "DROP",
    )
    assert dom0.ok("iptables_chain", {"rules": RULES}, python)["changed"] is True
    assert dom0.ok("iptables_chain", {"rules": RULES}, python)["changed"] is False
    rules = dom0.sh("iptables", "-S").splitlines()
    assert [r for r in rules if r.startswith("-A %s " % CHAIN)] == [
        "-A %s -p tcp -m tcp --dport 6640 -j ACCEPT" % CHAIN,
        "-A %s -p udp -m udp --dport 4789 -j ACCEPT" % CHAIN,
    ]
    assert rules.count("-A INPUT -j %s" % CHAIN) == 1
    assert '-A INPUT -p tcp -m tcp --dport 8080 -m comment --comment "a b" -j DROP' in rules  # not the plugin's
    assert dom0.ok("iptables_chain", {"state": "absent"}, python)["changed"] is True
    assert not [r for r in dom0.sh("iptables", "-S").splitlines() if CHAIN in r]
    # Never a rule deleted by its number (another change to INPUT in between would make it the wrong rule).
    for line in dom0.logged("iptables"):
        words = line.split()
        assert not (words[:2] == ["iptables", "-D"] and len(words) == 4 and words[3].isdigit()), line


# --- finding 8: the route functions skip the parameter checks ------------------------------------------------------


@pytest.mark.root
@PYTHONS
def test_finding_8_route_parameters_are_checked_like_every_other_function(netns_dom0, python):
    dom0 = netns_dom0
    before = dom0.routes()
    for function, params, message in [
        ("route_ensure", {"routes": "198.18.6.0/24"}, "routes must be a list"),
        ("route_ensure", {"routes": [{"network": "198.18.6.0/24"}]}, "routes[0].gateway is required"),
        ("route_ensure", {"routes": [["198.18.6.0/24", "169.254.0.2"]]}, "routes[0] must be a JSON object"),
        ("route_ensure", {"routes": [{"network": 5, "gateway": "169.254.0.2"}]}, "routes[0].network must be a string"),
        (
            "route_ensure",
            {"routes": [{"network": "198.18.6.0/24", "gateway": "169.254.0.2"}], "check": "no"},
            "check must be true or false",
        ),
        (
            "route_ensure",
            {"routes": [{"network": "0x0a.0.0.0/8", "gateway": "169.254.0.2"}]},
            "is not an IPv4 network in CIDR form",
        ),
        (
            "route_ensure",
            {"routes": [{"network": "010.0.0.0/8", "gateway": "169.254.0.2"}]},
            "is not an IPv4 network in CIDR form",
        ),
        (
            "route_ensure",
            {"routes": [{"network": "198.18.6.0/24", "gateway": "169.254.0.02"}]},
            "is not an IPv4 address",
        ),
        ("route_ensure", {"routes": [], "via": "x"}, "unknown parameter(s) via"),
        ("route_remove", {"networks": "198.18.6.0/24"}, "networks must be a list"),
        ("route_remove", {"networks": ["0x0a.0.0.0/8"]}, "is not an IPv4 network in CIDR form"),
        ("route_remove", {"networks": ["198.18.6.0/24"], "check": 1}, "check must be true or false"),
        ("route_list", {"all": True}, "unknown parameter(s) all"),
    ]:
        assert message in dom0.refused(function, params, python), (function, params)
    # params that are not JSON at all: a refusal too.
    call = xmlrpc.client.dumps(("OpaqueRef:session", {"params": "{not json"}), methodname="route_ensure")
    run = subprocess.run(dom0.argv(python, call), capture_output=True, text=True, env=dom0.env, check=True)
    error = xmlrpc.client.loads(run.stdout)[0][0]["ErrorDescription"]
    assert error[:3] == ["XENAPI_PLUGIN_FAILURE", "route_ensure", "PluginError"] and "params is not JSON" in error[3]
    assert dom0.routes() == before
    assert not dom0.file(ROUTES_FILE).exists()


# --- the plugin's other files: only the plugin is callable, the jobs take no caller input --------------------------


@pytest.mark.parametrize("python", ["2.7", "3.6"])
def test_only_the_plugin_is_callable_its_library_and_jobs_are_not(xapi_sim, tmp_path, python):
    """xapi runs any executable entry of /etc/xapi.d/plugins by name: the library there is not executable, the jobs
    are elsewhere, and the job words reach the plugin only as an unknown function (xapi passes one methodCall)."""
    scenario = tmp_path / "scenario.yml"
    scenario.write_text('extends: %s\ndom0: {python: "%s"}\n' % (scenario_path("xcpng-8.3"), python))
    sim = xapi_sim(str(scenario), bin_dirs=[str(Dom0(tmp_path).bin)])
    install_collection_files(sim.root)
    library = os.path.join(sim.plugin_dir, "xenserver_openstack_lib.py")
    assert stat.S_IMODE(os.stat(library).st_mode) == 0o644
    assert sorted(os.listdir(sim.plugin_dir)) == ["xenserver_openstack", "xenserver_openstack_lib.py"]
    jobs = os.path.join(sim.root, "usr", "libexec", "xenserver-openstack")
    assert {name: stat.S_IMODE(os.stat(os.path.join(jobs, name)).st_mode) for name in os.listdir(jobs)} == {
        "replay-routes": 0o755,
        "rotate-console-logs": 0o755,
    }
    session = XenAPI.Session(sim.url)
    creds = sim.scenario["credentials"]
    session.xenapi.login_with_password(creds["username"], creds["password"], "2.0", "security test")
    host = session.xenapi.host.get_all()[0]
    files = [os.path.join(sim.root, top) for top in ("etc", "usr", "var/log")]
    before = [listing(top) for top in files]
    for plugin, function, args, expected in [
        ("xenserver_openstack_lib.py", "version", {}, ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "", ""]),
        ("xenserver_openstack", "replay-routes", {}, ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "replay-routes"]),
        (
            "xenserver_openstack",
            "rotate-console-logs",
            {"params": "--log-dir /etc"},
            ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "rotate-console-logs"],
        ),
        ("replay-routes", "version", {}, ["XENAPI_MISSING_PLUGIN", "replay-routes"]),
    ]:
        with pytest.raises(XenAPI.Failure) as failure:
            session.xenapi.host.call_plugin(host, plugin, function, args)
        assert failure.value.details == expected, failure.value.details
    assert json.loads(session.xenapi.host.call_plugin(host, "xenserver_openstack", "version", {}))["version"]
    # Nothing ran: no file changed, no bytecode next to the plugin.
    assert [listing(top) for top in files] == before
    assert sorted(os.listdir(sim.plugin_dir)) == ["xenserver_openstack", "xenserver_openstack_lib.py"]
