"""The nova_xenapi role on the namespace bed: real XAPI logins against the simulator, real files, real services.

The compute VM starts with the files a distribution would have written (comments, unrelated keys, the libvirt
driver). Its services are the bed's stand-ins (tests/bed/standins): each start is logged with the checksums of the
service's configuration files, so the tests count restarts and see which configuration a restart picked up.

The steps share one bed and run in file order: the two refusals (wrong password, physnet NIC that is no VIF), the
switch, the second run (with -vvv), check mode, and a change that concerns the neutron agent only.
"""

import configparser
import hashlib
import os
import re
import subprocess

import pytest
from bedlib import ROOT, Bed, ansible_env, failures, ns

pytestmark = pytest.mark.root

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "nova_xenapi.yml")
COMPUTE = ns("compute-1")
PASSWORD = "xenroot"  # the scenario's, which the bed's inventory gives as xenserver_password
SERVICES = {
    "nova-compute": "nova/nova-compute.conf",
    "neutron-openvswitch-agent": "neutron/plugins/ml2/openvswitch_agent.ini",
    "ceilometer-polling": "ceilometer/ceilometer.conf",
}
SEEDS = {
    "nova/nova-compute.conf": (
        "# nova-compute.conf as the distribution wrote it\n"
        "[DEFAULT]\n"
        "# the driver before the switch\n"
        "compute_driver=libvirt.LibvirtDriver\n"
        "my_ip = 198.18.1.11\n"
        "\n"
        "[libvirt]\n"
        "# an unrelated section\n"
        "virt_type=kvm\n"
    ),
    "neutron/plugins/ml2/openvswitch_agent.ini": "[agent]\n# the agent\ntunnel_types =\n\n[ovs]\n# the bridges\n",
    "neutron/rootwrap.conf": (
        "# Configuration for neutron-rootwrap\n"
        "[DEFAULT]\n"
        "filters_path=/etc/neutron/rootwrap.d,/usr/share/neutron/rootwrap\n"
        "\n"
        "[xenapi]\n"
        "# XenAPI configuration is only required by the L2 agent if it is to\n"
        "# target a XenServer/XCP compute host's dom0.\n"
        "xenapi_connection_url=<None>\n"
        "xenapi_connection_username=root\n"
        "xenapi_connection_password=<None>\n"
    ),
    "ceilometer/ceilometer.conf": "[DEFAULT]\n# ceilometer\ntransport_url = rabbit://controller\n",
}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    if os.path.isdir("/run/systemd/system"):
        pytest.skip(
            "the bed's service stand-ins are sysvinit scripts: this machine runs systemd, which would take them"
        )
    bed = Bed(str(tmp_path_factory.mktemp("bed")))
    try:
        etc = os.path.join(bed.root("compute-1"), "etc")
        for path, text in SEEDS.items():
            os.makedirs(os.path.dirname(os.path.join(etc, path)), exist_ok=True)
            with open(os.path.join(etc, path), "w") as handle:
                handle.write(text)
        yield bed
    finally:
        bed.down()


def etc(bed, path):
    return os.path.join(bed.root("compute-1"), "etc", path)


def files(bed):
    """Content and mode of every file under the compute VM's nova, neutron and ceilometer directories."""
    found = {}
    for top in ("nova", "neutron", "ceilometer"):
        for folder, _dirs, names in os.walk(etc(bed, top)):
            for name in names:
                path = os.path.join(folder, name)
                with open(path) as handle:
                    found[path] = (handle.read(), oct(os.stat(path).st_mode & 0o777))
    return found


def starts(bed):
    """{service: [the log line of each start]} from the stand-ins' logs."""
    found = {}
    for service in SERVICES:
        with open(os.path.join(bed.state_dir, "compute-1", service + ".log")) as handle:
            found[service] = [line for line in handle if " started pid=" in line]
    return found


def start_counts(bed):
    return {service: len(lines) for service, lines in starts(bed).items()}


def ini(bed, path):
    parser = configparser.ConfigParser(interpolation=None, default_section="(none)")
    parser.read(etc(bed, path))
    return parser


def verbose_playbook(bed, *args):
    """ansible-playbook -vvv with the default output (what an operator sees); return (rc, output, recap)."""
    env = dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    run = subprocess.run(
        ["ansible-playbook", PLAYBOOK, "-i", bed.inventory, "-vvv", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    output = run.stdout + run.stderr
    recap = dict(re.findall(r"(\w+)=(\d+)", re.search(r"^compute-1\s+:.*$", output, re.M).group(0)))
    return run.returncode, output, {key: int(value) for key, value in recap.items()}


def test_a_wrong_password_stops_the_role_before_anything_changes(bed):
    before, started = files(bed), start_counts(bed)
    code, report, output = bed.playbook(PLAYBOOK, "-e", "nova_xenapi_connection_password=not-the-xenserver-one")
    assert code != 0, output[-3000:]
    reason = failures(report)
    assert "refused the login of user 'root'" in reason
    assert "the role changed nothing (/etc/nova/nova-compute.conf keeps its driver)" in reason
    assert files(bed) == before
    assert start_counts(bed) == started


def test_a_physnet_nic_that_is_no_vif_is_named_by_its_mac(bed):
    bed.run(COMPUTE, "ip", "link", "add", "eth5", "address", "02:00:00:00:00:99", "type", "veth", "peer", "eth5p")
    try:
        before = files(bed)
        code, report, output = bed.playbook(PLAYBOOK, "-e", "nova_xenapi_neutron_physnet_interface=eth5")
    finally:
        bed.run(COMPUTE, "ip", "link", "del", "eth5")
    assert code != 0, output[-3000:]
    assert "No VIF of VM compute-1 in XAPI has the MAC 02:00:00:00:00:99 of interface eth5" in failures(report)
    assert files(bed) == before


def test_the_role_switches_the_driver_last_and_restarts_each_service_once(bed):
    # A stopped service is started by its restart, not an error.
    bed.run(COMPUTE, "/etc/init.d/ceilometer-polling", "stop")
    started = start_counts(bed)
    code, report, output = bed.playbook(PLAYBOOK)
    assert code == 0, output[-3000:]
    assert output.count(PASSWORD) == 0  # the json callback prints every result whole

    assert start_counts(bed) == {service: count + 1 for service, count in started.items()}
    for service, path in SERVICES.items():
        assert bed.run(COMPUTE, "/etc/init.d/" + service, "status", check=False).returncode == 0
        with open(etc(bed, path), "rb") as handle:
            checksum = hashlib.sha256(handle.read()).hexdigest()[:12]
        # The restart came after the last write: the service started on the final file.
        assert "/etc/%s=%s" % (path, checksum) in starts(bed)[service][-1]

    # The driver is switched by the last task that changes anything before the handlers.
    changed = [
        task["task"]["name"].split(" : ")[-1]
        for play in report["plays"]
        for task in play["tasks"]
        if task["hosts"].get("compute-1", {}).get("changed")
    ]
    handlers = [name for name in changed if name.startswith(("Restart ", "Find the service manager"))]
    writes = [name for name in changed if name not in handlers]
    # One task per file, the driver last (the bed's nova 21 uses the agent's own session: no rootwrap.conf).
    assert writes == [
        "Set the XenAPI connection, VNC and image settings in nova-compute.conf",
        "Point the neutron OVS agent at Dom0's Open vSwitch",
        "Make ceilometer inspect instances through XenAPI",
        "Switch nova-compute to the XenAPI driver, last",
    ], writes
    assert changed[-len(handlers) :] == handlers

    nova = ini(bed, "nova/nova-compute.conf")
    assert dict(nova["DEFAULT"]) == {
        "compute_driver": "xenapi.XenAPIDriver",
        "my_ip": "198.18.1.11",
        "force_config_drive": "True",
    }
    assert dict(nova["xenserver"]) == {
        "connection_url": "http://169.254.0.1",
        "connection_username": "root",
        "connection_password": PASSWORD,
        "ovs_integration_bridge": "br-int",
        "cache_images": "all",
    }
    assert dict(nova["vnc"]) == {
        "novncproxy_base_url": "http://198.18.1.2:6080/vnc_auto.html",
        "server_proxyclient_address": "198.18.1.11",
    }
    assert dict(nova["libvirt"]) == {"virt_type": "kvm"}
    with open(etc(bed, "nova/nova-compute.conf")) as handle:
        text = handle.read()
    for comment in SEEDS["nova/nova-compute.conf"].splitlines():
        if comment.startswith("#"):
            assert comment + "\n" in text

    agent = ini(bed, "neutron/plugins/ml2/openvswitch_agent.ini")
    assert dict(agent["agent"]) == {
        "tunnel_types": "",
        "root_helper": "",
        "root_helper_daemon": "xenapi_root_helper",
        "minimize_polling": "False",
    }
    # eth1 is the compute VM's VIF on the storage network, bridge xenbr1 in Dom0; Dom0's OVSDB over the HIMN, and
    # the OpenFlow controller on the compute VM's HIMN address (its DHCP lease from Dom0), which Dom0 reaches.
    assert dict(agent["ovs"]) == {
        "integration_bridge": "br-int",
        "bridge_mappings": "physnet2:xenbr1",
        "ovsdb_connection": "tcp:169.254.0.1:6640",
        "of_listen_address": "169.254.0.2",
    }
    assert dict(agent["securitygroup"]) == {"firewall_driver": "iptables_hybrid"}
    assert agent["xenapi"]["connection_password"] == PASSWORD

    ceilometer = ini(bed, "ceilometer/ceilometer.conf")
    assert ceilometer["DEFAULT"]["hypervisor_inspector"] == "xenapi"
    assert ceilometer["compute"]["instance_discovery_method"] == "naive"
    assert ceilometer["xenapi"]["connection_url"] == "http://169.254.0.1"

    # nova 21: the agent's own XenAPI session (no neutron-rootwrap-xen-dom0 any more), rootwrap.conf untouched.
    with open(etc(bed, "neutron/rootwrap.conf")) as handle:
        assert handle.read() == SEEDS["neutron/rootwrap.conf"]
    for path in SERVICES.values():
        assert oct(os.stat(etc(bed, path)).st_mode & 0o777) == "0o640", path


def test_a_second_run_changes_nothing_restarts_nothing_and_never_shows_the_password(bed):
    before, started = files(bed), start_counts(bed)
    code, output, recap = verbose_playbook(bed)
    assert code == 0, output[-3000:]
    assert recap["changed"] == 0, output[-3000:]
    assert start_counts(bed) == started
    assert files(bed) == before
    assert output.count(PASSWORD) == 0


def test_check_mode_shows_the_changes_masked_and_makes_none(bed):
    before, started = files(bed), start_counts(bed)
    code, output, recap = verbose_playbook(
        bed,
        "--check",
        "--diff",
        "-e",
        "nova_xenapi_cache_images=some",
        "-e",
        "nova_xenapi_neutron_physnet=physnet3",
    )
    assert code == 0, output[-3000:]
    assert recap["changed"] == 2
    # The diff of each file shows the keys that change, and the password masked where it is near them.
    assert "-cache_images = all\n+cache_images = some\n" in output
    assert " connection_password = ********\n" in output
    assert "-bridge_mappings = physnet2:xenbr1\n+bridge_mappings = physnet3:xenbr1\n" in output
    assert files(bed) == before
    assert start_counts(bed) == started
    assert output.count(PASSWORD) == 0


def test_a_change_for_the_neutron_agent_restarts_the_agent_only(bed):
    started = start_counts(bed)
    code, _report, output = bed.playbook(PLAYBOOK, "-e", "nova_xenapi_neutron_root_helper=rootwrap")
    assert code == 0, output[-3000:]
    assert start_counts(bed) == dict(started, **{"neutron-openvswitch-agent": started["neutron-openvswitch-agent"] + 1})

    agent = ini(bed, "neutron/plugins/ml2/openvswitch_agent.ini")
    assert agent["agent"]["root_helper"] == "neutron-rootwrap-xen-dom0 /etc/neutron/rootwrap.conf"
    assert agent["agent"]["root_helper_daemon"] == ""
    rootwrap = ini(bed, "neutron/rootwrap.conf")
    assert dict(rootwrap["xenapi"]) == {
        "xenapi_connection_url": "http://169.254.0.1",
        "xenapi_connection_username": "root",
        "xenapi_connection_password": PASSWORD,
    }
    with open(etc(bed, "neutron/rootwrap.conf")) as handle:
        assert "# target a XenServer/XCP compute host's dom0.\n" in handle.read()
    assert oct(os.stat(etc(bed, "neutron/rootwrap.conf")).st_mode & 0o777) == "0o640"
