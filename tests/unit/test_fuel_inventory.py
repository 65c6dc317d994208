"""The xenserver.openstack.fuel inventory: from sample astute.yaml files and from a Nailgun stand-in.

`ansible-inventory` runs as a subprocess, as a user runs it; the expected groups and variables are read from the
sample files along the documented paths (which are not always the ones the plugin reads, so each cross-checks the
other), never written here as constants.
"""

import copy
import glob
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import COLLECTIONS, TESTS

sys.path.insert(0, os.path.join(TESTS, "fuel"))

from ansible_collections.xenserver.openstack.plugins.inventory.fuel import InventoryModule, Nailgun
from ansible_collections.xenserver.openstack.plugins.plugin_utils import _fuel
from nailgun_stub import NailgunStub, node_record, read_samples

SAMPLES = os.path.join(TESTS, "fuel")
SMALL = os.path.join(SAMPLES, "cloud-9.0-1ctl-2cmp")
HA = os.path.join(SAMPLES, "cloud-8.0-3ctl-3cmp")
ANSIBLE_INVENTORY = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
PLUGIN_SECTIONS = ("xenserver-openstack", "fuel-plugin-xenserver")


# --- expectations, read from the sample files ------------------------------------------------------------------


def _sample_files(folder):
    return sorted(glob.glob(os.path.join(folder, "*.yaml")))


def _load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def _me(data):
    return next(node for node in data["network_metadata"]["nodes"].values() if node["uid"] == data["uid"])


def _tenant_nic(data):
    """The NIC of the tenant VLANs, by the recipe of the reference: br-prv's patch peer, then its port."""
    steps = data["network_scheme"]["transformations"]
    patch = next(step["bridges"] for step in steps if step["action"] == "add-patch" and "br-prv" in step["bridges"])
    peer = next(bridge for bridge in patch if bridge != "br-prv")
    return next(step["name"] for step in steps if step["action"] == "add-port" and step.get("bridge") == peer)


def expected_hosts(folder):
    """Return {host: host variables} as the documented keys of the sample files give them."""
    hosts = {}
    for path in _sample_files(folder):
        data = _load(path)
        me = _me(data)
        addresses = me["network_roles"]
        bridges = data["network_scheme"]["roles"]
        host = dict(
            ansible_host=addresses["admin/pxe"],
            fuel_uid=data["uid"],
            fuel_fqdn=data["fqdn"],
            fuel_roles=me["node_roles"],
            openstack_management_interface=bridges["management"],
            openstack_management_address=addresses["management"],
            openstack_management_cidr=data["management_network_range"],
            openstack_storage_interface=bridges["storage"],
            openstack_storage_address=addresses["storage"],
            openstack_storage_cidr=data["storage_network_range"],
        )
        if "private_network_range" in data:
            host.update(
                openstack_mesh_interface=bridges["neutron/mesh"],
                openstack_mesh_address=addresses["neutron/mesh"],
                openstack_mesh_cidr=data["private_network_range"],
            )
        else:
            host["openstack_tenant_nic"] = _tenant_nic(data)
        hosts[me["name"]] = host
    return hosts


def expected_cluster(folder):
    """Return the variables of group all, from the first sample file (they are the same in every file)."""
    data = _load(_sample_files(folder)[0])
    internal = data["quantum_settings"]["predefined_networks"]["admin_internal_net"]["L2"]
    storage = data["storage"]
    hypervisor = "vcenter" if data["use_vcenter"] else {"kvm": "kvm", "qemu": "xenserver"}[data["libvirt_type"]]
    variables = dict(
        # Ubuntu 14.04's Python 2.7: its Python 3.4 is one ansible-core 2.16 does not manage.
        ansible_python_interpreter="/usr/bin/python2.7",
        fuel_cluster_id=data["deployment_id"],
        fuel_version=data["fuel_version"],
        fuel_openstack_version=data["openstack_version"],
        openstack_public_vip=data["network_metadata"]["vips"]["public"]["ipaddr"],
        openstack_public_ssl=data["public_ssl"]["services"],
        openstack_segmentation_type=internal["network_type"],
        openstack_options=dict(
            hypervisor=hypervisor,
            volumes_ceph=storage["volumes_ceph"],
            ephemeral_ceph=storage["ephemeral_ceph"],
            images_ceph=storage["images_ceph"],
            objects_ceph=storage["objects_ceph"],
            sahara=data["sahara"]["enabled"],
            murano=data["murano"]["enabled"],
            mongo=data["mongo"]["enabled"],
            ironic=data["ironic"]["enabled"],
            ceilometer=data["ceilometer"]["enabled"],
        ),
    )
    if internal["network_type"] == "vlan":
        variables["openstack_tenant_physnet"] = internal["physnet"]
    return variables


def expected_compute_vars(folder, secrets=False):
    """Nova's Python, and the XenServer plugin's settings; the hosts' password only with include_secrets."""
    data = _load(_sample_files(folder)[0])
    section = next(data[name] for name in PLUGIN_SECTIONS if name in data)
    variables = dict(
        nova_xenapi_python="/usr/bin/python2.7",
        xenserver_url="http://169.254.0.1",
        xenserver_username=section["username"],
        dom0_suppack_install=section["install_xapi"],
    )
    if data["openstack_version"] == "mitaka-9.0":  # Fuel 9.x: the pack carries nova 13's own Dom0 plugins
        variables["dom0_suppack_plugin_set"] = "nova-13"
    if secrets:
        variables["xenserver_password"] = section["password"]
    return variables


def expected_controller_vars(folder, secrets=False):
    """The admin user's connection through Keystone on the management VIP, as a Fuel controller's openrc has it (its
    password only with include_secrets)."""
    data = _load(_sample_files(folder)[0])
    access = data["access"]
    auth = dict(
        auth_url="http://%s:5000/" % data["network_metadata"]["vips"]["management"]["ipaddr"],
        username=access["user"],
        project_name=access["tenant"],
        user_domain_name="Default",
        project_domain_name="Default",
    )
    if secrets:
        auth["password"] = access["password"]
    return dict(
        openstack_cloud=dict(
            auth_type="password", auth=auth, region_name=data.get("region", "RegionOne"), interface="internal"
        )
    )


def expected_groups(folder):
    """Return {group: hosts}: one group per Fuel role (- as _), primary roles also in the plain role's group."""
    groups = {"compute": set(), "controller": set(), "primary_controller": set()}
    for path in _sample_files(folder):
        me = _me(_load(path))
        for role in me["node_roles"]:
            for name in (role, role.replace("primary-", "")):
                groups.setdefault(name.replace("-", "_"), set()).add(me["name"])
    return groups


# --- running ansible-inventory ---------------------------------------------------------------------------------


def inventory_env(**extra):
    """The environment of ansible-inventory: this checkout's collections, none of the plugin's own variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FUEL_")}
    return dict(env, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1", **extra)


def run_inventory(config, *args, env=None, check=True):
    result = subprocess.run(
        [ANSIBLE_INVENTORY, "-i", str(config), *args],
        capture_output=True,
        text=True,
        env=env or inventory_env(),
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def strict_env(**extra):
    """Only this plugin, and a source it cannot parse is fatal: the configuration docs/fuel.md recommends."""
    return inventory_env(
        ANSIBLE_INVENTORY_ENABLED="xenserver.openstack.fuel", ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true", **extra
    )


def write_config(directory, lines, name="fuel_inventory.yml"):
    path = directory / name
    path.write_text("plugin: xenserver.openstack.fuel\n" + "".join(line + "\n" for line in lines))
    return path


def unwrap(value):
    """Drop the __ansible_unsafe wrapping that ansible-inventory puts around untrusted strings."""
    if isinstance(value, dict):
        return (
            value["__ansible_unsafe"]
            if set(value) == {"__ansible_unsafe"}
            else {k: unwrap(v) for k, v in value.items()}
        )
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def exported(config, env=None):
    return unwrap(json.loads(run_inventory(config, "--list", "--export", env=env).stdout))


def graph_groups(text):
    """Parse `ansible-inventory --graph` into {group: set of hosts}."""
    groups, current = {}, None
    for line in text.splitlines():
        name = line.strip(" |-")
        if name.startswith("@"):
            current = groups.setdefault(name[1:].rstrip(":"), set())
        elif name and current is not None:
            current.add(name)
    return groups


# --- files --------------------------------------------------------------------------------------------------------

CLOUDS = pytest.mark.parametrize("folder", [SMALL, HA], ids=["9.0-1ctl-2cmp", "8.0-3ctl-3cmp"])


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """`ansible-inventory --list --export` of each sample cloud, the astute path relative to the config file."""
    results = {}
    for folder in (SMALL, HA):
        directory = tmp_path_factory.mktemp("config")
        results[folder] = exported(write_config(directory, ["astute: [%s]" % os.path.relpath(folder, directory)]))
    return results


@CLOUDS
def test_graph_has_a_group_per_role(tmp_path, folder):
    config = write_config(tmp_path, ["astute: [%s]" % folder])
    groups = graph_groups(run_inventory(config, "--graph").stdout)
    groups.pop("all")
    assert groups.pop("ungrouped") == set()
    assert groups == expected_groups(folder)


@CLOUDS
def test_list_has_the_variables_of_the_samples(exports, folder):
    inventory = exports[folder]
    assert inventory["_meta"]["hostvars"] == expected_hosts(folder)
    assert inventory["all"]["vars"] == expected_cluster(folder)
    # Fuel 9.x deploys Mitaka: its pack carries nova 13's own Dom0 plugins; Liberty (8.0) has no known set.
    assert inventory["compute"]["vars"].get("dom0_suppack_plugin_set") == {SMALL: "nova-13", HA: None}[folder]
    assert inventory["compute"]["vars"] == expected_compute_vars(folder)
    assert inventory["controller"]["vars"] == expected_controller_vars(folder)


def test_missing_network_scheme_is_one_clear_error(tmp_path):
    path = os.path.join(SAMPLES, "broken", "no-network-scheme.yaml")
    config = write_config(tmp_path, ["astute: [%s]" % path])
    result = run_inventory(config, "--graph", env=strict_env(), check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "%s: network_scheme is missing. It must be a node's deployment data" % path in result.stderr
    assert [line for line in result.stderr.splitlines() if "[ERROR]" in line] == [
        "[ERROR]: Completely failed to parse inventory source %s" % config
    ]


def test_bad_cidr_is_a_clear_error_with_the_default_configuration_too(tmp_path):
    path = os.path.join(SAMPLES, "broken", "bad-cidr.yaml")
    config = write_config(tmp_path, ["astute: [%s]" % path])
    result = run_inventory(config, "--graph", check=False)
    assert "Traceback" not in result.stderr
    assert (
        "%s: network_scheme.endpoints.br-mgmt.IP[0] is '192.168.0.300/24', not an address with a prefix length" % path
        in result.stderr
    )


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("fuel_inventory.yml", True),
        ("fuel.yaml", True),
        ("prod.fuel.yml", True),
        ("hosts.yml", False),
        ("fuel_inventory.yml.example", False),
    ],
)
def test_configuration_file_names(tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text("plugin: xenserver.openstack.fuel\n")
    assert InventoryModule().verify_file(str(path)) is accepted


# --- the parser, in process -------------------------------------------------------------------------------------


def _node(data, source="sample.yaml", **kwargs):
    return _fuel.parse_node(data, source, **kwargs)


def _error(data, **kwargs):
    with pytest.raises(_fuel.FuelDataError) as caught:
        _node(data, **kwargs)
    return str(caught.value)


def _compute():
    return _load(os.path.join(SMALL, "2.yaml"))


def _set(data, path, value):
    for key in path[:-1]:
        data = data[key]
    if value is KeyError:
        del data[path[-1]]
    else:
        data[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["uid"], KeyError, "uid is missing"),
        (["roles"], "compute", "roles is a string, expected a list"),
        (["network_scheme", "roles", "management"], KeyError, "network_scheme.roles.management is missing"),
        (["network_scheme", "endpoints", "br-storage", "IP"], "none", "the bridge of network role storage has no"),
        (["network_scheme", "endpoints", "br-mgmt", "IP"], ["192.168.0.4"], "not an address with a prefix length"),
        (["network_metadata", "vips", "public", "ipaddr"], "public.example", "is 'public.example', not an IP"),
        (["public_ssl", "services"], "yes", "public_ssl.services is a string, expected true or false"),
        (["quantum_settings", "L2", "segmentation_type"], "flat", "expected one of vlan, tun, gre"),
        (["quantum_settings", "L2", "phys_nets", "physnet2"], KeyError, "has no physnet on bridge br-prv"),
        (["network_scheme", "transformations", 5], KeyError, "NIC that carries the tenant VLANs is unknown"),  # patch
        (["network_scheme", "transformations", 0], "add-br", "transformations[0] is a string, expected a mapping"),
        (["xenserver-openstack", "password"], "", "xenserver-openstack.password is empty"),
        (["xenserver-openstack", "install_xapi"], "yes", "install_xapi is a string, expected true or false"),
        (["ceilometer"], KeyError, "ceilometer is missing"),
        (["network_metadata", "vips", "management"], KeyError, "network_metadata.vips.management is missing"),
        (["access", "password"], None, "access.password is empty, expected a string"),
    ],
)
def test_malformed_key_names_source_and_key_path(path, value, message):
    data = _compute()
    _set(data, path, value)
    error = _error(data)
    assert error.startswith("sample.yaml: ")
    assert message in error
    assert _compute()["xenserver-openstack"]["password"] not in error
    assert _compute()["access"]["password"] not in error


def test_tun_without_mesh_network_is_an_error():
    data = _compute()
    data["quantum_settings"]["L2"]["segmentation_type"] = "tun"
    assert "network_scheme.roles.neutron/mesh is missing with tun segmentation" in _error(data)


def test_without_plugin_settings_no_xenserver_variables():
    data = _compute()
    del data["xenserver-openstack"]
    assert _node(data).xenserver_vars == {}
    data = _compute()
    data["xenserver-openstack"]["metadata"]["enabled"] = False
    assert _node(data).xenserver_vars == {}


def test_the_forms_signing_key_is_the_packs():
    """The form names the key and its keyring on the machine that runs Ansible; empty (or an older form): unset."""
    data = _compute()
    data["xenserver-openstack"].update(signing_key=" 0123456789ABCDEF ", signing_gnupg_home="/srv/xso/gnupg")
    variables = _node(data).xenserver_vars
    assert (variables["dom0_suppack_gpg_key"], variables["dom0_suppack_gpg_home"]) == (
        "0123456789ABCDEF",
        "/srv/xso/gnupg",
    )
    data["xenserver-openstack"].update(signing_key="", signing_gnupg_home="")
    assert not {"dom0_suppack_gpg_key", "dom0_suppack_gpg_home"} & set(_node(data).xenserver_vars)
    data = _compute()
    data["xenserver-openstack"]["signing_key"] = ["not", "a", "string"]
    with pytest.raises(_fuel.FuelDataError, match=r"xenserver-openstack\.signing_key"):
        _node(data)


def test_original_plugin_settings_are_read_and_names_are_configurable():
    data = _compute()
    data["fuel-plugin-xenserver"] = data.pop("xenserver-openstack")
    assert _node(data).xenserver_vars["xenserver_username"] == data["fuel-plugin-xenserver"]["username"]
    assert _node(data, plugin_names=["xenserver-openstack"]).xenserver_vars == {}


@pytest.mark.parametrize(
    ("use_vcenter", "libvirt_type", "hypervisor"),
    [(False, "qemu", "xenserver"), (False, "kvm", "kvm"), (True, "qemu", "vcenter")],
)
def test_hypervisor_option(use_vcenter, libvirt_type, hypervisor):
    data = _compute()
    data.update(use_vcenter=use_vcenter, libvirt_type=libvirt_type)
    assert _node(data).cluster_vars["openstack_options"]["hypervisor"] == hypervisor


def test_host_address_management():
    data = _compute()
    assert _node(data, host_address="management").host_vars["ansible_host"] == _me(data)["network_roles"]["management"]


def test_fuel_8_roles_come_from_network_metadata():
    data = _load(os.path.join(HA, "cinder_14.yaml"))
    assert data["role"] == "cinder"
    assert _node(data).roles == _me(data)["node_roles"]


def test_a_node_without_the_plugins_settings_beside_others_is_named():
    """A node whose astute.yaml lacks the XenServer settings (deployed before the plugin was enabled) is refused."""
    with_plugin = _node(_compute())
    data = _compute()
    del data["xenserver-openstack"]
    data.update(uid="9", fqdn="node-9.test.domain.local")
    without = _fuel.parse_node(data, "old/node-9.yaml")
    for nodes in ([with_plugin, without], [without, with_plugin]):
        with pytest.raises(_fuel.FuelDataError) as caught:
            _fuel.one_environment(nodes)
        assert str(caught.value).startswith(
            "old/node-9.yaml: node node-9 has no settings of the XenServer plugin, which %s has" % with_plugin.source
        )
        assert "Deploy changes in Fuel" in str(caught.value)


def test_files_of_two_environments_are_refused():
    small, ha = os.path.join(SMALL, "2.yaml"), os.path.join(HA, "compute_13.yaml")
    nodes = [_node(_load(path), path) for path in (small, ha)]
    with pytest.raises(_fuel.FuelDataError, match="%s and %s disagree on fuel_cluster_id" % (small, ha)):
        _fuel.one_environment(nodes)


def test_passwords_that_differ_are_named_not_shown():
    first, second = _compute(), _compute()
    second["xenserver-openstack"]["password"] = "Other-s3cret"
    with pytest.raises(_fuel.FuelDataError, match="disagree on xenserver_password:") as caught:
        _fuel.one_environment([_node(first, "a.yaml"), _node(second, "b.yaml")])
    assert "s3cret" not in str(caught.value)


def test_admin_passwords_that_differ_are_named_not_shown():
    first, second = _compute(), _compute()
    second["access"]["password"] = "Other-adm1n"
    with pytest.raises(_fuel.FuelDataError, match="disagree on openstack_cloud:") as caught:
        _fuel.one_environment([_node(first, "a.yaml"), _node(second, "b.yaml")])
    assert "Other-adm1n" not in str(caught.value)
    assert _compute()["access"]["password"] not in str(caught.value)


def test_the_masters_pseudo_node_is_no_host(tmp_path):
    """`fuel deployment --default --dir` writes the master's pseudo-node beside the nodes."""
    (tmp_path / "master.yaml").write_text("uid: master\nroles: [master]\n")
    (tmp_path / "2.yaml").write_text(open(os.path.join(SMALL, "2.yaml")).read())
    assert [path for path, _data in _fuel.read_astute_files([str(tmp_path)])] == [str(tmp_path / "2.yaml")]


def test_file_errors(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n")
    (tmp_path / "bad.yaml").write_text("uid: [\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(_fuel.FuelDataError, match=r"list\.yaml: holds a list, not a node's deployment data"):
        _fuel.load_astute(str(tmp_path / "list.yaml"))
    with pytest.raises(_fuel.FuelDataError, match=r"bad\.yaml: is not valid YAML"):
        _fuel.load_astute(str(tmp_path / "bad.yaml"))
    with pytest.raises(_fuel.FuelDataError, match=r"empty: the directory holds no \.yaml file"):
        _fuel.find_astute_files([str(tmp_path / "empty")])
    with pytest.raises(_fuel.FuelDataError, match=r"missing\.yaml does not exist\. On a Fuel node"):
        _fuel.find_astute_files([str(tmp_path / "missing.yaml")])


# --- Nailgun ------------------------------------------------------------------------------------------------------

PASSWORD = "Fuel-Adm1n"


def _nailgun(stub, password=PASSWORD):
    return Nailgun(
        stub.url,
        keystone_url=None,
        username="admin",
        password=password,
        tenant="admin",
        validate_certs=True,
        timeout=10,
    )


def test_nailgun_gives_the_same_inventory_as_the_files(tmp_path, exports):
    with NailgunStub(3, read_samples(SMALL), PASSWORD) as stub:
        config = write_config(tmp_path, ["nailgun_url: %s" % stub.url])
        assert exported(config, env=inventory_env(FUEL_NAILGUN_PASSWORD=PASSWORD)) == exports[SMALL]
    (method, path, token, body), *calls = stub.requests[1:]
    assert (method, path, token) == ("POST", "/keystone/v2.0/tokens", None)
    assert body == {"auth": {"tenantName": "admin", "passwordCredentials": {"username": "admin", "password": PASSWORD}}}
    assert {token for _, _, token, _ in calls} == stub.tokens
    assert calls[-1][1] == "/api/v1/transactions/22/deployment_info"


def test_nailgun_9_1_leaves_out_nodes_being_deleted_and_warns_of_undeployed_ones(tmp_path, exports):
    samples = read_samples(SMALL)
    newcomer = dict(node_record(samples["2"], 3), id=9, hostname="node-9")
    with NailgunStub(3, samples, PASSWORD, split=True, pending_deletion={"3"}, undeployed=[newcomer]) as stub:
        config = write_config(tmp_path, ["nailgun_url: %s" % stub.url])
        result = run_inventory(config, "--list", "--export", env=inventory_env(FUEL_NAILGUN_PASSWORD=PASSWORD))
    inventory = unwrap(json.loads(result.stdout))
    files = exports[SMALL]
    assert inventory["_meta"]["hostvars"] == {k: v for k, v in files["_meta"]["hostvars"].items() if k != "node-3"}
    assert (inventory["all"]["vars"], inventory["compute"]["vars"]) == (files["all"]["vars"], files["compute"]["vars"])
    assert "Fuel node 9 (node-9) of environment 3 is not in its last deployment" in " ".join(result.stderr.split())


def test_nailgun_wrong_password_is_one_clear_error_without_the_password(tmp_path):
    with NailgunStub(3, read_samples(SMALL), PASSWORD) as stub:
        config = write_config(tmp_path, ["nailgun_url: %s" % stub.url])
        result = run_inventory(config, "--graph", env=strict_env(FUEL_NAILGUN_PASSWORD="Wrong-pa55"), check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "Keystone at %s/keystone/v2.0 refused user admin of tenant admin" % stub.url in result.stderr
    assert "Wrong-pa55" not in result.stderr


def test_nailgun_needs_cluster_id_when_the_master_has_several():
    with NailgunStub(3, read_samples(SMALL), PASSWORD, other_clusters=[4]) as stub:
        nailgun = _nailgun(stub)
        nailgun.login()
        with pytest.raises(_fuel.FuelDataError, match=r"has 2 environments; its environments: 3 \(env-3\), 4 "):
            nailgun.cluster_id(None)
        with pytest.raises(_fuel.FuelDataError, match="has no environment 7;"):
            nailgun.cluster_id(7)
        assert nailgun.cluster_id(4) == 4
        with pytest.raises(_fuel.FuelDataError, match=r"Fuel environment 4 at .* has no successful deployment"):
            nailgun.last_deployment_info(4)


def test_nailgun_errors_name_the_url_and_the_fix():
    with NailgunStub(3, read_samples(SMALL), PASSWORD) as stub:
        with pytest.raises(_fuel.FuelDataError, match="no password is set: set nailgun_password"):
            _nailgun(stub, password=None).login()
        nailgun = _nailgun(stub)
        with pytest.raises(_fuel.FuelDataError, match=r"Nailgun refused .*/api/v1/clusters \(HTTP 401\)"):
            nailgun.cluster_id(None)
        nailgun.login()
        with pytest.raises(_fuel.FuelDataError, match=r"/api/v1/nope does not exist \(HTTP 404\)"):
            nailgun.get("/api/v1/nope", dict)
        url = stub.url
    with pytest.raises(_fuel.FuelDataError, match="Cannot reach the Fuel master at %s/api/v1/version" % url):
        _nailgun(stub).login()


def test_deployment_info_shapes():
    nodes = read_samples(SMALL)
    merged = _fuel.deployment_info_nodes({"common": {"a": {"b": 1, "c": 2}}, "nodes": {"7": {"a": {"c": 3}}}}, "x")
    assert merged == {"7": {"a": {"b": 1, "c": 3}}}
    assert _fuel.deployment_info_nodes(copy.deepcopy(nodes), "x") == nodes
    with pytest.raises(_fuel.FuelDataError, match="x: is a list, expected a mapping of nodes"):
        _fuel.deployment_info_nodes([], "x")


# --- issue 18, finding 5: the passwords only on request -------------------------------------------------------------


def _passwords(folder):
    data = _load(_sample_files(folder)[0])
    section = next(data[name] for name in PLUGIN_SECTIONS if name in data)
    return section["password"], data["access"]["password"]


@CLOUDS
def test_finding_5_the_inventory_holds_no_password_unless_asked(tmp_path, folder):
    """ansible-inventory --list, and AWX's inventory sync, showed the hosts' root password and the cloud's admin
    password: they are left out unless include_secrets is on (then from a vault or AWX credentials)."""
    config = write_config(tmp_path, ["astute: [%s]" % folder])
    listed = run_inventory(config, "--list", "--export").stdout
    for secret in _passwords(folder):
        assert secret not in listed
    inventory = unwrap(json.loads(listed))
    assert "xenserver_password" not in inventory["compute"]["vars"]
    assert "password" not in inventory["controller"]["vars"]["openstack_cloud"]["auth"]
    asked = unwrap(
        json.loads(
            run_inventory(
                write_config(tmp_path, ["astute: [%s]" % folder, "include_secrets: true"], name="secrets.fuel.yml"),
                "--list",
                "--export",
            ).stdout
        )
    )
    assert asked["compute"]["vars"] == expected_compute_vars(folder, secrets=True)
    assert asked["controller"]["vars"] == expected_controller_vars(folder, secrets=True)


def test_finding_5_nailgun_over_http_warns_that_the_password_crosses_in_clear(tmp_path):
    with NailgunStub(3, read_samples(SMALL), PASSWORD) as stub:
        config = write_config(tmp_path, ["nailgun_url: %s" % stub.url])
        result = run_inventory(config, "--graph", env=inventory_env(FUEL_NAILGUN_PASSWORD=PASSWORD))
    warning = " ".join(result.stderr.split())
    assert (
        "nailgun_url %s is plain http: the Fuel master's password and token cross the network in clear" % stub.url
        in (warning)
    ), warning
    assert "https://" in warning and PASSWORD not in warning


def test_xenapi_package_is_the_computes_package_file_relative_to_the_configuration(tmp_path):
    """The plugin's controller/ carries the XenAPI wheel for the computes' Python 2.7, and its fuel.yml names it."""
    config = write_config(tmp_path, ["astute: [%s]" % SMALL, "xenapi_package: XenAPI-2.14-py2.py3-none-any.whl"])
    compute = exported(config)["compute"]["vars"]
    assert compute["himn_network_xenapi_package"] == str(tmp_path / "XenAPI-2.14-py2.py3-none-any.whl")
    assert (
        "himn_network_xenapi_package"
        not in exported(write_config(tmp_path, ["astute: [%s]" % SMALL]))["compute"]["vars"]
    )
