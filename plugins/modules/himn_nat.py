#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: himn_nat
short_description: Forward and masquerade Dom0's traffic from the HIMN in the compute VM, persistently
version_added: 0.1.0
description:
  - Runs on the compute VM. Makes it the gateway of Dom0 towards the OpenStack networks it is attached to (by
    default the management and storage bridges), over the Host Internal Management Network (HIMN), and
    optionally forwards ports of those networks to Dom0. Dom0 routes the networks via the compute VM's HIMN address
    (see M(xenserver.openstack.xen_route)).
  - A port forward to Dom0 exposes that port of Dom0 on the network - port 80 is xapi, its consoles (noVNC) and its
    whole API over plain HTTP, root login included. Forward only what must be reached, on a network only the
    cloud's controllers reach.
  - Turns C(net.ipv4.ip_forward) on now and in O(sysctl_file).
  - For each of O(forward_interfaces), masquerades what comes from O(himn_cidr) and leaves through it, accepts
    forwarding from O(himn_cidr) on the HIMN to it, and from it to the HIMN for C(RELATED,ESTABLISHED) connections.
    Accepts all input from O(himn_interface).
  - For each of O(port_forwards), DNATs connections to the compute VM's own addresses on that interface and port
    to O(port_forwards[].to_address), and accepts forwarding them to the HIMN.
  - The rules live in chains of the module's own, C(HIMN-INPUT) and C(HIMN-FORWARD) in the C(filter) table,
    C(HIMN-PREROUTING) and C(HIMN-POSTROUTING) in the C(nat) table, each jumped to exactly once from the start of
    its built-in chain. Their content is exactly what the options say, whatever the number of runs. Nothing else
    is touched; rules of others in the same built-in chains stay where they are.
  - Reads the rules with C(iptables-save) and changes each table at once with C(iptables-restore --noflush);
    a change applies whole or not at all.
  - Writes the module's chains and jumps into O(rules_file), the file C(netfilter-persistent) restores at
    boot, and leaves the rest of that file as it is. The file is rewritten only when the module's part in it
    differs (counters and comments do not count).
extends_documentation_fragment:
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the module's chains and jumps, C(ip_forward), and the files.
options:
  forward_interfaces:
    description:
      - Interfaces of the networks Dom0 reaches through the compute VM.
      - They must exist when O(state=present).
    type: list
    elements: str
    default: [br-mgmt, br-storage]
  himn_cidr:
    description:
      - The addresses on the HIMN whose traffic the compute VM forwards and masquerades, in CIDR form.
      - The default is Dom0 alone - the HIMN may hold other guests of the host, which have no business on the
        OpenStack networks. V(169.254.0.0/16) lets every guest on the HIMN through.
    type: str
    default: 169.254.0.1/32
  himn_interface:
    description:
      - The compute VM's interface on the HIMN, as HIMN discovery finds it.
      - Required when O(state=present); it must exist.
    type: str
  persist:
    description:
      - Whether to write O(rules_file) and O(sysctl_file) too, so that a reboot restores the forwarding.
      - With V(false) only the running system changes, and the files are not read.
    type: bool
    default: true
  port_forwards:
    description:
      - Connections to the compute VM's own addresses on a network to forward to an address on the HIMN.
      - The answers reach the client only if that address (Dom0) routes the client's network back via the
        compute VM, which M(xenserver.openstack.xen_route) sets up.
    type: list
    elements: dict
    default: []
    suboptions:
      interface:
        description:
          - Interface the connections come in on. It must exist when O(state=present).
        type: str
        required: true
      port:
        description:
          - Port the connections are made to.
        type: int
        required: true
      protocol:
        description:
          - Protocol of the connections.
        type: str
        choices: [tcp, udp]
        default: tcp
      to_address:
        description:
          - IPv4 address on the HIMN that gets the connections. Dom0 is always C(169.254.0.1).
        type: str
        default: 169.254.0.1
      to_port:
        description:
          - Port at O(port_forwards[].to_address). Defaults to O(port_forwards[].port).
        type: int
  rules_file:
    description:
      - The file C(netfilter-persistent) (package C(iptables-persistent)) restores the IPv4 rules from at boot.
      - The module keeps its chains and jumps there and leaves every other line of the file as it is. A new file
        gets mode C(0640).
    type: path
    default: /etc/iptables/rules.v4
  state:
    description:
      - V(present) makes the forwarding as the options say.
      - V(absent) removes the module's chains, their jumps and its lines in the files, and gives C(ip_forward)
        back the value it had before the module first turned it on (as recorded in O(sysctl_file)). Other
        options than O(persist), O(rules_file) and O(sysctl_file) are ignored.
    type: str
    choices: [present, absent]
    default: present
  sysctl_file:
    description:
      - The C(sysctl.d) file that turns C(net.ipv4.ip_forward) on at boot.
      - The module owns its C(net.ipv4.ip_forward) line and a comment there, which records the value
        C(ip_forward) had before, and leaves other lines as they are. A new file gets mode C(0644).
    type: path
    default: /etc/sysctl.d/90-xenserver-openstack.conf
notes:
  - Uses whichever C(iptables) the system's alternatives select (C(nf_tables) on current Debian and Ubuntu, or
    C(legacy)). Never mix the two in one system; the module warns when C(iptables-save) reports tables of the
    other kind.
  - The module adds accept, masquerade and DNAT rules only and changes no chain policy, so it cannot cut the
    connection Ansible runs over (unless a port forward takes the very port Ansible connects to).
  - C(ip_forward) is per network namespace; the module changes the one of the namespace it runs in.
  - Without C(netfilter-persistent) nothing restores O(rules_file) at boot; the module warns then.
seealso:
  - module: xenserver.openstack.xen_route
requirements:
  - C(iptables-save) and C(iptables-restore) (package C(iptables)) on the compute VM.
  - C(iptables-persistent) on the compute VM, for the rules to come back after a reboot.
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Let Dom0 reach the management and storage networks through this compute VM
  xenserver.openstack.himn_nat:
    himn_interface: eth2

- name: Only the management network, Dom0 alone masqueraded (the default himn_cidr)
  xenserver.openstack.himn_nat:
    himn_interface: eth2
    forward_interfaces:
      - br-mgmt
    himn_cidr: 169.254.0.1/32

- name: Remove the forwarding, its rules and its lines in the files
  xenserver.openstack.himn_nat:
    state: absent
"""

RETURN = r"""
changed_files:
  description: The files written or removed (that would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: ["/etc/iptables/rules.v4", "/etc/sysctl.d/90-xenserver-openstack.conf"]
ip_forward:
  description: The value of C(net.ipv4.ip_forward) after the run (that it would have, in check mode).
  returned: success
  type: int
  sample: 1
rules:
  description:
    - The module's rules after the run (that there would be, in check mode), as C(iptables) arguments, jumps
      from the built-in chains first. Empty after O(state=absent).
  returned: success
  type: list
  elements: str
  sample:
    - -t filter -A INPUT -j HIMN-INPUT
    - -t filter -A FORWARD -j HIMN-FORWARD
    - -t filter -A HIMN-INPUT -i eth2 -j ACCEPT
    - -t filter -A HIMN-FORWARD -s 169.254.0.1/32 -i eth2 -o br-mgmt -j ACCEPT
    - -t filter -A HIMN-FORWARD -i br-mgmt -o eth2 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    - -t nat -A PREROUTING -j HIMN-PREROUTING
    - -t nat -A POSTROUTING -j HIMN-POSTROUTING
    - -t nat -A HIMN-POSTROUTING -s 169.254.0.1/32 -o br-mgmt -j MASQUERADE
rules_added:
  description: The rules the run added (would add, in check mode), in the form of RV(rules).
  returned: success
  type: list
  elements: str
  sample: ["-t nat -A HIMN-POSTROUTING -s 169.254.0.1/32 -o br-storage -j MASQUERADE"]
rules_removed:
  description: The rules the run removed (would remove, in check mode), in the form of RV(rules).
  returned: success
  type: list
  elements: str
  sample: ["-t filter -A FORWARD -j HIMN-FORWARD"]
"""

import errno
import os
import shlex
import tempfile
from collections import OrderedDict

from ansible_collections.xenserver.openstack.plugins.module_utils._base import BaseModule, ModuleError
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import OS_ERRORS, if_nametoindex, shlex_join
from ansible_collections.xenserver.openstack.plugins.module_utils._iptables import (
    INTERFACE_NAME,
    IptablesFormatError,
    managed_lines,
    parse_save,
    plan_live,
    plan_rules_file,
    plan_sysctl_file,
    recorded_ip_forward,
    render_rules,
)
from ansible_collections.xenserver.openstack.plugins.module_utils._ipv4 import IPv4Address, IPv4Network

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
LANG_C = {"LANG": "C", "LC_ALL": "C"}
LEGACY_WARNING = "iptables-legacy tables present"


class HimnNatModule(BaseModule):
    """Read the live rules, ip_forward and the files; work out the changes; apply them unless in check mode."""

    argument_spec = dict(
        forward_interfaces=dict(type="list", elements="str", default=["br-mgmt", "br-storage"]),
        himn_cidr=dict(type="str", default="169.254.0.1/32"),
        himn_interface=dict(type="str"),
        persist=dict(type="bool", default=True),
        port_forwards=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(
                interface=dict(type="str", required=True),
                port=dict(type="int", required=True),
                protocol=dict(type="str", choices=["tcp", "udp"], default="tcp"),
                to_address=dict(type="str", default="169.254.0.1"),
                to_port=dict(type="int"),
            ),
        ),
        rules_file=dict(type="path", default="/etc/iptables/rules.v4"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        sysctl_file=dict(type="path", default="/etc/sysctl.d/90-xenserver-openstack.conf"),
    )
    module_kwargs = dict(required_if=[("state", "present", ["himn_interface"])], supports_check_mode=True)

    def __init__(self):
        super(HimnNatModule, self).__init__()
        self.module = self.ansible
        self.present = self.params["state"] == "present"

    def fail(self, msg, **extra):
        raise ModuleError(msg, **extra)

    def command(self, argv, data=None):
        """Run a command (no shell, LANG=C); fail with its argv, rc and stderr unless it succeeds."""
        rc, out, err = self.module.run_command(argv, data=data, binary_data=True, environ_update=LANG_C)
        if rc != 0:
            extra = dict(cmd=argv, rc=rc, stdout=out, stderr=err)
            if data:
                extra["script"] = data
            self.fail("Command %s failed with rc %d: %s" % (shlex_join(argv), rc, err.strip() or out.strip()), **extra)
        return out

    def binary(self, name):
        path = self.module.get_bin_path(name)
        if path is None:
            self.fail(
                "%s is not installed on this host: install the iptables package (and iptables-persistent for "
                "persist=true). Nothing was changed." % name
            )
        return path

    def check_options(self):
        """Return the rules the options ask for, or fail naming every bad value or missing interface."""
        params, problems = self.params, []
        himn = params["himn_interface"]
        forward = list(OrderedDict.fromkeys(params["forward_interfaces"]))
        try:
            cidr = str(IPv4Network(params["himn_cidr"], strict=True))
        except ValueError as error:
            problems.append("himn_cidr '%s' is not an IPv4 network in CIDR form (%s)" % (params["himn_cidr"], error))
            cidr = None
        if himn in forward:
            problems.append("himn_interface %s is in forward_interfaces too" % himn)
        port_forwards = self.check_port_forwards(himn, problems)
        names = [("himn_interface", himn)] + [("forward_interfaces", name) for name in forward]
        names += [("port_forwards[%d].interface" % i, entry["interface"]) for i, entry in enumerate(port_forwards)]
        problems += [
            "%s '%s' is not an interface name" % (option, name)
            for option, name in names
            if not INTERFACE_NAME.match(name or "")
        ]
        if problems:
            self.fail("; ".join(problems) + ". Nothing was changed.")
        missing = []
        for option, name in names:
            try:
                if_nametoindex(name)
            except OS_ERRORS:
                missing.append((name, option))
        if missing:
            self.fail(
                "No such interface on this host: %s. Create it first (or fix the option); nothing was changed."
                % ", ".join("%s (%s)" % pair for pair in missing),
                missing_interfaces=sorted({name for name, _option in missing}),
            )
        return render_rules(himn, forward, port_forwards, cidr)

    def check_port_forwards(self, himn, problems):
        """Return the port forwards with their defaults filled in; add what is wrong with them to ``problems``."""
        port_forwards, seen = [], set()
        for index, given in enumerate(self.params["port_forwards"]):
            where = "port_forwards[%d]" % index
            entry = dict(given, to_port=given["to_port"] or given["port"])
            for key in ("port", "to_port"):
                if not 1 <= entry[key] <= 65535:
                    problems.append("%s.%s %d is not a port number (1-65535)" % (where, key, entry[key]))
            try:
                entry["to_address"] = str(IPv4Address(entry["to_address"]))
            except ValueError:
                problems.append("%s.to_address '%s' is not an IPv4 address" % (where, entry["to_address"]))
            if entry["interface"] == himn:
                problems.append("%s.interface is the HIMN interface %s" % (where, himn))
            key = (entry["interface"], entry["protocol"], entry["port"])
            if key in seen:
                problems.append("%s forwards %s port %d on %s a second time" % (where, key[1], key[2], key[0]))
            seen.add(key)
            port_forwards.append(entry)
        return port_forwards

    def same_rules(self, table, chain, specs):
        """Whether every rule is in the live chain, by iptables' own comparison (iptables -C)."""
        iptables = self.binary("iptables")
        for spec in specs:
            argv = [iptables, "-w", "-t", table, "-C", chain] + shlex.split(spec)
            rc, _out, _err = self.module.run_command(argv, environ_update=LANG_C)
            if rc != 0:
                return False
        return True

    def read_file(self, path):
        """A file's text (UTF-8, whatever the locale), or None when it does not exist."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OS_ERRORS as error:
            if error.errno == errno.ENOENT:
                return None
            self.fail("Cannot read %s: %s" % (path, error))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            self.fail(
                "%s is not UTF-8 text (byte 0x%02x at offset %d): the module edits it as UTF-8. Convert it (for "
                "example iconv -f latin1 -t utf-8) or remove the line. Nothing was changed."
                % (path, bytearray(data[error.start : error.start + 1])[0], error.start)
            )

    def write_file(self, path, text, mode):
        """Write a file atomically; a new file gets ``mode``, an existing one keeps its own."""
        if text is None:
            os.unlink(path)
            return
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        exists = os.path.exists(path)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".himn_nat.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(text.encode("utf-8"))
            self.module.atomic_move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if not exists:
            os.chmod(path, mode)

    def plan_files(self, desired, forward_before):
        """Return [(path, before, after, mode)] for the two files (None: no file) and the ip_forward to leave."""
        params = self.params
        sysctl_text = self.read_file(params["sysctl_file"])
        forward_after = "1" if self.present else forward_before
        if not self.present and recorded_ip_forward(sysctl_text or "") == "0":
            forward_after = "0"
        sysctl_new = plan_sysctl_file(sysctl_text or "", self.present, forward_before)
        rules_text = self.read_file(params["rules_file"])
        try:
            rules_new = plan_rules_file(rules_text or "", desired)
        except IptablesFormatError as error:
            self.fail(
                "%s is not in iptables-save format (%s): fix or remove it. Nothing was changed."
                % (params["rules_file"], error)
            )
        if rules_new and rules_new != rules_text:
            # iptables-restore's own parser has the last word on what will be restored at boot.
            self.command([self.binary("iptables-restore"), "--test"], data=rules_new)
        if self.present and not self.module.get_bin_path("netfilter-persistent"):
            self.module.warn(
                "netfilter-persistent is not installed: nothing restores %s at boot. "
                "Install the package iptables-persistent." % params["rules_file"]
            )
        files = [
            (params["rules_file"], rules_text, rules_new, 0o640),
            (params["sysctl_file"], sysctl_text, sysctl_new, 0o644),
        ]
        # A file that is not there stays away when there is nothing to write into it.
        return [(p, b, None if b is None and not a else a, m) for p, b, a, m in files], forward_after

    def run(self):
        desired = self.check_options() if self.present else None
        dump = self.command([self.binary("iptables-save")])
        if LEGACY_WARNING in dump:
            self.module.warn(
                "iptables-save reports iptables-legacy tables besides the nf_tables ones this system's iptables uses: "
                "rules of both kinds apply; keep to one kind."
            )
        try:
            live = plan_live(parse_save(dump), desired, same=self.same_rules)
        except IptablesFormatError as error:
            self.fail("The live rules: %s" % error)
        with open(IP_FORWARD) as handle:
            forward_before = handle.read().strip()
        files, forward_after = [], "1" if self.present else forward_before
        if self.params["persist"]:
            files, forward_after = self.plan_files(desired, forward_before)
        changed_files = [path for path, before, after, _mode in files if before != after]

        changed = bool(live.script) or forward_after != forward_before or bool(changed_files)
        if changed and not self.module.check_mode:
            if live.script:
                self.command([self.binary("iptables-restore"), "-w", "--noflush"], data=live.script)
            if forward_after != forward_before:
                with open(IP_FORWARD, "w") as handle:
                    handle.write(forward_after + "\n")
            for path, before, after, mode in files:
                if before != after:
                    self.write_file(path, after, mode)

        header = "iptables: the HIMN-* chains and their jumps"
        diff = [
            dict(before_header=header, after_header=header, before=live.before, after=live.after),
            dict(
                before_header=IP_FORWARD,
                after_header=IP_FORWARD,
                before=forward_before + "\n",
                after=forward_after + "\n",
            ),
        ]
        diff += [
            dict(before_header=path, after_header=path, before=before or "", after=after or "")
            for path, before, after, _mode in files
        ]
        return dict(
            changed=changed,
            rules=managed_lines(desired),
            rules_added=live.added,
            rules_removed=live.removed,
            ip_forward=int(forward_after),
            changed_files=changed_files,
            diff=diff,
        )


def main():
    HimnNatModule()()


if __name__ == "__main__":
    main()
