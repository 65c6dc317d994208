"""Run the collection's Dom0 plugin the way xapi runs it, under Dom0's Pythons, for the unit tests.

xapi starts the plugin file with one argument, an XML-RPC methodCall whose method is the function and whose params
are ``(session ref, {"params": JSON})``, and reads a methodResponse on stdout. ``Dom0`` does the same: the plugin's
files go to a directory of the test (XENSERVER_OPENSTACK_ROOT), ``service`` and the xenstore tools are stand-ins on
PATH that record what they are asked, and commands that change routes or iptables run in a network namespace of
the test (``netns``) or not at all.
"""

import contextlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import uuid
import xmlrpc.client

from xapisim import dom0 as xapisim_dom0

TESTS = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(xapisim_dom0.DOM0_TREE, "etc", "xapi.d", "plugins", "xenserver_openstack")
LIBRARY = os.path.join(os.path.dirname(PLUGIN), "xenserver_openstack_lib.py")
JOBS = os.path.join(xapisim_dom0.DOM0_TREE, "usr", "libexec", "xenserver-openstack")
# Every file of the collection's dom0/ tree (the plugin, its library, its jobs): Dom0's Python 2.7 and 3.6+ run them.
DOM0_SOURCES = sorted(
    os.path.join(folder, name) for folder, _dirs, names in os.walk(xapisim_dom0.DOM0_TREE) for name in names
)
DOM0LIB = os.path.join(TESTS, "xapisim", "dom0lib")
CHAIN = "xenserver-openstack-neutron"


def dom0_python(version):
    """Dom0's Python ``version`` with its site-packages (xapi's XenAPI, six, the XenAPIPlugin stand-in), as
    scripts/setup-pythons.sh builds it for the simulator."""
    return os.path.join(xapisim_dom0.PYTHONS, xapisim_dom0.env_name(version, ["six"]), "bin", "python")


# Dom0's Pythons (XenServer 7.x / 8.x and XCP-ng 8.2 and 8.3 run `#!/usr/bin/env python` plugins with 2.7; 8.3 has
# 3.6 as python3), and this one.
INTERPRETERS = {"python2.7": dom0_python("2.7"), "python3.6": dom0_python("3.6"), "venv": sys.executable}

STANDINS = {
    # service NAME restart: logged; fails while <log>.fail exists (printing what <log>.fail holds).
    "service": '#!/bin/sh\necho "$*" >> "$FAKE_LOG.service"\n'
    'if [ -e "$FAKE_LOG.fail" ]; then cat "$FAKE_LOG.fail" >&2; exit 1; fi\n',
    # xenstore: one file per key under $FAKE_XENSTORE; /local/domain/<id> directories are the domains.
    "xenstore-read": '#!/bin/sh\ncat "$FAKE_XENSTORE$1" 2>/dev/null || { echo "could not read $1" >&2; exit 1; }\n',
    "xenstore-write": '#!/bin/sh\nmkdir -p "$(dirname "$FAKE_XENSTORE$1")"\nprintf %s "$2" > "$FAKE_XENSTORE$1"\n'
    'echo "$1=$2" >> "$FAKE_LOG.xenstore"\n',
    "xenstore-list": '#!/bin/sh\nls "$FAKE_XENSTORE$1"\n',
}


class Dom0:
    """A Dom0 file root with stand-in commands (and a network namespace when given); ``call`` runs a function."""

    def __init__(self, tmp_path, netns=None):
        self.root = tmp_path / "root"
        self.log = tmp_path / "log"
        self.store = tmp_path / "xenstore"
        self.bin = tmp_path / "bin"
        self.netns = netns
        for directory in (self.root / "etc" / "cron.d", self.store / "local" / "domain", self.bin):
            directory.mkdir(parents=True, exist_ok=True)
        for name, text in STANDINS.items():
            self.standin(name, text)
        self.env = dict(
            os.environ,
            PYTHONPATH=DOM0LIB,
            XENSERVER_OPENSTACK_ROOT=str(self.root),
            FAKE_LOG=str(self.log),
            FAKE_XENSTORE=str(self.store),
            PATH="%s:%s" % (self.bin, os.environ["PATH"]),
        )

    def standin(self, name, text):
        """Put a command on the plugin's PATH ahead of the machine's (a shell script)."""
        (self.bin / name).write_text(text)
        (self.bin / name).chmod(0o755)

    def command(self, python, *args):
        """Run ``python args`` in Dom0's namespace (if any)."""
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*prefix, INTERPRETERS[python], *args]

    def argv(self, python, *args):
        return self.command(python, PLUGIN, *args)

    def job(self, python, name, *args):
        """The argv of the plugin's job ``name`` (replay-routes, rotate-console-logs), its own file."""
        return self.command(python, os.path.join(JOBS, name), *args)

    def call(self, function, params=None, python="venv", env=None):
        """Return (Status, Value or ErrorDescription)."""
        args = {"params": json.dumps(params)} if params is not None else {}
        call = xmlrpc.client.dumps(("OpaqueRef:session", args), methodname=function)
        run = subprocess.run(
            self.argv(python, call), capture_output=True, text=True, env=dict(self.env, **(env or {})), check=True
        )
        answer = xmlrpc.client.loads(run.stdout)[0][0]
        if answer["Status"] == "Success":
            return "Success", json.loads(answer["Value"])
        return "Failure", answer["ErrorDescription"]

    def ok(self, function, params, python="venv"):
        status, result = self.call(function, params, python)
        assert status == "Success", result
        return result

    def refused(self, function, params, python="venv", env=None):
        """The plugin's own refusal (a PluginError, never another exception): return its message."""
        status, error = self.call(function, params, python, env)
        assert status == "Failure", error
        assert error[:3] == ["XENAPI_PLUGIN_FAILURE", function, "PluginError"], error
        return error[3]

    def file(self, relative):
        return self.root / relative

    def listing(self):
        """Every file under the root with its content (to show that nothing changed)."""
        return listing(self.root)

    def logged(self, what):
        path = self.log.with_name(self.log.name + "." + what)
        return path.read_text().splitlines() if path.exists() else []

    def sh(self, *argv, check=True):
        """Run a command in the namespace; return its stdout."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True, check=check
        ).stdout

    def routes(self):
        return sorted(line.split(" proto ")[0].strip() for line in self.sh("ip", "-4", "route", "show").splitlines())


def listing(root):
    """Every file under ``root`` with its content, lock files aside (to show that nothing changed)."""
    return {
        os.path.join(folder, name): open(os.path.join(folder, name), "rb").read()
        for folder, _dirs, names in os.walk(root)
        for name in names
        if not name.endswith(".lock")
    }


def load_plugin(path=PLUGIN, name="xenserver_openstack_plugin"):
    """The plugin (or its library: ``load_plugin(LIBRARY, "xenserver_openstack_library")``) as a module of this
    Python (for its pure functions)."""
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Netns:
    """A network namespace of the test; ``commands`` set it up (``ip netns exec`` each)."""

    def __init__(self, prefix, commands=()):
        self.name = "%s%s" % (prefix, uuid.uuid4().hex[:8])
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            for command in commands:
                subprocess.run(["ip", "netns", "exec", self.name, *command.split()], check=True)
        except BaseException:
            self.delete()
            raise

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


# Dom0's HIMN as the plugin sees it: bridge xenapi with 169.254.0.1/16, a VIF whose peer is the compute VM; and a
# management interface eth0 on 192.0.2.0/24.
DOM0_NETWORK = (
    "ip link set lo up",
    "ip link add xenapi type bridge",
    "ip addr add 169.254.0.1/16 dev xenapi",
    "ip link add vif9 type veth peer name peer9",
    "ip link set vif9 master xenapi",
    "ip link set xenapi up",
    "ip link set vif9 up",
    "ip link set peer9 up",
    "ip link add eth0 type veth peer name eth0p",
    "ip addr add 192.0.2.10/24 dev eth0",
    "ip link set eth0p up",
    "ip link set eth0 up",
)

# Dom0's stock firewall (RH-Firewall-1-INPUT ending in REJECT), as the bed seeds it.
with open(os.path.join(TESTS, "bed", "dom0-firewall.iptables")) as _rules:
    STOCK_RULES = _rules.read()


@contextlib.contextmanager
def firewalled_dom0(tmp_path, prefix):
    """A Dom0-like namespace (HIMN bridge, management eth0) whose INPUT ends in Dom0's REJECT, with its
    /etc/sysconfig/iptables in the plugin's file root."""
    netns = Netns(prefix, DOM0_NETWORK)
    try:
        dom0 = Dom0(tmp_path, netns=netns.name)
        saved = dom0.file("etc/sysconfig/iptables")
        saved.parent.mkdir(parents=True)
        saved.write_text(STOCK_RULES)
        subprocess.run(
            ["ip", "netns", "exec", netns.name, "iptables-restore"], input=STOCK_RULES, text=True, check=True
        )
        yield dom0
    finally:
        netns.delete()
