#!/usr/bin/env python3
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The network-namespace test bed: XenServer hosts (Dom0 + compute VM) and a controller, made of namespaces.

See tests/bed/README.md for the topology, the commands, the /etc rule and the cleanup guarantees.
Every resource is recorded in <state>/state.json *before* it is created, so ``down`` can undo a crashed ``up``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import gpgkey  # noqa: E402  (the tests' one way to make a signing key)
from xapisim import dom0 as xapisim_dom0  # noqa: E402  (Dom0's file system as the simulator mounts it)
from xapisim.scenario import ScenarioError, load_scenario  # noqa: E402  (the simulator's own loader)

UDHCPC_SCRIPT = REPO / "tests" / "bed" / "udhcpc-script"

# Namespace names are global: XS_BED_PREFIX lets two beds (say, two test runs) live side by side.
PREFIX = os.environ.get("XS_BED_PREFIX", "xs-")
SWITCH = PREFIX + "sw"
CONTROLLER = PREFIX + "ctl"
# network -> (its /24, the NIC that controller and compute VMs have on it); the switch bridge has its name.
NETWORKS = {"mgmt": ("198.18.1", "eth0"), "storage": ("198.18.2", "eth1")}
HIMN_NIC = "eth2"
DOM0_HIMN_IP = "169.254.0.1"
COMPUTE_HIMN_IP = "169.254.0.2"
REALCLIENTS = REPO / ".build" / "realclients"  # nova's real venvs (scripts/setup-realclients.sh)
SIM_URL = "http://" + DOM0_HIMN_IP
MAX_PAIRS = 244  # compute-i has 198.18.x.(10 + i)
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"  # Debian's openvswitch-common

# The /etc entries each kind of host has for itself (see "The /etc rule" in README.md).
ETC_ENTRIES = {
    "compute": (
        "nova",
        "neutron",
        "ceilometer",
        "iptables",
        "sysctl.d",
        "init.d",
        "network",
        "default",
        "multipath",
        "cron.d",
    ),
    "dom0": tuple(path[len("/etc/") :] for path in xapisim_dom0.MOUNTS if path.startswith("/etc/")),
    "controller": ("nova", "init.d"),
}
NETNS_ETC = Path("/etc/netns")

HEALTH_TIMEOUT = 30
KILL_GRACE = 3.0
HTTP_GET = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"


class BedError(Exception):
    """Stops the command with ``bed: <message>`` on stderr and exit code ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def needs_namespaces(detail: str) -> BedError:
    return BedError("needs root and network namespaces (%s)" % detail, code=2)


def require_root() -> None:
    if os.geteuid() != 0:
        raise needs_namespaces("running as uid %d" % os.geteuid())


# --- commands and processes ------------------------------------------------------------------------------------


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise needs_namespaces("%s not found" % argv[0]) from None
    if check and result.returncode:
        raise BedError("`%s` failed: %s" % (" ".join(argv), result.stderr.strip()))
    return result


def ip(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("ip", "-n", ns, *args, check=check)


def netns_exists(ns: str) -> bool:
    return Path("/run/netns", ns).exists()


def link_exists(ns: str, name: str) -> bool:
    return ip(ns, "link", "show", "dev", name, check=False).returncode == 0


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        text = []
    return "%s:\n%s" % (log, "\n".join("  | " + line for line in text) or "  | (empty)")


def start_time(pid: int) -> int | None:
    """Kernel start time of a live (non-zombie) process: tells it apart from a later one with the same pid."""
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def terminate(pids: set[int]) -> None:
    """SIGTERM, then SIGKILL whatever still runs after KILL_GRACE seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + KILL_GRACE
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = {pid for pid in pids if start_time(pid) is not None}
        if not pids:
            return


# --- the state file ------------------------------------------------------------------------------------------


class State:
    """<state>/state.json: what the bed is and every resource it made, each recorded before it is made."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.path = directory / "state.json"
        self.exists = self.path.exists()
        self.data = (
            json.loads(self.path.read_text())
            if self.exists
            else {"namespaces": [], "etc": [], "dom0_fs": [], "processes": {}, "complete": False}
        )

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        os.replace(tmp, self.path)
        self.exists = True

    def record(self, key: str, item: str) -> None:
        if item not in self.data.setdefault(key, []):
            self.data[key].append(item)
            self.save()

    def record_process(self, label: str, pid: int) -> None:
        self.data["processes"][label] = [pid, start_time(pid)]
        self.save()

    def process_alive(self, label: str) -> bool:
        pid, started = self.data["processes"].get(label, (0, None))
        return started is not None and start_time(pid) == started

    def is_up(self) -> bool:
        return (
            self.data["complete"]
            and all(map(netns_exists, self.data["namespaces"]))
            and all(map(self.process_alive, self.data["processes"]))
        )


# --- the hosts -----------------------------------------------------------------------------------------------


class Pair:
    """XenServer host i: Dom0 ``dom0-i`` and its compute VM ``compute-i``, each with a namespace and a directory."""

    def __init__(self, index: int, state_dir: Path):
        self.index = index
        self.dom0, self.compute = "dom0-%d" % index, "compute-%d" % index
        self.dom0_ns, self.compute_ns = PREFIX + self.dom0, PREFIX + self.compute
        self.dom0_dir, self.compute_dir = state_dir / self.dom0, state_dir / self.compute
        self.vm_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, "xenserver.openstack/bed/" + self.compute))
        # Dom0's /var/run/openvswitch (Open vSwitch's run directory, db.sock) as the machine sees it
        self.ovs_run_dir = self.dom0_dir / "root" / "var" / "run" / "openvswitch"

    def mac(self, nic: str) -> str:
        """The compute VM's MAC for ethN: locally administered 02:58:53 ("XS"), N, then the pair index."""
        return "02:58:53:%02x:%02x:%02x" % (int(nic[3:]), self.index >> 8, self.index & 0xFF)

    def ip(self, network: str) -> str:
        return "%s.%d" % (NETWORKS[network][0], 10 + self.index)


def controller_dir(state_dir: Path) -> Path:
    return state_dir / "controller"


def pairs_of(state: State) -> list[Pair]:
    return [Pair(i, state.dir) for i in range(1, state.data["pairs"] + 1)]


def namespaces(pairs: list[Pair]) -> list[str]:
    return [SWITCH, CONTROLLER] + [ns for pair in pairs for ns in (pair.dom0_ns, pair.compute_ns)]


# --- scenarios -----------------------------------------------------------------------------------------------


def scenario_path(name: str) -> Path:
    """``tests/scenarios/<name>.yml``, or ``name`` itself when it is the path of a .yml file."""
    path = Path(name) if name.endswith((".yml", ".yaml")) else REPO / "tests" / "scenarios" / (name + ".yml")
    if not path.is_file():
        raise BedError("no scenario %s" % path)
    return path.resolve()


def himn_vif(scenario: dict) -> dict | None:
    """The compute VM's VIF on the HIMN (the network on bridge ``xenapi``), if it has one."""
    himn = {name for name, network in scenario["networks"].items() if network["bridge"] == "xenapi"}
    return next((vif for vif in scenario["vms"]["compute"].get("vifs", []) if vif["network"] in himn), None)


def host_scenario(base: dict, pair: Pair) -> dict:
    """The base scenario as host ``pair`` has it: its Dom0's name, its compute VM and the MACs the bed gives.

    The HIMN VIF gets eth2's MAC and the HIMN address; the other VIFs, in device order, eth0's and eth1's.
    """
    scenario = copy.deepcopy(base)
    scenario.pop("extends", None)  # already merged in
    scenario["description"] = "%s (bed host %d)" % (base.get("description", "").strip(), pair.index)
    scenario["hosts"][scenario.get("local_host") or scenario["pool"]["master"]]["name_label"] = pair.dom0
    # Each host of the bed is a pool of its own, as ten hosts of a real fleet may be (the role takes turns only
    # between the hosts of one pool): its own pool UUID. A test may load a scenario that says otherwise.
    scenario["pool"]["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, "xenserver.openstack/bed/pool/" + pair.dom0))
    vm = scenario["vms"]["compute"]
    vm.update(uuid=pair.vm_uuid, name_label=pair.compute)
    himn = himn_vif(scenario)
    nics = iter([nic for _, nic in NETWORKS.values()])
    for vif in sorted(vm.get("vifs", []), key=lambda vif: int(vif["device"])):
        if vif is himn:
            vif.update(MAC=pair.mac(HIMN_NIC), ip=COMPUTE_HIMN_IP)
        elif (nic := next(nics, None)) is not None:
            vif["MAC"] = pair.mac(nic)
    if "vm-data/himn_mac" in vm.get("xenstore_data", {}):
        vm["xenstore_data"]["vm-data/himn_mac"] = pair.mac(HIMN_NIC)
    return scenario


def cycled(values: list, pairs: list[Pair]) -> dict[int, object]:
    """Pair i gets the i-th value of a comma list given for the bed, the list repeated as often as needed."""
    return {pair.index: values[(pair.index - 1) % len(values)] for pair in pairs}


def host_scenarios(paths: list[str], pairs: list[Pair]) -> dict[int, dict]:
    bases = {}
    for path in paths:
        try:
            bases[path] = load_scenario(path)
        except ScenarioError as exc:
            raise BedError("bad scenario: %s" % exc) from None
        if "compute" not in bases[path].get("vms", {}):
            raise BedError("bad scenario: %s has no compute VM (vms.compute)" % path)
    chosen = cycled(paths, pairs)
    return {pair.index: host_scenario(bases[chosen[pair.index]], pair) for pair in pairs}


# --- what a deployed node has before the product runs -----------------------------------------------------------

# A XenServer Dom0's own files (under its /etc entries): cron entries of its own, the bridge module blacklisted
# (Open vSwitch is the network backend), conntrack-tools' configuration, and its firewall, which `up` also loads
# into the Dom0 namespace as Dom0's iptables service does at boot.
DOM0_FIREWALL = (REPO / "tests" / "bed" / "dom0-firewall.iptables").read_text()
DOM0_FILES = {
    "cron.d/0hourly": "SHELL=/bin/bash\nMAILTO=root\n01 * * * * root run-parts /etc/cron.hourly\n",
    "cron.d/sysstat": "# system activity accounting\n*/10 * * * * root /usr/lib64/sa/sa1 1 1\n",
    "modprobe.d/blacklist-bridge.conf": "# Open vSwitch is the network backend\nblacklist bridge\n",
    "conntrackd/conntrackd.conf": "# conntrack-tools' conntrackd.conf\nSync {\n\tMode FTFW {\n\t}\n}\n",
    "sysconfig/iptables": DOM0_FIREWALL,
}
# A compute VM's /etc/network/interfaces as the OpenStack deployment wrote it (ifupdown: the bed's distribution).
COMPUTE_INTERFACES = """\
# interfaces(5) of %(compute)s, as the OpenStack deployment wrote it
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto br-mgmt
iface br-mgmt inet static
    address %(mgmt)s/24

auto br-storage
iface br-storage inet static
    address %(storage)s/24
"""
# The controller's nova.conf as the OpenStack deployment wrote it (under its /etc entry nova).
CONTROLLER_NOVA_CONF = """\
# nova.conf of the controller, as the OpenStack deployment wrote it
[DEFAULT]
# the API
osapi_compute_listen=198.18.1.2

[keystone_authtoken]
# memcached of the controllers
memcached_servers=198.18.1.2:11211,198.18.1.3:11211
auth_type=password
"""


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def guest_tools(pair: Pair, scenario: dict) -> None:
    """The compute VM's xenstore-read (its guest tools), answering what the VM's xenstore holds about it."""
    vm = scenario["vms"]["compute"]
    domid = str(vm.get("domid", 1))
    keys = {"domid": domid, "/local/domain/%s/vm" % domid: "/vm/" + pair.vm_uuid, "name": pair.compute}
    keys.update(vm.get("xenstore_data", {}))
    data = pair.compute_dir / "xenstore"
    write(data, "".join("%s\t%s\n" % item for item in sorted(keys.items())))
    script = (STANDINS / "xenstore-read.in").read_text().replace("@DATA@", str(data))
    write(pair.compute_dir / "root" / "usr" / "bin" / "xenstore-read", script, 0o755)


def ifupdown(pair: Pair) -> None:
    """The compute VM's ifup and ifdown (standins/ifupdown.py), in its own /usr/sbin, with its own state file."""
    for command in ("ifup", "ifdown"):
        wrapper = '#!/bin/sh\nIFUPDOWN_STATE=%s exec %s %s %s "$@"\n' % (
            pair.compute_dir / "ifstate",
            sys.executable,
            STANDINS / "ifupdown.py",
            command,
        )
        write(pair.compute_dir / "root" / "usr" / "sbin" / command, wrapper, 0o755)


def host_path(pair: Pair) -> str:
    """The compute VM's own bin directories (its guest tools, ifupdown), first on its PATH (``ansible_netns_path``)."""
    root = pair.compute_dir / "root"
    return "%s:%s" % (root / "usr" / "sbin", root / "usr" / "bin")


def in_compute(pair: Pair, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """``argv`` in the compute VM, its own bin directories first on PATH, as Ansible runs commands there."""
    path = "PATH=%s:%s" % (host_path(pair), os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
    return run("ip", "netns", "exec", pair.compute_ns, "env", path, *argv, check=check)


def give_nova(pair: Pair, venv: str) -> None:
    """A real nova for the compute VM: a copy of a real-client venv in its root (hard links, so it costs nothing;
    a patch writes a new file and leaves the shared venv as it was)."""
    target = pair.compute_dir / "root" / "opt" / "openstack"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        run("cp", "-al", str(REALCLIENTS / venv), str(target))


def seed(state: State, pairs: list[Pair]) -> None:
    """Give each host, once, the files and state a deployed node has before the product runs.

    Recorded in the state when done, so completing a crashed ``up`` never puts back what a playbook changed.
    """
    seeded = state.data.setdefault("seeded", [])
    for pair in pairs:
        if pair.dom0 in seeded:
            continue
        etc = pair.dom0_dir / "root" / "etc"
        for relative, text in DOM0_FILES.items():
            write(etc / relative, text, 0o600 if relative == "sysconfig/iptables" else 0o644)
        run("ip", "netns", "exec", pair.dom0_ns, "iptables-restore", str(etc / "sysconfig" / "iptables"))
        # Dom0's `service`, which the Dom0 plugin runs (tests/bed/standins/README.md), on the simulator's PATH.
        service = (STANDINS / "dom0-service.in").read_text().replace("@LOG@", str(pair.dom0_dir / "service.log"))
        write(pair.dom0_dir / "bin" / "service", service, 0o755)
        (pair.dom0_dir / "service.log").write_text("")
        state.record("seeded", pair.dom0)
    for pair in pairs:
        if pair.compute not in seeded:
            # Where the image cache job goes (misc_patches_image_cache_script in the inventory).
            (pair.compute_dir / "root" / "usr" / "local" / "sbin").mkdir(parents=True, exist_ok=True)
            # Its network as the OpenStack deployment left it, for ifupdown at boot (`reboot`): the bridges' static
            # addresses; the HIMN NIC is nowhere (nothing configured it).
            interfaces = COMPUTE_INTERFACES % {
                "compute": pair.compute,
                "mgmt": pair.ip("mgmt"),
                "storage": pair.ip("storage"),
            }
            write(pair.compute_dir / "root" / "etc" / "network" / "interfaces", interfaces)
            state.record("seeded", pair.compute)
    if "controller" not in seeded:
        write(controller_dir(state.dir) / "root" / "etc" / "nova" / "nova.conf", CONTROLLER_NOVA_CONF, 0o640)
        state.record("seeded", "controller")


# --- up: every step makes what is missing and leaves what exists -------------------------------------------------


def create_namespaces(state: State, names: list[str]) -> None:
    for ns in names:
        if netns_exists(ns):
            if ns not in state.data["namespaces"]:
                raise BedError("namespace %s exists but is not in %s: another bed is up" % (ns, state.path))
            continue
        state.record("namespaces", ns)
        result = run("ip", "netns", "add", ns, check=False)
        if result.returncode:
            raise needs_namespaces("ip netns add failed: %s" % result.stderr.strip())


def make_etc_dir(state: State, path: Path) -> None:
    """Create directory ``path`` under /etc if it is missing, recording it first; never touch an existing one."""
    if path.is_dir():
        return
    if path.exists() or path.is_symlink():
        raise BedError("%s exists and is not a directory; the bed does not replace it" % path)
    state.record("etc", str(path))
    path.mkdir()


def give_etc(state: State, ns: str, root: Path, entries: tuple[str, ...]) -> None:
    """Make /etc/<entry> inside ``ns`` the directory <root>/etc/<entry>, for each entry."""
    netns_dir = NETNS_ETC / ns
    if netns_dir.exists() and str(netns_dir) not in state.data["etc"]:
        raise BedError("%s exists but is not in %s: another bed is up" % (netns_dir, state.path))
    make_etc_dir(state, NETNS_ETC)
    make_etc_dir(state, netns_dir)
    for entry in entries:
        (root / "etc" / entry).mkdir(parents=True, exist_ok=True)
        make_etc_dir(state, Path("/etc", entry))
        link = netns_dir / entry
        if not link.is_symlink():
            state.record("etc", str(link))
            link.symlink_to(root / "etc" / entry)


def give_sudo_user(state: State, pair: Pair, name: str) -> None:
    """A user ``name`` in the compute VM, allowed everything through sudo without a password, as clouds are reached.

    The VM gets its own /etc/passwd, /etc/group, /etc/shadow (PAM's account check, which sudo makes, reads it) and
    /etc/sudoers (the machine's first three with the user added, no password to log in with; the
    /etc rule binds them over the machine's inside its namespace only), and a home directory of its own in /tmp
    (recorded in the state, removed on ``down``), which the user can reach whatever the state directory's modes.
    """
    if not Path("/etc/sudoers").is_file() or not shutil.which("sudo"):
        raise BedError("--sudo-user needs sudo on this machine (apt-get install sudo)")
    etc, netns_dir = pair.compute_dir / "root" / "etc", NETNS_ETC / pair.compute_ns
    uid = state.data.setdefault("sudo_uid", free_id())
    home = Path("/tmp", "%s-home-%s" % (pair.compute_ns, name))
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    shadow = Path("/etc/shadow").read_text()
    # Its own bin directories first on sudo's PATH too (secure_path), as /sbin is for ifup on a real VM.
    path = "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" % host_path(pair)
    files = {
        "passwd": (passwd + "%s:x:%d:%d:bed sudo user:%s:/bin/sh\n" % (name, uid, uid, home), 0o644),
        "group": (group + "%s:x:%d:\n" % (name, uid), 0o644),
        "shadow": (shadow + "%s:*:20000:0:99999:7:::\n" % name, 0o640),
        "sudoers": (
            'Defaults secure_path="%s"\nroot ALL=(ALL:ALL) ALL\n%s ALL=(ALL:ALL) NOPASSWD: ALL\n' % (path, name),
            0o440,
        ),
    }
    for entry, (text, mode) in files.items():
        write(etc / entry, text, mode)
        link = netns_dir / entry
        if not link.is_symlink():
            state.record("etc", str(link))
            link.symlink_to(etc / entry)
    if not home.exists():
        state.record("homes", str(home))
        home.mkdir(mode=0o700)
        os.chown(home, uid, uid)


def free_id() -> int:
    """A user and group id that neither the machine's /etc/passwd nor /etc/group uses."""
    used = {
        int(line.split(":")[2])
        for name in ("passwd", "group")
        for line in Path("/etc", name).read_text().splitlines()
        if line.count(":") >= 2
    }
    return next(i for i in range(4200, 60000) if i not in used)


def give_dom0_fs(state: State) -> None:
    """The Dom0 file system rule: the mount targets the simulators need for Dom0's paths outside /etc (their
    namespaces bind Dom0's roots over them), made as empty directories where the machine lacks them."""
    for path in xapisim_dom0.missing_targets():
        state.record("dom0_fs", path)
        Path(path).mkdir(exist_ok=True)


def give_files(state: State, pairs: list[Pair]) -> None:
    give_etc(state, CONTROLLER, controller_dir(state.dir) / "root", ETC_ENTRIES["controller"])
    for pair in pairs:
        give_etc(state, pair.compute_ns, pair.compute_dir / "root", ETC_ENTRIES["compute"])
        give_etc(state, pair.dom0_ns, pair.dom0_dir / "root", ETC_ENTRIES["dom0"])
        (pair.dom0_dir / "root" / "etc" / "xapi.d" / "plugins").mkdir(exist_ok=True)
    give_dom0_fs(state)


def bridge(ns: str, name: str, address: str | None = None) -> None:
    if not link_exists(ns, name):
        ip(ns, "link", "add", name, "type", "bridge")
    if address:
        ip(ns, "address", "replace", address, "dev", name)
    ip(ns, "link", "set", name, "up")


def cable(
    ns: str, nic: str, peer_ns: str, port: str, peer_bridge: str, *, mac: str | None = None, up: bool = True
) -> None:
    """A veth from ``nic`` in ``ns`` to ``port`` in ``peer_ns``, the port enslaved to ``peer_bridge``; ``nic`` up
    unless ``up`` is false (a NIC nothing configured yet; left as it is when it exists)."""
    made = not link_exists(ns, nic)
    if made:
        address = ["address", mac] if mac else []
        ip(ns, "link", "add", nic, *address, "type", "veth", "peer", "name", port, "netns", peer_ns)
    ip(peer_ns, "link", "set", port, "master", peer_bridge, "up")
    if up or made:
        ip(ns, "link", "set", nic, "up" if up else "down")


def wire(pairs: list[Pair], scenarios: dict[int, dict], himn_up: bool) -> None:
    for ns in namespaces(pairs):
        ip(ns, "link", "set", "lo", "up")
    for network, (prefix, nic) in NETWORKS.items():
        bridge(SWITCH, network)
        cable(CONTROLLER, nic, SWITCH, "ctl-" + nic, network)
        ip(CONTROLLER, "address", "replace", prefix + ".2/24", "dev", nic)
    for pair in pairs:
        bridge(pair.dom0_ns, "xenapi", DOM0_HIMN_IP + "/16")
        if himn_vif(scenarios[pair.index]):
            cable(pair.compute_ns, HIMN_NIC, pair.dom0_ns, "vif9", "xenapi", mac=pair.mac(HIMN_NIC), up=himn_up)
        for network, (_, nic) in NETWORKS.items():
            bridge(pair.compute_ns, "br-" + network, pair.ip(network) + "/24")
            cable(pair.compute_ns, nic, SWITCH, "c%d-%s" % (pair.index, nic), network, mac=pair.mac(nic))
            ip(pair.compute_ns, "link", "set", nic, "master", "br-" + network)


def spawn(state: State, label: str, ns: str, argv: list[str], *, log: Path, env: dict | None = None) -> None:
    """Start ``argv`` detached inside ``ns``, output to ``log``, and record its pid, unless it runs already."""
    if state.process_alive(label):
        return
    with log.open("w") as out:
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            env=env,
            start_new_session=True,
        )
    state.record_process(label, process.pid)


def ovs_vsctl(pair: Pair, *args: str) -> subprocess.CompletedProcess:
    return run("ovs-vsctl", "--db=unix:%s" % (pair.ovs_run_dir / "db.sock"), "--timeout=%d" % HEALTH_TIMEOUT, *args)


def start_ovs(state: State, pair: Pair, scenario: dict) -> None:
    """Dom0's Open vSwitch: a real ovsdb-server (Debian's openvswitch-switch) with its own database, listening in
    Dom0's run directory (the simulator mounts it on /var/run/openvswitch for the plugins) and, as on a XenServer
    host, on the managers its Open_vSwitch row names (neutron's agent adds ptcp:6640 there itself); and ovs-vswitchd
    in user space with dummy datapaths and ports (no kernel module, no device in the namespace), so a bridge or a
    port is configured as xapi's or neutron's would be. The bridges are those of the scenario's networks (xenbr0,
    xenbr1 and the HIMN's xenapi), as xapi makes them."""
    run_dir, db = pair.ovs_run_dir, pair.dom0_dir / "ovs" / "conf.db"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        run("ovsdb-tool", "create", str(db), OVS_SCHEMA)
    spawn(
        state,
        "ovsdb-server-%d" % pair.index,
        pair.dom0_ns,
        [
            "ovsdb-server",
            str(db),
            "--remote=punix:%s" % (run_dir / "db.sock"),
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            "--unixctl=%s" % (run_dir / "ovsdb-server.ctl"),
        ],
        log=pair.dom0_dir / "ovsdb-server.log",
    )
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while not (run_dir / "db.sock").exists():
        if not state.process_alive("ovsdb-server-%d" % pair.index) or time.monotonic() > deadline:
            raise BedError(
                "ovsdb-server in %s did not start; %s" % (pair.dom0_ns, tail(pair.dom0_dir / "ovsdb-server.log"))
            )
        time.sleep(0.05)
    ovs_vsctl(pair, "--no-wait", "init")
    spawn(
        state,
        "ovs-vswitchd-%d" % pair.index,
        pair.dom0_ns,
        [
            "ovs-vswitchd",
            "unix:%s" % (run_dir / "db.sock"),
            "--enable-dummy=override",
            "--unixctl=%s" % (run_dir / "ovs-vswitchd.ctl"),
        ],
        log=pair.dom0_dir / "ovs-vswitchd.log",
    )
    bridges = sorted({network["bridge"] for network in scenario["networks"].values()})
    ovs_vsctl(pair, *[word for name in bridges for word in ("--", "--may-exist", "add-br", name)])


def start_dhcp(state: State, pair: Pair, scenario: dict) -> None:
    """dnsmasq as xapi's DHCP server on the HIMN, with the compute VM's reservation from the scenario."""
    vif = himn_vif(scenario)
    reservation = ["--dhcp-host=%s,%s" % (vif["MAC"], vif.get("ip", COMPUTE_HIMN_IP))] if vif else []
    spawn(
        state,
        "dnsmasq-%d" % pair.index,
        pair.dom0_ns,
        [
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--user=root",
            "--port=0",
            "--no-ping",
            "--interface=xenapi",
            "--bind-interfaces",
            "--dhcp-range=169.254.0.2,169.254.255.254,255.255.0.0",
            "--dhcp-option=option:router," + DOM0_HIMN_IP,
            *reservation,
            "--log-facility=-",
            "--log-dhcp",
            "--pid-file=%s" % (pair.dom0_dir / "dnsmasq.pid"),
            "--dhcp-leasefile=%s" % (pair.dom0_dir / "dnsmasq.leases"),
        ],
        log=pair.dom0_dir / "dnsmasq.log",
    )


def start_simulator(state: State, pair: Pair, python: str) -> None:
    pythonpath = os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
    spawn(
        state,
        "xapisim-%d" % pair.index,
        pair.dom0_ns,
        [
            python,
            "-m",
            "xapisim",
            "--scenario",
            str(pair.dom0_dir / "scenario.yml"),
            "--host",
            DOM0_HIMN_IP,
            "--port",
            "80",
            "--root",
            str(pair.dom0_dir / "root"),
            # Dom0's `service` stand-in first on the plugins' PATH
            "--bin-dir",
            str(pair.dom0_dir / "bin"),
            "--netns",
            "--pid-file",
            str(pair.dom0_dir / "xapisim.pid"),
        ],
        log=pair.dom0_dir / "xapisim.log",
        env=dict(os.environ, PYTHONPATH=pythonpath),
    )


def healthy(ns: str) -> bool:
    """Whether the simulator answers ``ok`` on /_sim/health, asked from inside ``ns``."""
    result = run("ip", "netns", "exec", ns, sys.executable, "-c", HTTP_GET, SIM_URL + "/_sim/health", check=False)
    return result.returncode == 0 and result.stdout.strip() == "ok"


def wait_for_simulator(state: State, pair: Pair, deadline: float) -> None:
    log = pair.dom0_dir / "xapisim.log"
    while not healthy(pair.dom0_ns):
        if not state.process_alive("xapisim-%d" % pair.index):
            raise BedError("the XAPI simulator in %s exited; %s" % (pair.dom0_ns, tail(log)))
        if time.monotonic() > deadline:
            raise BedError(
                "the XAPI simulator in %s did not answer %s/_sim/health within %ds; %s"
                % (pair.dom0_ns, SIM_URL, HEALTH_TIMEOUT, tail(log))
            )
        time.sleep(0.1)


def lease_himn(pair: Pair) -> None:
    """The compute VM's HIMN address by real DHCP; the script assigns it and adds no route."""
    if ip(pair.compute_ns, "-4", "-o", "address", "show", "dev", HIMN_NIC).stdout.strip():
        return
    result = run(
        "ip",
        "netns",
        "exec",
        pair.compute_ns,
        "busybox",
        "udhcpc",
        "-i",
        HIMN_NIC,
        "-n",
        "-q",
        "-t",
        "5",
        "-T",
        "1",
        "-s",
        str(UDHCPC_SCRIPT),
        check=False,
    )
    if result.returncode:
        raise BedError(
            "no HIMN lease for %s (udhcpc exited %d); %s"
            % (pair.compute_ns, result.returncode, tail(pair.dom0_dir / "dnsmasq.log"))
        )


# --- the pack's signing key -------------------------------------------------------------------------------------


def signing_key(state_dir: Path) -> tuple[str, str]:
    """A throwaway GPG key for the Dom0 pack site.yml builds on the bed: (gpg home, fingerprint). Made once."""
    home = state_dir / "gpg"
    return str(home), gpgkey.signing_key(str(home), "xenserver.openstack test bed")


def trust_signing_key(pair: Pair, home: str, fingerprint: str) -> None:
    """Make the simulated Dom0 trust the key, as import-update-key does in a real Dom0 (ultimate owner trust)."""
    ring = pair.dom0_dir / "root" / "opt" / "xensource" / "gpg"
    ring.mkdir(parents=True, mode=0o700, exist_ok=True)
    public = pair.dom0_dir / "signing-key.asc"
    public.write_text(run("gpg", "--batch", "--homedir", home, "--armor", "--export", fingerprint).stdout)
    trusted = ("gpg", "--batch", "--no-autostart", "--homedir", str(ring))
    # gpg exits 2 when it cannot reach an agent (a long homedir path makes the socket name too long), after
    # importing the public key all the same: check the key is there instead.
    run(*trusted, "--import", str(public), check=False)
    run(*trusted, "--list-keys", fingerprint)
    (pair.dom0_dir / "ownertrust").write_text("%s:6:\n" % fingerprint)
    run(*trusted, "--import-ownertrust", str(pair.dom0_dir / "ownertrust"))


def own_target_python(pair: Pair) -> Path:
    """The interpreter of the compute VM's own copy of the target venv, with --no-target-xenapi."""
    return pair.compute_dir / "python" / "bin" / "python"


def target_without_xenapi(state: State, pair: Pair) -> None:
    """Give the compute VM a copy of the target venv without XenAPI, of its own, so that what one run installs in it
    (the HIMN bootstrap, as on a Fuel compute whose Python has no XenAPI) stays in that VM and that bed."""
    python = own_target_python(pair)
    if python.exists():
        return
    venv = Path(state.data["target_python"]).parent.parent
    shutil.copytree(venv, python.parent.parent, symlinks=True)
    run(str(python), "-m", "pip", "uninstall", "-q", "-y", "XenAPI")
    if run(str(python), "-c", "import XenAPI", check=False).returncode == 0:
        raise BedError("XenAPI still imports in %s after its uninstall" % python)


def inventory(state: State, pairs: list[Pair], scenarios: dict[int, dict]) -> dict:
    def host(ns: str, **hostvars: str) -> dict:
        return dict(ansible_netns_name=ns, **hostvars)

    # The compute VMs' Python: the modules, nova's stand-in and the role scripts run with it (each VM its own copy,
    # without XenAPI, with --no-target-xenapi).
    def compute_python(pair: Pair) -> str:
        if not state.data.get("target_xenapi", True):
            return str(own_target_python(pair))
        return state.data.get("target_python") or state.data["python"]

    novas = cycled(state.data["nova"], pairs) if state.data.get("nova") else {}

    def guest_tools_var(pair: Pair) -> dict:
        """The guest tools' xenstore-read of this VM (what nova and HIMN discovery read from xenstore), if it has."""
        if not state.data.get("guest_tools", True):
            return {}
        return dict(bed_xenstore_read=str(pair.compute_dir / "root" / "usr" / "bin" / "xenstore-read"))

    def nova(pair: Pair) -> dict:
        """What the roles know of nova: the real nova's own Python (they read its version there), or, without a
        real nova, a version and the Python that stands in for nova's."""
        if pair.index in novas:
            python = str(pair.compute_dir / "root" / "opt" / "openstack" / "bin" / "python")
            return dict(nova_xenapi_python=python, misc_patches_python=python, bed_nova=novas[pair.index])
        return dict(
            nova_xenapi_nova_version="21.2.4",
            dom0_suppack_nova_version="21.2.4",  # the pack carries that nova's Dom0 plugins (os-xenapi 0.3.4's)
            nova_xenapi_python=compute_python(pair),
            misc_patches_python=compute_python(pair),
        )

    compute = {
        pair.compute: host(
            pair.compute_ns,
            **nova(pair),
            bed_root=str(pair.compute_dir / "root"),
            # Its own bin directories first on PATH: the guest tools' xenstore-read, ifupdown's ifup and ifdown.
            ansible_netns_path=host_path(pair),
            **guest_tools_var(pair),
            **({"ansible_user": state.data["sudo_user"]} if state.data.get("sudo_user") else {}),
            bed_mgmt_ip=pair.ip("mgmt"),
            bed_storage_ip=pair.ip("storage"),
            xenserver_vm_uuid=pair.vm_uuid,
            xenserver_url=SIM_URL,
            xenserver_username=scenarios[pair.index]["credentials"]["username"],
            xenserver_password=scenarios[pair.index]["credentials"]["password"],
            # What a compute VM of the bed is to the OpenStack roles: no nova/neutron/ceilometer groups, the
            # controller as public VIP, and the storage NIC as the VLAN physnet's NIC.
            openstack_public_vip=NETWORKS["mgmt"][0] + ".2",
            openstack_tenant_nic=NETWORKS["storage"][1],
            ansible_python_interpreter=compute_python(pair),
            nova_xenapi_config_group="root",
            nova_xenapi_neutron_config_group="root",
            nova_xenapi_ceilometer_config_group="root",
            # The roles' paths outside the host's /etc entries, in its own root (another bed shares the machine's).
            dom0_suppack_remote_dir=str(pair.compute_dir / "root" / "var" / "tmp" / "xenserver-openstack"),
            misc_patches_image_cache_script=str(
                pair.compute_dir / "root" / "usr" / "local" / "sbin" / "xenserver-openstack-image-cache"
            ),
            misc_patches_state_dir=str(pair.compute_dir / "root" / "var" / "lib" / "xenserver-openstack" / "patches"),
        )
        for pair in pairs
    }
    dom0 = {pair.dom0: host(pair.dom0_ns, bed_root=str(pair.dom0_dir / "root")) for pair in pairs}
    controller = {
        "controller-1": host(
            CONTROLLER,
            bed_root=str(controller_dir(state.dir) / "root"),
            bed_mgmt_ip=NETWORKS["mgmt"][0] + ".2",
            bed_storage_ip=NETWORKS["storage"][0] + ".2",
            # No nova on the bed's controller: its release is the computes' (nova 21.2.4).
            misc_patches_openstack_release="ussuri",
        )
    }
    return {
        "all": {
            "vars": {
                "ansible_connection": "netns",
                # One command per module run, as with SSH and pipelining (the recommended setting on real nodes).
                "ansible_pipelining": True,
                "ansible_python_interpreter": state.data["python"],
                "bed_mgmt_cidr": NETWORKS["mgmt"][0] + ".0/24",
                "bed_storage_cidr": NETWORKS["storage"][0] + ".0/24",
                "dom0_suppack_gpg_home": state.data["signing_key"][0],
                "dom0_suppack_gpg_key": state.data["signing_key"][1],
                "dom0_suppack_build_dir": str(state.dir / "suppack"),
            },
            "children": {"compute": {"hosts": compute}, "controller": {"hosts": controller}, "dom0": {"hosts": dom0}},
        }
    }


def claim(state: State, args: argparse.Namespace) -> None:
    """Record what this bed is, or check that the recorded bed is the one asked for."""
    wanted = {
        "pairs": args.pairs,
        "scenario": [str(scenario_path(name)) for name in args.scenario.split(",")],
        "nova": args.nova.split(",") if args.nova else [],
        "python": args.python,
        "target_python": args.target_python,
        "target_xenapi": args.target_xenapi,
        "himn_lease": args.himn_lease,
        "guest_tools": not args.no_guest_tools,
        "sudo_user": args.sudo_user,
    }
    if not args.target_xenapi and not args.target_python:
        raise BedError("--no-target-xenapi copies a target venv: give it with --target-python (2.7, 3.6 or 3.8)")
    recorded = {key: state.data.get(key, True if key == "target_xenapi" else None) for key in wanted}
    if state.exists and recorded != wanted:
        raise BedError(
            "%s records another bed (%s); run `down` first"
            % (state.path, ", ".join("%s=%s" % item for item in recorded.items()))
        )
    state.data.update(wanted)
    state.save()


def up(args: argparse.Namespace) -> int:
    require_root()
    state = State(args.state_dir)
    claim(state, args)
    inventory_path = args.state_dir / "inventory.yml"
    if state.is_up():
        print("bed: already up (pairs: %d, inventory: %s)" % (args.pairs, inventory_path))
        return 0
    pairs = pairs_of(state)
    scenarios = host_scenarios(state.data["scenario"], pairs)
    create_namespaces(state, namespaces(pairs))
    give_files(state, pairs)
    seed(state, pairs)
    wire(pairs, scenarios, himn_up=state.data["himn_lease"])
    novas = cycled(state.data["nova"], pairs) if state.data["nova"] else {}
    for pair in pairs:
        if not state.data.get("target_xenapi", True):
            target_without_xenapi(state, pair)
        if state.data["sudo_user"]:
            give_sudo_user(state, pair, state.data["sudo_user"])
        if state.data["guest_tools"]:
            guest_tools(pair, scenarios[pair.index])
        ifupdown(pair)
        if pair.index in novas:
            give_nova(pair, novas[pair.index])
    for pair in pairs:
        (pair.dom0_dir / "scenario.yml").write_text(yaml.safe_dump(scenarios[pair.index], sort_keys=False))
        start_dhcp(state, pair, scenarios[pair.index])
        start_ovs(state, pair, scenarios[pair.index])
        start_simulator(state, pair, args.python)
    deadline = time.monotonic() + HEALTH_TIMEOUT
    for pair in pairs:
        wait_for_simulator(state, pair, deadline)
    for pair in pairs:
        if state.data["himn_lease"] and himn_vif(scenarios[pair.index]):
            lease_himn(pair)
    for pair in pairs:
        in_compute(pair, "ifup", "-a")  # the interfaces the deployment configured, as at boot (not the HIMN)
        start_standins("compute", pair.compute_ns, pair.compute_dir)
    start_standins("controller", CONTROLLER, controller_dir(args.state_dir))
    state.data["signing_key"] = signing_key(args.state_dir)
    for pair in pairs:
        trust_signing_key(pair, *state.data["signing_key"])
    inventory_path.write_text(yaml.safe_dump(inventory(state, pairs, scenarios), sort_keys=False))
    state.data["complete"] = True
    state.save()
    print("bed: up (pairs: %d, inventory: %s)" % (args.pairs, inventory_path))
    return 0


# --- service stand-ins (tests/bed/standins/README.md) ------------------------------------------------------------

STANDINS = REPO / "tests" / "bed" / "standins"
# The OpenStack services of each kind of host, with the configuration files the real service reads: the stand-in
# records their checksums whenever it starts (a pattern is expanded when it starts).
STANDIN_SERVICES = {
    "compute": {
        "nova-compute": ("/etc/nova/nova.conf", "/etc/nova/nova-compute.conf"),
        "neutron-openvswitch-agent": (
            "/etc/neutron/neutron.conf",
            "/etc/neutron/plugins/ml2/openvswitch_agent.ini",
            "/etc/neutron/rootwrap.conf",
        ),
        "ceilometer-polling": ("/etc/ceilometer/ceilometer.conf",),
        # Debian's multipath-tools package: multipathd reads multipath.conf and the drop-ins of conf.d.
        "multipath-tools": ("/etc/multipath/conf.d/*.conf",),
    },
    "controller": {
        "nova-novncproxy": ("/etc/nova/nova.conf",),
        "nova-consoleauth": ("/etc/nova/nova.conf",),
    },
}
# The directories the installed services' packages own (the role makes the others).
STANDIN_DIRECTORIES = {
    "compute": ("/etc/nova", "/etc/neutron/plugins/ml2", "/etc/ceilometer", "/etc/multipath"),
    "controller": ("/etc/nova",),
}


def start_standins(kind: str, ns: str, run_dir: Path) -> None:
    """Write the stand-in init scripts into the host's own /etc/init.d and start each service there.

    Their processes live in the host's namespace, so ``down`` ends them with the namespace's other processes.
    """
    root = run_dir / "root"
    template = (STANDINS / "init-script.in").read_text()
    for directory in STANDIN_DIRECTORIES[kind]:
        (root / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for name, configs in STANDIN_SERVICES[kind].items():
        script = root / "etc" / "init.d" / name
        text = template
        for key, value in (
            ("@NAME@", name),
            ("@RUN_DIR@", str(run_dir)),
            ("@CONFIGS@", " ".join(configs)),
            ("@STANDIN@", str(STANDINS / "standin.sh")),
        ):
            text = text.replace(key, value)
        script.write_text(text)
        script.chmod(0o755)
        if not (run_dir / (name + ".pid")).exists():
            (run_dir / (name + ".log")).write_text("")
        run("ip", "netns", "exec", ns, "/etc/init.d/" + name, "start")


# --- down ----------------------------------------------------------------------------------------------------


def remove_etc(path: Path) -> None:
    """Remove a symlink, or a directory if it is empty; report (not fail on) a directory someone filled.

    A mount target /etc/NAME stays while another bed's namespace still has an /etc/netns/*/NAME for it, or a
    simulator's Dom0 namespace mounts on it.
    """
    if path.parent == Path("/etc") and path != NETNS_ETC and any(NETNS_ETC.glob("*/" + path.name)):
        return
    if path.is_dir() and not path.is_symlink() and xapisim_dom0.mounted_anywhere(str(path)):
        return
    try:
        path.unlink() if path.is_symlink() else path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        print("bed: left %s in place: %s" % (path, exc.strerror), file=sys.stderr)


def clear_host_dir(directory: Path) -> None:
    """Remove a host's files and runtime files, and the directory unless logs are left for the post-mortem."""
    for entry in directory.glob("*"):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.suffix != ".log":
            entry.unlink()
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()


def down(args: argparse.Namespace) -> int:
    require_root()
    state = State(args.state_dir)
    if not state.exists:
        print("bed: nothing to take down (no %s)" % state.path)
        return 0
    processes = state.data["processes"]
    terminate({pid for label, (pid, _) in processes.items() if state.process_alive(label)})
    for ns in filter(netns_exists, state.data["namespaces"]):
        terminate({int(pid) for pid in run("ip", "netns", "pids", ns).stdout.split()})
        run("ip", "netns", "delete", ns)
    for path in reversed(state.data["etc"]):
        remove_etc(Path(path))
    for path in reversed(state.data.get("dom0_fs", [])):
        xapisim_dom0.remove_target(path)
    for path in state.data.get("homes", []):  # the sudo users' home directories
        shutil.rmtree(path, ignore_errors=True)
    if (args.state_dir / "gpg").exists():  # the agent gpg started when the pack was signed
        run("gpgconf", "--homedir", str(args.state_dir / "gpg"), "--kill", "gpg-agent", check=False)
    for pair in pairs_of(state):
        clear_host_dir(pair.dom0_dir)
        clear_host_dir(pair.compute_dir)
    clear_host_dir(controller_dir(args.state_dir))
    (args.state_dir / "inventory.yml").unlink(missing_ok=True)
    state.path.unlink()
    state.path.with_suffix(".tmp").unlink(missing_ok=True)  # from an up killed while saving
    print("bed: down")
    return 0


# --- reboot -----------------------------------------------------------------------------------------------------


def reboot(args: argparse.Namespace) -> int:
    """Reboot a compute VM's network as a boot would: what the kernel held goes, what the host persisted comes back.

    Addresses and routes are flushed on every interface, iptables emptied then loaded from /etc/iptables/rules.v4
    (netfilter-persistent), sysctls from /etc/sysctl.d, and `ifup -a` brings up what /etc/network/interfaces says
    (ifupdown's networking service). Processes (the service stand-ins) keep running.
    """
    require_root()
    state = State(args.state_dir)
    if not state.is_up():
        raise BedError("the bed in %s is not up" % args.state_dir)
    pair = next((pair for pair in pairs_of(state) if pair.compute == args.host), None)
    if pair is None:
        raise BedError("no compute VM %s in this bed (compute-1 .. compute-%d)" % (args.host, state.data["pairs"]))
    ns, etc = pair.compute_ns, pair.compute_dir / "root" / "etc"
    for line in ip(ns, "-o", "link", "show").stdout.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if link != "lo":
            ip(ns, "-4", "address", "flush", "dev", link)
    ip(ns, "-4", "route", "flush", "table", "main")
    for table in ("filter", "nat", "mangle", "raw"):
        for flag in ("-F", "-X"):
            run("ip", "netns", "exec", ns, "iptables", "-t", table, flag)
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        run("ip", "netns", "exec", ns, "iptables", "-P", chain, "ACCEPT")
    if (etc / "iptables" / "rules.v4").exists():
        run("ip", "netns", "exec", ns, "iptables-restore", str(etc / "iptables" / "rules.v4"))
    run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
    for conf in sorted((etc / "sysctl.d").glob("*.conf")):
        run("ip", "netns", "exec", ns, "sysctl", "-q", "-p", str(conf))
    (pair.compute_dir / "ifstate").unlink(missing_ok=True)
    result = in_compute(pair, "ifup", "-a", check=False)
    print("bed: rebooted %s%s" % (args.host, ": " + result.stderr.strip() if result.returncode else ""))
    return 0


# --- status, inventory, main -----------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    state = State(args.state_dir)
    report = {"up": state.is_up(), "state_dir": str(args.state_dir)}
    if state.exists:
        report.update(
            complete=state.data["complete"],
            pairs=state.data["pairs"],
            scenario=state.data["scenario"],
            inventory=str(args.state_dir / "inventory.yml"),
            namespaces={ns: netns_exists(ns) for ns in state.data["namespaces"]},
            processes={
                label: {"pid": pid, "alive": state.process_alive(label)}
                for label, (pid, _) in state.data["processes"].items()
            },
        )
    print(json.dumps(report, indent=2))
    return 0


def show_inventory(args: argparse.Namespace) -> int:
    if not State(args.state_dir).data["complete"]:
        raise BedError("the bed in %s is not up" % args.state_dir)
    print(args.state_dir / "inventory.yml")
    return 0


COMMANDS = {"up": up, "down": down, "status": status, "inventory": show_inventory, "reboot": reboot}


def target_python(value: str) -> str:
    """The interpreter for --target-python: a path, or a version naming a target venv of .build/targets."""
    path = REPO / ".build" / "targets" / ("py" + value) / "bin" / "python" if "/" not in value else Path(value)
    if not os.access(path, os.X_OK):
        hint = "run scripts/setup.sh to build the target venvs" if "/" not in value else "give an interpreter's path"
        raise argparse.ArgumentTypeError("%s is not an executable Python (%s)" % (path, hint))
    return str(path)


def nova_venvs(value: str) -> str:
    """--nova: names of the real-client venvs of .build/realclients, each there."""
    for name in filter(None, value.split(",")):
        if not os.access(REALCLIENTS / name / "bin" / "python", os.X_OK):
            raise argparse.ArgumentTypeError(
                "no real-client venv %s in %s (run scripts/setup-realclients.sh)" % (name, REALCLIENTS)
            )
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bed.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="create the bed, or complete a partly created one")
    up_parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        choices=range(1, MAX_PAIRS + 1),
        metavar="N",
        help="number of Dom0 + compute VM pairs, 1 to %d (default 1)" % MAX_PAIRS,
    )
    up_parser.add_argument(
        "--scenario", default="xcpng-8.3", help="tests/scenarios/NAME.yml or the path of a .yml (default xcpng-8.3)"
    )
    up_parser.add_argument(
        "--python", default=sys.executable, help="Python for the simulator and Ansible (default: this one)"
    )
    up_parser.add_argument(
        "--target-python",
        type=target_python,
        help="the compute VMs' Python: a path, or 2.7, 3.6 or 3.8 for the target venv scripts/setup.sh built in "
        ".build/targets (default: --python)",
    )
    up_parser.add_argument(
        "--target-xenapi",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-target-xenapi: each compute VM runs its modules with a copy of the --target-python venv without "
        "XenAPI, of its own (a Fuel compute's Python, where the HIMN bootstrap installs XenAPI) (default: with)",
    )
    up_parser.add_argument(
        "--nova",
        type=nova_venvs,
        default="",
        help="comma list of the real nova each compute VM runs, cycled over the pairs: ussuri-py3.8 (nova 21) or "
        "train-py2.7 (nova 20), from .build/realclients (scripts/setup-realclients.sh) (default: none, a stand-in)",
    )
    up_parser.add_argument(
        "--himn-lease",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="give the compute VMs' HIMN NIC its address by DHCP, unpersisted, as if someone had run a DHCP client by "
        "hand (default --no-himn-lease: a fresh VM, whose HIMN NIC has no address and no configuration)",
    )
    up_parser.add_argument(
        "--sudo-user",
        metavar="NAME",
        help="reach the compute VMs as NAME, a user of theirs with sudo (NOPASSWD), not as root: site.yml becomes root",
    )
    up_parser.add_argument(
        "--no-guest-tools",
        action="store_true",
        help="no xenstore-read in the compute VMs: HIMN discovery falls back on its DHCP probe",
    )
    commands.add_parser("down", help="remove everything the bed made")
    commands.add_parser("status", help="print JSON of what is up")
    commands.add_parser("inventory", help="print the path of the generated inventory")
    reboot_parser = commands.add_parser(
        "reboot", help="reboot a compute VM's network: flush it, then load what the VM persisted, as at boot"
    )
    reboot_parser.add_argument("host", help="the compute VM, compute-N")
    for command in commands.choices.values():
        command.add_argument(
            "--state-dir", type=Path, default=REPO / ".bed", help="where the bed keeps its state (default <repo>/.bed)"
        )
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BedError as exc:
        print("bed: %s" % exc, file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
