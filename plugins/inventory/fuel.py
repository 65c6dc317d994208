# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: fuel
short_description: Nodes of a Fuel-deployed OpenStack environment, with the variables of this collection's roles
version_added: 0.1.0
description:
  - Reads the deployment data Fuel 8.0 and 9.x give each node (C(astute.yaml)), and builds groups by Fuel role and
    the host and group variables that C(playbooks/site.yml) and the roles of this collection use.
  - "The data comes from one of: the node's own C(/etc/astute.yaml) (the default); files or directories of
    astute.yaml files (for example the output of C(fuel deployment --env ID --default --dir DIR)); or the Fuel
    master's Nailgun REST API, which gives the data of the environment's last successful deployment (Fuel 9.x)."
  - "The configuration file must be named C(fuel.yml), C(fuel_inventory.yml), or end in C(.fuel.yml) (or C(.yaml)),
    and hold C(plugin: xenserver.openstack.fuel)."
  - "Groups: one per Fuel role, with C(-) replaced by C(_). A primary role is in its own group and in the group of the
    role: C(primary-controller) nodes are in C(primary_controller) and C(controller); C(compute), C(controller) and
    C(primary_controller) always exist, possibly empty."
  - "Host variables: C(ansible_host) (see O(host_address)); C(fuel_uid), C(fuel_fqdn), C(fuel_roles);
    C(openstack_management_interface), C(openstack_management_address), C(openstack_management_cidr) and the same
    three for C(storage) and, with tun or gre segmentation, C(mesh), from the network_scheme endpoints that carry
    those network roles; with VLAN segmentation C(openstack_tenant_nic), the NIC on the bridge that C(br-prv) is
    patched to (C(br-aux), or C(br-ex) / C(br-fw-admin) when the private network shares their NIC)."
  - "Variables of group C(all) (the same on every node): C(ansible_python_interpreter) (V(/usr/bin/python2.7): the
    nodes run Ubuntu 14.04, whose Python 3.4 ansible-core does not manage), C(fuel_cluster_id), C(fuel_version),
    C(fuel_openstack_version), C(openstack_public_vip), C(openstack_public_ssl) (TLS on the public endpoints),
    C(openstack_segmentation_type) (C(vlan), C(tun) or C(gre)), C(openstack_tenant_physnet) (VLAN only: the physnet on
    C(br-prv)), and C(openstack_options), the environment's choices that the collection's preflight checks:
    C(hypervisor) (C(vcenter) when vCenter is used, C(kvm) for libvirt with KVM, otherwise C(xenserver): Fuel deploys
    XenServer's compute VMs as QEMU computes), and the booleans C(volumes_ceph), C(ephemeral_ceph), C(images_ceph),
    C(objects_ceph), C(sahara), C(murano), C(mongo) (an external MongoDB), C(ironic) and C(ceilometer)."
  - "Variables of group C(compute): C(nova_xenapi_python) (V(/usr/bin/python2.7), the Python of Liberty's and
    Mitaka's nova); on release V(mitaka-9.0) (Fuel 9.x) C(dom0_suppack_plugin_set) V(nova-13), the Dom0 plugins of
    Mitaka's nova and neutron; from the settings of the XenServer Fuel plugin (see O(plugin_names)):
    C(xenserver_url) (V(http://169.254.0.1), Dom0 over the HIMN), C(xenserver_username), C(dom0_suppack_install)
    (the form's C(Install Nova Plugins) switch), C(dom0_suppack_gpg_key) and C(dom0_suppack_gpg_home) (the form's
    pack signing key and its GnuPG home, when given), and with O(include_secrets) C(xenserver_password). Without the
    plugin's settings they are not set, and C(group_vars/compute.yml) must give them."
  - "Variables of group C(controller): C(openstack_cloud), the openstacksdk connection settings of the environment's
    admin user (C(access) in Fuel's data) through Keystone on the management VIP, internal endpoints, as C(/root/openrc)
    of a Fuel controller has them - its C(auth.password) only with O(include_secrets). C(playbooks/site.yml) gives it
    to the C(guest_images) role, with C(openstack_admin_password) as the password when that variable is set."
  - Group variables can be overridden in C(group_vars/) files next to the configuration file.
  - A missing or malformed key stops the inventory with one error that names the file (or Nailgun URL and node), the
    key path, the problem and the fix.
  - Values are never templated, and the plugin never shows the XenServer or OpenStack password in a message.
  - "The passwords are not inventory variables unless O(include_secrets) asks for them: C(ansible-inventory --list)
    and an AWX inventory sync would show and store them. Give C(xenserver_password) and C(openstack_admin_password)
    from a vault (C(group_vars/compute/vault.yml), C(group_vars/controller/vault.yml)) or from AWX credentials
    instead; the collection's docs/fuel.md shows both."
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin. Set it to V(xenserver.openstack.fuel) for the plugin to use the file.
    type: str
    required: true
    choices: [xenserver.openstack.fuel]
  astute:
    description:
      - Files, or directories of C(.yaml) / C(.yml) files, each holding one node's deployment data.
      - Relative paths are relative to the directory of the configuration file.
      - Fuel 8.0 writes one file per role of a node; the copies of a node are merged.
      - The files must come from one deployment of one environment.
      - If neither this nor O(nailgun_url) is set, V(/etc/astute.yaml) is read.
    type: list
    elements: path
    env:
      - name: FUEL_ASTUTE_YAML
  nailgun_url:
    description:
      - URL of the Fuel master's Nailgun API, for example V(https://10.20.0.2:8443) (Fuel 9.x serves it over TLS
        there) or V(http://10.20.0.2:8000). Over plain http the password and the token cross the network in clear;
        the plugin warns then.
      - When set, the inventory is the environment's last successful deployment (Fuel 9.x), restricted to the nodes
        still in the environment and not being deleted. Fuel 8.0 masters have no record of deployments; use
        O(astute) with the files of C(fuel deployment --env ID --default --dir DIR) there.
      - Mutually exclusive with O(astute).
    type: str
    env:
      - name: FUEL_NAILGUN_URL
  keystone_url:
    description:
      - URL of the Fuel master's Keystone v2.0 API, used when Nailgun asks for a token.
      - If not set, Keystone is reached through Nailgun's proxy, at O(nailgun_url) followed by C(/keystone/v2.0).
    type: str
  nailgun_username:
    description: User name on the Fuel master.
    type: str
    default: admin
    env:
      - name: FUEL_NAILGUN_USERNAME
  nailgun_password:
    description:
      - Password on the Fuel master. Needed when Nailgun asks for a token, which it does unless authentication is
        turned off on the master.
      - Keep it in the environment variable or a vault rather than in the configuration file.
    type: str
    env:
      - name: FUEL_NAILGUN_PASSWORD
  nailgun_tenant:
    description: Keystone tenant of O(nailgun_username) on the Fuel master.
    type: str
    default: admin
    env:
      - name: FUEL_NAILGUN_TENANT
  cluster_id:
    description:
      - Id of the Fuel environment (Nailgun's cluster) to read from the API.
      - Needed only when the master has more than one environment.
    type: int
    env:
      - name: FUEL_CLUSTER_ID
  include_secrets:
    description:
      - Whether the inventory sets the XenServer hosts' password (C(xenserver_password)) and the cloud admin's
        password (in C(openstack_cloud)) from Fuel's data.
      - Off, the inventory holds neither; give them from a vault or AWX credentials (see the description).
      - The collection's Fuel plugin wrapper turns it on in the inventory it runs on each node, for that node alone,
        whose C(/etc/astute.yaml) (readable by root only) holds the passwords anyway.
    type: bool
    default: false
    env:
      - name: FUEL_INVENTORY_INCLUDE_SECRETS
  validate_certs:
    description: Whether to verify the TLS certificate of an C(https://) O(nailgun_url) or O(keystone_url).
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each answer of the Fuel master.
    type: int
    default: 30
  plugin_names:
    description:
      - Settings sections of the XenServer Fuel plugin to read the XenServer credentials and install switch from, in
        order; the first one present and enabled is used.
      - V(xenserver-openstack) is the wrapper this collection ships; V(fuel-plugin-xenserver) is the original plugin,
        so environments deployed with it can be managed with this collection.
    type: list
    elements: str
    default: [xenserver-openstack, fuel-plugin-xenserver]
  xenapi_package:
    description:
      - A XenAPI wheel or sdist on this controller for the compute VMs, whose Python (Ubuntu 14.04's
        V(/usr/bin/python2.7)) has no XenAPI; group C(compute) gets its absolute path as C(himn_network_xenapi_package),
        which the role xenserver.openstack.himn_network copies to each compute and installs offline during the HIMN
        bootstrap.
      - Relative paths are relative to the directory of the configuration file. The Fuel plugin's C(controller/)
        carries the XenAPI 2.14 wheel, and its C(fuel.yml) names it.
      - Not set, the role installs XenAPI by name from a package index, which the computes must reach then.
    type: str
    version_added: 0.2.0
  host_address:
    description:
      - The network whose address of each node becomes C(ansible_host).
      - V(admin) is Fuel's admin (PXE) network, which the Fuel master and every node reach; V(management) is the
        OpenStack management network.
    type: str
    choices: [admin, management]
    default: admin
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
# Three inventory files, one YAML document each.

# fuel_inventory.yml on a Fuel node: the node itself, from /etc/astute.yaml
plugin: xenserver.openstack.fuel

# my-cloud.fuel.yml on any machine: the files of 'fuel deployment --env 3 --default --dir astute/'
# plugin: xenserver.openstack.fuel
# astute:
#   - astute/
# host_address: management

# fuel_inventory.yml on the Fuel master: its Nailgun API, with the password from FUEL_NAILGUN_PASSWORD
# plugin: xenserver.openstack.fuel
# nailgun_url: http://10.20.0.2:8000
# cluster_id: 3
# keyed_groups:
#   - key: fuel_roles
#     prefix: fuel_role
"""

import json
import os
from urllib.error import HTTPError

from ansible.errors import AnsibleParserError
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.utils.vars import combine_vars
from ansible_collections.xenserver.openstack.plugins.plugin_utils._fuel import (
    DEFAULT_ASTUTE,
    FuelDataError,
    compute_vars,
    deployment_info_nodes,
    one_environment,
    parse_node,
    read_astute_files,
    without_secrets,
)

CONFIG_NAMES = ("fuel.yml", "fuel.yaml", "fuel_inventory.yml", "fuel_inventory.yaml")
CONFIG_SUFFIXES = (".fuel.yml", ".fuel.yaml")
STANDARD_GROUPS = ("compute", "controller", "primary_controller")
PRIMARY_PREFIX = "primary-"


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "xenserver.openstack.fuel"

    def verify_file(self, path):
        name = os.path.basename(path)
        return super().verify_file(path) and (name in CONFIG_NAMES or name.endswith(CONFIG_SUFFIXES))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self._config_dir = os.path.dirname(os.path.abspath(path))
        try:
            nodes = one_environment(
                self._nodes_from_nailgun() if self.get_option("nailgun_url") else self._nodes_from_files(path)
            )
        except FuelDataError as error:
            raise AnsibleParserError(str(error)) from None
        self._populate(nodes)

    def _nodes_from_files(self, config_path):
        base = os.path.dirname(os.path.abspath(config_path))
        paths = [os.path.join(base, path) for path in self.get_option("astute") or [DEFAULT_ASTUTE]]
        return [self._parse_node(data, path) for path, data in read_astute_files(paths)]

    def _nodes_from_nailgun(self):
        if self.get_option("astute"):
            raise FuelDataError(
                "Both astute (or FUEL_ASTUTE_YAML) and nailgun_url are set: set astute to read files, or nailgun_url "
                "to read the Fuel master."
            )
        nailgun = Nailgun(
            self.get_option("nailgun_url"),
            keystone_url=self.get_option("keystone_url"),
            username=self.get_option("nailgun_username"),
            password=self.get_option("nailgun_password"),
            tenant=self.get_option("nailgun_tenant"),
            validate_certs=self.get_option("validate_certs"),
            timeout=self.get_option("timeout"),
            warn=self.display.warning,
        )
        nailgun.login()
        cluster_id = nailgun.cluster_id(self.get_option("cluster_id"))
        current = nailgun.current_nodes(cluster_id)
        url, info = nailgun.last_deployment_info(cluster_id)
        deployed = deployment_info_nodes(info, url)
        for uid in sorted(set(current) - set(deployed), key=int):
            self.display.warning(
                "Fuel node %s (%s) of environment %s is not in its last deployment, so not in the inventory: deploy "
                "the environment to add it." % (uid, current[uid], cluster_id)
            )
        return [self._parse_node(data, "%s, node %s" % (url, uid)) for uid, data in deployed.items() if uid in current]

    def _parse_node(self, data, source):
        return parse_node(data, source, self.get_option("plugin_names"), self.get_option("host_address"))

    def _populate(self, nodes):
        for group in STANDARD_GROUPS:
            self.inventory.add_group(group)
        if nodes:
            secrets = self.get_option("include_secrets")
            for variable, value in nodes[0].cluster_vars.items():
                self.inventory.set_variable("all", variable, value)
            compute = dict(compute_vars(nodes[0].cluster_vars), **nodes[0].xenserver_vars)
            if self.get_option("xenapi_package"):
                package = os.path.join(self._config_dir, os.path.expanduser(self.get_option("xenapi_package")))
                compute["himn_network_xenapi_package"] = os.path.normpath(package)
            for group, variables in (("compute", compute), ("controller", nodes[0].controller_vars)):
                for variable, value in (variables if secrets else without_secrets(variables)).items():
                    self.inventory.set_variable(group, variable, value)
        for node in nodes:
            self._add_node(node)

    def _add_node(self, node):
        self.inventory.add_host(node.name)
        for group in self._groups(node.roles):
            self.inventory.add_group(group)
            self.inventory.add_child(group, node.name)
        for variable, value in node.host_vars.items():
            self.inventory.set_variable(node.name, variable, value)
        host_vars = combine_vars(node.cluster_vars, node.host_vars)
        strict = self.get_option("strict")
        self._set_composite_vars(self.get_option("compose"), host_vars, node.name, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), host_vars, node.name, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), host_vars, node.name, strict=strict)

    def _groups(self, roles):
        """Return the groups of a node with these Fuel roles: one per role, primary roles also in the plain role's."""
        groups = []
        for role in roles:
            groups.append(role)
            if role.startswith(PRIMARY_PREFIX):
                groups.append(role[len(PRIMARY_PREFIX) :])
        return [self._sanitize_group_name(group) for group in groups]


class Nailgun:
    """The Nailgun API calls the inventory makes, with a Keystone v2.0 token when the master asks for one.

    Every failure is a FuelDataError naming the URL, the problem and the fix; the password is never shown.
    """

    def __init__(self, url, *, keystone_url, username, password, tenant, validate_certs, timeout, warn=None):
        self.url = url.rstrip("/")
        self.warn = warn
        self.keystone_url = (keystone_url or self.url + "/keystone/v2.0").rstrip("/")
        self.username = username
        self.password = password
        self.tenant = tenant
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}

    def login(self):
        """Get a token when Nailgun's version document says authentication is required."""
        version = self.get("/api/v1/version", dict)
        if not version.get("auth_required", True):
            return
        if not self.password:
            raise FuelDataError(
                "Nailgun at %s needs a login and no password is set: set nailgun_password or FUEL_NAILGUN_PASSWORD."
                % self.url
            )
        url = self.keystone_url + "/tokens"
        for option, where in (("nailgun_url", self.url), ("keystone_url", self.keystone_url)):
            if where.startswith("http://") and self.warn is not None:
                self.warn(
                    "%s %s is plain http: the Fuel master's password and token cross the network in clear. Use "
                    "https (Fuel 9.x serves Nailgun at https://MASTER:8443) where the network is not trusted."
                    % (option, where)
                )
                break
        body = {
            "auth": {
                "tenantName": self.tenant,
                "passwordCredentials": {"username": self.username, "password": self.password},
            }
        }
        answer = self._request(url, json.dumps(body), {"Content-Type": "application/json"}, dict)
        try:
            token = answer["access"]["token"]["id"]
        except (KeyError, TypeError):
            token = None
        if not isinstance(token, str):
            raise FuelDataError("%s answered without access.token.id: is keystone_url a Keystone v2.0 API?" % url)
        self.headers["X-Auth-Token"] = token

    def cluster_id(self, wanted):
        """Return the id of the environment to read: C(wanted), or the only one the master has."""
        clusters = [cluster for cluster in self.get("/api/v1/clusters", list) if isinstance(cluster, dict)]
        ids = [cluster.get("id") for cluster in clusters]
        known = ", ".join("%s (%s)" % (cluster.get("id"), cluster.get("name")) for cluster in clusters) or "none"
        if wanted is None and len(ids) == 1:
            return ids[0]
        if wanted is not None and wanted in ids:
            return wanted
        problem = "has no environment %s" % wanted if wanted is not None else "has %d environments" % len(ids)
        raise FuelDataError(
            "The Fuel master at %s %s; its environments: %s. Set cluster_id to one of them."
            % (self.url, problem, known)
        )

    def current_nodes(self, cluster_id):
        """Return {uid: host name} of the environment's nodes that are not being deleted."""
        path = "/api/v1/nodes?cluster_id=%d" % cluster_id
        nodes = {}
        for node in self.get(path, list):
            if not isinstance(node, dict) or "id" not in node:
                raise FuelDataError("%s%s answered a node without an id: is it Nailgun?" % (self.url, path))
            if not node.get("pending_deletion"):
                nodes[str(node["id"])] = node.get("hostname", "node-%s" % node["id"])
        return nodes

    def last_deployment_info(self, cluster_id):
        """Return (URL, answer) of the deployment_info of the environment's newest successful deployment."""
        path = "/api/v1/transactions?cluster_id=%d" % cluster_id
        done = [
            t["id"]
            for t in self.get(path, list, missing="has no deployment records (Fuel 8.0 or older)")
            if isinstance(t, dict) and t.get("name") == "deployment" and t.get("status") == "ready"
        ]
        if not done:
            raise FuelDataError(
                "Fuel environment %s at %s has no successful deployment: deploy it first, or use astute with the "
                "files of 'fuel deployment --env %s --default --dir DIR'." % (cluster_id, self.url, cluster_id)
            )
        path = "/api/v1/transactions/%s/deployment_info" % max(done)
        return self.url + path, self.get(path, dict)

    def get(self, path, kind, missing="does not exist"):
        """Return the JSON answer to a GET of C(path), which must be of type C(kind)."""
        return self._request(self.url + path, None, self.headers, kind, missing)

    def _request(self, url, data, headers, kind, missing="does not exist"):
        try:
            response = open_url(
                url,
                data=data,
                headers=headers,
                validate_certs=self.validate_certs,
                timeout=self.timeout,
                use_netrc=False,
            )
            answer = json.loads(response.read())
        except HTTPError as error:
            raise FuelDataError(self._http_problem(url, error.code, missing)) from None
        except (OSError, UrlsConnectionError) as error:
            reason = getattr(error, "reason", None) or error
            raise FuelDataError(
                "Cannot reach the Fuel master at %s: %s. Check nailgun_url (Nailgun listens on port 8000, or 8443 "
                "with TLS) and that this machine reaches the master." % (url, reason)
            ) from None
        except ValueError:
            raise FuelDataError("%s did not answer JSON: is nailgun_url the Fuel master's Nailgun API?" % url) from None
        if not isinstance(answer, kind):
            raise FuelDataError(
                "%s answered %s, expected a %s: is it Nailgun?" % (url, type(answer).__name__, kind.__name__)
            )
        return answer

    def _http_problem(self, url, code, missing):
        if code == 401 and url.startswith(self.keystone_url):
            return (
                "Keystone at %s refused user %s of tenant %s: check nailgun_username, nailgun_password and "
                "nailgun_tenant." % (self.keystone_url, self.username, self.tenant)
            )
        if code in (401, 403):
            return "Nailgun refused %s (HTTP %d): the user %s may not read it." % (url, code, self.username)
        if 300 <= code < 400:
            return (
                "The Fuel master redirects %s (HTTP %d): set nailgun_url to the address it redirects to "
                "(https://MASTER:8443 when it forces TLS)." % (url, code)
            )
        if code == 404:
            return "%s %s (HTTP 404). Check nailgun_url and that the master runs Fuel 9.x." % (url, missing)
        return "The Fuel master answered HTTP %d to %s. Check the master's Nailgun service." % (code, url)
