"""neutron's own OVS agent code works Dom0's Open vSwitch with the configuration the default playbooks/site.yml wrote.

The bed is the real-client layer's (realbed.py, made once by conftest.py and converged by the nova tests' site.yml
run). Each Dom0 runs a real ovsdb-server and ovs-vswitchd (tests/bed/README.md) with xapi's bridges; the simulator
runs the pack's netwrap.py with Dom0's Python 2.7. On the XCP-ng 8.2.1 and Citrix Hypervisor 8.2 hosts, from each
compute VM's namespace, neutron 15.3.4 on Python 2.7 and 16.4.2 on Python 3.8 (tests/realclients/neutron_agent.py,
with nothing but the agent's file that site.yml wrote):

- neutron's ``xenapi_root_helper`` (root_helper_daemon) runs ovs-vsctl in Dom0 through netwrap: it lists xapi's
  bridges, adds a port to the physnet's bridge (bridge_mappings) and deletes it, which Dom0's database shows;
- neutron's native OVSDB library connects to ``tcp:169.254.0.1:6640`` (its first attempt is refused, so it makes
  Dom0's ovsdb-server listen there with set-manager through the root helper, as the agent does), creates br-int
  as the agent does at start and deletes it, through the firewall chain misc_patches put in Dom0;
- without that chain's jump in Dom0's INPUT, the same connection is refused by XenServer's own firewall, and nothing
  is created.
"""

import os
import subprocess

import pytest
from bedlib import ns
from realbed import HOSTS, compute_vars, run_in_compute

pytestmark = pytest.mark.root

AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "neutron_agent.py")
AGENT_INI = "/etc/neutron/plugins/ml2/openvswitch_agent.ini"
CHAIN = "xenserver-openstack-neutron"  # misc_patches' Dom0 chain for the agent
TESTED = sorted(host for host, (scenario, _venv) in HOSTS.items() if scenario in ("xcpng-8.2.1", "citrix-8.2"))


def dom0_vsctl(bed, host, *args):
    """ovs-vsctl on the Dom0 of ``host``'s database, from the test (not through anything under test)."""
    socket = os.path.join(bed.state_dir, host.replace("compute", "dom0"), "root", "var", "run", "openvswitch")
    argv = ["ovs-vsctl", "--db=unix:" + os.path.join(socket, "db.sock"), "--timeout=10", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def agent(bed, host, step):
    python = compute_vars(bed, host)["nova_xenapi_python"]
    return run_in_compute(bed, host, python, AGENT, AGENT_INI, step)


def explain(host, answer):
    where = "%s (%s, %s)" % (host, *HOSTS[host])
    return "%s: %s at %s\n%s" % (where, answer.get("error"), answer.get("step"), answer.get("traceback"))


def agent_done(bed, converged, host, step):
    """What a step of neutron_agent.py did, after the default site.yml converged; it must have succeeded."""
    assert converged["first"][0] == 0
    answer = agent(bed, host, step)
    assert answer["ok"], explain(host, answer)
    return answer["done"]


@pytest.mark.parametrize("host", TESTED)
def test_neutron_s_root_helper_runs_ovs_vsctl_in_dom0_through_netwrap(bed, converged, host):
    done = agent_done(bed, converged, host, "root_helper")
    assert done["daemon"] == "xenapi_root_helper"
    assert done["bridges"] == ["xenapi", "xenbr0", "xenbr1"]  # Dom0's own bridges, as xapi made them
    assert done["bridge"] == "xenbr1"  # the physnet NIC eth1 is the VIF on the storage network, bridge xenbr1
    assert done["ports_after_add"] == ["tap-neutron-test"] and done["ports_after_delete"] == []
    assert dom0_vsctl(bed, host, "list-ports", "xenbr1") == []


@pytest.mark.parametrize("host", TESTED)
def test_neutron_s_ovsdb_library_creates_br_int_in_dom0_over_the_himn(bed, converged, host):
    done = agent_done(bed, converged, host, "ovsdb")
    assert done["connection"] == "tcp:169.254.0.1:6640"
    assert done["created"] and done["bridges"] == ["br-int", "xenapi", "xenbr0", "xenbr1"]
    assert done["fail_mode"] == "secure" and done["deleted"]
    # The listener is the one neutron asked Dom0's ovsdb-server for, through the root helper.
    assert dom0_vsctl(bed, host, "get-manager") == ["ptcp:6640:169.254.0.1"]
    assert dom0_vsctl(bed, host, "list-br") == ["xenapi", "xenbr0", "xenbr1"]


@pytest.mark.parametrize("host", TESTED)
def test_without_dom0_s_chain_the_agent_cannot_reach_ovsdb(bed, converged, host):
    """The chain is what lets the agent in: with its jump gone, XenServer's RH-Firewall-1-INPUT rejects tcp/6640."""
    assert converged["first"][0] == 0
    dom0 = ns(host.replace("compute", "dom0"))
    saved = subprocess.run(["ip", "netns", "exec", dom0, "iptables-save"], capture_output=True, text=True, check=True)
    assert "-A INPUT -j %s" % CHAIN in saved.stdout
    subprocess.run(["ip", "netns", "exec", dom0, "iptables", "-D", "INPUT", "-j", CHAIN], check=True)
    try:
        answer = agent(bed, host, "ovsdb")
    finally:
        subprocess.run(["ip", "netns", "exec", dom0, "iptables-restore"], input=saved.stdout, text=True, check=True)
    assert not answer["ok"], answer
    assert answer["step"] == "connect to tcp:169.254.0.1:6640", explain(host, answer)
    assert "Could not retrieve schema from tcp:169.254.0.1:6640" in answer["error"]
    assert dom0_vsctl(bed, host, "list-br") == ["xenapi", "xenbr0", "xenbr1"]
