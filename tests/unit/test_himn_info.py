"""himn_info's three ways of finding the HIMN interface, against the simulator."""

import platform
import sys

import pytest
from ansible_collections.xenserver.openstack.plugins.modules import himn_info

HIMN_ADDRESS = "169.254.0.2/16"


@pytest.fixture
def machine(monkeypatch):
    """This machine's interfaces as the module sees them: MACs from /sys, addresses from `ip -4 -o addr`."""
    seen = dict(macs={}, addresses=[])
    monkeypatch.setattr(himn_info, "local_macs", lambda: dict(seen["macs"]))
    monkeypatch.setattr(himn_info, "local_interfaces", lambda: sorted(set(seen["macs"].values())))
    monkeypatch.setattr(
        himn_info,
        "parse_addresses",
        lambda _out: [(name, himn_info.IPv4Interface(a)) for name, a in seen["addresses"]],
    )
    return seen


def creds(sim):
    return dict(
        url=sim.url, username=sim.scenario["credentials"]["username"], password=sim.scenario["credentials"]["password"]
    )


def himn_mac(scenario):
    vifs = scenario["vms"]["compute"]["vifs"]
    return next(v["MAC"].lower() for v in vifs if v["network"] == "himn")


def test_xenapi_finds_the_interface_by_the_himn_vif_mac(xapi_sim, run_module, machine):
    sim = xapi_sim("xcpng-8.3")
    machine["macs"] = {"02:00:00:00:00:01": "eth0", himn_mac(sim.scenario): "eth2"}
    machine["addresses"] = [("eth2", HIMN_ADDRESS), ("eth0", "192.168.0.4/24"), ("eth0", "10.1.0.9/16")]
    result = run_module(himn_info, dict(creds(sim), vm_uuid=sim.scenario["vms"]["compute"]["uuid"]))
    assert (result["found_by"], result["interface"], result["address"], result["prefix"]) == (
        "xenapi",
        "eth2",
        "169.254.0.2",
        16,
    )
    assert result["interfaces"] == ["eth0", "eth2"]
    assert result["networks"] == {"eth2": ["169.254.0.0/16"], "eth0": ["192.168.0.0/24", "10.1.0.0/16"]}


def test_a_vm_without_himn_vif_fails_with_the_fix(xapi_sim, run_module, machine):
    sim = xapi_sim("no-himn-vif")
    result = run_module(himn_info, dict(creds(sim), vm_uuid=sim.scenario["vms"]["compute"]["uuid"]))
    assert result["failed"]
    assert "has no VIF on the Host Internal Management Network" in result["msg"]
    assert "xe vif-create" in result["msg"] and "device=9" in result["msg"] and "himn_mac" in result["msg"]


def test_a_vif_that_is_not_plugged_is_named(xapi_sim, run_module, machine):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(himn_info, dict(creds(sim), vm_uuid=sim.scenario["vms"]["compute"]["uuid"]))
    assert result["failed"] and "is on no interface of this VM" in result["msg"]


def test_network_config_is_netplan_then_ifupdown_then_networkmanager(run_module, machine, tmp_path, monkeypatch):
    machine["macs"] = {"02:00:00:00:00:09": "eth2"}
    machine["addresses"] = [("eth2", HIMN_ADDRESS)]
    for name, path in (("NETPLAN_DIR", "netplan"), ("IFUPDOWN_FILE", "interfaces"), ("NETWORKMANAGER_DIR", "nm")):
        monkeypatch.setattr(himn_info, name, str(tmp_path / path))

    def network_config():
        args = dict(url="http://127.0.0.1:9", xenstore_read=str(tmp_path / "absent"))
        return run_module(himn_info, args)["network_config"]

    assert network_config() == "unknown"
    (tmp_path / "nm").mkdir()
    assert network_config() == "networkmanager"
    (tmp_path / "interfaces").mkdir()  # a directory is not ifupdown's file
    assert network_config() == "networkmanager"
    (tmp_path / "interfaces").rmdir()
    (tmp_path / "interfaces").write_text("auto lo\n")
    assert network_config() == "ifupdown"
    (tmp_path / "netplan").write_text("not a directory")
    assert network_config() == "ifupdown"
    (tmp_path / "netplan").unlink()
    (tmp_path / "netplan").mkdir()
    assert network_config() == "netplan"


def test_use_xenapi_false_never_logs_in(xapi_sim, run_module, machine, tmp_path):
    sim = xapi_sim("xcpng-8.3")
    machine["macs"] = {"02:58:53:02:00:01": "eth2"}
    machine["addresses"] = [("eth2", HIMN_ADDRESS)]
    vm = sim.scenario["vms"]["compute"]["uuid"]
    result = run_module(himn_info, dict(creds(sim), vm_uuid=vm, use_xenapi=False, xenstore_read=str(tmp_path / "x")))
    assert (result["found_by"], result["xapi_unreachable"]) == ("address", "use_xenapi is false")
    assert sim.counts() == {}


def test_the_probe_asks_only_plain_ethernet_interfaces(tmp_path):
    """Loopback, bridges, bond / VLAN devices (DEVTYPE) and ports of a bridge are never probed."""
    interfaces = {
        "eth2": ("1", ""),
        "lo": ("772", ""),
        "br-mgmt": ("1", "DEVTYPE=bridge"),
        "bond0": ("1", "DEVTYPE=bond"),
        "eth0": ("1", ""),
    }
    for name, (kind, uevent) in interfaces.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "uevent").write_text("INTERFACE=%s\n%s\n" % (name, uevent))
    (tmp_path / "eth0" / "master").symlink_to(tmp_path / "br-mgmt")
    assert [name for name in sorted(interfaces) if himn_info.probe_candidate(name, str(tmp_path))] == ["eth2"]


def test_without_a_dhcp_client_the_probe_says_what_to_install(run_module, machine, tmp_path, monkeypatch):
    machine["macs"] = {"02:58:53:02:00:01": "eth2"}
    monkeypatch.setattr(himn_info, "local_interfaces", lambda: ["eth2"])
    monkeypatch.setattr(himn_info, "probe_candidate", lambda name: True)
    from ansible.module_utils.basic import AnsibleModule

    real = AnsibleModule.get_bin_path
    absent = ("dhclient", "udhcpc", "busybox")
    monkeypatch.setattr(
        AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None if name in absent else real(self, name, *a, **k)
    )
    args = dict(use_xenapi=False, dhcp_probe=True, xenstore_read=str(tmp_path / "absent"))
    result = run_module(himn_info, args)
    assert result["failed"] and "neither dhclient (isc-dhcp-client) nor udhcpc (busybox)" in result["msg"]


def test_without_xapi_xenstore_gives_the_mac(run_module, machine, tmp_path):
    mac = "02:58:53:02:00:01"
    fake = tmp_path / "xenstore-read"
    fake.write_text('#!/bin/sh\n[ "$1" = vm-data/himn_mac ] && echo %s\n' % mac.upper())
    fake.chmod(0o755)
    machine["macs"] = {mac: "eth2"}
    result = run_module(himn_info, dict(url="http://127.0.0.1:9", xenstore_read=str(fake)))
    assert (result["found_by"], result["interface"], result["address"]) == ("xenstore", "eth2", "")
    assert result["xapi_unreachable"] == "No XAPI password given."


def test_a_refused_login_or_an_empty_password_falls_back_and_says_why(xapi_sim, run_module, machine, tmp_path):
    """himn_info runs before the preflight has told the operator about the password: XAPI is optional for it."""
    sim = xapi_sim("xcpng-8.3")
    mac = himn_mac(sim.scenario)
    fake = tmp_path / "xenstore-read"
    fake.write_text("#!/bin/sh\necho %s\n" % mac)
    fake.chmod(0o755)
    machine["macs"] = {mac: "eth2"}
    vm = sim.scenario["vms"]["compute"]["uuid"]
    result = run_module(himn_info, dict(creds(sim), password="wrong", vm_uuid=vm, xenstore_read=str(fake)))
    assert (result.get("failed"), result["found_by"], result["interface"]) == (None, "xenstore", "eth2"), result
    assert "refused the login of user 'root'" in result["xapi_unreachable"]
    result = run_module(himn_info, dict(creds(sim), password="", vm_uuid=vm, xenstore_read=str(fake)))
    assert result["xapi_unreachable"] == "No XAPI password given."
    assert sim.counts().get("session.login_with_password") == 1  # the empty password was never sent


def test_without_xapi_and_xenstore_an_address_on_the_himn_finds_it(run_module, machine, tmp_path):
    machine["macs"] = {"02:58:53:02:00:01": "eth2"}
    machine["addresses"] = [("eth0", "198.18.1.11/24"), ("eth2", "169.254.7.9/16")]
    result = run_module(himn_info, dict(url="http://127.0.0.1:9", xenstore_read=str(tmp_path / "absent")))
    assert (result["found_by"], result["interface"], result["mac"], result["address"]) == (
        "address",
        "eth2",
        "02:58:53:02:00:01",
        "169.254.7.9",
    )


def test_the_subnet_decides_not_the_last_octet(run_module, machine, tmp_path):
    machine["addresses"] = [("eth1", "169.254.0.1/32"), ("eth3", "10.169.254.1/24")]
    result = run_module(himn_info, dict(url="http://127.0.0.1:9", xenstore_read=str(tmp_path / "absent")))
    assert result["failed"] and "No interface of this VM is on the HIMN" in result["msg"]


def test_it_returns_the_python_that_runs_it_and_whether_xenapi_imports(run_module, machine, tmp_path):
    machine["macs"] = {"02:58:53:02:00:01": "eth2"}
    machine["addresses"] = [("eth2", HIMN_ADDRESS)]
    args = dict(url="http://127.0.0.1:9", use_xenapi=False, xenstore_read=str(tmp_path / "absent"))
    result = run_module(himn_info, args)
    assert result["python"] == dict(executable=sys.executable, version=platform.python_version(), xenapi=True)


def test_without_xenapi_it_still_finds_the_interface_and_says_xenapi_is_missing(
    xapi_sim, run_module, machine, tmp_path, monkeypatch
):
    """A Fuel compute's Python before the HIMN bootstrap installed XenAPI: no missing_required_lib, and even
    use_xenapi true falls back on the ways without XAPI, saying why."""
    monkeypatch.setattr(himn_info, "XenAPI", None)
    sim = xapi_sim("xcpng-8.3")
    machine["macs"] = {"02:58:53:02:00:01": "eth2"}
    machine["addresses"] = [("eth2", HIMN_ADDRESS)]
    for use_xenapi, why in ((False, "use_xenapi is false"), (True, "XenAPI library does not import in ")):
        args = dict(creds(sim), use_xenapi=use_xenapi, xenstore_read=str(tmp_path / "absent"))
        result = run_module(himn_info, args)
        assert (result.get("failed"), result["found_by"], result["interface"]) == (None, "address", "eth2"), result
        assert why in result["xapi_unreachable"]
        assert result["python"]["xenapi"] is False
    assert sim.counts() == {}
    # Its failures stay its own messages (no XenAPI.Failure to catch without the library).
    machine["addresses"] = []
    result = run_module(himn_info, dict(use_xenapi=False, xenstore_read=str(tmp_path / "absent")))
    assert result["failed"] and "No interface of this VM is on the HIMN" in result["msg"]


def test_wait_for_address_waits_in_one_run_until_the_lease_then_fails_with_the_fix(
    run_module, machine, tmp_path, monkeypatch
):
    """The bootstrap's wait for xapi's DHCP lease: one module run re-reading the addresses, not a retried task."""
    fake = tmp_path / "xenstore-read"
    fake.write_text("#!/bin/sh\necho 02:58:53:02:00:01\n")
    fake.chmod(0o755)
    machine["macs"] = {"02:58:53:02:00:01": "eth2"}
    reads = []

    def addresses(_out):  # the lease arrives at the third read of the addresses
        reads.append(1)
        return [("eth2", himn_info.IPv4Interface("169.254.0.2/16"))] if len(reads) >= 3 else []

    monkeypatch.setattr(himn_info, "parse_addresses", addresses)
    args = dict(use_xenapi=False, xenstore_read=str(fake))
    result = run_module(himn_info, dict(args, wait_for_address=10))
    assert (result["interface"], result["address"], result["prefix"], len(reads)) == ("eth2", "169.254.0.2", 16, 3)

    del reads[:]
    monkeypatch.setattr(himn_info, "parse_addresses", lambda _out: reads.append(1) or [])
    result = run_module(himn_info, dict(args, wait_for_address=1))
    assert result["failed"] and "The HIMN interface eth2 (found by xenstore) has no address" in result["msg"], result
    assert "after 1 s" in result["msg"] and "xe vif-list" in result["msg"] and 2 <= len(reads) <= 4
    assert run_module(himn_info, dict(args, wait_for_address=-1))["msg"] == (
        "wait_for_address must be 0 (no wait) or more seconds."
    )
    assert run_module(himn_info, args)["address"] == ""  # no wait by default
