#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: xen_route
short_description: Route networks from Dom0 through the compute VM over the HIMN, persistently
version_added: 0.1.0
description:
  - Makes Dom0 of the host a compute VM runs on route the given networks via the compute VM's address on the
    Host Internal Management Network (HIMN), so that Dom0 plugins reach the OpenStack management and storage
    networks. The compute VM forwards and masquerades that traffic (see M(xenserver.openstack.himn_nat)).
  - Works only through XenAPI; the routes are set by the collection's Dom0 plugin, which keeps them across
    Dom0 reboots and the HIMN bridge coming up late. Install the plugin first (role
    C(xenserver.openstack.dom0_suppack)).
  - The plugin changes only routes it made. A route it made to the same network with another gateway is replaced;
    any other route to that network (through the HIMN or another Dom0 interface) is never touched, and the module
    fails instead. O(state=absent) removes only the routes the plugin made and saved.
  - All the routes of a run are set and saved, or none (on a failure the plugin takes back what it had set).
extends_documentation_fragment:
  - xenserver.openstack.xenapi
  - xenserver.openstack.xenapi.dom0_plugin
  - xenserver.openstack.xenapi.xapi_pending
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  networks:
    description:
      - IPv4 networks in CIDR form (dotted decimal), host bits zero.
      - With O(state=present) the Dom0 plugin refuses networks wider than /8 (a default route, or its halves
        0.0.0.0/1 and 128.0.0.0/1, would send all of Dom0's traffic to the compute VM), networks that overlap the
        HIMN (169.254.0.0/16), a network Dom0 is on, loopback, multicast or 0.0.0.0/8.
    type: list
    elements: str
    required: true
  gateway:
    description:
      - Address Dom0 sends the traffic to, on the HIMN (not Dom0's own 169.254.0.1, nor the HIMN's network or
        broadcast address).
      - Defaults to the compute VM's HIMN address, as XAPI recorded it from its DHCP lease.
      - Ignored when O(state=absent).
    type: str
  vm_uuid:
    description:
      - UUID of the compute VM. Its host is the Dom0 that gets the routes, and its HIMN address is the default
        O(gateway).
      - If not set, the UUID in C(/sys/hypervisor/uuid) is used, which is right when the module runs on the
        compute VM.
    type: str
  state:
    description:
      - V(present) routes the networks; V(absent) removes the routes this module made to them (others stay).
    type: str
    choices: [present, absent]
    default: present
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Let Dom0 reach the management and storage networks through this compute VM
  xenserver.openstack.xen_route:
    password: "{{ xenserver_password }}"
    networks:
      - 192.168.0.0/24
      - 192.168.1.0/24

- name: Remove those routes again
  xenserver.openstack.xen_route:
    password: "{{ xenserver_password }}"
    networks:
      - 192.168.0.0/24
      - 192.168.1.0/24
    state: absent
"""

RETURN = r"""
routes:
  description: The routes to the given networks after the run (what they would be, in check mode).
  returned: success
  type: dict
  sample: {"192.168.0.0/24": {"gateway": "169.254.0.2", "device": "xenapi"}}
gateway:
  description: The gateway used on the HIMN (O(state=present) only).
  returned: when O(state=present)
  type: str
  sample: 169.254.0.2
boot:
  description:
    - What changes in how Dom0 restores the routes at boot (the saved routes, or an older pack's udev rule that is
      rewritten), when that changes; with identical routes before and after, the diff says it too.
  returned: when it changes
  type: str
  sample: "the udev rule that replays the routes at boot is an older pack's: it is rewritten"
  version_added: 0.2.0
host:
  description: UUID of the host whose Dom0 has the routes.
  returned: success
  type: str
  sample: 4a1c9e0e-5a51-4a3c-8d4e-3b6c1f0b2a01
predicted:
  description:
    - True when the result is a prediction (check mode with O(plugin_pending), the Dom0 plugin not installed yet,
      or with O(xapi_pending), XAPI not reachable yet); every route counts as new, as the plugin has made none.
  returned: when predicted
  type: bool
  sample: true
not_checked:
  description: What the Dom0 plugin (or XAPI) would have checked, which a prediction could not.
  returned: when predicted
  type: list
  elements: str
  sample: ["the Dom0 routes already in place to these networks (a route the plugin did not make is refused)"]
"""

from ansible_collections.xenserver.openstack.plugins.module_utils._ipv4 import IPv4Address, IPv4Network
from ansible_collections.xenserver.openstack.plugins.module_utils._platform import missing_himn_vif_message
from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import (
    DOM0_PLUGIN_SPEC,
    HIMN_BRIDGE,
    XAPI_PENDING_SPEC,
    ModuleError,
    PluginPending,
    XenAPIModule,
    find_himn,
    find_vm,
    himn_vif,
    read_local_vm_uuid,
    resident_host,
)


def check_networks(values):
    """Return the networks in canonical CIDR form, or raise one error naming each bad entry and the fix."""
    problems, networks = [], []
    for index, value in enumerate(values):
        try:
            networks.append(str(IPv4Network(value, strict=True)))
        except ValueError as error:
            if "host bits set" in str(error):
                problems.append(
                    "networks[%d] '%s' has host bits set: the network is %s"
                    % (index, value, IPv4Network(value, strict=False))
                )
            else:
                problems.append("networks[%d] '%s' is not an IPv4 network in CIDR form (%s)" % (index, value, error))
    if problems:
        raise ModuleError("; ".join(problems) + ". Nothing was changed.")
    return networks


def route_lines(routes):
    return "".join(
        "%s via %s dev %s\n" % (network, route["gateway"], route["device"])
        for network, route in sorted(routes.items())
        if route
    )


class XenRouteModule(XenAPIModule):
    argument_spec = dict(
        networks=dict(type="list", elements="str", required=True),
        gateway=dict(type="str"),
        vm_uuid=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    argument_spec.update(DOM0_PLUGIN_SPEC, **XAPI_PENDING_SPEC)
    module_kwargs = dict(supports_check_mode=True)

    def check_params(self):
        self.networks = check_networks(self.params["networks"])
        gateway = self.params["gateway"]
        if gateway is not None:
            try:
                IPv4Address(gateway)
            except ValueError:
                raise ModuleError("gateway '%s' is not an IPv4 address." % gateway)
        self.vm_uuid = self.params["vm_uuid"] or read_local_vm_uuid()
        if not self.vm_uuid:
            raise ModuleError(
                "Cannot tell which compute VM (and so which Dom0) to route through: "
                "set vm_uuid, or run the module on the compute VM."
            )

    def run(self):
        vm_ref, vm = find_vm(self.xapi, self.vm_uuid, self.url)
        host_ref = resident_host(vm)
        result = dict(host=self.xapi.host.get_uuid(host_ref))
        if self.params["state"] == "present":
            gateway = self.params["gateway"] or self._himn_address(vm_ref, vm)
            routes = [dict(network=network, gateway=gateway) for network in self.networks]
            result["gateway"] = gateway
            try:
                answer = self.call_dom0_plugin(host_ref, "route_ensure", dict(routes=routes, check=self.check_mode))
            except PluginPending as pending:
                return self._predicted(result, gateway, pending)
        else:
            answer = self.call_dom0_plugin(
                host_ref, "route_remove", dict(networks=self.networks, check=self.check_mode)
            )
        before, after = route_lines(answer["before"]), route_lines(answer["after"])
        boot = answer.get("boot", "") if answer["changed"] else ""  # an older pack's plugin does not say
        if boot and before == after:
            after += "# at boot: %s\n" % boot  # no route changes: the diff says what does
        result.update(changed=answer["changed"], routes=answer["after"], diff=dict(before=before, after=after))
        if boot:
            result["boot"] = boot
        return result

    def _predicted(self, result, gateway, pending, not_checked=()):
        """Check mode before the plugin is installed: Dom0 has none of the plugin's routes yet, so all are new."""
        after = dict((network, dict(gateway=gateway, device=HIMN_BRIDGE)) for network in self.networks)
        result.update(
            changed=True,
            routes=after,
            diff=dict(before="", after=route_lines(after), before_header="Dom0 routes (before the Dom0 plugin)"),
        )
        return self.predicted(
            result,
            ["the Dom0 routes already in place to these networks (a route the plugin did not make is refused)"]
            + list(not_checked),
            pending,
        )

    def run_pending(self, pending):
        """Check mode before XAPI is reachable (a fresh VM): the routes would be new, through the HIMN address that
        the VM is about to lease, unless the gateway is given."""
        result = dict(host="")
        if self.params["state"] == "absent":
            result.update(changed=False, routes={})
            return self.predicted(result, ["the Dom0 routes to remove"], pending)
        gateway = result["gateway"] = self.params["gateway"] or "<HIMN address of this VM>"
        vif = "the VM, its host and its HIMN VIF" + ("" if self.params["gateway"] else ", whose address is the gateway")
        return self._predicted(result, gateway, pending, [vif])

    def _himn_address(self, vm_ref, vm):
        himn_ref, himn = find_himn(self.xapi)
        vif_ref, _vif = himn_vif(self.xapi, vm_ref, himn_ref) if himn_ref else (None, {})
        if not vif_ref:
            raise ModuleError(missing_himn_vif_message(vm["name_label"]))
        address = himn["assigned_ips"].get(vif_ref)
        if not address:
            raise ModuleError(
                "VM %s has a VIF on the HIMN (bridge %s) but XAPI recorded no address for it: bring its interface up "
                "by DHCP (role xenserver.openstack.himn_network does), or give gateway."
                % (vm["name_label"], HIMN_BRIDGE)
            )
        return address


def main():
    XenRouteModule()()


if __name__ == "__main__":
    main()
