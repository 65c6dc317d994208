"""XAPI semantics on top of the object store: seeding from a scenario, dispatch (sessions, pool-member
forwarding, Async tasks, argument counts), class-specific messages, host.call_plugin and pool_update."""

import collections
import contextlib
import inspect
import ipaddress
import itertools
import os
import random
import threading
import time
import uuid
import xmlrpc.client
from xml.sax.saxutils import escape

from . import dom0
from .db import DB, FIELDS, NULL, Failure, new_ref, now, unmarshal
from .updates import read_update_from_vdi

NAMESPACE = uuid.UUID("6f0c3a52-7d1e-4a57-9a35-3f1b2a6c9e10")
PRECHECK_PARAMS = {
    "wrong_server_version": ["installed", "required"],
    "prerequisite_missing": ["prerequisite"],
    "conflict_present": ["conflict"],
    "gpgkey_not_imported": [],
    "out_of_space": ["0", "1"],
    "unknown_error": ["simulated precheck failure"],
}
RECORD = None  # the kind of a record parameter: its fields are checked by the message itself
MESSAGES = {}  # "Class.method" -> (function, least and most wire arguments, login message?, parameter kinds)


def message(name, login=False):
    """Register a class-specific message; its Python signature (after ``api``) gives the wire arguments, and an
    annotation a parameter's type (``db.unmarshal``'s kinds; the session and refs are ``str``)."""

    def register(fn):
        params = list(inspect.signature(fn).parameters.values())[1:]
        kinds = tuple(str if p.annotation is p.empty else p.annotation for p in params)
        MESSAGES[name] = (fn, sum(p.default is p.empty for p in params), len(params), login, kinds)
        return fn

    return register


def xml_value(value):
    """Encode ``value`` the way xapi stores task results: ``<value>...</value>``."""
    if isinstance(value, str):
        return "<value>%s</value>" % escape(value)
    text = xmlrpc.client.dumps((value,), allow_none=True)
    return text[text.index("<value>") : text.rindex("</value>") + len("</value>")]


def _stable(*parts):
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def _version(text):
    return tuple(int(p) for p in text.split(".") if p.isdigit())


class XAPI:
    """One simulated xapi (the ``local_host`` of a scenario). All public methods are thread-safe."""

    def __init__(self, scenario, dom0_, himn_addresses):
        self.scenario, self.dom0, self.root = scenario, dom0_, dom0_.root
        self.plugin_dir, self.himn_addresses = dom0_.local(dom0.PLUGIN_DIR), tuple(himn_addresses)
        self.behaviour = scenario.get("behaviour", {})
        self.db, self.lock, self.counts = DB(), threading.RLock(), collections.Counter()
        self.times = {}  # call name -> [first, last] wall-clock time: the order of calls across simulated hosts
        self.expire_after, self.expire_at, self.always_expire = None, None, False
        self.via_himn = self.preauth = False
        self.payloads = {}  # pool_update ref -> ({plugin file name: bytes}, {path: {mode, data}}), for apply
        self.data_sources = {}  # VM ref -> {data source: value} (VM.query_data_source)
        self.refs = self._seed(scenario)
        self.master = self.refs["hosts"][scenario["pool"]["master"]]
        self.local_host = self.refs["hosts"][scenario.get("local_host") or scenario["pool"]["master"]]
        platform = self.db.raw("host", self.local_host)["software_version"].get("platform_version", "0")
        self.has_pool_update = _version(platform) >= (2, 2, 0)

    # -- seeding -----------------------------------------------------------------------------------
    def _seed(self, sc):
        db, refs = self.db, {kind: {} for kind in ("hosts", "srs", "vdis", "networks", "vms")}

        def pick(cls, spec, **extra):
            """The keys of a scenario ``spec`` that are fields of ``cls``, overridden by ``extra``."""
            return dict({k: v for k, v in spec.items() if k in FIELDS[cls]}, **extra)

        def add(cls, kind, name, spec, defaults, **resolved):
            """Create a named scenario object (stable uuid and ref); ``resolved`` replaces scenario names by refs."""
            uid = spec.get("uuid") or _stable(kind, name)
            fields = dict(defaults, **pick(cls, spec, uuid=uid, **resolved))
            refs[kind][name] = db.create(cls, "OpaqueRef:" + _stable("ref", uid), **fields)
            return refs[kind][name]

        master = sc["pool"]["master"]
        for name, spec in sc["hosts"].items():
            host = add("host", "hosts", name, spec, {"name_label": name, "hostname": spec.get("name_label", name)})
            label = "Control domain on host: %s" % db.raw("host", host)["hostname"]
            db.raw("host", host).update(
                metrics=db.create("host_metrics", **pick("host_metrics", spec)),
                iscsi_iqn=spec.get("other_config", {}).get("iscsi_iqn", ""),  # xapi keeps both in step
            )
            db.raw("host", host)["control_domain"] = db.create(
                "VM",
                name_label=label,
                uuid=_stable("dom0", name),
                is_control_domain=True,
                power_state="Running",
                domid="0",
                resident_on=host,
                domain_type="pv",
            )
        for name, spec in sc.get("srs", {}).items():
            sr = add("SR", "srs", name, spec, {"name_label": name, "physical_size": "500000000000"})
            for host in refs["hosts"].values() if spec.get("shared") else [refs["hosts"][spec.get("host") or master]]:
                db.create("PBD", host=host, SR=sr)
        for name, spec in sc.get("vdis", {}).items():
            vdi = add("VDI", "vdis", name, spec, {"name_label": name}, SR=refs["srs"][spec["sr"]])
            db.raw("VDI", vdi)["location"] = db.raw("VDI", vdi)["uuid"]
        for name, spec in sc["networks"].items():
            net = add("network", "networks", name, spec, {"name_label": name})
            for pif in spec.get("pifs", []):
                host, mode = refs["hosts"][pif["host"]], "Static" if pif.get("IP") else "None"
                db.create("PIF", **pick("PIF", pif, host=host, network=net, ip_configuration_mode=mode))
        for n, (name, spec) in enumerate(sc.get("vms", {}).items(), start=1):
            running = spec.get("power_state", "Running") == "Running"
            defaults = {"name_label": name, "power_state": "Running", "domid": str(n) if running else "-1"}
            # A halted VM has no resident host (xapi's Xapi_vm_lifecycle.force_state_reset sets resident_on to NULL
            # when a VM goes Halted), whatever a scenario that extends a running one says.
            resident = refs["hosts"].get(spec.get("resident_on") or master, NULL) if running else NULL
            vm = add("VM", "vms", name, spec, defaults, resident_on=resident)
            for vif in spec.get("vifs", []):
                net, mac = refs["networks"][vif["network"]], vif.get("MAC") or self._random_mac()
                self._lease(db.create("VIF", **pick("VIF", vif, VM=vm, network=net, MAC=mac)), vif.get("ip"))
            for vbd in spec.get("vbds", []):
                vdi = refs["vdis"].get(vbd.get("vdi"), NULL)
                db.create("VBD", **pick("VBD", vbd, VM=vm, VDI=vdi, empty=vdi == NULL))
            self.data_sources[vm] = spec.get("data_sources", {})
        default_sr = refs["srs"].get(sc["pool"].get("default_sr"), NULL)
        db.create("pool", **pick("pool", sc["pool"], master=refs["hosts"][master], default_SR=default_sr))
        for spec in sc.get("updates", []):
            hosts = [refs["hosts"][h] for h in spec.get("applied_on", [])]
            db.create("pool_update", **pick("pool_update", spec, hosts=hosts))
        for spec in sc.get("patches", []):
            hosts = [refs["hosts"][h] for h in spec.get("applied_on", [])]
            everywhere = set(hosts) == set(refs["hosts"].values())
            patch = db.create("pool_patch", **pick("pool_patch", spec, pool_applied=everywhere))
            for host in hosts:
                fields = pick("host_patch", spec, uuid="", host=host, pool_patch=patch, timestamp_applied=now())
                db.create("host_patch", **fields)
        return refs

    @staticmethod
    def _random_mac():
        return ":".join(["02"] + ["%02x" % random.randrange(256) for _ in range(5)])

    def _lease(self, vif, ip=None):
        """Give a VIF on the HIMN a DHCP lease (``network.assigned_ips``), as xapi's udhcpd does."""
        net = self.db.raw("network", self.db.raw("VIF", vif)["network"])
        cfg = net["other_config"]
        if cfg.get("is_host_internal_management_network") != "true":
            return
        if ip is None:  # the first free address after ip_begin (Dom0's own address on the HIMN)
            taken, begin = set(net["assigned_ips"].values()), ipaddress.IPv4Address(cfg.get("ip_begin", "169.254.0.1"))
            ip = next(str(begin + i) for i in itertools.count(1) if str(begin + i) not in taken)
        net["assigned_ips"][vif] = ip

    # -- dispatch ----------------------------------------------------------------------------------
    def call(self, method, params, local_addr, preauth=False):
        """Run one XML-RPC call that arrived on the server address ``local_addr`` (``preauth``: on xapi's Unix
        socket, whose clients are root, context.ml:95-103); Failure on error."""
        with self.lock:
            self.count(method)
            if self.expire_after is not None:
                self.expire_after -= 1
                if self.expire_after < 0:
                    self.expire_after = None
                    self.expire_sessions()
            if method == self.expire_at:
                self.expire_at = None
                self.expire_sessions()
            self.via_himn, self.preauth = local_addr in self.himn_addresses, preauth
            is_async = method.startswith("Async.")
            fn, least, most, login, kinds = self._lookup(method[len("Async.") :] if is_async else method, method)
            if not least <= len(params) <= most:
                raise Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", method, most, len(params))
            params = [unmarshal(kind, value) for kind, value in zip(kinds, params)]
            if not login:
                self.check_session(params[0])
            if not is_async:
                return fn(self, *params)
            task = self.db.create("task", name_label=method, created=now())
            try:
                self._finish(task, fn(self, *params))
            except Failure as exc:
                self._finish(task, error=exc.details)
            return task

    def _lookup(self, name, method):
        """``(function(api, *params), least, most wire arguments, login?, kinds)``; pool_update needs platform
        2.2.0."""
        cls, _, op = name.partition(".")
        generic = None
        if cls in FIELDS and (cls != "pool_update" or self.has_pool_update):
            if name in MESSAGES:
                return MESSAGES[name]
            generic = self.db.generic(cls, op)
        if generic is None:
            raise Failure("MESSAGE_METHOD_UNKNOWN", method)
        fn, kinds = generic
        return (lambda api, session, *args: fn(*args)), len(kinds) + 1, len(kinds) + 1, False, (str, *kinds)

    def count(self, name):
        with self.lock:
            self.counts[name] += 1
            self.mark(name)

    def mark(self, name):
        """Record the time of an event (a call, or a call's end as ``<call>:end``) in ``times`` only."""
        now = time.time()
        with self.lock:
            self.times.setdefault(name, [now, now])[1] = now

    def check_session(self, ref):
        if not isinstance(ref, str) or ref not in self.db.tables["session"]:
            raise Failure("SESSION_INVALID", ref)

    def _finish(self, task, value=None, error=None):
        rec = self.db.raw("task", task)
        rec.update(
            status="failure" if error else "success",
            finished=now(),
            progress=1.0,
            result="" if error else xml_value(value),
            error_info=error or [],
        )

    @contextlib.contextmanager
    def _unlocked(self):
        """Let other requests run while this one waits (the plugin may call back into the simulator)."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    # -- test controls -----------------------------------------------------------------------------
    def expire_sessions(self):
        with self.lock:
            self.db.tables["session"].clear()

    def state(self):
        with self.lock:
            vdis = [
                dict({k: v[k] for k in ("uuid", "name_label", "virtual_size")}, SR=self.db.raw("SR", v["SR"])["uuid"])
                for v in self.db.tables["VDI"].values()
            ]
            updates = [
                dict(
                    {k: u[k] for k in ("uuid", "name_label", "version")},
                    hosts=[self.db.raw("host", h)["name_label"] for h in u["hosts"]],
                )
                for u in self.db.tables["pool_update"].values()
            ]
            return {"vdis": vdis, "updates": updates, "sessions": len(self.db.tables["session"])}

    def vdi_path(self, vdi):
        return os.path.join(self.root, "var", "xapisim", "vdi", self.db.raw("VDI", vdi)["uuid"])

    # -- /import_raw_vdi ---------------------------------------------------------------------------
    def begin_import(self, query):
        """Check an upload's query (session_id, task_id, sr_id or vdi, format); return ``(vdi ref, file path,
        created, task ref)``. With ``sr_id`` a new VDI is made. A Failure also fails the task."""
        with self.lock:
            self.check_session(query.get("session_id"))
            task, vdi, sr = query.get("task_id"), query.get("vdi"), query.get("sr_id")
            if task:
                self.db.raw("task", task)
            try:
                if query.get("format", "raw") != "raw":
                    raise Failure("INVALID_VALUE", "format", query["format"])
                if vdi:
                    self.db.raw("VDI", vdi)
                else:
                    self.db.raw("SR", sr)
                    vdi = self.db.create("VDI", SR=sr, name_label="imported VDI", sm_config={"type": "raw"})
                    self.db.raw("VDI", vdi)["location"] = self.db.raw("VDI", vdi)["uuid"]
            except Failure as exc:
                if task:
                    self._finish(task, error=exc.details)
                raise
            path = self.vdi_path(vdi)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return vdi, path, not query.get("vdi"), task

    def end_import(self, vdi, task, created, size, error=None):
        """Record the outcome of an upload: size the VDI and complete the task, or undo everything."""
        with self.lock:
            if error and created:
                self._destroy_vdi(vdi)
            elif not error:
                self.db.raw("VDI", vdi).update(virtual_size=str(size), physical_utilisation=str(size))
            if task:
                self._finish(task, vdi, ["VDI_IO_ERROR", error] if error else None)

    def _destroy_vdi(self, vdi):
        path = self.vdi_path(vdi)
        if os.path.exists(path):
            os.unlink(path)
        self.db.destroy("VDI", vdi)


# -- session -------------------------------------------------------------------------------------
def _login(api, uname, pwd, this_host, originator):
    creds = api.scenario["credentials"]
    if (uname, pwd) != (creds["username"], creds["password"]):
        raise Failure("SESSION_AUTHENTICATION_FAILED", uname, "Authentication failure")
    ref = new_ref()
    if not api.always_expire:
        api.db.create(
            "session", ref, this_host=this_host, last_active=now(), auth_user_name=uname, originator=originator
        )
    return ref


@message("session.login_with_password", login=True)
def login_with_password(api, uname, pwd, version="", originator=""):
    """On xapi's Unix socket, any credentials make a local superuser session on this host (xapi_session.ml:959-970,
    the same at v1.20.1:372 and v1.249.41:506)."""
    if api.preauth:
        ref = new_ref()
        api.db.create("session", ref, this_host=api.local_host, last_active=now(), auth_user_name=uname)
        return ref
    if api.local_host != api.master and (not api.via_himn or api.behaviour.get("host_is_slave_on_himn")):
        raise Failure("HOST_IS_SLAVE", api.db.raw("host", api.master)["address"])
    return _login(api, uname, pwd, api.master, originator)


@message("session.slave_local_login_with_password", login=True)
def slave_local_login_with_password(api, uname, pwd):
    return _login(api, uname, pwd, api.local_host, "")


@message("session.logout")
def logout(api, session):
    api.db.destroy("session", session)
    return ""


MESSAGES["session.local_logout"] = MESSAGES["session.logout"]


@message("session.get_this_host")
def get_this_host(api, session, ref):
    return api.db.raw("session", ref)["this_host"]


# -- host.call_plugin ----------------------------------------------------------------------------
@message("host.call_plugin")
def call_plugin(api, session, host, plugin, fn, args: dict):  # noqa: PLR0917 (the wire signature)
    """Run Dom0's plugin as xapi does (``dom0.call_plugin``), letting other calls in meanwhile."""
    api.db.raw("host", host)
    with api._unlocked():
        config = api.scenario.get("dom0", {})
        return dom0.call_plugin(api.dom0, config, session=session, plugin=plugin, fn=fn, args=args)


# -- host ----------------------------------------------------------------------------------------
@message("host.enable")
def host_enable(api, session, host):
    api.db.raw("host", host)["enabled"] = True
    return ""


@message("host.disable")
def host_disable(api, session, host):
    api.db.raw("host", host)["enabled"] = False
    return ""


@message("host.compute_free_memory")
def host_compute_free_memory(api, session, host):
    """The simulator keeps no per-domain memory accounting: a host's free memory is its metrics' (xapi subtracts
    what its VMs may still claim, memory_check.ml)."""
    return api.db.raw("host_metrics", api.db.raw("host", host)["metrics"])["memory_free"]


# -- VM ------------------------------------------------------------------------------------------
@message("VM.query_data_source")
def vm_query_data_source(api, session, vm, data_source):
    """The latest value of one of the VM's data sources (the scenario's ``data_sources``), a double: the result is
    a Float (datamodel_vm.ml:278-294), which ocaml-rpc writes as ``<double>`` (xmlrpc.ml add_value). xcp-rrdd raises
    ``Datasource_missing`` for a VM it has no RRD of (not running) or a source it lacks (rrdd_server.ml:336,531-538;
    what xapi makes of it, an INTERNAL_ERROR with its printer's text, is inferred)."""
    rec = api.db.raw("VM", vm)
    sources = api.data_sources.get(vm) if rec["power_state"] == "Running" else None
    missing = "VM: " + rec["uuid"] if not sources else None if data_source in sources else data_source
    if missing:
        raise Failure("INTERNAL_ERROR", "Rrd_interface.Rrdd_error([S(Datasource_missing);S(%s)])" % missing)
    return float(sources[data_source])


# -- VIF / network / VDI -------------------------------------------------------------------------
@message("VIF.create")
def vif_create(api, session, args: RECORD):
    for field in ("device", "network", "VM"):
        if not isinstance(args.get(field), str):
            raise Failure("FIELD_TYPE_ERROR", field)
    api.db.raw("VM", args["VM"])
    api.db.raw("network", args["network"])
    if api.db.find("VIF", VM=args["VM"], device=args["device"]):
        raise Failure("DEVICE_ALREADY_EXISTS", args["device"])
    fields = {k: v for k, v in args.items() if k in FIELDS["VIF"] and k not in ("uuid", "currently_attached")}
    fields.update(MAC=args.get("MAC") or api._random_mac(), MAC_autogenerated=not args.get("MAC"))
    ref = api.db.create("VIF", **fields)
    api._lease(ref)
    return ref


@message("VIF.plug")
def vif_plug(api, session, vif):
    rec = api.db.raw("VIF", vif)
    power = api.db.raw("VM", rec["VM"])["power_state"]
    if power != "Running":
        raise Failure("VM_BAD_POWER_STATE", rec["VM"], "running", power.lower())
    if rec["currently_attached"]:
        raise Failure("DEVICE_ALREADY_ATTACHED", vif)
    rec["currently_attached"] = True
    return ""


@message("VIF.unplug")
def vif_unplug(api, session, vif):
    rec = api.db.raw("VIF", vif)
    if not rec["currently_attached"]:
        raise Failure("DEVICE_ALREADY_DETACHED", vif)
    rec["currently_attached"] = False
    return ""


@message("VIF.destroy")
def vif_destroy(api, session, vif):
    rec = api.db.raw("VIF", vif)
    if rec["currently_attached"] and api.db.raw("VM", rec["VM"])["power_state"] == "Running":
        raise Failure("OPERATION_NOT_ALLOWED", "VIF currently attached to a running VM")
    api.db.raw("network", rec["network"])["assigned_ips"].pop(vif, None)
    api.db.destroy("VIF", vif)
    return ""


@message("network.destroy")
def network_destroy(api, session, net):
    rec = api.db.record("network", net)
    if rec["other_config"].get("is_host_internal_management_network") == "true":
        raise Failure("CANNOT_DESTROY_SYSTEM_NETWORK", net)
    if rec["VIFs"] or rec["PIFs"]:
        raise Failure("NETWORK_CONTAINS_VIF" if rec["VIFs"] else "NETWORK_CONTAINS_PIF", *(rec["VIFs"] or rec["PIFs"]))
    api.db.destroy("network", net)
    return ""


@message("VDI.create")
def vdi_create(api, session, args: RECORD):
    api.db.raw("SR", args.get("SR"))
    ref = api.db.create("VDI", **{k: v for k, v in args.items() if k in FIELDS["VDI"] and k != "uuid"})
    api.db.raw("VDI", ref)["location"] = api.db.raw("VDI", ref)["uuid"]
    return ref


@message("VDI.destroy")
def vdi_destroy(api, session, vdi):
    api._destroy_vdi(vdi)
    return ""


@message("SR.scan")
def sr_scan(api, session, sr):
    api.db.raw("SR", sr)
    return ""


# -- task ----------------------------------------------------------------------------------------
@message("task.create")
def task_create(api, session, label, description):
    return api.db.create("task", name_label=label, name_description=description, created=now())


@message("task.destroy")
def task_destroy(api, session, task):
    api.db.destroy("task", task)
    return ""


@message("task.cancel")
def task_cancel(api, session, task):
    rec = api.db.raw("task", task)
    if rec["status"] == "pending":
        rec.update(status="cancelled", error_info=["TASK_CANCELLED", task], finished=now())
    return ""


# -- pool_update ---------------------------------------------------------------------------------
@message("pool_update.introduce")
def update_introduce(api, session, vdi):
    api.db.raw("VDI", vdi)
    if api.behaviour.get("update_signature") == "invalid":
        raise Failure("INVALID_UPDATE", "Invalid signature")
    try:
        info = read_update_from_vdi(api.vdi_path(vdi), keyring=os.path.join(api.root, "opt", "xensource", "gpg"))
    except ValueError as exc:
        raise Failure("INVALID_UPDATE", str(exc)) from None
    uid = info["uuid"] or _stable("update", info["name_label"], info["version"])
    for ref in api.db.find("pool_update", uuid=uid):
        # xapi: the same VDI again, or a record whose VDI was cleaned, gets this VDI and the existing ref.
        rec = api.db.raw("pool_update", ref)
        if rec["vdi"] != vdi and rec["vdi"] in api.db.tables["VDI"]:
            raise Failure("UPDATE_ALREADY_EXISTS", uid)
        rec["vdi"] = vdi
        api.payloads[ref] = (info["plugins"], info.get("files", {}))
        return ref
    ref = api.db.create(
        "pool_update",
        uuid=uid,
        vdi=vdi,
        **{k: v for k, v in info.items() if k in FIELDS["pool_update"] and k != "uuid"},
    )
    api.payloads[ref] = (info["plugins"], info.get("files", {}))
    return ref


@message("pool_update.precheck")
def update_precheck(api, session, update, host):
    rec = api.db.raw("pool_update", update)
    api.db.raw("host", host)
    if host in rec["hosts"]:
        raise Failure("UPDATE_ALREADY_APPLIED", update)
    mode = api.behaviour.get("precheck", "ok")
    if mode != "ok":
        raise Failure("UPDATE_PRECHECK_FAILED_" + mode.upper(), update, *PRECHECK_PARAMS[mode])
    return "ok"


@message("pool_update.apply")
def update_apply(api, session, update, host):
    """Apply on ``host``; the update's plugins are installed into the (one simulated) plugin directory and its
    other files (such as the stamp /var/update/applied/<uuid>) under the simulated Dom0's root. As yum upgrades
    ``update-<label>`` and so replaces the stamp of an older update with the same label, that one stops being
    applied on the host."""
    update_precheck(api, session, update, host)
    time.sleep(int(api.behaviour.get("apply_seconds", 0)))
    rec = api.db.raw("pool_update", update)
    for ref in api.db.find("pool_update", name_label=rec["name_label"]):
        if ref != update and host in api.db.raw("pool_update", ref)["hosts"]:
            api.db.raw("pool_update", ref)["hosts"].remove(host)
    rec["hosts"].append(host)
    plugins, files = api.payloads.get(update, ({}, {}))
    targets = [(os.path.join(api.plugin_dir, name), 0o755, data) for name, data in plugins.items()]
    targets += [(os.path.join(api.root, p.lstrip("/")), f["mode"], f["data"]) for p, f in files.items()]
    for target, mode, data in targets:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, mode)
    api.mark("pool_update.apply:end")
    return ""


@message("pool_update.pool_apply")
def update_pool_apply(api, session, update):
    pending = [h for h in api.db.tables["host"] if h not in api.db.raw("pool_update", update)["hosts"]]
    if not pending:
        raise Failure("UPDATE_ALREADY_APPLIED_IN_POOL", update)
    for host in pending:
        update_apply(api, session, update, host)
    return ""


@message("pool_update.pool_clean")
def update_pool_clean(api, session, update):
    rec = api.db.raw("pool_update", update)
    if rec["vdi"] in api.db.tables["VDI"]:
        api._destroy_vdi(rec["vdi"])
    rec["vdi"] = NULL
    return ""


@message("pool_update.destroy")
def update_destroy(api, session, update):
    if api.db.raw("pool_update", update)["hosts"]:
        raise Failure("UPDATE_IS_APPLIED")
    update_pool_clean(api, session, update)
    api.db.destroy("pool_update", update)
    api.payloads.pop(update, None)
    return ""
