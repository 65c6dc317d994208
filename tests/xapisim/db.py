"""In-memory XAPI object store (class -> ref -> record), generic messages and the query language.

Values are kept in wire form: ints as decimal strings, refs as ``OpaqueRef:<uuid>`` strings, sets as lists,
maps as dicts with string keys. Relationship fields that are inverses of another field (``VM.VIFs`` is every
VIF whose ``VM`` is this VM) are computed when a record is read, so they can never go stale.
"""

import copy
import re
import time
import uuid
import xmlrpc.client

NULL = "OpaqueRef:NULL"
EPOCH = xmlrpc.client.DateTime("19700101T00:00:00Z")


class Failure(Exception):
    """An XAPI error; ``details`` is the ErrorDescription list (all strings)."""

    def __init__(self, code, *params):
        self.details = [code] + [str(p) for p in params]
        super().__init__(self.details)


def rpc_text(value):  # noqa: PLR0911 (a case per ocaml-rpc type)
    """ocaml-rpc's ``Rpc.to_string`` of a decoded XML-RPC value (ocaml-rpc src/lib/rpc.ml:159-172)."""
    if isinstance(value, bool):
        return "B(%s)" % str(value).lower()
    if isinstance(value, int):
        return "I(%d)" % value
    if isinstance(value, float):
        return "F(%s)" % ("%g" % value)
    if isinstance(value, str):
        return "S(%s)" % value
    if isinstance(value, list):
        return "[%s]" % ";".join(map(rpc_text, value))
    if isinstance(value, dict):
        return "{%s}" % ";".join("%s:%s" % (k, rpc_text(v)) for k, v in value.items())
    return "N" if value is None else "D(%s)" % value


def ocaml_failure(message):
    """``Printexc.to_string (Failure message)``: the text of INTERNAL_ERROR for an unmarshalling failure."""
    escaped = "".join(
        {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c, c)
        if 32 <= b < 127 or c in '\\"\n\t\r'
        else "\\%03d" % b
        for c, b in ((chr(b), b) for b in message.encode())
    )
    return 'Failure("%s")' % escaped


def _refuse(message):
    raise Failure("INTERNAL_ERROR", ocaml_failure(message))


def unmarshal(kind, value):
    """Check a parameter as xapi's generated server does before it runs anything, and return its value.

    ``kind`` is the parameter's type: ``str`` (a String or Ref: only a string, ocaml-rpc rpc.ml:218-220), ``int``
    (an Int: an ``<int>`` or a string of digits, rpc.ml:186-189, given back as the decimal string xapi sends),
    ``float`` (rpc.ml:206-211), ``bool``, ``dict`` (a (String -> String) Map: a struct of strings,
    ppx_deriving_rpc.ml:64-75), ``list`` (a Set of strings), or None (anything). A mismatch is the ``Failure`` of
    ocaml-rpc's unmarshaller, which exnHelper.ml:81-82 turns into ``INTERNAL_ERROR [Printexc text]``, as
    ``['Failure("Expected string, got \'I(5)\'")']``."""
    numbers = (int, str) if kind is int else (int, float, str)
    if kind is None or (kind is str and isinstance(value, str)) or (kind is bool and isinstance(value, bool)):
        return value
    if kind in (int, float) and isinstance(value, numbers) and not isinstance(value, bool):
        try:
            return str(int(value)) if kind is int else float(value)
        except ValueError:
            _refuse("Int64.of_string" if kind is int else "float_of_string")
    if kind in (dict, list) and isinstance(value, kind):
        for item in value.values() if kind is dict else value:
            unmarshal(str, item)
        return value
    if kind in (dict, list):
        _refuse("Expecting Rpc.%s, but found '%s'" % ("Dict" if kind is dict else "Enum", rpc_text(value)))
    return _refuse("Expected %s, got '%s'" % ({int: "int64", str: "string"}.get(kind, kind.__name__), rpc_text(value)))


def field_kind(field, default):
    """The ``unmarshal`` kind of a stored field."""
    if field in INT_FIELDS:
        return int
    return type(default) if isinstance(default, (str, bool, float, dict, list)) else None


def new_ref():
    return "OpaqueRef:%s" % uuid.uuid4()


def now():
    return xmlrpc.client.DateTime(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime()))


def _named(**fields):
    return dict(name_label="", name_description="", **fields)


# Stored fields and their defaults, per class (every class also has uuid and other_config).
# fmt: off
FIELDS = {
    "session": dict(this_host=NULL, this_user=NULL, last_active=EPOCH, pool=False, is_local_superuser=True,
                    subject=NULL, auth_user_sid="", auth_user_name="", rbac_permissions=[], parent=NULL,
                    originator=""),
    "pool": _named(master=NULL, default_SR=NULL, suspend_image_SR=NULL, crash_dump_SR=NULL, restrictions={},
                   tags=[], ha_enabled=False),
    "host": _named(hostname="", address="", enabled=True, API_version_major="2", API_version_minor="0",
                   API_version_vendor="XenSource", software_version={}, capabilities=[], cpu_info={},
                   control_domain=NULL, memory_overhead="0", tags=[], license_params={}, bios_strings={},
                   edition="", external_auth_type="", metrics=NULL, allowed_operations=[], current_operations={},
                   logging={}, suspend_image_sr=NULL, crash_dump_sr=NULL, supported_bootloaders=["pygrub", "eliloader"],
                   iscsi_iqn=""),
    "host_metrics": dict(memory_total="0", memory_free="0", live=True, last_updated=EPOCH),
    "VM": _named(power_state="Halted", domid="-1", is_control_domain=False, is_a_template=False,
                 is_a_snapshot=False, resident_on=NULL, affinity=NULL, xenstore_data={},
                 guest_metrics=NULL, metrics=NULL, HVM_boot_policy="BIOS order", PV_bootloader="",
                 domain_type="hvm", memory_static_max="4294967296", VCPUs_max="2", platform={}, tags=[],
                 user_version="1"),
    "VIF": dict(device="0", network=NULL, VM=NULL, MAC="", MTU="1500", currently_attached=False,
                qos_algorithm_type="", qos_algorithm_params={}, locking_mode="network_default", ipv4_allowed=[],
                ipv6_allowed=[], MAC_autogenerated=False, status_code="0", status_detail="", runtime_properties={}),
    "network": _named(bridge="", MTU="1500", managed=True, assigned_ips={}, tags=[], default_locking_mode="unlocked",
                      blobs={}, purpose=[]),
    "PIF": dict(device="", host=NULL, network=NULL, IP="", netmask="", gateway="", DNS="", management=False, MAC="",
                MTU="1500", VLAN="-1", physical=True, currently_attached=True, ip_configuration_mode="None",
                bond_slave_of=NULL, primary_address_type="IPv4", IPv6=[], metrics=NULL),
    "SR": _named(type="ext", content_type="user", shared=False, physical_size="0", physical_utilisation="0",
                 virtual_allocation="0", sm_config={}, tags=[]),
    "VDI": _named(SR=NULL, virtual_size="0", physical_utilisation="0", type="user", sharable=False, read_only=False,
                  sm_config={}, location="", managed=True, missing=False, is_a_snapshot=False, tags=[],
                  xenstore_data={}),
    "VBD": dict(VM=NULL, VDI=NULL, device="", userdevice="0", bootable=False, mode="RW", type="Disk",
                unpluggable=True, currently_attached=False, empty=False, status_code="0", status_detail="",
                runtime_properties={}, qos_algorithm_type="", qos_algorithm_params={}, metrics=NULL),
    "PBD": dict(host=NULL, SR=NULL, device_config={}, currently_attached=True),
    "task": _named(status="pending", progress=0.0, result="", error_info=[], created=EPOCH, finished=EPOCH,
                   resident_on=NULL, type="", subtask_of=NULL, backtrace="()"),
    "pool_update": _named(version="", installation_size="0", key="", after_apply_guidance=[], vdi=NULL, hosts=[],
                          enforce_homogeneity=False),
    "pool_patch": _named(version="", size="0", pool_applied=False, after_apply_guidance=[], pool_update=NULL),
    "host_patch": _named(version="", host=NULL, applied=True, timestamp_applied=EPOCH, size="0", pool_patch=NULL),
}
for _fields in FIELDS.values():
    _fields.update(uuid="", other_config={})
# The int (int64) fields, which travel as decimal strings (datamodel: Int); every other str field is a String.
INT_FIELDS = frozenset((
    "API_version_major", "API_version_minor", "memory_overhead", "memory_total", "memory_free", "domid",
    "memory_static_max", "VCPUs_max", "user_version", "MTU", "VLAN", "status_code", "physical_size",
    "physical_utilisation", "virtual_allocation", "virtual_size", "installation_size", "size",
))

# Computed fields: (class, field) -> (other class, field pointing back, or a list containing the ref).
COMPUTED = {
    ("host", "resident_VMs"): ("VM", "resident_on"), ("host", "PIFs"): ("PIF", "host"),
    ("host", "PBDs"): ("PBD", "host"), ("host", "updates"): ("pool_update", "hosts"),
    ("host", "patches"): ("host_patch", "host"), ("VM", "VIFs"): ("VIF", "VM"),
    ("network", "VIFs"): ("VIF", "network"), ("network", "PIFs"): ("PIF", "network"),
    ("VM", "VBDs"): ("VBD", "VM"), ("VDI", "VBDs"): ("VBD", "VDI"),
    ("SR", "VDIs"): ("VDI", "SR"), ("SR", "PBDs"): ("PBD", "SR"),
    ("pool_patch", "host_patches"): ("host_patch", "pool_patch"),
}
# fmt: on
_QUERY_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[()=]|\w+|\S')


class DB:
    """The object store. Methods raise ``Failure`` exactly as xapi would."""

    def __init__(self):
        self.tables = {cls: {} for cls in FIELDS}

    def create(self, cls, ref=None, **fields):
        """Add a record (defaults filled in, a fresh uuid if none given); return its ref."""
        rec = copy.deepcopy(FIELDS[cls])
        unknown = set(fields) - set(rec)
        if unknown:
            raise ValueError("%s has no field(s) %s" % (cls, sorted(unknown)))
        rec.update(fields)
        rec["uuid"] = rec["uuid"] or str(uuid.uuid4())
        ref = ref or new_ref()
        self.tables[cls][ref] = rec
        return ref

    def raw(self, cls, ref):
        """The stored (mutable) record; ``HANDLE_INVALID`` for an unknown ref."""
        try:
            return self.tables[cls][ref]
        except (KeyError, TypeError):
            raise Failure("HANDLE_INVALID", cls, ref) from None

    def record(self, cls, ref):
        """A full copy of the record as get_record returns it (computed fields included)."""
        rec = copy.deepcopy(self.raw(cls, ref))
        for (owner, field), (other, back) in COMPUTED.items():
            if owner == cls:
                rec[field] = [
                    r
                    for r, o in self.tables[other].items()
                    if o[back] == ref or (isinstance(o[back], list) and ref in o[back])
                ]
        return rec

    def destroy(self, cls, ref):
        self.raw(cls, ref)
        del self.tables[cls][ref]

    def find(self, cls, **match):
        """Refs of ``cls`` whose stored fields equal every ``match`` item."""
        return [r for r, rec in self.tables[cls].items() if all(rec.get(k) == v for k, v in match.items())]

    def by_uuid(self, cls, value):
        refs = self.find(cls, uuid=value)
        if not refs:
            raise Failure("UUID_INVALID", cls, value)
        return refs[0]

    def generic(self, cls, op):
        """Return ``(function, parameter kinds without the session)`` for a generic message, else None (the kinds
        are ``unmarshal``'s)."""
        table, fields = self.tables[cls], FIELDS[cls]
        simple = {
            "get_all": (lambda: list(table), ()),
            "get_all_records": (lambda: {r: self.record(cls, r) for r in table}, ()),
            "get_all_records_where": (lambda expr: self._where(cls, expr), (str,)),
            "get_record": (lambda ref: self.record(cls, ref), (str,)),
            "get_by_uuid": (lambda value: self.by_uuid(cls, value), (str,)),
        }
        if "name_label" in fields:
            simple["get_by_name_label"] = (lambda label: self.find(cls, name_label=label), (str,))
        if op in simple:
            return simple[op]
        for prefix, nargs, kind in (
            ("add_to_", 3, dict),
            ("remove_from_", 2, dict),
            ("get_", 1, None),
            ("set_", 2, None),
            ("add_", 2, list),
            ("remove_", 2, list),
        ):
            field = op[len(prefix) :]
            if not op.startswith(prefix):
                continue
            if prefix == "get_" and (cls, field) in COMPUTED:
                return (lambda ref, f=field: self.record(cls, ref)[f]), (str,)
            stored = fields.get(field)
            if stored is not None and op != "set_uuid" and (kind is None or isinstance(stored, kind)):
                kinds = (str, field_kind(field, stored)) if prefix == "set_" else (str,) * nargs
                return getattr(self, "_" + prefix.strip("_"))(cls, field), kinds
        return None

    def _get(self, cls, field):
        return lambda ref: copy.deepcopy(self.raw(cls, ref)[field])

    def _set(self, cls, field):
        def set_field(ref, value):
            self.raw(cls, ref)[field] = value
            return ""

        return set_field

    def _add_to(self, cls, field):
        def add_to(ref, key, value):
            rec = self.raw(cls, ref)
            if key in rec[field]:
                raise Failure("MAP_DUPLICATE_KEY", cls, field, rec["uuid"], key)
            rec[field][key] = value
            return ""

        return add_to

    def _remove_from(self, cls, field):
        def remove_from(ref, key):
            self.raw(cls, ref)[field].pop(key, None)
            return ""

        return remove_from

    def _add(self, cls, field):
        def add(ref, value):
            items = self.raw(cls, ref)[field]
            if value not in items:
                items.append(value)
            return ""

        return add

    def _remove(self, cls, field):
        def remove(ref, value):
            items = self.raw(cls, ref)[field]
            if value in items:
                items.remove(value)
            return ""

        return remove

    def _where(self, cls, expr):
        pred = compile_query(expr)
        return {ref: rec for ref, rec in ((r, self.record(cls, r)) for r in self.tables[cls]) if pred(rec)}


def _field_matches(rec, name, value):
    actual = rec.get(name.replace("__", "_"))
    if isinstance(actual, bool):
        return str(actual).lower() == value.lower()
    return not isinstance(actual, (list, dict, type(None))) and str(actual) == value


def compile_query(expr):
    """Compile an xapi query (``field "f"="v"``, ``and``/``or``/``not``, parentheses, ``true``/``false``)
    into a predicate over records. Booleans compare case-insensitively, everything else as strings."""
    toks, pos = _QUERY_TOKENS.findall(expr), [0]

    def peek():
        return toks[pos[0]].lower() if pos[0] < len(toks) else ""

    def take(expected=None, string=False):
        tok = toks[pos[0]] if pos[0] < len(toks) else ""
        if not tok or (expected and tok.lower() != expected) or (string and not (len(tok) > 1 and tok[0] == '"')):
            raise Failure("INTERNAL_ERROR", "query syntax error at %r in %r" % (tok or "end", expr))
        pos[0] += 1
        return re.sub(r"\\(.)", r"\1", tok[1:-1]) if string else tok.lower()

    def chain(word, sub, combine):
        preds = [sub()]
        while peek() == word:
            take()
            preds.append(sub())
        return preds[0] if len(preds) == 1 else (lambda rec: combine(p(rec) for p in preds))

    def disjunction():
        return chain("or", lambda: chain("and", atom, all), any)

    def atom():
        tok = take()
        if tok == "not":
            pred = atom()
            return lambda rec: not pred(rec)
        if tok == "(":
            pred = disjunction()
            take(")")
            return pred
        if tok in ("true", "false"):
            return lambda rec: tok == "true"
        if tok == "field":
            name = take(string=True)
            take("=")
            value = take(string=True)
            return lambda rec: _field_matches(rec, name, value)
        pos[0] -= 1
        return take("field")  # raises the syntax error

    pred = disjunction()
    if pos[0] != len(toks):
        take("end of query")
    return pred
