"""Load and validate simulator scenario files (YAML).

A scenario may say ``extends: other.yml`` (a file in the same directory): the base is loaded first and the
child deep-merged over it (dicts merge, a null value removes the key, everything else is replaced). The merged
document is validated against ``SCHEMA``; every problem is reported as ``<file>: <field path>: <message>``.
"""

import os
import re

import yaml

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
IPV4_RE = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")
# fmt: off
PRECHECKS = ("ok", "wrong_server_version", "prerequisite_missing", "conflict_present", "gpgkey_not_imported",
             "out_of_space", "unknown_error")


class ScenarioError(Exception):
    """A scenario file is unreadable or invalid; the message names the file and the field path."""


# Schema language: a dict is a record (keys ending in "!" are required, other keys are rejected);
# ("map", spec) is a name -> spec mapping; ("list", spec) a list; ("enum", values); ("ref", "hosts") the
# name of an entry of that top-level map ("ref?" also allows null); strings name scalar checks below.
PIF = {"host!": ("ref", "hosts"), "device!": "str", "MAC": "mac", "IP": "ipv4", "netmask": "ipv4",
       "gateway": "ipv4", "management": "bool", "VLAN": "int", "MTU": "int", "other_config": "strmap"}
VIF = {"device!": "str", "network!": ("ref", "networks"), "MAC": "mac", "currently_attached": "bool",
       "ip": "ipv4", "MTU": "int", "other_config": "strmap"}
VBD = {"vdi": ("ref", "vdis"), "device": "str", "userdevice!": "str", "type": ("enum", ("Disk", "CD")),
       "mode": ("enum", ("RO", "RW")), "bootable": "bool", "currently_attached": "bool", "other_config": "strmap"}
UPDATE = {"uuid": "uuid", "name_label!": "str", "name_description": "str", "version": "str", "key": "str",
          "installation_size": "int", "after_apply_guidance": ("list", "str"), "applied_on": ("list", ("ref", "hosts"))}
SCHEMA = {
    "description": "str",
    "extends": "str",
    "credentials!": {"username!": "str", "password!": "str"},
    "local_host": ("ref", "hosts"),
    "pool!": {"uuid": "uuid", "name_label": "str", "master!": ("ref", "hosts"), "default_sr": ("ref?", "srs"),
              "other_config": "strmap"},
    "hosts!": ("map", {
        "uuid": "uuid", "name_label": "str", "name_description": "str", "hostname": "str", "address!": "ipv4",
        "enabled": "bool", "API_version_major!": "int", "API_version_minor!": "int", "software_version!": "strmap",
        "other_config": "strmap", "cpu_info": "strmap", "capabilities": ("list", "str"), "memory_total": "int",
        "memory_free": "int", "memory_overhead": "int"}),
    # Dom0's /usr/bin/python and /usr/bin/python3 (absent: none), and the modules of theirs beyond XenAPI and
    # XenAPIPlugin (environments of scripts/setup-pythons.sh).
    "dom0": {"python": "str", "python3": "str", "python_modules": ("list", ("enum", ("six",)))},
    "srs": ("map", {"uuid": "uuid", "name_label": "str", "type!": "str", "content_type": "str", "shared": "bool",
                    "host": ("ref", "hosts"), "physical_size": "int", "other_config": "strmap"}),
    "vdis": ("map", {"uuid": "uuid", "name_label": "str", "sr!": ("ref", "srs"), "virtual_size": "int",
                     "physical_utilisation": "int", "type": "str", "other_config": "strmap"}),
    "networks!": ("map", {"uuid": "uuid", "name_label": "str", "name_description": "str", "bridge!": "str",
                          "MTU": "int", "other_config": "strmap", "pifs": ("list", PIF)}),
    "vms": ("map", {"uuid": "uuid", "name_label": "str", "resident_on": ("ref?", "hosts"),
                    "power_state": ("enum", ("Running", "Halted", "Paused", "Suspended")), "domid": "int",
                    "is_a_template": "bool", "HVM_boot_policy": "str", "domain_type": "str",
                    "other_config": "strmap", "xenstore_data": "strmap", "vifs": ("list", VIF),
                    "vbds": ("list", VBD), "VCPUs_max": "int", "memory_static_max": "int",
                    # RRD values for VM.query_data_source (cpu0, memory, vif_0_rx ...)
                    "data_sources": "strmap"}),
    "updates": ("list", UPDATE),
    "patches": ("list", dict(UPDATE, size="int")),
    # apply_seconds: how long pool_update.apply takes (a real apply runs yum in Dom0 for tens of seconds).
    "behaviour": {"update_signature": ("enum", ("valid", "invalid")), "precheck": ("enum", PRECHECKS),
                  "host_is_slave_on_himn": "bool", "apply_seconds": "int"},
}
# fmt: on


def deep_merge(base, override):
    """Return ``base`` with ``override`` merged in: dicts recursively, a null removes the key (so a child can
    drop e.g. one ``xenstore_data`` entry), anything else (lists included) replaces."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path, seen):
    if path in seen:
        raise ScenarioError("%s: extends: circular extends" % path)
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError("%s: %s" % (path, str(exc).replace("\n", " "))) from None
    if not isinstance(doc, dict):
        raise ScenarioError("%s: (top): expected a mapping" % path)
    parent = doc.get("extends")
    if parent is None:
        return doc
    if not isinstance(parent, str):
        raise ScenarioError("%s: extends: expected a file name" % path)
    base_path = os.path.join(os.path.dirname(path), parent)
    if not os.path.isfile(base_path):
        raise ScenarioError("%s: extends: no such file '%s'" % (path, base_path))
    return deep_merge(_read(base_path, [*seen, path]), doc)


def load_scenario(path):
    """Load ``path`` (following ``extends``), validate it and return the merged, normalised dict.

    Normalisation: integers become decimal strings (XAPI's wire form); map values become strings.
    """
    doc = _read(path, [])
    return _check(doc, SCHEMA, "", _Ctx(path, doc))


class _Ctx:
    def __init__(self, path, root):
        self.path, self.root = path, root

    def fail(self, where, msg):
        raise ScenarioError("%s: %s: %s" % (self.path, where or "(top)", msg))


def _join(where, key):
    return "%s.%s" % (where, key) if where else str(key)


def _check(value, spec, where, ctx):
    """Validate ``value`` against ``spec`` and return it normalised; ``where`` is its field path."""
    if isinstance(spec, dict):
        return _record(value, spec, where, ctx)
    return _compound(value, spec, where, ctx) if isinstance(spec, tuple) else _scalar(value, spec, where, ctx)


def _record(value, spec, where, ctx):
    if not isinstance(value, dict):
        ctx.fail(where, "expected a mapping, got %s" % type(value).__name__)
    known = {k.rstrip("!"): k.endswith("!") for k in spec}
    for key in value:
        if key not in known:
            ctx.fail(_join(where, key), "unknown key (known: %s)" % ", ".join(sorted(known)))
    for key, required in known.items():
        if required and key not in value:
            ctx.fail(_join(where, key), "required field missing")
    return {k: _check(v, spec[k + "!" if known[k] else k], _join(where, k), ctx) for k, v in value.items()}


def _compound(value, spec, where, ctx):
    kind = spec[0]
    if kind == "map":
        if not isinstance(value, dict):
            ctx.fail(where, "expected a mapping of names")
        return {str(k): _check(v, spec[1], _join(where, k), ctx) for k, v in value.items()}
    if kind == "list":
        if not isinstance(value, list):
            ctx.fail(where, "expected a list, got %s" % type(value).__name__)
        return [_check(v, spec[1], "%s[%d]" % (where, i), ctx) for i, v in enumerate(value)]
    if kind == "enum":
        if value not in spec[1]:
            ctx.fail(where, "%r is not one of %s" % (value, ", ".join(spec[1])))
        return value
    if kind in ("ref", "ref?"):
        if value is None and kind == "ref?":
            return None
        table = ctx.root.get(spec[1])
        names = sorted(table) if isinstance(table, dict) else []
        if value not in names:
            ctx.fail(where, "unknown %s %r (known: %s)" % (spec[1][:-1], value, ", ".join(names)))
    return value


def _scalar(value, kind, where, ctx):
    if kind == "bool":
        if not isinstance(value, bool):
            ctx.fail(where, "expected true or false, got %r" % (value,))
        return value
    if kind == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
            ctx.fail(where, "expected an integer, got %r" % (value,))
        return str(value)
    if kind == "strmap":
        if not isinstance(value, dict):
            ctx.fail(where, "expected a mapping of strings")
        for k, v in value.items():
            if not isinstance(v, (str, int)):  # floats would lose digits ("1.20" -> 1.2): quote them
                ctx.fail(_join(where, k), "expected a string, got %r" % (v,))
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    if not isinstance(value, str):
        ctx.fail(where, "expected a string, got %r" % (value,))
    pattern, name = {"uuid": (UUID_RE, "UUID"), "mac": (MAC_RE, "MAC"), "ipv4": (IPV4_RE, "IPv4")}.get(kind, (0, 0))
    if pattern and not pattern.match(value.lower() if kind == "mac" else value):
        ctx.fail(where, "bad %s format %r" % (name, value))
    return value
