"""A Fuel 9.x environment as docs/fuel.md runs it: Fuel has deployed the nodes (Astute's part: the wrapper adds no
task), then the operator's Ansible controller runs playbooks/site.yml with ansible-core 2.16 and the collection the
plugin carries, the inventory reading Nailgun, and the nodes' Python 2.7 as targets.

- The nodes: a fresh namespace bed (nothing applied in Dom0, no pack, no routes), its compute VM on Python 2.7
  without XenAPI, as MOS 9's /usr/bin/python2.7 (``bed.py up --target-python 2.7 --no-target-xenapi``: a copy of its
  own, where the HIMN bootstrap installs the XenAPI wheel of the plugin's controller/ kit that fuel.yml names), its
  controller the primary controller with a real Glance (tests/glancebed).
- Fuel's data: one astute.yaml per bed node, written from the sample of a Fuel 9.0 node
  (tests/fuel/cloud-9.0-1ctl-2cmp/2.yaml) with the bed's networks and the settings form's values (the hosts'
  credentials, "Install Nova Plugins", the pack's signing key and its GnuPG home), served by a stand-in Nailgun
  (tests/fuel/nailgun_stub.py) as the record of the newest finished deployment.
- The controller: the plugin that `fuel/build.py` makes; the collection installed from its controller/ tarball; its
  ansible.cfg and fuel.yml with the stand-in's URL and include_secrets. Beside fuel.yml only what the bed alone knows:
  how to reach a namespace, where a bed host keeps files and its Python, nova's stand-in (nova 21.2.4 with os-xenapi
  0.3.4's plugins, since nova 13's sources, on tarballs.opendev.org, cannot be fetched here: the unit tests show the
  inventory choosing nova-13 for mitaka-9.0), the archives of the plugin set (offline) and Glance without Keystone.
  Everything the roles take from Fuel (credentials, signing key, VIP, CIDRs, interfaces, physnet) comes from Nailgun.

Before the converging run, the three inputs that must stop it before anything changes: an unreachable Nailgun, a
node whose data lacks the XenServer settings, and no signing key in the form.
"""

import configparser
import copy
import json
import os
import shutil
import socket
import subprocess
import sys

import pluginsets
import pytest
import yaml
from bedlib import ROOT, TESTS, Bed, ansible_env, changed_tasks, ns, task_results
from pythons import line_for
from sitelib import NsGlance, Simulator, controller_vars, tracebacks

sys.path.insert(0, os.path.join(TESTS, "fuel"))

from nailgun_stub import NailgunStub

pytestmark = pytest.mark.root

SAMPLE = os.path.join(TESTS, "fuel", "cloud-9.0-1ctl-2cmp", "2.yaml")
MGMT, STORAGE = "198.18.1", "198.18.2"
CONTROLLER_IP = MGMT + ".2"
PAIRS = 1
NAILGUN_PASSWORD = "fuel-admin-s3cret"
# What the roles take from Fuel's data (the settings form's values among them): never in the bed's own variables.
FROM_FUEL = (
    "xenserver_url",
    "xenserver_username",
    "xenserver_password",
    "openstack_public_vip",
    "openstack_tenant_nic",
    "dom0_suppack_gpg_home",
    "dom0_suppack_gpg_key",
)
SITE = "xenserver.openstack.site"  # the playbook of the installed collection


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


def astute_data(form):
    """The astute.yaml of every bed node, {uid: data}, with the XenServer plugin's settings ``form``."""
    base = load(SAMPLE)
    base.update(
        fuel_version="9.0",
        management_network_range=MGMT + ".0/24",
        storage_network_range=STORAGE + ".0/24",
        public_ssl=dict(base["public_ssl"], services=False, horizon=False),
        last_controller="controller-1",
    )
    base["xenserver-openstack"].update(form)
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
    nodes = {}
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
        nodes[uid] = node
    return nodes


def bed_overrides(bed_inventory, directory):
    """Write what only the bed knows (not what Fuel gives) as group_vars/all.yml and host_vars/ in ``directory``."""
    groups = bed_inventory["all"]["children"]
    dump(
        os.path.join(directory, "group_vars", "all.yml"),
        {k: v for k, v in bed_inventory["all"]["vars"].items() if k not in FROM_FUEL},
    )
    for group in ("compute", "controller"):
        for host, variables in groups[group]["hosts"].items():
            dump(
                os.path.join(directory, "host_vars", host + ".yml"),
                {k: v for k, v in variables.items() if k not in FROM_FUEL},
            )


def ini(path):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(path)
    return parser


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Controller:
    """The operator's Ansible controller: a directory with the plugin's ansible.cfg and fuel.yml, the collection
    installed from the plugin's tarball, and ansible-core 2.16."""

    def __init__(self, work, plugin):
        self.dir = str(work / "controller")
        self.line = line_for("2.7")  # ansible-core 2.16: the last line that manages Python 2.7
        os.makedirs(self.dir)
        # The kit the operator copies: the settings, and the XenAPI wheel fuel.yml names for the computes.
        for name in os.listdir(os.path.join(plugin, "controller")):
            if name in ("ansible.cfg", "fuel.yml") or name.endswith(".whl"):
                shutil.copy(os.path.join(plugin, "controller", name), self.dir)
        (tarball,) = [n for n in os.listdir(os.path.join(plugin, "controller")) if n.endswith(".tar.gz")]
        self.collections = str(work / "collections")
        installed = subprocess.run(
            [
                self.line.tool("ansible-galaxy"),
                *("collection", "install", "--offline", "--no-deps", "-p", self.collections),
                os.path.join(plugin, "controller", tarball),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=self.collections),  # not "already installed" elsewhere
            check=False,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr

    def inventory(self, nailgun_url):
        """fuel.yml as the plugin carries it, with this master's URL and the passwords asked for."""
        config = os.path.join(self.dir, "fuel.yml")
        with open(config) as handle:
            data = yaml.safe_load(handle)
        data.update(nailgun_url=nailgun_url, include_secrets=True)
        dump(config, data)
        return config

    def run(self, tool, *args):
        """Run an ansible-core 2.16 tool in this directory, with the installed collection first, then ansible.posix
        and community.general of the 2.16 line."""
        env = self.line.env(ansible_env())
        env.update(
            ANSIBLE_COLLECTIONS_PATH=self.collections + os.pathsep + self.line.collections,
            FUEL_NAILGUN_PASSWORD=NAILGUN_PASSWORD,
        )
        env.pop("ANSIBLE_CONFIG", None)
        return subprocess.run(
            [self.line.tool(tool), *args], capture_output=True, text=True, env=env, cwd=self.dir, check=False
        )

    def playbook(self, nailgun_url):
        """Run the collection's site playbook; (returncode, json report or None, output)."""
        run = self.run("ansible-playbook", SITE, "-i", self.inventory(nailgun_url))
        start = run.stdout.find("{")
        report = json.loads(run.stdout[start:]) if start >= 0 else None
        return run.returncode, report, run.stdout + run.stderr


@pytest.fixture(scope="module")
def fuel(tmp_path_factory):
    """A fresh bed (compute VM on Python 2.7), its Glance, the built plugin, the controller and the form's values."""
    work = tmp_path_factory.mktemp("fuel")
    built = subprocess.run(
        [sys.executable, os.path.join(ROOT, "fuel", "build.py"), "--output", str(work / "plugin")],
        capture_output=True,
        text=True,
        check=True,
    )
    bed = Bed(str(work / "bed"), "--pairs", str(PAIRS), "--target-python", "2.7", "--no-target-xenapi")
    glance = NsGlance(work / "glance")
    try:
        glance.start()
        bed.glance, bed.work = glance, work
        bed.controller = Controller(work, built.stdout.split()[0])
        bed_inventory = load(bed.inventory)
        bed_overrides(bed_inventory, bed.controller.dir)
        # The cloud's Glance has no Keystone on the bed: its endpoint replaces the Keystone connection of Fuel's
        # data (openstack_cloud), which site.yml gives the images role.
        path = os.path.join(bed.controller.dir, "host_vars", "controller-1.yml")
        images = controller_vars(glance, work)
        del images["guest_images_cloud"]
        dump(path, dict(load(path), **images))
        # The controller's own settings: the plugin set of the bed's nova stand-in (21.2.4), from the offline archives.
        pluginsets.archive()
        dump(
            os.path.join(bed.controller.dir, "group_vars", "compute.yml"),
            dict(dom0_suppack_plugin_set="os-xenapi-0.3.4", dom0_suppack_plugin_archives=pluginsets.ARCHIVES),
        )
        credentials = load(os.path.join(bed.state_dir, "dom0-1", "scenario.yml"))["credentials"]
        signing = bed_inventory["all"]["vars"]  # the key the bed's Dom0s trust, given in the form
        bed.form = dict(
            username=credentials["username"],
            password=credentials["password"],
            install_xapi=True,
            signing_key=signing["dom0_suppack_gpg_key"],
            signing_gnupg_home=signing["dom0_suppack_gpg_home"],
        )
        yield bed
    finally:
        glance.stop()
        bed.down()


def flat(output):
    """The output with Ansible's line wrapping undone."""
    return " ".join(output.split())


def nothing_ran(report, output):
    """No play ran a task on any host."""
    return report is None or all(not play["tasks"] for play in report["plays"]), output[-3000:]


def test_an_unreachable_nailgun_stops_before_anything_runs(fuel):
    url = "http://127.0.0.1:%d" % free_port()
    code, report, output = fuel.controller.playbook(url)
    assert code != 0
    assert "Cannot reach the Fuel master at %s/api/v1/version" % url in flat(output), output[-3000:]
    assert nothing_ran(report, output)
    assert "Traceback" not in output


def test_a_node_without_the_xenserver_settings_stops_before_anything_runs(fuel):
    nodes = astute_data(fuel.form)
    del nodes["2"]["xenserver-openstack"]  # compute-1: its data older than the plugin's enabling
    with NailgunStub(nodes["1"]["deployment_id"], nodes, NAILGUN_PASSWORD) as nailgun:
        code, report, output = fuel.controller.playbook(nailgun.url)
    assert code != 0
    assert "node compute-1 has no settings of the XenServer plugin" in flat(output), output[-3000:]
    assert "Deploy changes in Fuel" in flat(output)
    assert nothing_ran(report, output)


def test_no_signing_key_in_the_form_stops_before_anything_changes(fuel):
    nodes = astute_data(dict(fuel.form, signing_key=""))
    with NailgunStub(nodes["1"]["deployment_id"], nodes, NAILGUN_PASSWORD) as nailgun:
        code, report, output = fuel.controller.playbook(nailgun.url)
    assert code != 0
    assert tracebacks(report, output) == []
    assert "dom0_suppack_gpg_key is empty and no ready pack is given" in flat(output), output[-3000:]
    assert "'Pack signing key'" in flat(output)
    assert all(stats["changed"] == 0 for stats in report["stats"].values()), report["stats"]
    assert [u for u in Simulator(fuel, 1).objects()["updates"] if u["name_label"] == "xenserver-openstack"] == []


def test_the_computes_modules_run_on_python_2_7(fuel):
    """What the controller's ansible-core 2.16 runs the compute's modules with, as the setup module reports it."""
    nodes = astute_data(fuel.form)
    with NailgunStub(nodes["1"]["deployment_id"], nodes, NAILGUN_PASSWORD) as nailgun:
        fuel.controller.inventory(nailgun.url)
        run = fuel.controller.run(
            "ansible", "compute-1", "-i", "fuel.yml", "-m", "ansible.builtin.setup", "-a", "filter=ansible_python", "-o"
        )
    assert run.returncode == 0, run.stdout + run.stderr
    facts = json.loads(run.stdout[run.stdout.index("{") :])["ansible_facts"]["ansible_python"]
    assert "%(major)s.%(minor)s" % facts["version"] == "2.7"


def xenapi_imports(bed, host):
    """Whether XenAPI imports in the Python that runs the modules on the bed's compute VM ``host``."""
    python = load(bed.inventory)["all"]["children"]["compute"]["hosts"][host]["ansible_python_interpreter"]
    return bed.run(ns(host), python, "-c", "import XenAPI", check=False).returncode == 0


def test_the_first_run_converges_and_the_second_changes_nothing(fuel):
    bed = fuel
    nodes = astute_data(bed.form)
    computes = ["compute-%d" % i for i in range(1, PAIRS + 1)]
    assert [xenapi_imports(bed, host) for host in computes] == [False] * PAIRS  # as on MOS 9's /usr/bin/python2.7
    with NailgunStub(nodes["1"]["deployment_id"], nodes, NAILGUN_PASSWORD) as nailgun:
        first = bed.controller.playbook(nailgun.url)
        second = bed.controller.playbook(nailgun.url)
    code, report, output = first
    assert code == 0, output[-4000:]
    # The HIMN bootstrap installed the kit's XenAPI wheel (fuel.yml's xenapi_package) in the modules' Python 2.7,
    # offline, before anything asked XAPI: task order HIMN bootstrap, then the preflight's host read, then the rest.
    assert [xenapi_imports(bed, host) for host in computes] == [True] * PAIRS
    (install,) = task_results(report, "compute-1", "xenserver.openstack.himn_network : Install XenAPI with pip")
    assert install["changed"] and "--no-index" in install["cmd"], install
    assert install["cmd"][-1].endswith("/XenAPI-2.14-py2.py3-none-any.whl"), install
    preflight = [task["task"]["name"] for task in report["plays"][0]["tasks"] if "compute-1" in task["hosts"]]
    bootstrap = [
        preflight.index("xenserver.openstack.himn_network : " + name)
        for name in (
            "Bring the HIMN interface up now",
            "Install XenAPI with pip",
            "Check that XenAPI imports in the modules' Python now",
            "Find the HIMN interface (XenAPI, then xenstore, then addresses)",
        )
    ]
    read_host = preflight.index("Read the host, its updates, default SR, HIMN and this VM")
    assert bootstrap == sorted(bootstrap) and bootstrap[-1] < read_host, preflight
    # The collection that ran is the one installed from the plugin's tarball.
    paths = {task["task"]["path"] for play in report["plays"] for task in play["tasks"] if task["task"]["path"]}
    assert {path.startswith(bed.controller.collections) for path in paths if "xenserver/openstack" in path} == {True}
    assert tracebacks(report, output) == []
    assert set(report["stats"]) == {"controller-1"} | {"compute-%d" % i for i in range(1, PAIRS + 1)}
    # site.yml's plays in the original plugin's order, after Fuel's deployment.
    assert [play["play"]["name"].split(" - ")[0] for play in report["plays"]] == [
        "Preflight",
        "Compute post-deployment",
        "Controller post-deployment",
        "Primary controller",
    ]
    pack = task_results(report, "compute-1", "xenserver.openstack.dom0_suppack : Apply the pack on the host")
    assert pack and pack[0]["changed"], pack
    facts = task_results(report, "compute-1", "Read the host")[0]
    assert facts["vm"]["uuid"] == Simulator(bed, 1).scenario()["vms"]["compute"]["uuid"]
    for i in range(1, PAIRS + 1):
        dom0 = ns("dom0-%d" % i)
        plugins = set(os.listdir(os.path.join(bed.root("dom0-%d" % i), "etc", "xapi.d", "plugins")))
        assert {"dom0_plugin_version.py", "xenhost.py", "netwrap.py", "xenserver_openstack"} <= plugins, plugins
        routes = bed.run(dom0, "ip", "-4", "route").stdout
        for cidr in (MGMT + ".0/24", STORAGE + ".0/24"):  # the CIDRs of Fuel's data
            assert "%s via 169.254.0.2 dev xenapi" % cidr in routes
        etc = os.path.join(bed.root("compute-%d" % i), "etc")
        nova = ini(os.path.join(etc, "nova", "nova-compute.conf"))
        assert nova.get("DEFAULT", "compute_driver") == "xenapi.XenAPIDriver"
        assert nova.get("vnc", "novncproxy_base_url").startswith("http://%s:6080/" % CONTROLLER_IP)
        agent = ini(os.path.join(etc, "neutron", "plugins", "ml2", "openvswitch_agent.ini"))
        assert agent.get("ovs", "bridge_mappings").startswith("physnet2:")
    image = bed.glance.images(bed)["TestVM"]
    assert (image["disk_format"], image["container_format"]) == ("vhd", "ovf")

    code, report, output = second
    assert code == 0, output[-4000:]
    changed = {host: stats["changed"] for host, stats in report["stats"].items() if stats["changed"]}
    assert changed == {}, changed_tasks(report)
