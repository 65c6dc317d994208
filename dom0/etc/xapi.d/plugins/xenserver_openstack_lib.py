# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared library of the Dom0 plugin xenserver_openstack and of its jobs (xenserver.openstack collection).

The plugin (/etc/xapi.d/plugins/xenserver_openstack) and its jobs (/usr/libexec/xenserver-openstack/) import it:
the parameter checker, IPv4 arithmetic, ``run``, atomic file writes with the record of the files the plugin
created, the lock, and the checks of the routes the plugin may save. It is a module, not a plugin: it lives in the
plugin directory (xapi puts a plugin's own directory first on sys.path, as os-xenapi's plugins import its
dom0_pluginlib.py there) but is not executable, so ``host.call_plugin`` cannot run it (xapi execs the entry
it is named by: a file without the exec bit fails). Its importers turn off bytecode files, so nothing is written
next to it.

It must run under Dom0's Python 2.7 and 3.6+: no f-strings, no type hints, standard library only.
"""

import errno
import fcntl
import json
import os
import re
import stat
import subprocess
import tempfile

HIMN_BRIDGE = "xenapi"
HIMN_NETWORK = "169.254.0.0/16"
DOM0_HIMN_ADDRESS = "169.254.0.1"

# Files are written under ROOT, which is "/" in Dom0 (tests point it at a directory of their own).
ROOT = os.environ.get("XENSERVER_OPENSTACK_ROOT", "/")
ROUTES_FILE = "etc/sysconfig/xenserver-openstack-routes.json"
# The files the plugin created (JSON list of paths relative to ROOT): the only ones it ever removes.
CREATED_FILES = "etc/sysconfig/xenserver-openstack-files.json"
LOCK_FILE = "etc/sysconfig/xenserver-openstack-routes.json.lock"
CONSOLE_LOG_DIR = "/var/log/xen/guest"

try:
    TEXT = unicode  # Python 2
except NameError:
    TEXT = str
INTEGERS = (int, type(2**64))  # Python 2's long too
STRINGS = (TEXT, str)


def native(text):
    """``text`` as an ASCII str of this Python (xapi's dispatch does str(error), which Python 2 cannot do with
    non-ASCII text): anything else is backslash-escaped."""
    if not isinstance(text, str):  # Python 2 unicode
        return text.encode("ascii", "backslashreplace")
    if str is not bytes:
        return text.encode("ascii", "backslashreplace").decode("ascii")
    return text


class PluginError(Exception):
    """A refusal or failure whose message the calling module shows as is."""

    def __init__(self, message):
        Exception.__init__(self, native(message))


def shown(value):
    """A parameter's value for a message: short plain strings in quotes, anything else as (shortened) JSON."""
    if isinstance(value, STRINGS) and len(value) <= 60 and re.match(r"^[ -&(-~]*\Z", value):
        return "'%s'" % value
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def path(relative):
    return os.path.join(ROOT, relative)


# --- the parameter checker ------------------------------------------------------------------------------------

REQUIRED = object()
PLAIN = re.compile(r"^[A-Za-z0-9_.-]{1,40}\Z")


def where_of(where, key):
    return "%s.%s" % (where, key) if where else key


class Field(object):
    """A parameter's JSON type; ``check`` returns the value (defaults filled in) or raises a PluginError naming
    the parameter (``where``)."""

    def __init__(self, default=REQUIRED):
        self.default = default

    def check(self, value, where):
        raise NotImplementedError


class Bool(Field):
    def check(self, value, where):
        if not isinstance(value, bool):
            raise PluginError("%s must be true or false (a JSON boolean), not %s" % (where, shown(value)))
        return value


class Int(Field):
    def __init__(self, low, high, default=REQUIRED):
        Field.__init__(self, default)
        self.low, self.high = low, high

    def check(self, value, where):
        if isinstance(value, bool) or not isinstance(value, INTEGERS) or not self.low <= value <= self.high:
            raise PluginError(
                "%s must be an integer from %d to %d, not %s" % (where, self.low, self.high, shown(value))
            )
        return int(value)


class Text(Field):
    """A string: one of ``choices``, or matching ``pattern`` (described as ``what``), at most ``length`` long."""

    def __init__(self, default=REQUIRED, choices=None, pattern=None, what=None, length=100):
        Field.__init__(self, default)
        self.choices, self.what, self.length = choices, what, length
        self.pattern = re.compile(pattern + r"\Z") if pattern else None

    def check(self, value, where):
        if not isinstance(value, STRINGS):
            raise PluginError("%s must be a string, not %s" % (where, shown(value)))
        if len(value) > self.length:
            raise PluginError("%s is longer than %d characters" % (where, self.length))
        if self.choices is not None and value not in self.choices:
            raise PluginError("%s %s is not one of: %s" % (where, shown(value), ", ".join(self.choices)))
        if self.pattern is not None and not self.pattern.match(value):
            raise PluginError("%s %s is not %s" % (where, shown(value), self.what))
        return TEXT(value)


class List(Field):
    def __init__(self, item, default=REQUIRED, low=0, high=64, empty=None):
        Field.__init__(self, default)
        self.item, self.low, self.high, self.empty = item, low, high, empty

    def check(self, value, where):
        if not isinstance(value, list):
            raise PluginError("%s must be a list, not %s" % (where, shown(value)))
        if len(value) < self.low:
            raise PluginError(self.empty or "%s must have at least %d item(s)" % (where, self.low))
        if len(value) > self.high:
            raise PluginError("%s has more than %d items" % (where, self.high))
        return [self.item.check(item, "%s[%d]" % (where, index)) for index, item in enumerate(value)]


class Object(Field):
    """A JSON object with the given fields (name -> Field) and no other keys."""

    def __init__(self, fields, default=REQUIRED):
        Field.__init__(self, default)
        self.fields = fields

    def check(self, value, where):
        if not isinstance(value, dict):
            raise PluginError("%s must be a JSON object, not %s" % (where or "params", shown(value)))
        unknown = sorted(set(value) - set(self.fields))
        if unknown:
            names = ", ".join(where_of(where, key) if PLAIN.match(key) else shown(key) for key in unknown)
            takes = ", ".join(sorted(self.fields)) or "none"
            raise PluginError("unknown parameter(s) %s: %s takes %s" % (names, where or "this function", takes))
        result = {}
        for key, field in sorted(self.fields.items()):
            if key in value:
                result[key] = field.check(value[key], where_of(where, key))
            elif field.default is REQUIRED:
                raise PluginError("%s is required" % where_of(where, key))
            else:
                result[key] = field.check(json.loads(json.dumps(field.default)), where_of(where, key))
        return result


class AnyObject(Field):
    """A JSON object checked later (the parameters of one call of a batch)."""

    def check(self, value, where):
        if not isinstance(value, dict):
            raise PluginError("%s must be a JSON object, not %s" % (where, shown(value)))
        return value


MAX_PARAMS = 65536


def load_params(args):
    """The JSON object in xapi's ``args`` ({"params": JSON}; no params is {})."""
    if not isinstance(args, dict) or set(args) - set(["params"]):
        raise PluginError("the plugin's functions take one argument, params (a JSON object)")
    text = args.get("params", "{}")
    if not isinstance(text, STRINGS) or len(text) > MAX_PARAMS:
        raise PluginError("params must be a JSON object of at most %d characters" % MAX_PARAMS)
    try:
        return json.loads(text)
    except (ValueError, RuntimeError) as error:  # RuntimeError: nested too deep
        raise PluginError("params is not JSON: %s" % error)


# --- IPv4 arithmetic (Python 2.7 has no ipaddress module); dotted-quad decimal only ------------------------------

OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
IPV4 = re.compile(r"^%s(?:\.%s){3}\Z" % (OCTET, OCTET))
PREFIX = re.compile(r"^(?:3[0-2]|[12][0-9]|[0-9])\Z")
ADDRESS_WHAT = "an IPv4 address (dotted decimal, like 169.254.0.2)"
NETWORK_WHAT = "an IPv4 network in CIDR form (dotted decimal, like 192.0.2.0/24)"


def parse_ipv4(text):
    """The address as an int, or None: four decimal numbers 0-255 without leading zeros, nothing else (no
    inet_aton forms such as 0x0a.0.0.1, 010.0.0.1 or 10.1)."""
    if not isinstance(text, STRINGS) or not IPV4.match(text):
        return None
    value = 0
    for part in text.split("."):
        value = value * 256 + int(part)
    return value


def format_ipv4(value):
    return ".".join(str((value >> shift) & 255) for shift in (24, 16, 8, 0))


def mask_of(prefix):
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def parse_network(text, where="network"):
    """Return (address int, prefix length) of an IPv4 network in canonical CIDR form, refusing host bits."""
    address, _slash, prefix = text.partition("/") if isinstance(text, STRINGS) else ("", "", "")
    value = parse_ipv4(address)
    if value is None or not PREFIX.match(prefix):
        raise PluginError("%s %s is not %s" % (where, shown(text), NETWORK_WHAT))
    prefix = int(prefix)
    if value & ~mask_of(prefix) & 0xFFFFFFFF:
        raise PluginError(
            "%s %s has host bits set: the network is %s/%d"
            % (where, shown(text), format_ipv4(value & mask_of(prefix)), prefix)
        )
    return value, prefix


def overlaps(first, second):
    """Whether two (address, prefix) networks share an address (one contains the other)."""
    prefix = min(first[1], second[1])
    return first[0] & mask_of(prefix) == second[0] & mask_of(prefix)


def network_text(network):
    return "%s/%d" % (format_ipv4(network[0]), network[1])


# --- commands --------------------------------------------------------------------------------------------------


def decode(data):
    """Command output as text: UTF-8, undecodable bytes replaced (Dom0's Python 3.6 runs plugins in the C locale,
    where the locale's codec would fail on any non-ASCII byte)."""
    return data.decode("utf-8", "replace")


def run(argv, data=None):
    """Run a command (stdin ``data``), return its stdout; a failure raises PluginError with the command and its
    stderr."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if data is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as error:
        raise PluginError("cannot run %s: %s" % (argv[0], error.strerror))
    out, err = proc.communicate(data.encode("utf-8") if data is not None else None)
    if proc.returncode != 0:
        raise PluginError("'%s' failed (exit %d): %s" % (" ".join(argv), proc.returncode, decode(err).strip()))
    return decode(out)


# --- files -----------------------------------------------------------------------------------------------------


def read_bytes(relative):
    """A file's bytes, or None when it does not exist."""
    try:
        with open(path(relative), "rb") as handle:
            return handle.read()
    except IOError as error:
        if error.errno == errno.ENOENT:
            return None
        raise


def read_text(relative):
    """A file's text (UTF-8), or None when it does not exist; a file that is not UTF-8 is refused."""
    data = read_bytes(relative)
    try:
        return None if data is None else data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PluginError("/%s is not UTF-8 text (%s): fix or remove it in Dom0" % (relative, error))


def read_json(relative, default):
    text = read_text(relative)
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        raise PluginError("/%s is not JSON: remove it in Dom0 (the plugin writes it again)" % relative)


def file_mode(relative):
    try:
        return stat.S_IMODE(os.lstat(path(relative)).st_mode)
    except OSError as error:
        if error.errno == errno.ENOENT:
            return None
        raise


def fsync_directory(directory):
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_bytes(relative, data, mode):
    """Write a file atomically and durably with the given mode: a temporary dot file in the same directory (cron
    and logrotate skip dot files), fsynced, renamed over the file, the directory fsynced."""
    target = path(relative)
    directory, name = os.path.split(target)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    handle, temporary = tempfile.mkstemp(prefix="." + name + ".", suffix=".xenserver-openstack-tmp", dir=directory)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def write_text(relative, text, mode):
    write_bytes(relative, (text if isinstance(text, TEXT) else text.decode("utf-8")).encode("utf-8"), mode)


def refuse_symlink(relative):
    if os.path.islink(path(relative)):
        raise PluginError("/%s is a symbolic link: refusing to write through it" % relative)


def created_files():
    files = read_json(CREATED_FILES, [])
    if not isinstance(files, list) or not all(isinstance(name, STRINGS) for name in files):
        raise PluginError("/%s is not a JSON list of files: remove it in Dom0" % CREATED_FILES)
    return set(files)


def record_created(relative, created=True):
    files = created_files()
    wanted = (files | set([relative])) if created else (files - set([relative]))
    if wanted != files:
        write_text(CREATED_FILES, json.dumps(sorted(wanted), indent=1) + "\n", 0o644)


def create_or_write(relative, text, mode):
    """Write a file; a file that did not exist is recorded as the plugin's (before it is written, so that a file
    of the plugin is never left unrecorded)."""
    if not os.path.lexists(path(relative)):
        record_created(relative)
    write_text(relative, text, mode)


def remove_created(relative, made_by_an_older_plugin=None):
    """Remove a file this plugin created; return whether it did. A file it did not create stays where it is.
    ``made_by_an_older_plugin(text)`` recognises the plugin's own files from before it kept CREATED_FILES."""
    text = read_bytes(relative)
    if text is None:
        record_created(relative, False)
        return False
    ours = relative in created_files()
    if not ours and made_by_an_older_plugin is not None:
        try:
            ours = made_by_an_older_plugin(text.decode("utf-8"))
        except UnicodeDecodeError:
            ours = False
    if not ours:
        return False
    os.unlink(path(relative))
    fsync_directory(os.path.dirname(path(relative)))
    record_created(relative, False)
    return True


class Lock(object):
    """An exclusive lock around a read-change-write of Dom0's state (none in check mode, which writes nothing, not
    even the lock file)."""

    def __init__(self, check=False):
        self.check = check
        self.handle = None

    def __enter__(self):
        if self.check:
            return self
        lock = path(LOCK_FILE)
        if not os.path.isdir(os.path.dirname(lock)):
            os.makedirs(os.path.dirname(lock), 0o755)
        self.handle = open(lock, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()


def restart(service):
    run(["service", service, "restart"])


# --- routes ----------------------------------------------------------------------------------------------------

# The widest network the plugin routes via the compute VM. OpenStack's management and storage networks are /8 or
# narrower (10.0.0.0/8 at most); anything wider is a default route or a piece of one (0.0.0.0/1 + 128.0.0.0/1
# take over all of Dom0's traffic as surely as 0.0.0.0/0 does).
MIN_PREFIX = 8
HIMN = parse_network(HIMN_NETWORK)
SPECIAL_NETWORKS = (
    ("0.0.0.0/8", "this network"),
    ("127.0.0.0/8", "loopback"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved, and the broadcast address"),
)


def check_route_network(text, where):
    """A network the plugin may route: canonical CIDR, /MIN_PREFIX or longer, not the HIMN or a special one."""
    network = parse_network(text, where)
    if network[1] < MIN_PREFIX:
        raise PluginError(
            "%s %s is wider than /%d: the plugin routes the OpenStack networks via the compute VM, never a default "
            "route or a part of one (such as 0.0.0.0/1 + 128.0.0.0/1)" % (where, shown(text), MIN_PREFIX)
        )
    if overlaps(network, HIMN):
        raise PluginError(
            "%s %s overlaps the HIMN %s: Dom0 reaches the compute VMs on it directly, and that stays so"
            % (where, shown(text), HIMN_NETWORK)
        )
    for special, name in SPECIAL_NETWORKS:
        if overlaps(network, parse_network(special)):
            raise PluginError("%s %s overlaps %s (%s): not a network to route" % (where, shown(text), special, name))
    return network


def check_gateway(text, where):
    """A gateway on the HIMN that can be the compute VM: not Dom0, not the network or broadcast address."""
    value = parse_ipv4(text)
    if value is None:
        raise PluginError("%s %s is not %s" % (where, shown(text), ADDRESS_WHAT))
    fix = "give the compute VM's HIMN address"
    if not overlaps((value, 32), HIMN):
        raise PluginError("%s %s is not on the HIMN (%s): %s" % (where, shown(text), HIMN_NETWORK, fix))
    if value == HIMN[0]:
        raise PluginError("%s %s is the HIMN's network address: %s" % (where, shown(text), fix))
    if value == HIMN[0] | (~mask_of(HIMN[1]) & 0xFFFFFFFF):
        raise PluginError("%s %s is the HIMN's broadcast address: %s" % (where, shown(text), fix))
    if text == DOM0_HIMN_ADDRESS:
        raise PluginError("%s %s is Dom0's own address on the HIMN: %s" % (where, shown(text), fix))
    return value


def valid_saved_route(network, gateway):
    try:
        check_route_network(network, "network")
        check_gateway(gateway, "gateway")
    except PluginError:
        return False
    return True


def saved_routes():
    """The routes the plugin saved (entries that are not valid routes are left out)."""
    saved = read_json(ROUTES_FILE, {})
    if not isinstance(saved, dict):
        raise PluginError("/%s is not a JSON object of routes: remove it in Dom0 and run again" % ROUTES_FILE)
    return dict((network, gateway) for network, gateway in saved.items() if valid_saved_route(network, gateway))
