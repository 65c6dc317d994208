# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""IPv4 addresses, networks and interface addresses: the part of the standard ipaddress module the modules use.

Python 2.7 has no ipaddress module, and ansible-core ships no copy of it (ansible.module_utils.compat.ipaddress
only redirects to the ansible.netcommon collection), so the modules use these classes on every Python. They
take and print the same notations as ipaddress.IPv4Address, IPv4Network and IPv4Interface, and raise ValueError
for what those refuse; a network with host bits set is refused with the same "has host bits set" message.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_OCTET = r"(0|[1-9][0-9]{0,2})"  # no leading zeros: 010 would be octal to some tools
_ADDRESS = re.compile(r"\A" + r"\.".join([_OCTET] * 4) + r"\Z")
_PREFIX = re.compile(r"\A(0|[1-9][0-9]?)\Z")
_ALL = 0xFFFFFFFF


def _address_value(text):
    match = _ADDRESS.match(text)
    octets = [int(octet) for octet in match.groups()] if match else [256]
    if max(octets) > 255:
        raise ValueError("'%s' is not an IPv4 address: four numbers from 0 to 255 joined by dots" % text)
    value = 0
    for octet in octets:
        value = value << 8 | octet
    return value


def _prefix_length(text, where):
    """A prefix length, from C(24) or from a netmask such as C(255.255.255.0)."""
    if _PREFIX.match(text) and int(text) <= 32:
        return int(text)
    try:
        mask = _address_value(text)
    except ValueError:
        mask = None
    length = bin(mask).count("1") if mask is not None else -1
    if mask is None or mask != _ALL ^ (_ALL >> length):
        raise ValueError("'%s' in '%s' is neither a prefix length (0 to 32) nor a netmask" % (text, where))
    return length


def _text(value):
    return ".".join(str(value >> shift & 255) for shift in (24, 16, 8, 0))


class IPv4Address:
    """An IPv4 address, from its dotted form; C(str()) gives it back, comparisons and hashing work."""

    def __init__(self, text):
        self._value = _address_value(text)

    def __int__(self):
        return self._value

    def __str__(self):
        return _text(self._value)

    def __repr__(self):
        return "IPv4Address('%s')" % self

    def __eq__(self, other):
        return isinstance(other, IPv4Address) and self._value == other._value

    def __ne__(self, other):  # Python 2.7 does not derive it from __eq__
        return not self == other

    def __hash__(self):
        return hash(self._value)


class IPv4Network:
    """An IPv4 network in CIDR form (C(198.18.1.0/24)); with strict, host bits set are refused."""

    def __init__(self, text, strict=True):
        address, slash, prefix = text.partition("/")
        value = _address_value(address)
        self.prefixlen = _prefix_length(prefix, text) if slash else 32
        self._mask = _ALL ^ (_ALL >> self.prefixlen)
        if value & ~self._mask & _ALL:
            if strict:
                raise ValueError("%s/%d has host bits set" % (_text(value), self.prefixlen))
            value &= self._mask
        self.network_address = IPv4Address(_text(value))

    def __contains__(self, address):
        return int(address) & self._mask == int(self.network_address)

    def __str__(self):
        return "%s/%d" % (self.network_address, self.prefixlen)

    def __repr__(self):
        return "IPv4Network('%s')" % self

    def __eq__(self, other):
        return isinstance(other, IPv4Network) and str(self) == str(other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(str(self))


class IPv4Interface:
    """An address with its network, as C(ip addr) shows it (C(169.254.0.2/16)): C(ip) and C(network)."""

    def __init__(self, text):
        self.ip = IPv4Address(text.partition("/")[0])
        self.network = IPv4Network(text, strict=False)

    def __str__(self):
        return "%s/%d" % (self.ip, self.network.prefixlen)

    def __repr__(self):
        return "IPv4Interface('%s')" % self
