#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: himn_info
short_description: Find the compute VM's interface on the Host Internal Management Network (HIMN)
version_added: 0.1.0
description:
  - Runs on the compute VM and finds which of its network interfaces is on the HIMN, the host-only network on
    which Dom0 is always C(169.254.0.1).
  - Tries, in this order, and says which one found it.
  - C(xenapi) - the VM's record in XAPI, its VIF on the network marked
    C(is_host_internal_management_network), that VIF's MAC, and the local interface with that MAC.
    Needs O(password) and a reachable XAPI; skipped otherwise.
  - C(xenstore) - the MAC in the VM's xenstore key C(vm-data/himn_mac) (needs xe-guest-utilities).
  - C(address) - an interface holding an IPv4 address whose network contains O(dom0_address).
  - When XAPI answers and the VM has no VIF on the HIMN, the module fails with the fix instead of guessing.
  - Also returns the VM's interfaces and the IPv4 networks on them, which the role xenserver.openstack.himn_network
    forwards and routes, and how the VM configures its network at boot, so that the role needs no fact gathering.
extends_documentation_fragment:
  - xenserver.openstack.xenapi
  - xenserver.openstack.attributes.info_module
options:
  vm_uuid:
    description:
      - UUID of this VM in XAPI. If not set, the UUID in C(/sys/hypervisor/uuid) is used.
    type: str
  dom0_address:
    description:
      - Dom0's address on the HIMN.
    type: str
    default: 169.254.0.1
  xenstore_read:
    description:
      - The C(xenstore-read) command of xe-guest-utilities.
    type: path
    default: xenstore-read
notes:
  - Unlike the C(xen_*) modules, O(password) is optional here, and an unreachable XAPI is not an error.
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Find the HIMN interface
  xenserver.openstack.himn_info:
    password: "{{ xenserver_password }}"

- name: Find it without XenAPI (xenstore, then addresses)
  xenserver.openstack.himn_info:
"""

RETURN = r"""
interface:
  description: Name of the interface on the HIMN.
  returned: success
  type: str
  sample: eth2
mac:
  description: Its MAC address, lower case.
  returned: success
  type: str
  sample: 02:58:53:02:00:01
address:
  description: Its IPv4 address on the HIMN, or an empty string when it has none yet.
  returned: success
  type: str
  sample: 169.254.0.2
prefix:
  description: Prefix length of RV(address), or 0 when it has none.
  returned: success
  type: int
  sample: 16
found_by:
  description: Which way found the interface.
  returned: success
  type: str
  sample: xenapi
interfaces:
  description: Every network interface of this VM (so that a play can check names without gathering facts).
  returned: success
  type: list
  elements: str
  sample: [br-mgmt, br-storage, eth0, eth1, eth2, lo]
networks:
  description:
    - The IPv4 networks of this VM's interfaces that have an address, by interface, in the order C(ip) lists the
      addresses (the primary address first).
  returned: success
  type: dict
  sample: {"br-mgmt": ["192.168.0.0/24"], "eth2": ["169.254.0.0/16"], "lo": ["127.0.0.0/8"]}
network_config:
  description:
    - How this VM configures its network at boot - C(netplan) when C(/etc/netplan) is a directory, C(ifupdown)
      otherwise.
  returned: success
  type: str
  choices: [netplan, ifupdown]
  sample: netplan
xapi_unreachable:
  description: Why XenAPI was not used, when it was not.
  returned: when XenAPI could not be used
  type: str
  sample: "No XAPI password given."
"""

import os

from ansible_collections.xenserver.openstack.plugins.module_utils._compat import OS_ERRORS
from ansible_collections.xenserver.openstack.plugins.module_utils._ipv4 import IPv4Address, IPv4Interface
from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import (
    ModuleError,
    XenAPIModule,
    find_himn,
    find_vm,
    himn_vif,
    missing_himn_vif_message,
    read_local_vm_uuid,
)

SYS_NET = "/sys/class/net"
NETPLAN_DIR = "/etc/netplan"


def local_macs(sys_net=SYS_NET):
    """Return {mac: interface} of this machine's interfaces (lower-case MACs)."""
    macs = {}
    for name in sorted(os.listdir(sys_net)):
        try:
            with open(os.path.join(sys_net, name, "address")) as handle:
                macs.setdefault(handle.read().strip().lower(), name)
        except OS_ERRORS:
            continue
    return macs


def network_config():
    """Return how this machine configures its network at boot: netplan or ifupdown."""
    return "netplan" if os.path.isdir(NETPLAN_DIR) else "ifupdown"


def local_interfaces(sys_net=SYS_NET):
    """Return the names of this machine's network interfaces."""
    return sorted(os.listdir(sys_net))


def parse_addresses(ip_output):
    """Parse C(ip -4 -o addr show) into a list of (interface, IPv4Interface)."""
    found = []
    for line in ip_output.splitlines():
        words = line.split()
        if len(words) >= 4 and words[2] == "inet":
            found.append((words[1].split("@")[0], IPv4Interface(words[3])))
    return found


class HimnInfoModule(XenAPIModule):
    argument_spec = dict(
        vm_uuid=dict(type="str"),
        dom0_address=dict(type="str", default="169.254.0.1"),
        xenstore_read=dict(type="path", default="xenstore-read"),
    )
    module_kwargs = dict(supports_check_mode=True)
    xenapi_optional = True

    def check_params(self):
        try:
            self.dom0 = IPv4Address(self.params["dom0_address"])
        except ValueError:
            raise ModuleError("dom0_address '%s' is not an IPv4 address." % self.params["dom0_address"])

    def run(self):
        rc, out, err = self.ansible.run_command(["ip", "-4", "-o", "addr", "show"], environ_update={"LANG": "C"})
        if rc != 0:
            raise ModuleError("Cannot list this machine's addresses with 'ip -4 -o addr show': %s" % err.strip())
        self.addresses = parse_addresses(out)
        self.macs = local_macs()
        for found_by, finder in (("xenapi", self._by_xenapi), ("xenstore", self._by_xenstore)):
            mac = finder()
            if mac:
                return self._result(found_by, mac, self._interface_with(mac, found_by))
        for interface, address in self.addresses:
            if self.dom0 in address.network and address.ip != self.dom0:
                mac = next((m for m, name in self.macs.items() if name == interface), "")
                return self._result("address", mac, interface)
        raise ModuleError(
            "No interface of this VM is on the HIMN: XenAPI was not usable (%s), xenstore has no vm-data/himn_mac, "
            "and no interface has an address in a network with %s. %s"
            % (self.xapi_unreachable or "no VM UUID", self.dom0, missing_himn_vif_message("this VM"))
        )

    def _by_xenapi(self):
        uuid = self.params["vm_uuid"] or read_local_vm_uuid()
        if self.xapi is None or not uuid:
            return None
        vm_ref, vm = find_vm(self.xapi, uuid, self.url)
        himn_ref, _himn = find_himn(self.xapi)
        _vif_ref, vif = himn_vif(self.xapi, vm_ref, himn_ref) if himn_ref else (None, {})
        if not vif:
            raise ModuleError(missing_himn_vif_message(vm["name_label"]))
        return vif["MAC"].lower()

    def _by_xenstore(self):
        command = self.ansible.get_bin_path(self.params["xenstore_read"])
        if not command:
            return None
        rc, out, _err = self.ansible.run_command([command, "vm-data/himn_mac"])
        return out.strip().lower() if rc == 0 and out.strip() else None

    def _interface_with(self, mac, found_by):
        if mac not in self.macs:
            raise ModuleError(
                "The HIMN VIF's MAC %s (from %s) is on no interface of this VM: the VIF is not plugged. "
                "Restart the VM, or plug the VIF in XAPI (xe vif-plug)." % (mac, found_by)
            )
        return self.macs[mac]

    def _result(self, found_by, mac, interface):
        address = next((a for name, a in self.addresses if name == interface and self.dom0 in a.network), None)
        result = dict(
            changed=False,
            interface=interface,
            mac=mac,
            address=str(address.ip) if address else "",
            prefix=address.network.prefixlen if address else 0,
            found_by=found_by,
            interfaces=local_interfaces(),
            networks={},
            network_config=network_config(),
        )
        for name, address in self.addresses:
            result["networks"].setdefault(name, []).append(str(address.network))
        if self.xapi_unreachable:
            result["xapi_unreachable"] = self.xapi_unreachable
        return result


def main():
    HimnInfoModule()()


if __name__ == "__main__":
    main()
