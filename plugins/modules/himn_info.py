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
  - C(dhcp) - with O(dhcp_probe), a DHCP request on each interface that has no IPv4 address (Ethernet, not a
    bridge, bond, VLAN or bridge port); the one that xapi's DHCP server answers with an address in O(dom0_address)'s
    network is the HIMN interface. This is how a fresh VM without guest tools finds it, as the XenServer Fuel plugin
    did. The DHCP client only records the offer, through a script of the module's own, so no address, route or DNS
    server is set and no other interface is touched; an interface that was down is set down again after its probe.
    The probe therefore also runs in check mode.
  - When XAPI answers and the VM has no VIF on the HIMN, the module fails with the fix instead of guessing.
  - Also returns the VM's interfaces and the IPv4 networks on them, which the role xenserver.openstack.himn_network
    forwards and routes, and how the VM configures its network at boot, so that the role needs no fact gathering.
  - Also returns the Python that runs the module and whether the XenAPI library imports in it (RV(python)), which the
    role installs there when it does not. The module itself runs without XenAPI, finding the interface without XAPI.
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
  use_xenapi:
    description:
      - Whether to ask XAPI. V(false) finds the interface from inside the VM only (xenstore, addresses, DHCP), as
        before the HIMN has its address; a VM with a default route of its own would otherwise send the XAPI login
        to 169.254.0.1 through its gateway and wait for it to time out.
    type: bool
    default: true
    version_added: 0.2.0
  dhcp_probe:
    description:
      - When XenAPI, xenstore and the addresses do not find the HIMN interface, probe the interfaces without an
        IPv4 address with DHCP (the C(dhcp) way above). Needs C(dhclient) (isc-dhcp-client) or busybox's
        C(udhcpc), and root.
    type: bool
    default: false
    version_added: 0.2.0
  dhcp_probe_timeout:
    description:
      - Seconds to wait for a DHCP offer on each probed interface.
    type: int
    default: 5
    version_added: 0.2.0
  wait_for_address:
    description:
      - Seconds to wait, once the HIMN interface is found, for it to have its address from xapi's DHCP server (as
        after the interface was just brought up). The module checks twice a second and fails with the fix when
        the time runs out. V(0) does not wait, and RV(address) is then empty when the interface has no address yet.
      - One module run that waits, rather than a task retried every second.
    type: int
    default: 0
    version_added: 0.2.0
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

- name: Find it on a fresh VM, before the HIMN has an address (xenstore, addresses, then a DHCP probe)
  xenserver.openstack.himn_info:
    use_xenapi: false
    dhcp_probe: true
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
  choices: [xenapi, xenstore, address, dhcp]
  sample: xenapi
default_route:
  description: Whether a default route leaves through the HIMN interface (the one xapi's DHCP offers; it must not).
  returned: success
  type: bool
  sample: false
  version_added: 0.2.0
probed:
  description: The interfaces probed with DHCP, in order, when the DHCP probe ran.
  returned: when the DHCP probe ran
  type: list
  elements: str
  sample: [eth1, eth2]
  version_added: 0.2.0
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
    - How this VM configures its network at boot - C(netplan) when C(/etc/netplan) is a directory, else C(ifupdown)
      when C(/etc/network/interfaces) is a file, else C(networkmanager) when C(/etc/NetworkManager) is a directory,
      else C(unknown).
  returned: success
  type: str
  choices: [netplan, ifupdown, networkmanager, unknown]
  sample: netplan
xapi_unreachable:
  description: Why XenAPI was not used, when it was not.
  returned: when XenAPI could not be used
  type: str
  sample: "No XAPI password given."
python:
  description: The Python on this VM that ran the module, which runs every module of the collection there.
  returned: success
  type: dict
  version_added: 0.2.0
  contains:
    executable:
      description: Its interpreter's path (C(sys.executable)).
      type: str
      sample: /usr/bin/python2.7
    version:
      description: Its version.
      type: str
      sample: 2.7.6
    xenapi:
      description: Whether the XenAPI library imports in it (the C(xen_*) modules need it).
      type: bool
      sample: false
"""

import os
import shutil
import sys
import tempfile
import time

from ansible_collections.xenserver.openstack.plugins.module_utils._compat import OS_ERRORS
from ansible_collections.xenserver.openstack.plugins.module_utils._ipv4 import IPv4Address, IPv4Interface
from ansible_collections.xenserver.openstack.plugins.module_utils._platform import missing_himn_vif_message
from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import (
    ModuleError,
    XAPIUnreachable,
    XenAPI,
    XenAPIModule,
    find_himn,
    find_vm,
    himn_vif,
    read_local_vm_uuid,
)

SYS_NET = "/sys/class/net"
NETPLAN_DIR = "/etc/netplan"
IFUPDOWN_FILE = "/etc/network/interfaces"
NETWORKMANAGER_DIR = "/etc/NetworkManager"
# The DHCP probe's client script: it records the offer (address, netmask) and configures nothing. dhclient gives
# $reason and new_*; busybox udhcpc gives $1 and ip / subnet. @OFFER@ is the file it writes.
PROBE_SCRIPT = """#!/bin/sh
case "${reason:-$1}" in
    BOUND|RENEW|REBOOT|bound|renew) echo "${new_ip_address:-$ip} ${new_subnet_mask:-$subnet}" > '@OFFER@.tmp' &&
        mv '@OFFER@.tmp' '@OFFER@' ;;
esac
exit 0
"""


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
    """Return how this machine configures its network at boot: netplan, ifupdown, networkmanager or unknown."""
    if os.path.isdir(NETPLAN_DIR):
        return "netplan"
    if os.path.isfile(IFUPDOWN_FILE):
        return "ifupdown"
    return "networkmanager" if os.path.isdir(NETWORKMANAGER_DIR) else "unknown"


def sys_net(name, entry, sys_net_dir=SYS_NET):
    """The text of /sys/class/net/NAME/ENTRY, or None when it does not exist."""
    try:
        with open(os.path.join(sys_net_dir, name, entry)) as handle:
            return handle.read().strip()
    except OS_ERRORS:
        return None


def probe_candidate(name, sys_net_dir=SYS_NET):
    """Whether an interface may be the HIMN's: an Ethernet interface of its own (not loopback, not a bridge, bond or
    VLAN, not a port of one)."""
    if sys_net(name, "type", sys_net_dir) != "1" or os.path.exists(os.path.join(sys_net_dir, name, "master")):
        return False
    uevent = sys_net(name, "uevent", sys_net_dir) or ""
    return not any(line.startswith("DEVTYPE=") for line in uevent.splitlines())


def python_info():
    """The Python running this module: its interpreter, version, and whether XenAPI imports in it."""
    return dict(
        executable=sys.executable,
        version=".".join(str(part) for part in sys.version_info[:3]),
        xenapi=XenAPI is not None,
    )


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
        use_xenapi=dict(type="bool", default=True),
        dhcp_probe=dict(type="bool", default=False),
        dhcp_probe_timeout=dict(type="int", default=5),
        wait_for_address=dict(type="int", default=0),
    )
    module_kwargs = dict(supports_check_mode=True)
    xenapi_optional = True
    # XenAPI is optional too: the role himn_network runs this module before XenAPI is installed (see RETURN python).
    required_libraries = ()
    probed = None  # the interfaces the DHCP probe asked, once it ran

    def _login(self):
        if not self.params["use_xenapi"]:
            raise XAPIUnreachable("use_xenapi is false")
        if XenAPI is None:
            raise XAPIUnreachable("the XenAPI library does not import in %s" % (sys.executable or "this Python"))
        super(HimnInfoModule, self)._login()

    def check_params(self):
        try:
            self.dom0 = IPv4Address(self.params["dom0_address"])
        except ValueError:
            raise ModuleError("dom0_address '%s' is not an IPv4 address." % self.params["dom0_address"])
        if self.params["dhcp_probe_timeout"] < 1:
            raise ModuleError("dhcp_probe_timeout must be 1 or more seconds.")
        if self.params["wait_for_address"] < 0:
            raise ModuleError("wait_for_address must be 0 (no wait) or more seconds.")

    def _read_addresses(self):
        rc, out, err = self.ansible.run_command(["ip", "-4", "-o", "addr", "show"], environ_update={"LANG": "C"})
        if rc != 0:
            raise ModuleError("Cannot list this machine's addresses with 'ip -4 -o addr show': %s" % err.strip())
        self.addresses = parse_addresses(out)

    def _himn_address(self, interface):
        return next((a for name, a in self.addresses if name == interface and self.dom0 in a.network), None)

    def _wait_for_address(self, interface, found_by):
        """Re-read the addresses twice a second until INTERFACE has one on the HIMN, for wait_for_address s."""
        wait = self.params["wait_for_address"]
        deadline = time.time() + wait
        while self._himn_address(interface) is None:
            if time.time() >= deadline:
                raise ModuleError(
                    "The HIMN interface %s (found by %s) has no address in %s's network after %d s: xapi's DHCP "
                    "server did not answer it. Check in Dom0 that the VM's HIMN VIF is attached (xe vif-list "
                    "network-uuid=$(xe network-list bridge=xenapi --minimal) params=vm-name-label,currently-attached), "
                    "and on the VM that %s is up and configured for DHCP; or wait longer (wait_for_address)."
                    % (interface, found_by, self.dom0, wait, interface)
                )
            time.sleep(0.5)
            self._read_addresses()

    def run(self):
        self._read_addresses()
        self.macs = local_macs()
        for found_by, finder in (("xenapi", self._by_xenapi), ("xenstore", self._by_xenstore)):
            mac = finder()
            if mac:
                return self._result(found_by, mac, self._interface_with(mac, found_by))
        for interface, address in self.addresses:
            if self.dom0 in address.network and address.ip != self.dom0:
                return self._result("address", self._mac_of(interface), interface)
        if self.params["dhcp_probe"]:
            interface = self._by_dhcp()
            if interface:
                return self._result("dhcp", self._mac_of(interface), interface)
        raise ModuleError(
            "No interface of this VM is on the HIMN: XenAPI was not usable (%s), xenstore has no vm-data/himn_mac, "
            "no interface has an address in a network with %s%s. %s"
            % (
                self.xapi_unreachable or "no VM UUID",
                self.dom0,
                self._probe_outcome(),
                missing_himn_vif_message(None),
            )
        )

    def _mac_of(self, interface):
        return next((m for m, name in self.macs.items() if name == interface), "")

    def _probe_outcome(self):
        if self.probed is None:
            return ""
        if not self.probed:
            return ", and no interface without an address was left to probe with DHCP"
        return ", and no DHCP server on %s offered an address in that network" % ", ".join(self.probed)

    def _dhcp_client(self, work):
        """How to ask for one offer: (argv of a DHCP client that ends by itself, argv that stops what it left) for
        an interface and a script. dhclient (-1: one try, as long as its configuration's timeout) daemonizes once
        bound, so it is stopped after (-x: no release); udhcpc (-q -n) quits either way."""
        timeout = self.params["dhcp_probe_timeout"]
        dhclient = self.ansible.get_bin_path("dhclient")
        if dhclient:
            conf = os.path.join(work, "dhclient.conf")
            with open(conf, "w") as handle:
                handle.write("timeout %d;\nretry 1;\n" % timeout)

            def dhclient_argv(action, script, name):
                files = [
                    "-cf",
                    conf,
                    "-sf",
                    script,
                    "-lf",
                    os.path.join(work, "lease"),
                    "-pf",
                    os.path.join(work, "pid"),
                ]
                return [dhclient, action, "-4"] + files + [name]

            return (
                lambda script, name: dhclient_argv("-1", script, name),
                lambda script, name: dhclient_argv("-x", script, name),
            )
        udhcpc = self.ansible.get_bin_path("udhcpc")
        busybox = None if udhcpc else self.ansible.get_bin_path("busybox")
        if udhcpc or busybox:
            command = [udhcpc] if udhcpc else [busybox, "udhcpc"]
            options = ["-f", "-q", "-n", "-t", str(timeout), "-T", "1"]
            return lambda script, name: command + options + ["-s", script, "-i", name], None
        raise ModuleError(
            "Cannot probe for the HIMN interface with DHCP: neither dhclient (isc-dhcp-client) nor udhcpc (busybox) "
            "is installed. Install one, or set vm-data/himn_mac in the VM's xenstore with the guest tools installed."
        )

    def _by_dhcp(self):
        """Ask DHCP on each interface without an IPv4 address; return the one xapi's DHCP server answers."""
        addressed = set(name for name, _address in self.addresses)
        self.probed = [n for n in local_interfaces() if n not in addressed and n != "lo" and probe_candidate(n)]
        if not self.probed:
            return None
        work = tempfile.mkdtemp(prefix="himn-probe-")
        try:
            client = self._dhcp_client(work)
            for name in self.probed:
                offer = self._probe(client, work, name)
                if offer is not None and self.dom0 in offer.network and offer.ip != self.dom0:
                    return name
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return None

    def _probe(self, client, work, name):
        """One DHCP request on interface NAME, set up for it if it is down and set down again; the offer or None."""
        offer_file = os.path.join(work, name + ".offer")
        script = os.path.join(work, "record-offer")
        with open(script, "w") as handle:
            handle.write(PROBE_SCRIPT.replace("@OFFER@", offer_file))
        os.chmod(script, 0o700)
        flags = int(sys_net(name, "flags") or "0", 16)
        if not flags & 1:  # IFF_UP
            self._ip("link", "set", "dev", name, "up")
        start, stop = client
        try:
            self.ansible.run_command(start(script, name))
            if stop is not None and os.path.exists(os.path.join(work, "pid")):
                self.ansible.run_command(stop(script, name))  # removes its pid file
        finally:
            if not flags & 1:
                self._ip("link", "set", "dev", name, "down")
        try:
            with open(offer_file) as handle:
                address, netmask = handle.read().split()
            return IPv4Interface("%s/%s" % (address, netmask))
        except (ValueError, OSError, IOError):
            return None

    def _ip(self, *args):
        rc, _out, err = self.ansible.run_command(["ip"] + list(args))
        if rc != 0:
            raise ModuleError("'ip %s' failed: %s" % (" ".join(args), err.strip()))

    def _default_route(self, interface):
        """Whether a default route leaves through INTERFACE."""
        rc, out, _err = self.ansible.run_command(["ip", "-4", "route", "show", "default"], environ_update={"LANG": "C"})
        words = [line.split() for line in out.splitlines()] if rc == 0 else []
        return any("dev" in w and w.index("dev") + 1 < len(w) and w[w.index("dev") + 1] == interface for w in words)

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
        if self.params["wait_for_address"]:
            self._wait_for_address(interface, found_by)
        address = self._himn_address(interface)
        result = dict(
            changed=False,
            interface=interface,
            mac=mac,
            address=str(address.ip) if address else "",
            prefix=address.network.prefixlen if address else 0,
            found_by=found_by,
            default_route=self._default_route(interface),
            interfaces=local_interfaces(),
            networks={},
            network_config=network_config(),
            python=python_info(),
        )
        for name, address in self.addresses:
            result["networks"].setdefault(name, []).append(str(address.network))
        if self.xapi_unreachable:
            result["xapi_unreachable"] = self.xapi_unreachable
        if self.probed is not None:
            result["probed"] = self.probed
        return result


def main():
    HimnInfoModule()()


if __name__ == "__main__":
    main()
