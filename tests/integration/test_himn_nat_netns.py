# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""himn_nat for real: iptables (the system's, nf_tables), ip_forward and packets, in throwaway network namespaces.

Every namespace is created here as xs-nat-test-<role>-<random> and deleted in a fixture's finally; the module runs
inside one (``ip netns exec NS python``), with its files under tmp_path. The machine's own iptables, sysctls and /etc
are never touched. Root only: tests/conftest.py skips these for a non-root user.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sitelib import LISTENER

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".build" / "collections"
PYTHON = sys.executable

pytestmark = pytest.mark.root  # tests/conftest.py skips these for a non-root developer

RUNNER = """
import json, sys
from ansible.module_utils.testing import patch_module_args
from ansible_collections.xenserver.openstack.plugins.modules import himn_nat
with patch_module_args(json.loads(sys.argv[1])):
    try:
        himn_nat.main()
    except SystemExit:
        pass
"""


CONNECT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as connection:
    print(connection.recv(64).decode())
"""

# Unrelated rules a compute VM may already have, in the built-in chains the module jumps from too. One is exactly
# the rule the old Fuel plugin appended to FORWARD: it is not the module's and must survive.
UNRELATED = [
    ["-A", "INPUT", "-s", "192.0.2.7/32", "-j", "DROP"],
    ["-A", "FORWARD", "-i", "eth2", "-o", "br-mgmt", "-j", "ACCEPT"],
    ["-t", "nat", "-A", "POSTROUTING", "-o", "br-ex", "-j", "MASQUERADE"],
    [
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-i",
        "br-ex",
        "-p",
        "tcp",
        "--dport",
        "8080",
        "-j",
        "REDIRECT",
        "--to-ports",
        "80",
    ],
]


def run(argv, ns=None, check=True, **kwargs):
    prefix = ["ip", "netns", "exec", ns] if ns else []
    result = subprocess.run(prefix + argv, capture_output=True, text=True, check=False, timeout=60, **kwargs)
    if check:
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return result


@pytest.fixture
def netns():
    """Make namespaces (and processes in them) that are removed after the test, whatever happens."""
    names, processes = [], []

    def make(role):
        name = "xs-nat-test-%s-%s" % (role, secrets.token_hex(3))
        names.append(name)
        run(["ip", "netns", "add", name])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    make.processes = processes
    try:
        yield make
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def compute_vm(netns, bridges=("br-mgmt", "br-storage")):
    """A namespace with the compute VM's interfaces: eth2 on the HIMN (a veth) and the bridges."""
    ns = netns("compute")
    run(["ip", "-n", ns, "link", "add", "eth2", "type", "veth", "peer", "name", "vif9"])
    for bridge in bridges:
        run(["ip", "-n", ns, "link", "add", bridge, "type", "bridge"])
    return ns


def himn_nat(ns, args, check_mode=False):
    """Run the module in-process in a Python inside the namespace; return its result."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=True)
    result = run([PYTHON, "-c", RUNNER, json.dumps(args)], ns=ns, env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)))
    return json.loads(result.stdout)


def files(tmp_path, **extra):
    return dict(
        rules_file=str(tmp_path / "iptables" / "rules.v4"), sysctl_file=str(tmp_path / "sysctl.d" / "90.conf"), **extra
    )


def present_args(tmp_path, **extra):
    args = dict(himn_interface="eth2", port_forwards=[dict(interface="br-mgmt", port=80)])
    return files(tmp_path, **dict(args, **extra))


def dump(ns):
    """iptables-save output without its comments (they carry the time)."""
    return "".join(line for line in run(["iptables-save"], ns=ns).stdout.splitlines(True) if not line.startswith("#"))


def normalized(text):
    """iptables-save output without comments and counters, and without tables that hold nothing.

    The nf_tables backend keeps a table once anything made it, even empty; an empty table with the default
    ACCEPT policies filters nothing, so it counts as no table.
    """
    tables, current = [], None
    for raw in text.splitlines():
        if raw.startswith("#") or not raw.strip():
            continue
        line = re.sub(r"\[\d+:\d+\]", "[0:0]", raw)
        if line.startswith("*"):
            current = [line]
        elif line == "COMMIT":
            if any(not re.match(r"^:[A-Z]+ ACCEPT \[0:0\]$", entry) for entry in current[1:]):
                tables.append("\n".join([*current, "COMMIT"]))
        else:
            current.append(line)
    return "\n".join(tables)


def rule_lines(text):
    """{table: [every -A line]} of an iptables-save output."""
    lines, table = {}, None
    for line in text.splitlines():
        if line.startswith("*"):
            table = lines.setdefault(line[1:], [])
        elif line.startswith("-A "):
            table.append(line)
    return lines


def ip_forward(ns):
    return run(["cat", "/proc/sys/net/ipv4/ip_forward"], ns=ns).stdout.strip()


def set_ip_forward(ns, value):
    run(["sh", "-c", "echo %s > /proc/sys/net/ipv4/ip_forward" % value], ns=ns)


def seed(ns):
    for argv in UNRELATED:
        run(["iptables", *argv], ns=ns)


def assert_each_rule_once(ns, result):
    live = rule_lines(dump(ns))
    for rule in result["rules"]:
        _t, table, spec = rule.split(" ", 2)
        assert live[table].count(spec) == 1, (rule, live[table])
    for builtin, chain in [("INPUT", "HIMN-INPUT"), ("FORWARD", "HIMN-FORWARD")]:
        assert next(line for line in live["filter"] if line.startswith("-A %s " % builtin)) == "-A %s -j %s" % (
            builtin,
            chain,
        )
    return live


def test_present_makes_each_rule_exactly_once_and_persists(netns, tmp_path):
    ns = compute_vm(netns)
    seed(ns)
    first = himn_nat(ns, present_args(tmp_path))
    assert first["changed"] is True
    assert sorted(first["rules_added"]) == sorted(first["rules"]) and len(first["rules"]) == 13
    assert first["ip_forward"] == 1 and ip_forward(ns) == "1"
    second = himn_nat(ns, present_args(tmp_path))
    assert (second["changed"], second["rules_added"], second["rules_removed"], second["changed_files"]) == (
        False,
        [],
        [],
        [],
    )
    live = assert_each_rule_once(ns, second)
    assert "-A FORWARD -i eth2 -o br-mgmt -j ACCEPT" in live["filter"]  # the unrelated Fuel-style rule
    assert "-A INPUT -s 192.0.2.7/32 -j DROP" in live["filter"]
    assert "-A POSTROUTING -o br-ex -j MASQUERADE" in live["nat"]
    sysctl = tmp_path / "sysctl.d" / "90.conf"
    assert sysctl.read_text().endswith("\nnet.ipv4.ip_forward = 1\n")
    assert sysctl.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "iptables" / "rules.v4").stat().st_mode & 0o777 == 0o640


def test_present_repairs_a_second_jump_a_stray_rule_and_a_missing_one(netns, tmp_path):
    ns = compute_vm(netns)
    himn_nat(ns, present_args(tmp_path, persist=False))
    run(["iptables", "-A", "INPUT", "-j", "HIMN-INPUT"], ns=ns)
    run(["iptables", "-A", "HIMN-FORWARD", "-i", "eth2", "-o", "br-old", "-j", "ACCEPT"], ns=ns)
    run(
        [
            "iptables",
            "-t",
            "nat",
            "-D",
            "HIMN-POSTROUTING",
            "-s",
            "169.254.0.1/32",
            "-o",
            "br-storage",
            "-j",
            "MASQUERADE",
        ],
        ns=ns,
    )
    result = himn_nat(ns, present_args(tmp_path, persist=False))
    assert result["changed"] is True
    assert sorted(result["rules_removed"]) == [
        "-t filter -A HIMN-FORWARD -i eth2 -o br-old -j ACCEPT",
        "-t filter -A INPUT -j HIMN-INPUT",
    ]
    assert result["rules_added"] == ["-t nat -A HIMN-POSTROUTING -s 169.254.0.1/32 -o br-storage -j MASQUERADE"]
    live = assert_each_rule_once(ns, result)
    assert sum(len(lines) for lines in live.values()) == len(result["rules"])


@pytest.mark.parametrize("seeded", [False, True], ids=["fresh", "with-unrelated-rules-files-and-forwarding"])
def test_absent_leaves_everything_as_it_was_before(netns, tmp_path, seeded):
    ns = compute_vm(netns)
    rules_file, sysctl_file = tmp_path / "iptables" / "rules.v4", tmp_path / "sysctl.d" / "90.conf"
    if seeded:
        seed(ns)
        set_ip_forward(ns, 1)
        rules_file.parent.mkdir()
        rules_file.write_text(dump(ns))
        sysctl_file.parent.mkdir()
        sysctl_file.write_text("# the operator's\nnet.core.somaxconn = 1024\n")
    before = (normalized(dump(ns)), ip_forward(ns))
    before_files = {path: path.read_text() for path in (rules_file, sysctl_file) if path.exists()}
    assert himn_nat(ns, present_args(tmp_path))["changed"] is True
    assert normalized(dump(ns)) != before[0]

    result = himn_nat(ns, files(tmp_path, state="absent"))
    assert result["changed"] is True and len(result["rules_removed"]) == 13
    assert (normalized(dump(ns)), ip_forward(ns)) == before
    assert {path: path.read_text() for path in (rules_file, sysctl_file) if path.exists()} == before_files
    again = himn_nat(ns, files(tmp_path, state="absent"))
    assert (again["changed"], again["rules_removed"], again["changed_files"]) == (False, [], [])


def test_check_mode_reports_the_changes_and_makes_none(netns, tmp_path):
    ns = compute_vm(netns)
    before = dump(ns)
    result = himn_nat(ns, present_args(tmp_path), check_mode=True)
    assert result["changed"] is True and sorted(result["rules_added"]) == sorted(result["rules"])
    assert result["changed_files"] == [str(tmp_path / "iptables" / "rules.v4"), str(tmp_path / "sysctl.d" / "90.conf")]
    iptables_diff = result["diff"][0]
    for rule in result["rules"]:
        assert rule.split(" ", 2)[2] in iptables_diff["after"].splitlines()
    assert iptables_diff["before"] == ""
    assert (dump(ns), ip_forward(ns), list(tmp_path.iterdir())) == (before, "0", [])

    applied = himn_nat(ns, present_args(tmp_path))
    before = (dump(ns), ip_forward(ns), sorted((p, p.read_text()) for p in tmp_path.glob("*/*")))
    result = himn_nat(ns, files(tmp_path, state="absent"), check_mode=True)
    assert result["changed"] is True and sorted(result["rules_removed"]) == sorted(applied["rules"])
    assert result["ip_forward"] == 0 and result["diff"][0]["after"] == ""
    assert (dump(ns), ip_forward(ns), sorted((p, p.read_text()) for p in tmp_path.glob("*/*"))) == before


def test_a_missing_bridge_is_named_and_nothing_changes(netns, tmp_path):
    ns = compute_vm(netns, bridges=("br-mgmt",))
    before = dump(ns)
    result = himn_nat(ns, present_args(tmp_path, port_forwards=[dict(interface="br-ex", port=80)]))
    assert result["failed"] is True
    assert (
        "No such interface on this host: br-storage (forward_interfaces), br-ex (port_forwards[0].interface)"
        in (result["msg"])
    )
    assert (dump(ns), ip_forward(ns), list(tmp_path.iterdir())) == (before, "0", [])


def test_the_rules_file_restores_the_same_rules_in_a_fresh_namespace(netns, tmp_path):
    first = compute_vm(netns)
    himn_nat(first, present_args(tmp_path))
    second = compute_vm(netns)
    rules_file = tmp_path / "iptables" / "rules.v4"
    run(["iptables-restore"], ns=second, input=rules_file.read_text())
    assert normalized(dump(second)) == normalized(dump(first))
    set_ip_forward(second, 1)  # what the sysctl.d file does at boot
    result = himn_nat(second, present_args(tmp_path, persist=False))
    assert (result["changed"], result["rules_added"], result["rules_removed"]) == (False, [], [])


class Bed:
    """Dom0, compute VM and controller namespaces joined like the real thing (see tests/bed/README.md)."""

    def __init__(self, netns):
        self.netns = netns
        self.dom0, self.compute, self.controller = netns("dom0"), netns("compute"), netns("ctl")
        c, k, d = self.compute, self.controller, self.dom0
        run(["ip", "-n", c, "link", "add", "eth2", "type", "veth", "peer", "name", "vif9", "netns", d])
        commands = [
            (d, "addr add 169.254.0.1/16 dev vif9"),
            (d, "link set vif9 up"),
            (c, "addr add 169.254.0.2/16 dev eth2"),
            (c, "link set eth2 up"),
        ]
        for index, (bridge, subnet) in enumerate([("br-mgmt", "198.18.1"), ("br-storage", "198.18.2")]):
            port = "eth%d" % index
            run(["ip", "-n", c, "link", "add", port, "type", "veth", "peer", "name", port, "netns", k])
            commands += [
                (c, "link add %s type bridge" % bridge),
                (c, "link set %s master %s" % (port, bridge)),
                (c, "link set %s up" % port),
                (c, "link set %s up" % bridge),
                (c, "addr add %s.11/24 dev %s" % (subnet, bridge)),
                (k, "addr add %s.2/24 dev %s" % (subnet, port)),
                (k, "link set %s up" % port),
                # Dom0's route via the compute VM (xen_route's job), in place before the module runs.
                (d, "route add %s.0/24 via 169.254.0.2" % subnet),
            ]
        for ns, command in commands:
            run(["ip", "-n", ns, *command.split()])
        # A hardened compute VM: nothing is forwarded or accepted unless a rule says so.
        run(["iptables", "-P", "FORWARD", "DROP"], ns=c)
        run(["iptables", "-P", "INPUT", "DROP"], ns=c)

    def listen(self, ns, address, port, tag):
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, PYTHON, "-c", LISTENER, address, str(port), tag],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.netns.processes.append(process)
        assert process.stdout.readline().strip() == "ready"

    def connect(self, attempts):
        """Connect for each (namespace, address, port) at once; return what each server said ('' on failure)."""
        processes = [
            subprocess.Popen(
                ["ip", "netns", "exec", ns, PYTHON, "-c", CONNECT, address, str(port), "0.7"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for ns, address, port in attempts
        ]
        return [process.communicate(timeout=30)[0].strip() if process.wait() == 0 else "" for process in processes]


def test_packets_flow_from_dom0_to_the_networks_and_to_dom0_through_the_port_forward(netns, tmp_path):
    bed = Bed(netns)
    bed.listen(bed.controller, "198.18.1.2", 9000, "controller-mgmt")
    bed.listen(bed.controller, "198.18.2.2", 9000, "controller-storage")
    bed.listen(bed.dom0, "169.254.0.1", 80, "dom0-console")
    bed.listen(bed.compute, "169.254.0.2", 9001, "compute")
    attempts = [
        (bed.dom0, "198.18.1.2", 9000),  # Dom0 to the management network
        (bed.dom0, "198.18.2.2", 9000),  # Dom0 to the storage network
        (bed.controller, "198.18.1.11", 80),  # noVNC: the compute VM's mgmt address, port 80, to Dom0
        (bed.dom0, "169.254.0.2", 9001),  # Dom0 to the compute VM itself (INPUT from the HIMN)
    ]
    assert bed.connect(attempts) == ["", "", "", ""]

    args = dict(himn_interface="eth2", port_forwards=[dict(interface="br-mgmt", port=80)], persist=False)
    assert himn_nat(bed.compute, files(tmp_path, **args))["changed"] is True
    assert bed.connect(attempts) == ["controller-mgmt", "controller-storage", "dom0-console", "compute"]
    assert list(tmp_path.iterdir()) == []  # persist: false writes no file

    # Without the port forward, port 80 on the compute VM goes nowhere; the rest still flows.
    assert himn_nat(bed.compute, files(tmp_path, **dict(args, port_forwards=[])))["changed"] is True
    assert bed.connect(attempts) == ["controller-mgmt", "controller-storage", "", "compute"]

    assert himn_nat(bed.compute, files(tmp_path, state="absent", persist=False))["changed"] is True
    assert bed.connect(attempts) == ["", "", "", ""]


def test_another_guest_on_the_himn_gets_nowhere_through_the_compute_vm(netns, tmp_path):
    """Issue 18: the compute VM forwards and masquerades Dom0 (169.254.0.1) alone, not every guest on the HIMN."""
    bed = Bed(netns)
    # Dom0's HIMN becomes a bridge (as xapi's is) with a second guest on it, 169.254.0.9, routing as Dom0 does.
    guest = netns("guest")
    d = bed.dom0
    run(["ip", "-n", guest, "link", "add", "eth0", "type", "veth", "peer", "name", "vif10", "netns", d])
    for ns, command in [
        (d, "addr del 169.254.0.1/16 dev vif9"),
        (d, "link add xenapi type bridge"),
        (d, "link set vif9 master xenapi"),
        (d, "link set vif10 master xenapi"),
        (d, "addr add 169.254.0.1/16 dev xenapi"),
        (d, "link set vif10 up"),
        (d, "link set xenapi up"),
        (d, "route add 198.18.1.0/24 via 169.254.0.2"),
        (guest, "addr add 169.254.0.9/16 dev eth0"),
        (guest, "link set eth0 up"),
        (guest, "route add 198.18.1.0/24 via 169.254.0.2"),
    ]:
        run(["ip", "-n", ns, *command.split()])
    bed.listen(bed.controller, "198.18.1.2", 9000, "controller-mgmt")
    assert himn_nat(bed.compute, files(tmp_path, himn_interface="eth2", persist=False))["changed"] is True
    assert bed.connect([(d, "198.18.1.2", 9000), (guest, "198.18.1.2", 9000)]) == ["controller-mgmt", ""]


def test_through_ansible_with_the_netns_connection(netns, tmp_path):
    ns = compute_vm(netns)
    args = present_args(tmp_path)
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        textwrap.dedent(
            """\
            - name: Forward Dom0's traffic in the compute VM
              hosts: all
              gather_facts: false
              tasks:
                - name: First run
                  xenserver.openstack.himn_nat: %(args)s
                  register: first
                - name: Second run
                  xenserver.openstack.himn_nat: %(args)s
                  register: second
                - name: Changed once, then not
                  ansible.builtin.assert:
                    that:
                      - first is changed
                      - first.rules_added | length == 13
                      - second is not changed
            """
        )
        % {"args": json.dumps(args)}
    )
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_CONNECTION_PLUGINS=str(REPO / "tests" / "bed" / "connection_plugins"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
    )
    result = run(
        [str(Path(PYTHON).parent / "ansible-playbook"), "-i", ns + ",", "-c", "netns", "--diff", str(playbook),
         "-e", "ansible_python_interpreter=" + PYTHON],
        env=env,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+-A HIMN-INPUT -i eth2 -j ACCEPT" in result.stdout
    assert "+net.ipv4.ip_forward = 1" in result.stdout
    # This machine has no netfilter-persistent: the module says which package restores the rules at boot.
    assert (
        shutil.which("netfilter-persistent")
        or "Install the package iptables-persistent" in result.stderr + result.stdout
    )
    assert_each_rule_once(ns, himn_nat(ns, present_args(tmp_path)))


@pytest.fixture(autouse=True)
def _no_leftover_namespaces():
    yield
    leftovers = [line for line in run(["ip", "netns", "list"]).stdout.splitlines() if "xs-nat-test-" in line]
    assert not leftovers, leftovers
