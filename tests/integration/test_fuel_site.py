"""playbooks/site.yml with the xenserver.openstack.fuel inventory, on the namespace bed, as a Fuel cloud runs it.

Fuel's data (one astute.yaml per node) is written for the bed from the sample of a Fuel 9.0 node
(tests/fuel/cloud-9.0-1ctl-2cmp/2.yaml): the bed's controller is the primary controller, each compute VM a compute;
management on br-mgmt (198.18.1.0/24, Fuel's admin network on the same bridge), storage on br-storage (198.18.2.0/24),
the tenant VLANs on eth1 through br-aux, the public and management VIPs on the controller, and the XenServer plugin's
settings with the simulated hosts' credentials. What only the bed knows (how to reach a namespace, the interpreter
nova would run under, the signing key its Dom0s trust, where a bed host keeps files outside its /etc) is in host_vars/
and group_vars/ next to the inventory's configuration file, where an operator puts overrides. Everything the roles
take from Fuel (XenServer credentials, VIP, CIDRs, the management interface, the tenant NIC and physnet, the OpenStack
admin's connection) is not in them, so the run works only if the inventory gives it.

The controller runs a real Glance (tests/glancebed) in its namespace. Glance has no Keystone here: the controller's
host_vars replace the Keystone connection the inventory made (openstack_cloud) by Glance's endpoint.
"""

import configparser
import copy
import json
import os
import subprocess

import pytest
import yaml
from bedlib import ROOT, TESTS, Bed, ansible_env, ns, task_results
from sitelib import NsGlance, controller_vars

pytestmark = pytest.mark.root

SITE = os.path.join(ROOT, "playbooks", "site.yml")
SAMPLE = os.path.join(TESTS, "fuel", "cloud-9.0-1ctl-2cmp", "2.yaml")
MGMT, STORAGE = "198.18.1", "198.18.2"
CONTROLLER_IP = MGMT + ".2"
PAIRS = 1
# What the roles take from Fuel's data: never in the bed's own variables given to these runs.
FROM_FUEL = (
    "xenserver_url",
    "xenserver_username",
    "xenserver_password",
    "openstack_public_vip",
    "openstack_tenant_nic",
)
# How the bed reaches a host: not for the wrapper's run, which is on the node itself (local connection).
CONNECTION = ("ansible_connection", "ansible_netns_name", "ansible_python_interpreter")


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def dump(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle, sort_keys=False)


def bed_nodes():
    """[(uid, name, roles, last octet)] of the bed's hosts as Fuel nodes: the controller, then the compute VMs."""
    nodes = [("1", "controller-1", ["primary-controller"], 2)]
    nodes += [(str(1 + i), "compute-%d" % i, ["compute"], 10 + i) for i in range(1, PAIRS + 1)]
    return nodes


def astute_files(directory, credentials):
    """Write the astute.yaml of every bed node into ``directory``; return {host name: path}."""
    base = load(SAMPLE)
    base.update(
        fuel_version="9.0",
        management_network_range=MGMT + ".0/24",
        storage_network_range=STORAGE + ".0/24",
        public_ssl=dict(base["public_ssl"], services=False, horizon=False),
        last_controller="controller-1",
    )
    base["xenserver-openstack"].update(username=credentials["username"], password=credentials["password"])
    base["network_metadata"]["vips"]["management"]["ipaddr"] = CONTROLLER_IP
    base["network_metadata"]["vips"]["public"]["ipaddr"] = CONTROLLER_IP
    base["network_metadata"]["nodes"] = {}
    base["nodes"] = []
    for uid, name, roles, octet in bed_nodes():
        addresses = {"management": "%s.%d" % (MGMT, octet), "storage": "%s.%d" % (STORAGE, octet)}
        fqdn = name + ".bed.example"
        base["network_metadata"]["nodes"][name] = dict(
            uid=uid, name=name, fqdn=fqdn, node_roles=roles, network_roles=addresses
        )
        base["nodes"] += [
            dict(uid=uid, name=name, fqdn=fqdn, role=role, internal_address=addresses["management"]) for role in roles
        ]
    paths = {}
    for uid, name, roles, octet in bed_nodes():
        node = copy.deepcopy(base)
        node.update(uid=uid, fqdn=name + ".bed.example", user_node_name=name, roles=roles)
        node["network_scheme"] = dict(
            version="1.1",
            provider="lnx",
            interfaces={"eth0": {}, "eth1": {}},
            transformations=[
                dict(action="add-br", name="br-mgmt"),
                dict(action="add-br", name="br-storage"),
                dict(action="add-br", name="br-prv", provider="ovs"),
                dict(action="add-br", name="br-aux"),
                dict(action="add-patch", bridges=["br-prv", "br-aux"], provider="ovs"),
                dict(action="add-port", name="eth0", bridge="br-mgmt"),
                dict(action="add-port", name="eth1", bridge="br-aux"),
            ],
            endpoints={
                "br-mgmt": {"IP": ["%s.%d/24" % (MGMT, octet)]},
                "br-storage": {"IP": ["%s.%d/24" % (STORAGE, octet)]},
                "br-prv": {"IP": "none"},
            },
            roles={
                "admin/pxe": "br-mgmt",
                "fw-admin": "br-mgmt",
                "management": "br-mgmt",
                "storage": "br-storage",
                "neutron/private": "br-prv",
            },
        )
        paths[name] = os.path.join(directory, "%s.yaml" % uid)
        dump(paths[name], node)
    return paths


def bed_overrides(bed_inventory, directory, *, keep_connection=True, hosts=None):
    """Write the bed's own variables (not those Fuel gives) as group_vars/all.yml and host_vars/ in ``directory``."""
    groups = bed_inventory["all"]["children"]
    drop = FROM_FUEL + ((), CONNECTION)[not keep_connection]
    dump(
        os.path.join(directory, "group_vars", "all.yml"),
        {k: v for k, v in bed_inventory["all"]["vars"].items() if k not in drop},
    )
    for group in ("compute", "controller"):
        for host, variables in groups[group]["hosts"].items():
            if hosts is None or host in hosts:
                dump(
                    os.path.join(directory, "host_vars", host + ".yml"),
                    {k: v for k, v in variables.items() if k not in drop},
                )


def ini(path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(path)
    return parser


@pytest.fixture(scope="module")
def fuel_bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuel")
    bed = Bed(str(work / "bed"), "--pairs", str(PAIRS))
    glance = NsGlance(work / "glance")
    try:
        glance.start()
        bed.glance, bed.work = glance, work
        yield bed
    finally:
        glance.stop()
        bed.down()


@pytest.fixture(scope="module")
def fuel_inventory(fuel_bed):
    """The inventory configuration file, its astute.yaml files and the bed's overrides next to it."""
    bed = fuel_bed
    directory = str(bed.work / "inventory")
    bed_inventory = load(bed.inventory)
    password = load(os.path.join(bed.state_dir, "dom0-1", "scenario.yml"))["credentials"]
    astute = astute_files(os.path.join(directory, "astute"), password)
    bed_overrides(bed_inventory, directory)
    controller = load(os.path.join(directory, "host_vars", "controller-1.yml"))
    # The cloud's Glance has no Keystone on the bed: its endpoint replaces the Keystone connection of Fuel's data
    # (openstack_cloud), which site.yml gives the images role.
    images = controller_vars(bed.glance, bed.work)
    del images["guest_images_cloud"]
    controller.update(images)
    dump(os.path.join(directory, "host_vars", "controller-1.yml"), controller)
    config = os.path.join(directory, "fuel_inventory.yml")
    # The passwords from Fuel's data too, as the wrapper's inventory on a node has them.
    dump(config, {"plugin": "xenserver.openstack.fuel", "astute": ["astute/"], "include_secrets": True})
    return config, astute, bed_inventory


def test_fuel_inventory_gives_what_the_bed_does_not(fuel_bed, fuel_inventory):
    config, _astute, bed_inventory = fuel_inventory
    listed = subprocess.run(
        ["ansible-inventory", "-i", config, "--list"], env=ansible_env(), capture_output=True, text=True, check=True
    )
    # ansible-inventory marks the strings of an inventory plugin as unsafe: {"__ansible_unsafe": value}.
    inventory = json.loads(listed.stdout, object_hook=lambda d: d.get("__ansible_unsafe", d) if len(d) == 1 else d)
    hostvars = inventory["_meta"]["hostvars"]
    assert sorted(inventory["compute"]["hosts"]) == ["compute-%d" % i for i in range(1, PAIRS + 1)]
    assert inventory["primary_controller"]["hosts"] == ["controller-1"]
    bed_hosts = bed_inventory["all"]["children"]["compute"]["hosts"]
    for host, expected in bed_hosts.items():
        for variable in FROM_FUEL:
            assert hostvars[host][variable] == expected[variable], variable
        assert hostvars[host]["openstack_management_interface"] == "br-mgmt"
        assert hostvars[host]["openstack_management_cidr"] == MGMT + ".0/24"
        assert hostvars[host]["openstack_storage_cidr"] == STORAGE + ".0/24"
    assert hostvars["compute-1"]["openstack_tenant_physnet"] == "physnet2"


def test_site_yml_with_the_fuel_inventory_runs_the_whole_flow(fuel_bed, fuel_inventory):
    bed = fuel_bed
    config, _astute, _bed_inventory = fuel_inventory
    run = subprocess.run(
        ["ansible-playbook", SITE, "-i", config],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    report = json.loads(run.stdout[run.stdout.find("{") :])
    assert set(report["stats"]) == {"controller-1"} | {"compute-%d" % i for i in range(1, PAIRS + 1)}
    for host, stats in report["stats"].items():
        assert stats["failures"] == 0 and stats["unreachable"] == 0, host
    pack = task_results(report, "compute-1", "xenserver.openstack.dom0_suppack : Apply the pack on the host")
    assert pack and pack[0]["changed"], pack

    for i in range(1, PAIRS + 1):
        dom0 = ns("dom0-%d" % i)
        # "Install Nova Plugins": nova's (and neutron's netwrap) with the collection's own.
        plugins = set(os.listdir(os.path.join(bed.root("dom0-%d" % i), "etc", "xapi.d", "plugins")))
        assert {"dom0_plugin_version.py", "xenhost.py", "netwrap.py", "xenserver_openstack"} <= plugins, plugins
        routes = bed.run(dom0, "ip", "-4", "route").stdout
        for cidr in (MGMT + ".0/24", STORAGE + ".0/24"):  # the CIDRs of Fuel's data
            assert "%s via 169.254.0.2 dev xenapi" % cidr in routes
        listener = bed.listen(ns("ctl"), 5673)
        try:
            assert bed.tcp_ok(dom0, CONTROLLER_IP, 5673), "Dom0 %d does not reach the controller" % i
        finally:
            listener.terminate()
        # noVNC: the port forward on the management interface that Fuel's data names.
        assert bed.http(ns("ctl"), "http://%s.%d/_sim/health" % (MGMT, 10 + i)) == "ok"
        etc = os.path.join(bed.root("compute-%d" % i), "etc")
        nova = ini(os.path.join(etc, "nova", "nova-compute.conf"))
        assert nova.get("DEFAULT", "compute_driver") == "xenapi.XenAPIDriver"
        assert nova.get("vnc", "novncproxy_base_url").startswith("http://%s:6080/" % CONTROLLER_IP)
        agent = ini(os.path.join(etc, "neutron", "plugins", "ml2", "openvswitch_agent.ini"))
        assert agent.get("ovs", "bridge_mappings").startswith("physnet2:")

    image = bed.glance.images(bed)["TestVM"]
    assert (image["disk_format"], image["container_format"]) == ("vhd", "ovf")
    assert image["vm_mode"] == "hvm"  # XCP-ng 8.3 hosts (platform 3.4), from the preflight's host facts
