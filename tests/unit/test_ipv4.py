"""The collection's IPv4 classes (module_utils/_ipv4.py, for Python 2.7 nodes) against the standard ipaddress."""

import ipaddress

import pytest
from ansible_collections.xenserver.openstack.plugins.module_utils import _ipv4

ADDRESSES = ["0.0.0.0", "169.254.0.1", "255.255.255.255", "198.18.1.10"]
BAD_ADDRESSES = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.-1",
    "01.2.3.4",
    " 1.2.3.4",
    "1.2.3.4\n",
    "a.b.c.d",
    "\u0661.2.3.4",
]
NETWORKS = ["198.18.1.0/24", "169.254.0.0/16", "0.0.0.0/0", "10.0.0.1/32", "10.0.0.0/255.0.0.0", "192.0.2.7"]
HOST_BITS = ["198.18.1.1/24", "169.254.0.2/16", "10.0.0.1/255.0.0.0"]
BAD_NETWORKS = ["198.18.1.0/33", "198.18.1.0/", "198.18.300.0/24", "198.18.1.0/24/1", "198.18.1.0/255.0.255.0", "x/8"]


@pytest.mark.parametrize("text", ADDRESSES)
def test_addresses_read_and_print_as_ipaddress_does(text):
    ours, std = _ipv4.IPv4Address(text), ipaddress.IPv4Address(text)
    assert (str(ours), int(ours)) == (str(std), int(std))
    assert ours == _ipv4.IPv4Address(text) and not ours != _ipv4.IPv4Address(text)
    assert hash(ours) == hash(_ipv4.IPv4Address(text))


@pytest.mark.parametrize("text", BAD_ADDRESSES)
def test_bad_addresses_are_refused_as_ipaddress_refuses_them(text):
    with pytest.raises(ValueError):
        ipaddress.IPv4Address(text)
    with pytest.raises(ValueError, match="is not an IPv4 address"):
        _ipv4.IPv4Address(text)


@pytest.mark.parametrize("text", NETWORKS + HOST_BITS)
def test_networks_read_and_print_as_ipaddress_does(text):
    assert str(_ipv4.IPv4Network(text, strict=False)) == str(ipaddress.IPv4Network(text, strict=False))
    assert _ipv4.IPv4Network(text, strict=False).prefixlen == ipaddress.IPv4Network(text, strict=False).prefixlen


@pytest.mark.parametrize("text", HOST_BITS)
def test_host_bits_are_refused_with_ipaddress_message_when_strict(text):
    with pytest.raises(ValueError) as std:
        ipaddress.IPv4Network(text)
    with pytest.raises(ValueError) as ours:
        _ipv4.IPv4Network(text)
    assert str(ours.value) == str(std.value)
    assert "has host bits set" in str(ours.value)


@pytest.mark.parametrize("text", BAD_NETWORKS)
def test_bad_networks_are_refused(text):
    with pytest.raises(ValueError):
        ipaddress.IPv4Network(text, strict=False)
    with pytest.raises(ValueError) as ours:
        _ipv4.IPv4Network(text, strict=False)
    assert "host bits" not in str(ours.value)


@pytest.mark.parametrize("text", ["169.254.0.2/16", "198.18.1.11/24", "10.1.2.3/32", "10.1.2.3"])
def test_interfaces_have_their_address_and_network(text):
    ours, std = _ipv4.IPv4Interface(text), ipaddress.IPv4Interface(text)
    assert (str(ours), str(ours.ip), str(ours.network)) == (str(std), str(std.ip), str(std.network))
    for address in ("169.254.0.1", "198.18.1.1", "10.1.2.3", "10.1.2.4"):
        assert (_ipv4.IPv4Address(address) in ours.network) == (ipaddress.IPv4Address(address) in std.network)
