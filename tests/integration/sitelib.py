"""Helpers for the product-level runs of playbooks/site.yml on the bed: the fault suite, the secrets test and the
N-pair end-to-end run (test_faults.py, test_secrets.py, test_e2e.py).

- ``snapshot(bed, i)``: what a run may change on pair i (Dom0 and compute VM files, routes, iptables, ip_forward,
  and what XAPI holds), to tell "nothing changed" and "nothing half-applied" from a partial change.
- ``Simulator(bed, i)``: the controls of pair i's XAPI simulator (tests/xapisim) as a test drives them.
- ``NsGlance``: the real Glance of tests/glancebed, run in the controller's namespace on a fixed port so that it
  can go down and come back at the same endpoint.
- ``extra_inventory``: a second inventory source with overrides for some hosts (later sources win).
"""

import copy
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import yaml
from bedlib import PREFIX, ROOT, TESTS, ns

SITE = os.path.join(ROOT, "playbooks", "site.yml")
SIM = "http://169.254.0.1"
MGMT, STORAGE = "198.18.1", "198.18.2"
CONTROLLER_MGMT = MGMT + ".2"
GLANCE_PORT = 9292


# --- what a run may change ----------------------------------------------------------------------------------


def tree(root):
    """{path under root: (mode, sha256 or symlink target)} of every file and symlink under ``root``."""
    found = {}
    for folder, dirs, names in os.walk(root):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if os.path.islink(path):
                found[relative] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    found[relative] = (oct(os.stat(path).st_mode & 0o7777), hashlib.sha256(handle.read()).hexdigest())
    return found


def iptables(bed, netns):
    """iptables-save of a namespace without comments and packet counters."""
    text = bed.run(netns, "iptables-save").stdout
    return [re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in text.splitlines() if not line.startswith("#")]


def snapshot(bed, i):
    """Everything of pair i that site.yml may change; XAPI's part is None while the simulator does not answer."""
    dom0, compute = ns("dom0-%d" % i), ns("compute-%d" % i)
    return {
        "dom0 files": tree(bed.root("dom0-%d" % i)),
        "dom0 routes": bed.run(dom0, "ip", "-4", "route").stdout,
        "dom0 iptables": iptables(bed, dom0),
        "dom0 xapi": Simulator(bed, i).objects(),
        "compute files": tree(bed.root("compute-%d" % i)),
        "compute routes": bed.run(compute, "ip", "-4", "route").stdout,
        "compute iptables": iptables(bed, compute),
        "compute ip_forward": bed.run(compute, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip(),
    }


def differences(before, after):
    """The parts of two snapshots that differ, with the files that differ (for assertion messages)."""
    found = {}
    for key in before:
        if before[key] == after[key]:
            continue
        if key.endswith("files"):
            found[key] = sorted(
                path for path in set(before[key]) | set(after[key]) if before[key].get(path) != after[key].get(path)
            )
        else:
            found[key] = (before[key], after[key])
    return found


# --- the simulated Dom0s ------------------------------------------------------------------------------------


class Simulator:
    """Pair i's XAPI simulator, reached from its Dom0 namespace (tests/xapisim/server.py has the controls)."""

    def __init__(self, bed, i):
        self.bed, self.i, self.netns = bed, i, ns("dom0-%d" % i)
        self.dir = os.path.join(bed.state_dir, "dom0-%d" % i)
        self.scenario_file = os.path.join(self.dir, "scenario.yml")

    def control(self, action, method="POST"):
        return json.loads(self.bed.http(self.netns, SIM + "/_sim/" + action, method))

    def objects(self):
        """What XAPI holds that a run changes (VDIs, updates and the hosts they are applied on), or None."""
        run = self.bed.run(self.netns, sys.executable, "-c", HTTP_STATE, SIM + "/_sim/state", check=False)
        if run.returncode:
            return None
        state = json.loads(run.stdout)
        return {"vdis": state["vdis"], "updates": state["updates"]}

    def counts(self):
        return self.control("counts", "GET")

    def times(self):
        """{call: [first, last]} wall-clock times of the simulator's calls (the machine's clock, shared by the bed)."""
        return self.control("times", "GET")

    def scenario(self):
        """The scenario the bed wrote for this host (complete: no extends)."""
        with open(self.scenario_file) as handle:
            return yaml.safe_load(handle)

    def load(self, scenario):
        """Make the simulator the host of ``scenario`` (a dict), as if xapi restarted on it."""
        path = os.path.join(self.dir, "fault.yml")
        with open(path, "w") as handle:
            yaml.safe_dump(scenario, handle, sort_keys=False)
        self.control("load?scenario=" + path)

    def restore(self):
        """Back to the bed's own scenario for this host (objects seeded again)."""
        self.control("load?scenario=" + self.scenario_file)

    def process(self):
        """(pid, argv, environment) of the simulator process the bed started."""
        with open(os.path.join(self.bed.state_dir, "state.json")) as handle:
            pid = json.load(handle)["processes"]["xapisim-%d" % self.i][0]
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = [arg.decode() for arg in handle.read().split(b"\0")[:-1]]
        with open("/proc/%d/environ" % pid, "rb") as handle:
            env = dict(item.decode().split("=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        return pid, argv, env

    def kill(self):
        """Stop xapi (SIGTERM): nothing listens on 169.254.0.1:80 any more. Returns what restart() needs."""
        pid, argv, env = self.process()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the simulator of dom0-%d did not stop" % self.i
        return argv, env

    def restart(self, argv, env):
        """Start xapi again as the bed did, in the Dom0 namespace (``down`` ends it with the namespace)."""
        with open(os.path.join(self.dir, "xapisim.log"), "a") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd="/",
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.objects() is not None:
                return process
            time.sleep(0.1)
        raise AssertionError("the simulator of dom0-%d did not come back" % self.i)


HTTP_STATE = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=5).read().decode())"


def alive(pid):
    """Whether a process runs (a zombie has ended)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def local_host(scenario):
    return scenario.get("local_host") or scenario["pool"]["master"]


def with_software(scenario, other):
    """``scenario`` with its host running what the host of scenario file ``other`` runs (version, patches)."""
    from xapisim import load_scenario

    source = load_scenario(os.path.join(TESTS, "scenarios", other + ".yml"))
    changed, host = copy.deepcopy(scenario), local_host(scenario)
    source_host = source["hosts"][local_host(source)]
    for key in ("software_version", "API_version_major", "API_version_minor"):
        changed["hosts"][host][key] = source_host[key]
    for key in ("patches", "updates"):
        changed.pop(key, None)
        if key in source:
            changed[key] = [dict(entry, applied_on=[host]) for entry in source[key]]
    return changed


# --- Glance in the controller's namespace -------------------------------------------------------------------

GLANCE_START = """
import sys
from glancebed.server import GlanceServer
server = GlanceServer(sys.argv[1], port=int(sys.argv[2]))
server.start()
server.wait_ready()
print(server.process.pid)
"""


class NsGlance:
    """A real Glance (tests/glancebed) in the controller's namespace on 127.0.0.1:GLANCE_PORT."""

    def __init__(self, directory, port=GLANCE_PORT):
        from glancebed.server import GlanceServer

        self.directory, self.port, self.pid = str(directory), port, None
        server = GlanceServer(self.directory, port=port)
        server.prepare()
        # Its endpoint in the controller's namespace, and openstacksdk's cloud for it (no Keystone).
        self.endpoint, self.cloud = server.endpoint, server.cloud

    def start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")])))
        run = subprocess.run(
            ["ip", "netns", "exec", ns("ctl"), sys.executable, "-c", GLANCE_START, self.directory, str(self.port)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert run.returncode == 0, "Glance did not start: %s" % run.stderr[-2000:]
        self.pid = int(run.stdout.split()[-1])

    def stop(self):
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(self.pid):
            os.killpg(self.pid, signal.SIGKILL)
        self.pid = None

    def images(self, bed):
        """{name: image record} of this Glance, asked from the controller's namespace."""
        listing = json.loads(bed.http(ns("ctl"), self.endpoint + "/v2/images"))
        return {image["name"]: image for image in listing["images"]}


def qcow2(path, size="1M"):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return str(path)


def controller_vars(glance, work, cloud=None):
    """Variables that make the bed's controller the primary controller with the XenServer test image.

    ``cloud`` is openstacksdk's cloud for Glance: by default ``glance.cloud`` (no Keystone).
    """
    cloud = cloud or glance.cloud
    return {
        "openstack_cloud": cloud,
        "guest_images_cloud": cloud,
        "guest_images_cache_dir": os.path.join(str(work), "image-cache"),
        "guest_images_packages": [],
        "guest_images_wait_timeout": 5,
        "guest_images_list": [
            {
                "name": "TestVM",
                "path": qcow2(os.path.join(str(work), "testvm.qcow2")),
                "format": "qcow2",
                "properties": {"vm_mode": "{{ guest_images_vm_mode }}", "os_type": "linux", "hypervisor_type": "xen"},
            }
        ],
    }


def extra_inventory(path, hosts=None, primary_controller=None):
    """Write an inventory that overrides some hosts' variables; pass it as a second ``-i`` (later sources win)."""
    groups = {"compute": {"hosts": hosts or {}}}
    if primary_controller is not None:
        groups["primary_controller"] = {"hosts": {"controller-1": primary_controller}}
    with open(path, "w") as handle:
        yaml.safe_dump({"all": {"children": groups}}, handle, sort_keys=False)
    return str(path)


# --- run results ------------------------------------------------------------------------------------------------


def host_failures(report, host):
    """The failed or unreachable results of ``host``: [(task name, result)]."""
    return [
        (task["task"]["name"], task["hosts"][host])
        for play in report["plays"]
        for task in play["tasks"]
        if host in task["hosts"] and (task["hosts"][host].get("failed") or task["hosts"][host].get("unreachable"))
    ]


def messages(result):
    """The messages of one failed result: its own, or those of its failed loop items (a list joined).

    (The json callback shows a failed item without ``failed``, but with ``exception``.)"""
    items = [item for item in result.get("results", []) if isinstance(item, dict) and failed_item(item)]
    found = [item.get("msg") for item in items] if items else [result.get("msg")]
    return [" ".join(map(str, msg)) if isinstance(msg, list) else str(msg) for msg in found]


def failed_item(item):
    return bool(item.get("failed", "exception" in item))


def message_of(report, host):
    """The message of ``host``'s (last) failure, one string."""
    found = host_failures(report, host)
    assert found, "%s did not fail" % host
    return " ".join(messages(found[-1][1]))


def tracebacks(report, output):
    """Every place a traceback shows: the output, or a result's (or loop item's) exception or module_stderr."""
    found = ["output"] if "Traceback (most recent call last)" in output else []
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                for shown in [result, *[i for i in result.get("results", []) if isinstance(i, dict)]]:
                    exception = shown.get("exception", "(traceback unavailable)")
                    if exception != "(traceback unavailable)" or "Traceback" in str(shown.get("module_stderr", "")):
                        found.append("%s: %s" % (host, task["task"]["name"]))
    return found


def leftovers(pids):
    """The bed's namespaces that still exist, and the given processes that still run."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return sorted(n for n in names if n.startswith(PREFIX)), [p for p in pids if alive(p)]


def bed_pids(bed):
    with open(os.path.join(bed.state_dir, "state.json")) as handle:
        return [pid for pid, _started in json.load(handle)["processes"].values()]


def novnc_ok(bed, i):
    """Whether the controller reaches xapi of Dom0 i on port 80 of compute VM i's management address."""
    run = bed.run(ns("ctl"), sys.executable, "-c", HTTP_STATE, "http://%s.%d/_sim/health" % (MGMT, 10 + i), check=False)
    return run.returncode == 0 and run.stdout.strip() == "ok"


# --- packets ----------------------------------------------------------------------------------------------------

# A TCP listener: "ready" once it listens; then, for each connection, it sends argv[3] when given, else prints the
# source address.
LISTENER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(16)
print("ready", flush=True)
while True:
    connection, peer = server.accept()
    if len(sys.argv) > 3:
        connection.sendall(sys.argv[3].encode())
    else:
        print(peer[0], flush=True)
    connection.close()
"""


class PeerListener:
    """A TCP listener in a namespace that tells the source address of each connection it accepts."""

    def __init__(self, netns, address, port):
        self.address, self.port = address, port
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", LISTENER, address, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"

    def source_of(self, bed, netns):
        """The source address the listener saw for one connection opened from ``netns`` (None: no connection)."""
        if not bed.tcp_ok(netns, self.address, self.port):
            return None
        return self.process.stdout.readline().strip()

    def stop(self):
        self.process.terminate()
        self.process.wait(5)
