# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read Fuel's per-node deployment data (astute.yaml) into the variables of the xenserver.openstack roles.

Private to the collection: other collections must not import it. It needs only PyYAML and the standard
library, so the Fuel plugin wrapper can use it on a node outside Ansible's plugin loader.

Every error is a FuelDataError whose message names the source (a file, or a Nailgun URL and node), the key
path in it, the problem and the fix.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

import yaml

try:
    from yaml import CSafeLoader as SafeLoader
except ImportError:
    from yaml import SafeLoader

HIMN_XAPI_URL = "http://169.254.0.1"
# Every node that Fuel 8.0 and 9.x deploy runs Ubuntu 14.04: Python 2.7 is /usr/bin/python2.7, and its Python 3 is
# 3.4, which ansible-core 2.16 (the last line that manages Python 2.7) does not manage, but would find first. Nova
# (Liberty, Mitaka) runs on that Python 2.7 too.
NODE_PYTHON = "/usr/bin/python2.7"
# Fuel release -> the Dom0 plugin set of its nova (tools/dom0_plugin_sets.json): Fuel 9.0-9.2 deploy Mitaka, nova 13
# and neutron 8, whose own Dom0 plugins the pack must carry. Fuel 8.0's Liberty (nova 12) has no set.
RELEASE_PLUGIN_SETS = {"mitaka-9.0": "nova-13"}
# Fuel's region when the data names none.
DEFAULT_REGION = "RegionOne"
# Variables whose values are never shown in a message.
SECRET_VARS = ("xenserver_password", "openstack_cloud")


def without_secrets(variables):
    """The variables without the passwords: no xenserver_password, no auth.password in openstack_cloud."""
    kept = dict((name, value) for name, value in variables.items() if name != "xenserver_password")
    if "openstack_cloud" in kept:
        cloud = dict(kept["openstack_cloud"])
        cloud["auth"] = dict((k, v) for k, v in cloud.get("auth", {}).items() if k != "password")
        kept["openstack_cloud"] = cloud
    return kept


DEFAULT_ASTUTE = "/etc/astute.yaml"
# Nailgun serializes the Fuel master as a pseudo-node with this uid, next to the nodes; it is no inventory host.
MASTER_UID = "master"
# The settings section of the Fuel plugin: this collection's wrapper first, then the original plugin, whose
# environments keep working with this inventory.
PLUGIN_NAMES = ("xenserver-openstack", "fuel-plugin-xenserver")
# The wrapper's form: the settings of the pack's signing key -> the dom0_suppack variables they set when given.
SIGNING_SETTINGS = (("signing_key", "dom0_suppack_gpg_key"), ("signing_gnupg_home", "dom0_suppack_gpg_home"))
SEGMENTATION_TYPES = ("vlan", "tun", "gre")
MESH_ROLE = "neutron/mesh"
# Fuel network role -> the word in the variables openstack_<word>_interface/_address/_cidr. The mesh (tunnel)
# network exists only with tun or gre segmentation.
NETWORKS = (("management", "management"), ("storage", "storage"), (MESH_ROLE, "mesh"))
ADDRESS_ROLES = {"admin": "admin/pxe", "management": "management"}
# The environment's OpenStack choices, as the collection-wide variable openstack_options (which the misc_patches
# preflight checks): key -> astute.yaml key path of a boolean setting. "hypervisor" is derived (_hypervisor).
OPTIONS = (
    ("volumes_ceph", ("storage", "volumes_ceph")),
    ("ephemeral_ceph", ("storage", "ephemeral_ceph")),
    ("images_ceph", ("storage", "images_ceph")),
    ("objects_ceph", ("storage", "objects_ceph")),
    ("sahara", ("sahara", "enabled")),
    ("murano", ("murano", "enabled")),
    ("mongo", ("mongo", "enabled")),
    ("ironic", ("ironic", "enabled")),
    ("ceilometer", ("ceilometer", "enabled")),
)
NOT_ASTUTE = "It must be a node's deployment data as Fuel 8.0 or 9.x writes it (astute.yaml)."
FIX_IN_FUEL = "Correct it in the environment's settings in Fuel and deploy again, or correct the file."
_KIND_NAMES = {dict: "a mapping", list: "a list", str: "a string", bool: "true or false", int: "an integer"}


class FuelDataError(Exception):
    """Fuel's data cannot be used; the message names the source, the key path, the problem and the fix."""


@dataclass
class FuelNode:
    """What the inventory needs of one node.

    Attributes:
        name: the inventory host name (the node's short host name).
        uid: the Nailgun node id.
        roles: Fuel roles, with the primary- prefix where Fuel gave it.
        host_vars: the variables of this node only.
        cluster_vars: the variables that are the same on every node of the environment.
        xenserver_vars: the XenServer plugin's settings as role variables; empty without the plugin.
        controller_vars: the variables of the controllers (the cloud's admin credentials).
        source: where the data came from, for messages.
    """

    name: str
    uid: str
    roles: list
    host_vars: dict
    cluster_vars: dict
    xenserver_vars: dict = field(repr=False)  # it holds the password
    controller_vars: dict = field(repr=False)  # so does this
    source: str


def _key_path(path):
    """Return a key path as written in messages: C(network_scheme.endpoints.br-mgmt.IP[0])."""
    text = ""
    for key in path:
        text += "[%d]" % key if isinstance(key, int) else ("." if text else "") + key
    return text


def _describe(value):
    if value is None:
        return "empty"
    for kind, name in _KIND_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _kind_name(kind):
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_KIND_NAMES.get(one, one.__name__) for one in kinds)


def _is_kind(value, kind):
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        return False
    return isinstance(value, kind)


class Astute:
    """One node's deployment data, read so that every error names the source and the key path."""

    _REQUIRED = object()

    def __init__(self, data, source, fix=NOT_ASTUTE):
        self.data = data
        self.source = source
        self.fix = fix

    def error(self, path, problem, fix=None):
        """Return the FuelDataError for the value at C(path) (the whole data when C(path) is empty)."""
        where = " ".join(part for part in (_key_path(path), problem) if part)
        return FuelDataError("%s: %s. %s" % (self.source, where, fix or self.fix))

    def get(self, path, kind, default=_REQUIRED):
        """Return the value at a key path, checking its type.

        Args:
            path: keys (str) and list indexes (int), from the top of the data.
            kind: the type the value must have.
            default: returned when a key on the path is missing; without it a missing key is an error.

        Raises:
            FuelDataError: a key is missing (and no default), or a value on the path has the wrong type.
        """
        value = self.data
        for depth, key in enumerate(path):
            container = list if isinstance(key, int) else dict
            if not isinstance(value, container):
                raise self.error(path[:depth], "is %s, expected %s" % (_describe(value), _kind_name(container)))
            if key not in value if container is dict else key >= len(value):
                if default is not self._REQUIRED:
                    return default
                raise self.error(path[: depth + 1], "is missing")
            value = value[key]
        if not _is_kind(value, kind):
            raise self.error(path, "is %s, expected %s" % (_describe(value), _kind_name(kind)))
        return value


def read_astute_files(paths):
    """Return [(file, node data)] of the given files and directories, without the Fuel master's pseudo-node.

    Raises:
        FuelDataError: a path does not exist, a directory holds no YAML file, or a file is not node data.
    """
    found = [(path, load_astute(path)) for path in find_astute_files(paths)]
    return [(path, data) for path, data in found if data.get("uid") != MASTER_UID]


def find_astute_files(paths):
    """Return the files to read: each path itself, or for a directory the .yaml/.yml files in it, sorted.

    Raises:
        FuelDataError: a path does not exist, or a directory holds no YAML file.
    """
    files = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(name for name in os.listdir(path) if name.endswith((".yaml", ".yml")))
            if not names:
                raise FuelDataError(
                    "%s: the directory holds no .yaml file. Put the nodes' astute.yaml files in it (for example from "
                    "'fuel deployment --env ID --default --dir %s') or point astute at a file." % (path, path)
                )
            files.extend(os.path.join(path, name) for name in names)
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FuelDataError(
                "%s does not exist. On a Fuel node the deployment data is %s; elsewhere, point astute at copies of "
                "the nodes' astute.yaml files." % (path, DEFAULT_ASTUTE)
            )
    return files


def load_astute(path):
    """Return the deployment data in an astute.yaml file.

    Raises:
        FuelDataError: the file cannot be read, is not YAML, or is not a mapping.
    """
    try:
        with open(path, "rb") as handle:
            data = yaml.load(handle, Loader=SafeLoader)
    except OSError as error:
        raise FuelDataError(
            "%s: cannot be read: %s. Run as a user who can read it (root on a Fuel node)."
            % (path, error.strerror or error)
        ) from None
    except yaml.YAMLError as error:
        raise FuelDataError(
            "%s: is not valid YAML (%s). %s" % (path, str(error).replace("\n", " "), NOT_ASTUTE)
        ) from None
    if not isinstance(data, dict):
        raise FuelDataError("%s: holds %s, not a node's deployment data. %s" % (path, _describe(data), NOT_ASTUTE))
    return data


def deployment_info_nodes(info, source):
    """Return {uid: node data} from a Nailgun transaction's deployment_info.

    Fuel 9.0 answers {uid: node data}; 9.1 and later answer {"common": {...}, "nodes": {uid: {...}}}, where each
    node's part is merged over the common part. The master's pseudo-node is left out.

    Raises:
        FuelDataError: the answer has neither shape.
    """
    astute = Astute(info, source, "Check that nailgun_url is the Fuel master's Nailgun API.")
    if not isinstance(info, dict):
        raise astute.error([], "is %s, expected a mapping of nodes" % _describe(info))
    if "common" in info:
        common = astute.get(["common"], dict)
        nodes = {uid: _merged(common, astute.get(["nodes", uid], dict)) for uid in astute.get(["nodes"], dict)}
    else:
        nodes = {uid: astute.get([uid], dict) for uid in info}
    return {uid: data for uid, data in nodes.items() if uid != MASTER_UID}


def _merged(base, override):
    """Return C(base) with C(override) merged over it, mappings merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_mappings else value
    return merged


def parse_node(data, source, plugin_names=PLUGIN_NAMES, host_address="admin"):
    """Return the FuelNode described by one node's deployment data.

    Args:
        data: the node's deployment data (an astute.yaml, or a node of a Nailgun deployment_info).
        source: where it came from, for messages.
        plugin_names: the settings sections of the XenServer Fuel plugin to look for, first found wins.
        host_address: the network whose address becomes ansible_host: C(admin) or C(management).

    Raises:
        FuelDataError: a key is missing or malformed.
    """
    astute = Astute(data, source)
    uid = astute.get(["uid"], str)
    fqdn = astute.get(["fqdn"], str)
    roles = _roles(astute, uid)
    host_vars = dict(
        ansible_host=str(_endpoint(astute, ADDRESS_ROLES[host_address])[1].ip),
        fuel_uid=uid,
        fuel_fqdn=fqdn,
        fuel_roles=roles,
    )
    host_vars.update(_network_vars(astute))
    cluster_vars = _cluster_vars(astute)
    if cluster_vars["openstack_segmentation_type"] == "vlan":
        cluster_vars["openstack_tenant_physnet"] = _tenant_physnet(astute)
        host_vars["openstack_tenant_nic"] = _tenant_nic(astute)
    return FuelNode(
        name=fqdn.split(".")[0],
        uid=uid,
        roles=roles,
        host_vars=host_vars,
        cluster_vars=cluster_vars,
        xenserver_vars=_xenserver_vars(astute, plugin_names),
        controller_vars=dict(openstack_cloud=_openstack_cloud(astute)),
        source=source,
    )


def _roles(astute, uid):
    """Return the node's roles: C(roles) (Fuel 9.x), or for Fuel 8.0 the node's C(node_roles) in network_metadata.

    Fuel 8.0 writes one file per role with C(role) set to that role; its network_metadata entry lists them all.
    """
    if "roles" in astute.data:
        roles = astute.get(["roles"], list)
        for index in range(len(roles)):
            astute.get(["roles", index], str)
    elif "role" not in astute.data:
        raise astute.error(["roles"], "is missing (and so is role, its Fuel 8.0 form)")
    else:
        role = astute.get(["role"], str)
        nodes = astute.get(["network_metadata", "nodes"], dict)
        me = [name for name in nodes if astute.get(["network_metadata", "nodes", name, "uid"], str) == uid]
        roles = astute.get(["network_metadata", "nodes", me[0], "node_roles"], list) if me else [role]
    if not roles:
        raise astute.error(["roles"], "is empty", "Deploy the node with a role in Fuel first.")
    return list(roles)


def _endpoint(astute, network_role):
    """Return (bridge, ipaddress interface) of the endpoint that carries a Fuel network role."""
    bridge = astute.get(["network_scheme", "roles", network_role], str)
    path = ["network_scheme", "endpoints", bridge, "IP"]
    addresses = astute.get(path, (list, str))
    if not isinstance(addresses, list) or not addresses:
        raise astute.error(
            path, "is %r: the bridge of network role %s has no address" % (addresses, network_role), FIX_IN_FUEL
        )
    return bridge, _interface(astute, [*path, 0])


def _interface(astute, path):
    text = astute.get(path, str)
    try:
        if "/" not in text:
            raise ValueError(text)
        return ipaddress.ip_interface(text)
    except ValueError:
        raise astute.error(
            path, "is %r, not an address with a prefix length (like 192.168.0.5/24)" % text, FIX_IN_FUEL
        ) from None


def _network_vars(astute):
    """Return openstack_<net>_interface/_address/_cidr for management, storage, and mesh when the node has it."""
    variables = {}
    for network_role, word in NETWORKS:
        if network_role == MESH_ROLE and not _has_mesh(astute):
            continue
        bridge, interface = _endpoint(astute, network_role)
        variables["openstack_%s_interface" % word] = bridge
        variables["openstack_%s_address" % word] = str(interface.ip)
        variables["openstack_%s_cidr" % word] = str(interface.network)
    return variables


def _has_mesh(astute):
    return astute.get(["network_scheme", "roles", MESH_ROLE], str, default=None) is not None


def _cluster_vars(astute):
    """Return the variables that are the same on every node of the environment."""
    segmentation = astute.get(["quantum_settings", "L2", "segmentation_type"], str)
    if segmentation not in SEGMENTATION_TYPES:
        raise astute.error(
            ["quantum_settings", "L2", "segmentation_type"],
            "is %r, expected one of %s" % (segmentation, ", ".join(SEGMENTATION_TYPES)),
        )
    if segmentation != "vlan" and not _has_mesh(astute):
        raise astute.error(
            ["network_scheme", "roles", MESH_ROLE],
            "is missing with %s segmentation (it is the tunnel network)" % (segmentation),
        )
    variables = dict(
        ansible_python_interpreter=NODE_PYTHON,
        fuel_cluster_id=astute.get(["deployment_id"], int),
        fuel_version=str(astute.get(["fuel_version"], (str, float))),
        fuel_openstack_version=astute.get(["openstack_version"], str),
        openstack_public_vip=_address(astute, ["network_metadata", "vips", "public", "ipaddr"]),
        openstack_public_ssl=astute.get(["public_ssl", "services"], bool),
        openstack_segmentation_type=segmentation,
        openstack_options=dict(hypervisor=_hypervisor(astute)),
    )
    for option, path in OPTIONS:
        variables["openstack_options"][option] = astute.get(list(path), bool)
    return variables


def compute_vars(cluster_vars):
    """Return the variables of group compute that follow from the release: the Python nova runs with (every release
    Fuel 8.0 and 9.x deploy is on Ubuntu 14.04) and, for a release whose nova is known, the pack's plugin set."""
    variables = dict(nova_xenapi_python=NODE_PYTHON)
    plugin_set = RELEASE_PLUGIN_SETS.get(cluster_vars.get("fuel_openstack_version"))
    if plugin_set:
        variables["dom0_suppack_plugin_set"] = plugin_set
    return variables


def _hypervisor(astute):
    """Return what runs the instances: vcenter, kvm, or xenserver.

    Fuel deploys XenServer's compute VMs as libvirt computes with QEMU (the setting the XenServer plugin requires)
    and this collection switches them to XenAPI, so QEMU means XenServer here.
    """
    if astute.get(["use_vcenter"], bool):
        return "vcenter"
    return "kvm" if astute.get(["libvirt_type"], str) == "kvm" else "xenserver"


def _address(astute, path):
    text = astute.get(path, str)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise astute.error(path, "is %r, not an IP address" % text, FIX_IN_FUEL) from None


def _steps(astute, action):
    """Return the key paths of the network_scheme transformations with this action."""
    path = ["network_scheme", "transformations"]
    steps = [[*path, index] for index in range(len(astute.get(path, list)))]
    return [step for step in steps if astute.get([*step, "action"], str) == action]


def _tenant_nic(astute):
    """Return the NIC that carries the tenant VLANs: the port on the bridge that br-prv is patched to.

    That bridge is br-aux, or the bridge of an untagged network sharing the NIC (br-ex, br-fw-admin, ...).
    """
    private = astute.get(["network_scheme", "roles", "neutron/private"], str)
    peers = []
    for step in _steps(astute, "add-patch"):
        bridges = astute.get([*step, "bridges"], list)
        if private in bridges:
            peers.extend(bridge for bridge in bridges if bridge != private)
    for step in _steps(astute, "add-port") + _steps(astute, "add-bond"):
        if astute.get([*step, "bridge"], str, default=None) in peers:
            return astute.get([*step, "name"], str)
    raise astute.error(
        ["network_scheme", "transformations"],
        "has no port or bond on a bridge patched to %s, so the NIC that carries the tenant VLANs is unknown" % private,
        "Assign the Private network to a NIC of the node in Fuel and deploy again.",
    )


def _tenant_physnet(astute):
    """Return the Neutron physnet of the tenant VLANs: the one whose bridge carries network role neutron/private."""
    private = astute.get(["network_scheme", "roles", "neutron/private"], str)
    path = ["quantum_settings", "L2", "phys_nets"]
    for name in astute.get(path, dict):
        if astute.get([*path, name, "bridge"], str, default=None) == private:
            return name
    raise astute.error(path, "has no physnet on bridge %s (the tenant VLAN bridge)" % private)


def _xenserver_vars(astute, plugin_names):
    """Return the XenServer plugin's settings as role variables, or {} when no named plugin is enabled."""
    for name in plugin_names:
        if astute.get([name], dict, default=None) is None:
            continue
        if not astute.get([name, "metadata", "enabled"], bool, default=True):
            continue
        variables = dict(
            xenserver_url=HIMN_XAPI_URL,
            xenserver_username=_credential(astute, [name, "username"]),
            xenserver_password=_credential(astute, [name, "password"]),
            dom0_suppack_install=astute.get([name, "install_xapi"], bool),
        )
        # The pack's signing key (the wrapper's form; the original plugin had none): set only when given.
        for setting, variable in (
            ("signing_key", "dom0_suppack_gpg_key"),
            ("signing_gnupg_home", "dom0_suppack_gpg_home"),
        ):
            value = astute.get([name, setting], str, default="").strip()
            if value:
                variables[variable] = value
        return variables
    return {}


def _openstack_cloud(astute):
    """Return the openstacksdk settings of the cloud's admin user: what C(/root/openrc) of a Fuel controller holds.

    Keystone on the management VIP, internal endpoints (plain HTTP inside the cloud; the public SSL setting is for the
    public endpoints); the version of Keystone's API is discovered, so Fuel 8.0 (v2.0) and 9.x (v3) both work.
    """
    vip = _address(astute, ["network_metadata", "vips", "management", "ipaddr"])
    return dict(
        auth_type="password",
        auth=dict(
            auth_url="http://%s:5000/" % vip,
            username=astute.get(["access", "user"], str),
            password=astute.get(["access", "password"], str),
            project_name=astute.get(["access", "tenant"], str),
            user_domain_name="Default",
            project_domain_name="Default",
        ),
        region_name=astute.get(["region"], str, default=DEFAULT_REGION),
        interface="internal",
    )


def _credential(astute, path):
    value = astute.get(path, str)
    if not value.strip():
        raise astute.error(
            path,
            "is empty: XAPI needs the user name and password of the XenServer hosts",
            "Set it in the environment's settings in Fuel (Compute, XenServer) and deploy again.",
        )
    return value


def one_environment(nodes):
    """Return the nodes, one per uid and sorted by uid, after checking they come from one deployment of one environment.

    Fuel 8.0 writes one file per role, so a node can come more than once; its copies must agree.

    Raises:
        FuelDataError: two sources disagree on a node, on its name, or on the environment's settings.
    """
    by_uid = {}
    by_name = {}
    for node in nodes:
        _same_plugin(nodes[0], node)
        for attribute in ("cluster_vars", "xenserver_vars", "controller_vars"):
            _same_settings(nodes[0], node, attribute)
        seen = by_uid.setdefault(node.uid, node)
        if seen.name != node.name:
            raise FuelDataError(
                "%s and %s both describe node %s, as %s and as %s: they come from different deployments. "
                "Take all the files from one deployment." % (seen.source, node.source, node.uid, seen.name, node.name)
            )
        other = by_name.setdefault(node.name, node)
        if other.uid != node.uid:
            raise FuelDataError(
                "%s and %s give the host name %s to two nodes (%s and %s). Take all the files from one environment."
                % (other.source, node.source, node.name, other.uid, node.uid)
            )
    return sorted(by_uid.values(), key=lambda node: (len(node.uid), node.uid))


def _same_plugin(first, node):
    """Refuse a node without the XenServer plugin's settings beside one that has them: its data is not current."""
    if bool(first.xenserver_vars) == bool(node.xenserver_vars):
        return
    lacking, having = (node, first) if first.xenserver_vars else (first, node)
    raise FuelDataError(
        "%s: node %s has no settings of the XenServer plugin, which %s has, so its data is older than the plugin's "
        "enabling or from another environment, and nothing was run. Deploy changes in Fuel so that every node gets "
        "the plugin's settings (Fuel 8.0 rewrites the data of the nodes it deploys only), or take all the files from "
        "one deployment." % (lacking.source, lacking.name, having.source)
    )


def _same_settings(first, node, attribute):
    mine, theirs = getattr(first, attribute), getattr(node, attribute)
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            shown = "" if key in SECRET_VARS else " (%r and %r)" % (mine.get(key), theirs.get(key))
            raise FuelDataError(
                "%s and %s disagree on %s%s: they come from different environments or deployments. "
                "Take all the files from one deployment of one environment." % (first.source, node.source, key, shown)
            )
