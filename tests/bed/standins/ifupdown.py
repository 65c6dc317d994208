#!/usr/bin/env python3
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ifupdown's ifup and ifdown for a compute VM of the bed (tests/bed/standins/README.md).

Reads the host's own /etc/network/interfaces as ifupdown does (interfaces(5): ``auto``, ``allow-hotplug``, ``iface
NAME inet dhcp|static|manual|loopback`` with ``address``, ``netmask``, ``gateway``, ``up`` / ``post-up`` and
``down`` / ``pre-down`` commands, ``source`` globs and ``source-directory``). DHCP is real (busybox udhcpc against
the Dom0's dnsmasq), and it does what Debian's dhclient-script does with a lease: the address, and the offered router
as the default route when there is none, so only the interface's own configuration keeps the HIMN's router out.
The state (which interfaces are up) is the host's own file, given by the wrapper, never the machine's /run.

Usage (through the wrappers bed.py writes): ifup [-a | IFACE...], ifdown [-a | IFACE...].
"""

import glob
import os
import subprocess
import sys

ETC = "/etc/network/interfaces"
# What dhclient-script does on BOUND / RENEW, for udhcpc's variables: the address, then the router as the default
# route if the VM has none.
DHCP_SCRIPT = """#!/bin/sh
case "$1" in
    bound|renew)
        ip address replace "$ip/${mask:-$subnet}" dev "$interface" || exit 1
        if [ -n "$router" ] && [ -z "$(ip -4 route show default)" ]; then
            ip route add default via "${router%% *}" dev "$interface"
        fi ;;
esac
"""


def read(path, stanzas, auto):
    """Parse one interfaces(5) file into ``stanzas`` {name: {"method", "options": [(key, value)]}} and ``auto``."""
    current = None
    with open(path) as handle:
        lines = handle.read().replace("\\\n", " ").splitlines()
    for line in lines:
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        key, rest = words[0], words[1].strip() if len(words) > 1 else ""
        if key in ("auto", "allow-auto", "allow-hotplug"):
            auto.extend(name for name in rest.split() if name not in auto)
            current = None
        elif key == "iface":
            name, _family, method = rest.split()[:3]
            current = stanzas.setdefault(name, {"method": method, "options": []})
        elif key == "source":
            for pattern in rest.split():
                for included in sorted(glob.glob(os.path.join(os.path.dirname(path), pattern))):
                    read(included, stanzas, auto)
            current = None
        elif key == "source-directory":
            directory = os.path.join(os.path.dirname(path), rest)
            for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
                if all(c.isalnum() or c in "_-" for c in name):
                    read(os.path.join(directory, name), stanzas, auto)
            current = None
        elif current is not None:
            current["options"].append((key, rest))
    return stanzas, auto


def run_commands(name, stanza, keys):
    for key, command in stanza["options"]:
        if key in keys:
            subprocess.call(["/bin/sh", "-c", command], env=dict(os.environ, IFACE=name, LOGICAL=name))


def ifup(name, stanza):
    options = dict(stanza["options"])
    subprocess.check_call(["ip", "link", "set", "dev", name, "up"])
    if stanza["method"] == "dhcp":
        script = os.path.join(os.environ["IFUPDOWN_STATE"] + ".d", "udhcpc-script")
        os.makedirs(os.path.dirname(script), exist_ok=True)
        with open(script, "w") as handle:
            handle.write(DHCP_SCRIPT)
        os.chmod(script, 0o755)
        argv = ["busybox", "udhcpc", "-i", name, "-n", "-q", "-t", "5", "-T", "1", "-s", script]
        if subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            print("ifup: no DHCP lease on %s" % name, file=sys.stderr)
            return False
    elif stanza["method"] == "static":
        address = options["address"]
        if "/" not in address and "netmask" in options:
            address += "/" + options["netmask"]
        subprocess.check_call(["ip", "address", "replace", address, "dev", name])
        if "gateway" in options:
            subprocess.check_call(["ip", "route", "replace", "default", "via", options["gateway"], "dev", name])
    run_commands(name, stanza, ("up", "post-up"))
    return True


def ifdown(name, stanza):
    run_commands(name, stanza, ("pre-down", "down"))
    subprocess.call(["ip", "-4", "address", "flush", "dev", name])


def main(command, args):
    state_file = os.environ["IFUPDOWN_STATE"]
    stanzas, auto = read(ETC, {}, []) if os.path.exists(ETC) else ({}, [])
    state = set(open(state_file).read().split()) if os.path.exists(state_file) else set()
    names = auto if args == ["-a"] else [name for name in args if not name.startswith("-")]
    status = 0
    for name in names:
        if name not in stanzas:
            print("%s: unknown interface %s" % (command, name), file=sys.stderr)
            status = 1
        elif command == "ifup" and name in state:
            print("ifup: interface %s already configured" % name, file=sys.stderr)
        elif command == "ifup":
            if ifup(name, stanzas[name]):
                state.add(name)
            else:
                status = 1
        elif name in state or "--force" in args:
            ifdown(name, stanzas[name])
            state.discard(name)
    with open(state_file, "w") as handle:
        handle.write("".join(name + "\n" for name in sorted(state)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
