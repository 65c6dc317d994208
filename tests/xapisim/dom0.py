"""Dom0 as xapi's plugins see it, and ``host.call_plugin`` run the way xapi runs a plugin.

Line numbers are xen-api's (master e2ee48d unless a tag is named); the same logic is in v1.20.1, v1.110.1 and
v1.249.41 (XenServer 7.1, Citrix Hypervisor 8.2, XCP-ng 8.2).

- **Lookup** (``ocaml/xapi/xapi_plugins.ml:19-27``): the name must be an entry of ``/etc/xapi.d/plugins``
  (``xapi_globs.ml:467``), else ``XENAPI_MISSING_PLUGIN [name]``; neither the entry's type nor its mode is checked.
- **argv** (``xapi_plugins.ml:31-41``, ``ocaml/libs/http-lib/xMLRPC.ml:98-109``): the file itself, then one
  compact methodCall: ``fn`` with the caller's session ref and the args struct, every value a bare
  ``<value>v</value>`` (``<value/>`` when empty), no declaration, no newlines; PCData escapes ``< > & "`` and drops
  bytes below 0x20 but TAB, LF and CR (``ocaml/libs/xml-light2/xml.ml:91-113``).
- **exec** (``ocaml/forkexecd/lib/fe_stubs.c:155-157``, ``forkhelpers.ml:26-28,416``): ``execve`` of the file,
  so its ``#!`` line picks the interpreter, with the environment ``PATH=/sbin:/usr/sbin:/bin:/usr/bin`` and nothing
  else; a failed exec exits 127 (ENOENT) or 126 (anything else, such as a file without the exec bit). The
  simulator maps ``#!/usr/bin/env python``, ``#!/usr/bin/python`` (and ``python2``, ``python3``, ``pythonX.Y``) to
  the scenario's Dom0 Python (its ``dom0`` section; environments that scripts/setup-pythons.sh builds) and lets
  the kernel run any other ``#!``. Its one deviation: stand-in directories (``xe``, and ``service`` on the bed)
  come first on PATH.
- **Outcome** (``xapi_plugins.ml:42-87``; ``forkhelpers.ml:500-505``): exit 0 keeps stdout and drops stderr;
  another exit is ``XENAPI_PLUGIN_FAILURE ["non-zero exit"; stdout; stderr]``, a signal
  ``["signal: SIGxxx"; stdout; stderr]``. stdout is read as one XML document (``xml.ml:59-65``: the first tree;
  anything after it, such as the second response xenhost.py prints for its pickled functions, is never read,
  and whitespace-only text is dropped), else ``["failed to parse plugin output"; stdout; error]``. A
  ``<fault>`` is ``["fault"; code; string]``, ``{Status: Failure, ErrorDescription: [code, ...]}`` is that error
  as is, ``{Status: Success, Value: s}`` returns ``s``. Any other shape (a ``Value`` that is not a string, a
  missing ``Status``...) raises xMLRPC's ``RunTimeTypeError``, which nothing catches: ``INTERNAL_ERROR``
  (``ocaml/xapi/exnHelper.ml:81-82``). (``["task stopped"; ...]`` needs a stopped child, which a plain wait never
  reports; ``["unexpected XMLRPC result"; ...]`` cannot happen, as a Success always holds one value.)
- **No timeout** (``forkhelpers.ml:469-479``): xapi waits for ever. The simulator kills a plugin's process group
  after ``SAFETY_LIMIT`` seconds, its own limit, which then reads as ``signal: SIGKILL``.

**The file system.** A Dom0 process sees Dom0's ``/etc/xapi.d``, ``/usr/etc``, ``/var/lib/xcp`` and the other
``MOUNTS``. When the simulator runs as root, each is a bind mount of the same path under the simulator's root
in a private mount namespace (one per simulator, held by a shell that ends when its stdin closes), and every
plugin runs inside it: the machine's own directories are untouched. A mount target the machine lacks is made
as an empty directory (``missing_targets``; the bed records and removes them, see tests/bed/README.md). Without
root there is no namespace: plugins run with the machine's file system, under the plugin directory's real path.
"""

import errno
import glob
import os
import re
import shutil
import signal
import subprocess
import xml.parsers.expat
from xml.sax.saxutils import escape

from .db import Failure

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DOM0BIN = os.path.join(HERE, "dom0bin")
PYTHONS = os.path.join(REPO, ".build", "dom0-python")  # made by scripts/setup-pythons.sh
DOM0_TREE = os.path.join(REPO, "dom0")  # the collection's Dom0 files, at their Dom0 paths
PATH = "/sbin:/usr/sbin:/bin:/usr/bin"
PLUGIN_DIR = "/etc/xapi.d/plugins"
XAPI_SOCKET = "/var/lib/xcp/xapi"
MOUNTS = (
    # Dom0's /etc entries, as the bed gives its Dom0 namespaces (tests/bed/README.md, "The /etc rule")
    "/etc/xapi.d",
    "/etc/udev",
    "/etc/sysconfig",
    "/etc/cron.d",
    "/etc/logrotate.d",
    "/etc/modprobe.d",
    "/etc/conntrackd",
    # and the absolute paths os-xenapi's plugins use
    "/usr/etc",  # xenhost.conf
    "/var/lib/xcp",  # xapi's socket
    "/var/run/sr-mount",  # SR mount points
    "/images",
    "/var/log/xen",  # guest consoles
    "/boot/guest",  # kernels and ramdisks
    # and the collection's own: the jobs of its plugin, which its cron file and udev rule run
    "/usr/libexec/xenserver-openstack",
    # Open vSwitch's run directory (ovs-vsctl's default db.sock), where the bed's Dom0 ovsdb-server listens: the
    # commands neutron's netwrap plugin runs reach their own Dom0's OVSDB
    "/var/run/openvswitch",
)
SAFETY_LIMIT = 600
_PYTHON = re.compile(r"^python(\d(\.\d+)?)?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Holds the namespace: bind mounts SRC DST ... (made private first by unshare), then waits for stdin to close.
_HOLD = 'while [ $# -gt 1 ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; echo ready; read -r _'


def env_name(version, modules):
    return "python%s%s" % (version, "".join("+" + m for m in sorted(modules)))


def python_interpreter(version, modules, base=PYTHONS):
    """The interpreter of Dom0's Python ``version`` with ``modules`` (a venv of scripts/setup-pythons.sh)."""
    path = os.path.join(base, env_name(version, modules), "bin", "python")
    if not os.access(path, os.X_OK):
        raise Failure(
            "INTERNAL_ERROR",
            "xapisim: Dom0's Python %s%s is not set up in %s: run scripts/setup.sh (setup-pythons.sh)"
            % (version, " with " + ", ".join(modules) if modules else "", base),
        )
    return path


def install_collection_files(root, tree=DOM0_TREE):
    """Put the collection's Dom0 files (its ``dom0/`` tree: the plugin, its library, its jobs) under the simulated
    Dom0's file root ``root`` as its pack installs them: same paths, same modes (the plugin and the jobs
    executable, the library not: tools/build_pack.py's dom0_mode)."""
    shutil.copytree(tree, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))


def missing_targets(paths=MOUNTS):
    """The directories (symbolic links resolved) that mounting ``paths`` needs and the machine lacks, parents
    first."""
    missing = []
    for path in paths:
        chain, real = [], os.path.realpath(path)
        while not os.path.lexists(real):
            chain.insert(0, real)
            real = os.path.dirname(real)
        missing += [p for p in chain if p not in missing]
    return missing


def mounted_anywhere(path):
    """Whether some process's mount namespace has something mounted on ``path``."""
    for info in glob.glob("/proc/[0-9]*/mountinfo"):
        try:
            with open(info) as f:
                if any(line.split()[4] == path for line in f):
                    return True
        except (OSError, IndexError):
            pass
    return False


def remove_target(path):
    """Remove a mount target made for Dom0 if it is an empty directory that no namespace mounts on (nor, for an
    /etc entry, a bed's /etc/netns/NS/ may mount on: tests/bed/README.md, "The /etc rule")."""
    netns = os.path.dirname(path) == "/etc" and glob.glob(os.path.join("/etc/netns/*", os.path.basename(path)))
    if (
        os.path.isdir(path)
        and not os.path.islink(path)
        and not os.listdir(path)
        and not netns
        and not mounted_anywhere(path)
    ):
        try:
            os.rmdir(path)
        except OSError:
            pass


class Dom0:
    """The Dom0 of one simulator: its file root, its PATH and, as root, its mount namespace."""

    def __init__(self, root, bin_dirs=(), pythons=None):
        self.root, self.pythons = root, pythons or PYTHONS
        self.env = {"PATH": ":".join([*bin_dirs, DOM0BIN, PATH])}
        self._holder = self._ns = None

    def local(self, path):
        """Where the Dom0 path ``path`` is in the simulator's own view of the file system."""
        return os.path.join(self.root, path.lstrip("/"))

    def start(self):
        for path in (*MOUNTS, PLUGIN_DIR):
            os.makedirs(self.local(path), exist_ok=True)
        if os.geteuid() != 0 or self._holder:
            return
        for target in missing_targets():
            os.makedirs(target, exist_ok=True)
        pairs = [p for path in MOUNTS for p in (self.local(path), path)]
        holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _HOLD, "sh", *pairs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if holder.stdout.readline() != b"ready\n":
            holder.stdin.close()
            raise RuntimeError("xapisim: no Dom0 mount namespace: %s" % holder.stderr.read().decode().strip())
        self._holder, self._ns = holder, os.open("/proc/%d/ns/mnt" % holder.pid, os.O_RDONLY)

    def stop(self):
        if self._holder:
            os.close(self._ns)
            self._holder.stdin.close()
            self._holder.wait()
            self._holder.stdout.close()
            self._holder.stderr.close()
            self._holder = self._ns = None

    def path(self, path):
        """How a process of this Dom0 names the Dom0 path ``path``."""
        return path if self._ns is not None else self.local(path)

    def enter(self):
        """The ``preexec_fn`` that puts a child process in this Dom0's file system (None without a namespace)."""
        return (lambda: os.setns(self._ns, os.CLONE_NEWNS)) if self._ns is not None else None

    def run(self, argv, timeout=None):
        """Run ``argv`` in this Dom0 as forkexecd would; return ``(status, stdout, stderr)``, status being the exit
        code or minus the signal number."""
        enter = self.enter()
        try:
            proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=enter,  # noqa: PLW1509 (os.setns only: safe after fork)
            )
        except OSError as exc:  # fe_stubs.c:155-157
            return 127 if exc.errno == errno.ENOENT else 126, b"", b""
        try:
            out, err = proc.communicate(timeout=timeout or SAFETY_LIMIT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
        return proc.returncode, out, err

    def command(self, path, config):
        """The argv prefix with which ``execve`` would run the file ``path`` (a Dom0 path) in a Dom0 whose Pythons
        ``config`` (a scenario's ``dom0`` section) describes; or ``(status, stderr)`` when the exec fails."""
        local = self.local(path)
        if not (os.path.isfile(local) and os.access(local, os.X_OK)):
            return 126, b""
        with open(local, "rb") as f:
            first = f.readline(256)
        words = first[2:].decode(errors="replace").split() if first.startswith(b"#!") else []
        via_env = words[:1] == ["/usr/bin/env"]
        name = (
            words[1:2] if via_env else [os.path.basename(w) for w in words[:1] if w.startswith(("/usr/bin/", "/bin/"))]
        )
        if not name or not _PYTHON.match(name[0]):
            return [self.path(path)]
        version = self._python(name[0], config)
        if version is None:  # execve ENOENT on the interpreter, or env's own message
            return 127, (b"/usr/bin/env: '%s': No such file or directory\n" % name[0].encode() if via_env else b"")
        return [python_interpreter(version, config.get("python_modules", []), self.pythons), self.path(path)]

    @staticmethod
    def _python(name, config):
        """The version of Dom0's ``/usr/bin/<name>``, or None if it has none."""
        python, python3 = config.get("python"), config.get("python3")
        by_name = {"python": python, "python3": python3, "python2": python if (python or "").startswith("2.") else None}
        if name in by_name:
            return by_name[name]
        return name[len("python") :] if name[len("python") :] in (python, python3) else None


# -- host.call_plugin ----------------------------------------------------------------------------
def _pcdata(text):
    return _CONTROL.sub("", escape(text, {'"': "&quot;"}))


def _value(text):
    return "<value>%s</value>" % _pcdata(text) if text else "<value/>"


def method_call(fn, session, args):
    """The argv[1] xapi builds for a plugin (xapi_plugins.ml:31-36, xMLRPC.ml:98-109, xml.ml:91-140)."""
    members = "".join("<member><name>%s</name>%s</member>" % (_pcdata(k), _value(v)) for k, v in args.items())
    return (
        "<methodCall><methodName>%s</methodName><params><param>%s</param><param><value>%s</value></param></params>"
        "</methodCall>" % (_pcdata(fn), _value(session), "<struct>%s</struct>" % members if members else "<struct/>")
    )


def call_plugin(dom0, config, *, session, plugin, fn, args):
    """Run Dom0's plugin ``plugin`` as xapi_plugins.ml does; return its string result or raise ``Failure``."""
    try:
        entries = os.listdir(dom0.local(PLUGIN_DIR))
    except OSError:
        entries = []
    if plugin not in entries:
        raise Failure("XENAPI_MISSING_PLUGIN", plugin)
    command = dom0.command(PLUGIN_DIR + "/" + plugin, config)
    if isinstance(command, tuple):
        status, out, err = command[0], b"", command[1]
    else:
        status, out, err = dom0.run([*command, method_call(fn, session, args)])
    out_text, err_text = out.decode(errors="replace"), err.decode(errors="replace")
    if status < 0:
        raise Failure("XENAPI_PLUGIN_FAILURE", "signal: %s" % signal.Signals(-status).name, out_text, err_text)
    if status:
        raise Failure("XENAPI_PLUGIN_FAILURE", "non-zero exit", out_text, err_text)
    try:
        tree = _first_tree(out)
    except ValueError as exc:
        raise Failure("XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", out_text, str(exc)) from None
    try:
        return _method_response(tree)
    except _TypeError as exc:
        raise Failure("INTERNAL_ERROR", 'XMLRPC.RunTimeTypeError("%s", _)' % exc) from None
    except KeyError:
        raise Failure("INTERNAL_ERROR", "Not_found") from None
    except ValueError:
        raise Failure("INTERNAL_ERROR", 'Failure("Int32.of_string")') from None


class _Done(Exception):
    pass


def _first_tree(data):
    """The first XML tree of ``data`` as ``(tag, children)``, children being trees and text; whitespace-only text
    (space, tab, newline) dropped (xml.ml:43-65). ValueError in xml-light2's "<message> line <n>" form."""
    parser, stack = xml.parsers.expat.ParserCreate(), [("", [])]

    def start(tag, _attrs):
        stack.append((tag, []))

    def end(_tag):
        tag, children = stack.pop()
        stack[-1][1].append((tag, [c for c in children if not isinstance(c, str) or c.strip(" \t\n")]))
        if len(stack) == 1:
            raise _Done

    def text(data):
        children = stack[-1][1]
        if children and isinstance(children[-1], str):
            children[-1] += data
        else:
            children.append(data)

    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
    try:
        parser.Parse(data, True)
    except _Done:
        return stack[0][1][0]
    except xml.parsers.expat.ExpatError as exc:
        raise ValueError("%s line %d" % (xml.parsers.expat.ErrorString(exc.code), exc.lineno)) from None
    raise ValueError("unexpected end of input line %d" % parser.CurrentLineNumber)


# xapi's XMLRPC.From decoders (xMLRPC.ml:143-270), with their RunTimeTypeError messages.
class _TypeError(Exception):
    pass


def _pp(node):
    return "PCData=" + node if isinstance(node, str) else "Element=" + node[0]


def _unbox(node, *tags):
    if isinstance(node, str) or node[0] not in tags:
        raise _TypeError("unbox: %s should contain '%s'" % (_pp(node), tags[0]))
    return node[1]


def _singleton(node, *tags):
    children = _unbox(node, *tags)
    if len(children) != 1:
        raise _TypeError("singleton: {%s} should be the singleton {%s}" % (", ".join(map(_pp, children)), tags[0]))
    return children[0]


def _text(node):
    if not isinstance(node, str):
        raise _TypeError("pcdata")
    return node


def _string(node):
    if node in (("value", []), ("value", [("string", [])])):
        return ""
    if isinstance(node, tuple) and node[0] == "value" and len(node[1]) == 1 and isinstance(node[1][0], str):
        return node[1][0]
    return _text(_singleton(_singleton(node, "value"), "string"))


def _struct(node):
    fields = {}
    for member in _unbox(_singleton(node, "value"), "struct"):
        pair = _unbox(member, "member")
        if len(pair) != 2:
            raise _TypeError("pair ")
        name = _unbox(pair[0], "name")
        if len(name) > 1 or (name and not isinstance(name[0], str)):
            raise _TypeError("From.name: should contain PCData")
        fields.setdefault(name[0] if name else "", pair[1])
    return fields


def _method_response(tree):
    response = _singleton(tree, "methodResponse")
    if isinstance(response, tuple) and response[0] == "fault":
        fault = _struct(_singleton(response, "fault"))
        code = _text(_singleton(_singleton(fault["faultCode"], "value"), "i4", "int"))
        raise Failure("XENAPI_PLUGIN_FAILURE", "fault", str(int(code)), _string(fault["faultString"]))
    params = [_singleton(param, "param") for param in _unbox(response, "params")]
    if len(params) != 1:
        raise _TypeError("Expected single return value (struct status)")
    fields = _struct(params[0])
    status = _string(fields["Status"]) if "Status" in fields else None
    if status == "Success" and "Value" in fields:
        return _string(fields["Value"])
    if status == "Failure" and "ErrorDescription" in fields:
        error = [
            _string(e) for e in _unbox(_singleton(_singleton(fields["ErrorDescription"], "value"), "array"), "data")
        ]
        if not error:
            raise _TypeError("Empty array of error strings")
        raise Failure(*error)
    raise _TypeError("Status")
