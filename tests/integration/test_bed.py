# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The network-namespace test bed (tests/bed): topology, data paths, idempotence, cleanup and crash recovery.

Root only: tests/conftest.py skips them for a non-root user. As root without network namespace support they fail.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from bedlib import PREFIX, ns
from xapisim.dom0 import missing_targets

REPO = Path(__file__).resolve().parents[2]
BED = REPO / "tests" / "bed" / "bed.py"
PYTHON = sys.executable
HTTP_GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
HEALTH = "http://169.254.0.1/_sim/health"
VM_MACS = """
import sys, XenAPI
session = XenAPI.Session("http://169.254.0.1")
session.xenapi.login_with_password(sys.argv[2], sys.argv[3])
vm = session.xenapi.VM.get_by_uuid(sys.argv[1])
vifs = [session.xenapi.VIF.get_record(vif) for vif in session.xenapi.VM.get_VIFs(vm)]
print(" ".join(sorted(vif["MAC"] for vif in vifs)))
"""

PROBE_PLUGIN = """#!/usr/bin/env python
import json, os, subprocess, sys
import XenAPIPlugin


def probe(session, args):
    with open("/usr/etc/bed-probe", "w") as f:
        f.write(args["mark"])
    tools = subprocess.check_output(["sh", "-c", "command -v service; command -v xe"]).decode().split()
    sr = subprocess.check_output(["xe", "pool-list", "params=default-SR", "minimal=true"]).decode().strip()
    bridges = subprocess.check_output(["ovs-vsctl", "list-br"]).decode().split()
    return json.dumps(
        {"xcp": os.listdir("/var/lib/xcp"), "sr": sr, "tools": tools, "python": sys.version[:3], "bridges": bridges}
    )


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"probe": probe})
"""
CALL_PROBE = """
import sys, XenAPI
session = XenAPI.Session("http://169.254.0.1")
session.xenapi.login_with_password(sys.argv[1], sys.argv[2])
print(session.xenapi.host.call_plugin(session.xenapi.host.get_all()[0], "bed-probe", "probe", {"mark": sys.argv[3]}))
"""

pytestmark = pytest.mark.root  # tests/conftest.py skips these for a non-root developer


def bed(*args: str, state_dir: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [PYTHON, str(BED), *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def in_netns(ns: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=False, timeout=30)


def ip_json(ns: str, *args: str) -> list[dict]:
    return json.loads(subprocess.run(["ip", "-n", ns, "-j", *args], capture_output=True, text=True, check=True).stdout)


def bed_namespaces() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listing.splitlines() if line.startswith(PREFIX)]


def running(pid: int) -> bool:
    try:
        return Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command_lines() -> list[str]:
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # the process has gone
            pass
    return lines


def assert_clean(state_dir: Path, machine_before: dict, pids: list[int]) -> None:
    """No namespace, process, /etc/netns entry, /etc mount target or Dom0 mount target of the bed is left."""
    assert bed_namespaces() == []
    assert [pid for pid in pids if running(pid)] == []
    assert [line for line in command_lines() if str(state_dir) in line] == []
    assert not list(Path("/etc").glob("netns/%s*" % PREFIX))
    assert machine() == machine_before


def recorded_pids(state_dir: Path) -> list[int]:
    processes = json.loads(bed("status", state_dir=state_dir).stdout).get("processes", {})
    return [process["pid"] for process in processes.values()]


def ansible(state_dir: Path, pattern: str, module: str, args: str, cwd: Path) -> str:
    """Run an ad-hoc ansible task on the bed's inventory through the netns connection; return one line per host."""
    inventory = bed("inventory", state_dir=state_dir).stdout.strip()
    env = dict(os.environ, ANSIBLE_CONNECTION_PLUGINS=str(REPO / "tests" / "bed" / "connection_plugins"))
    argv = [str(Path(PYTHON).parent / "ansible"), "--one-line", "-i", inventory, pattern, "-m", module, "-a", args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def machine() -> dict:
    """What a bed may add to the machine's own file system: /etc entries, and Dom0's mount targets."""
    return {"etc": set(os.listdir("/etc")), "dom0 mount targets the machine lacks": missing_targets()}


@pytest.fixture
def machine_before() -> dict:
    assert bed_namespaces() == [], "a bed is already up on this machine"
    return machine()


@pytest.fixture(scope="class")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A bed with two pairs for the tests of one class, taken down when the class is done. Pre-leased (the bed's
    DHCP on the HIMN, shown here; its default, the fresh VM, is tests/integration/test_fresh_vm.py's)."""
    state_dir = tmp_path_factory.mktemp("bed")
    try:
        bed("up", "--pairs", "2", "--himn-lease", state_dir=state_dir)
        yield state_dir
    finally:
        bed("down", state_dir=state_dir)


@pytest.fixture(scope="class")
def inventory(state_dir: Path) -> dict:
    return yaml.safe_load(Path(bed("inventory", state_dir=state_dir).stdout.strip()).read_text())


@pytest.mark.usefixtures("state_dir")
class TestTwoPairs:
    """The topology and data paths of one bed with two pairs."""

    def test_simulator_answers_in_dom0(self) -> None:
        for dom0 in (ns("dom0-1"), ns("dom0-2")):
            assert in_netns(dom0, PYTHON, "-c", HTTP_GET, HEALTH).stdout.strip() == "ok"

    def test_himn_address_is_leased_without_default_route(self, state_dir: Path) -> None:
        addresses = ip_json(ns("compute-1"), "-4", "address", "show", "dev", "eth2")[0]["addr_info"]
        assert [(address["local"], address["prefixlen"]) for address in addresses] == [("169.254.0.2", 16)]
        leases = (state_dir / "dom0-1" / "dnsmasq.leases").read_text()
        assert " 02:58:53:02:00:01 169.254.0.2 " in leases
        assert all(route.get("dev") != "eth2" for route in ip_json(ns("compute-1"), "route", "show", "default"))

    def test_compute_reaches_simulator_over_himn(self) -> None:
        assert in_netns(ns("compute-1"), PYTHON, "-c", HTTP_GET, HEALTH).stdout.strip() == "ok"

    @pytest.mark.parametrize(
        ("source", "target"),
        [
            ("compute-1", "198.18.1.2"),
            ("compute-1", "198.18.2.2"),
            ("ctl", "198.18.1.11"),
            ("ctl", "198.18.2.11"),
            ("ctl", "198.18.1.12"),
        ],
    )
    def test_mgmt_and_storage_connect_compute_and_controller(self, source: str, target: str) -> None:
        result = in_netns(ns(source), "busybox", "ping", "-c", "1", "-W", "2", target)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_dom0_has_no_route_to_the_controller_yet(self) -> None:
        result = subprocess.run(
            ["ip", "-n", ns("dom0-1"), "route", "get", "198.18.1.2"], capture_output=True, text=True, check=False
        )
        assert result.returncode != 0
        assert "unreachable" in result.stderr

    def test_simulator_knows_the_bed_macs(self, inventory: dict) -> None:
        compute = inventory["all"]["children"]["compute"]["hosts"]["compute-1"]
        macs = in_netns(
            ns("compute-1"),
            PYTHON,
            "-c",
            VM_MACS,
            compute["xenserver_vm_uuid"],
            compute["xenserver_username"],
            compute["xenserver_password"],
        )
        nics = {link["ifname"]: link["address"] for link in ip_json(ns("compute-1"), "link", "show")}
        assert macs.stdout.split() == sorted(nics[nic] for nic in ("eth0", "eth1", "eth2")), macs.stderr

    def test_dom0_plugins_run_in_their_own_dom0(self, state_dir: Path, inventory: dict) -> None:
        """The Dom0 file system rule: each Dom0's plugins see its own /usr/etc, /var/lib/xcp (xapi's socket, which
        xe uses), /var/run/openvswitch (its own ovsdb-server, with xapi's bridges) ..., and its stand-ins first on
        PATH; the machine's directories are left alone."""
        other = "unix:%s" % (state_dir / "dom0-2" / "root" / "var" / "run" / "openvswitch" / "db.sock")
        subprocess.run(["ovs-vsctl", "--db=" + other, "add-br", "only-in-dom0-2"], check=True, timeout=30)
        for dom0 in ("dom0-1", "dom0-2"):
            plugin = state_dir / dom0 / "root" / "etc" / "xapi.d" / "plugins" / "bed-probe"
            plugin.write_text(PROBE_PLUGIN)
            plugin.chmod(0o755)
        compute = inventory["all"]["children"]["compute"]["hosts"]["compute-1"]
        user, password = compute["xenserver_username"], compute["xenserver_password"]
        result = in_netns(ns("compute-1"), PYTHON, "-c", CALL_PROBE, user, password, "one")
        assert result.returncode == 0, result.stderr
        scenario = yaml.safe_load((state_dir / "dom0-1" / "scenario.yml").read_text())
        assert json.loads(result.stdout) == {
            "xcp": ["xapi"],
            "sr": scenario["srs"][scenario["pool"]["default_sr"]]["uuid"],
            "tools": [
                str(state_dir / "dom0-1" / "bin" / "service"),
                str(REPO / "tests" / "xapisim" / "dom0bin" / "xe"),
            ],
            "python": "2.7",
            "bridges": ["xenapi", "xenbr0", "xenbr1"],
        }
        assert (state_dir / "dom0-1" / "root" / "usr" / "etc" / "bed-probe").read_text() == "one"
        assert not (state_dir / "dom0-2" / "root" / "usr" / "etc" / "bed-probe").exists()
        assert not Path("/usr/etc/bed-probe").exists()

    def test_up_again_is_a_no_op(self, state_dir: Path) -> None:
        pids = recorded_pids(state_dir)
        assert "already up" in bed("up", "--pairs", "2", "--himn-lease", state_dir=state_dir).stdout
        assert recorded_pids(state_dir) == pids

    def test_ansible_runs_inside_the_namespaces(self, state_dir: Path, tmp_path: Path) -> None:
        output = ansible(state_dir, "compute", "ansible.builtin.command", "ip -o link", cwd=tmp_path)
        own = {"lo", "eth0", "eth1", "eth2", "br-mgmt", "br-storage"}  # not the machine's interfaces
        links = {line.split(" | ", 1)[0]: set(re.findall(r"\d+: ([\w.-]+)[:@]", line)) for line in output.splitlines()}
        assert links == {"compute-1": own, "compute-2": own}

    def test_ansible_files_land_in_the_hosts_own_etc(self, state_dir: Path, inventory: dict, tmp_path: Path) -> None:
        ansible(state_dir, "compute-1", "ansible.builtin.copy", "content=bed dest=/etc/nova/bed.conf", cwd=tmp_path)
        ansible(
            state_dir,
            "compute-1",
            "ansible.builtin.fetch",
            "src=/etc/nova/bed.conf dest=%s/ flat=true" % tmp_path,
            cwd=tmp_path,
        )
        root = Path(inventory["all"]["children"]["compute"]["hosts"]["compute-1"]["bed_root"])
        assert (root / "etc" / "nova" / "bed.conf").read_text() == "bed"
        assert (tmp_path / "bed.conf").read_text() == "bed"
        assert os.listdir("/etc/nova") == []


def test_down_removes_everything(tmp_path: Path, machine_before: dict) -> None:
    try:
        bed("up", "--pairs", "2", state_dir=tmp_path)
        pids = recorded_pids(tmp_path)
        assert len(pids) == 8  # per pair: dnsmasq, the simulator, ovsdb-server, ovs-vswitchd
    finally:
        bed("down", state_dir=tmp_path)
    assert_clean(tmp_path, machine_before, pids)
    assert "nothing to take down" in bed("down", state_dir=tmp_path).stdout


def kill_up_after_first_namespace(state_dir: Path) -> None:
    up = subprocess.Popen(
        [PYTHON, str(BED), "up", "--state-dir", str(state_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while not bed_namespaces() and up.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    up.send_signal(signal.SIGKILL)
    up.wait()
    assert bed_namespaces(), "up finished or failed before creating a namespace"


def test_down_after_a_crashed_up(tmp_path: Path, machine_before: dict) -> None:
    try:
        kill_up_after_first_namespace(tmp_path)
    finally:
        bed("down", state_dir=tmp_path)
    assert_clean(tmp_path, machine_before, [])


def test_up_completes_a_crashed_up(tmp_path: Path, machine_before: dict) -> None:
    try:
        kill_up_after_first_namespace(tmp_path)
        assert "bed: up" in bed("up", state_dir=tmp_path).stdout
        status = json.loads(bed("status", state_dir=tmp_path).stdout)
        assert status["up"]
        assert (
            sorted(status["namespaces"])
            == sorted(bed_namespaces())
            == [ns("compute-1"), ns("ctl"), ns("dom0-1"), ns("sw")]
        )
        pids = recorded_pids(tmp_path)
    finally:
        bed("down", state_dir=tmp_path)
    assert_clean(tmp_path, machine_before, pids)


@pytest.mark.parametrize(
    "setpriv",
    [
        # nobody, keeping only the right to read the interpreter wherever it is installed
        [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
        ],
        # root without CAP_SYS_ADMIN: `ip netns add` is refused
        ["--bounding-set=-sys_admin", "--inh-caps=-sys_admin"],
    ],
    ids=["not-root", "no-netns"],
)
def test_without_namespaces_it_stops_with_one_line(tmp_path: Path, machine_before: dict, setpriv: list[str]) -> None:
    try:
        result = subprocess.run(
            ["setpriv", *setpriv, PYTHON, str(BED), "up", "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        bed("down", state_dir=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("bed: needs root and network namespaces (")
    assert result.stderr.count("\n") == 1
    assert_clean(tmp_path, machine_before, [])
