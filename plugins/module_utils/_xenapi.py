# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""XenAPI connection, error translation and the base class of every xen_* module.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import ssl
import traceback

from ansible.module_utils.basic import env_fallback
from ansible_collections.xenserver.openstack.plugins.module_utils._base import BaseModule, ModuleError
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import (
    OS_ERRORS,
    urlsplit,
    urlunsplit,
)
from ansible_collections.xenserver.openstack.plugins.module_utils._compat_http import http_client, xmlrpc_client
from ansible_collections.xenserver.openstack.plugins.module_utils._platform import (
    POOL_UPDATE_API,
    POOL_UPDATE_PLATFORM,
    version_tuple,
)

try:
    import XenAPI
except ImportError:
    XenAPI = None
    XENAPI_IMPORT_ERROR = traceback.format_exc()
else:
    XENAPI_IMPORT_ERROR = None

HIMN_DOM0_ADDRESS = "169.254.0.1"
HIMN_BRIDGE = "xenapi"
DOM0_PLUGIN = "xenserver_openstack"
DEFAULT_URL = "http://" + HIMN_DOM0_ADDRESS
ORIGINATOR = "xenserver.openstack"
# Seconds a Dom0 plugin call may take (option plugin_timeout of the modules that call the plugin): a conntrackd
# restart or a batch of housekeeping takes longer than an ordinary XAPI call.
PLUGIN_TIMEOUT = 120
# The options of the modules that call the collection's Dom0 plugin (doc fragment xenapi.dom0_plugin).
DOM0_PLUGIN_SPEC = dict(
    plugin_timeout=dict(type="int", default=PLUGIN_TIMEOUT),
    plugin_pending=dict(type="bool", default=False),
)
# The option of the modules that predict their change without XAPI (doc fragment xenapi.xapi_pending).
XAPI_PENDING_SPEC = dict(xapi_pending=dict(type="bool", default=False))
# The answers of XAPI when the plugin is not there yet, or is an older one that lacks the function called.
PLUGIN_ABSENT = ("XENAPI_MISSING_PLUGIN", "UNKNOWN_XENAPI_PLUGIN_FUNCTION")

# What an operator should do about an XAPI error code. Each template gets
# {url}, {call} and {p0}, {p1}, ... (the error parameters).
FAILURE_HINTS = {
    "SESSION_AUTHENTICATION_FAILED": (
        "XAPI at {url} refused the login of user '{p0}': wrong user name or password. "
        "Check the username and password options (or XENSERVER_USER / XENSERVER_PASSWORD)."
    ),
    "HANDLE_INVALID": "The {p0} object {p1} no longer exists on {url} (during {call}).",
    "UUID_INVALID": "No {p0} with UUID {p1} exists on {url} (during {call}). Check the UUID.",
    "MESSAGE_METHOD_UNKNOWN": ("XAPI at {url} does not know the call {p0}: the host is too old for this operation."),
    "XENAPI_MISSING_PLUGIN": (
        "The Dom0 plugin {p0} is not installed on the host behind {url}. "
        "Install the Dom0 plugins first (role xenserver.openstack.dom0_suppack)."
    ),
    "UNKNOWN_XENAPI_PLUGIN_FUNCTION": (
        "The Dom0 plugin on {url} has no function {p0}: its version does not match this collection. "
        "Install the plugins of this collection's version (role xenserver.openstack.dom0_suppack)."
    ),
}


class PluginPending(Exception):
    """Check mode with plugin_pending: the Dom0 plugin is not installed yet (an earlier task of the run would install
    it), so the module predicts its change from its options instead of asking the plugin.

    Args:
        reason: why the plugin could not answer.
        remedy: what, earlier in the run, brings what is missing.
    """

    def __init__(self, reason, remedy=None):
        super(PluginPending, self).__init__(reason)
        self.reason = reason
        self.remedy = remedy or (
            "the pack that an earlier task of this run installs (xenserver.openstack.dom0_suppack) brings it"
        )


class XAPIUnreachable(ModuleError):
    """XAPI could not be reached (modules that can do without XenAPI fall back on other ways)."""


def xenapi_argument_spec(**module_spec):
    """Return the connection options every XenAPI module accepts, merged with the module's own.

    Args:
        **module_spec: the module's own options.

    Returns:
        dict: an argument_spec for AnsibleModule.
    """
    spec = dict(
        url=dict(
            type="str",
            default=DEFAULT_URL,
            aliases=["hostname", "host"],
            fallback=(env_fallback, ["XENSERVER_URL", "XENSERVER_HOST"]),
        ),
        username=dict(type="str", default="root", aliases=["user"], fallback=(env_fallback, ["XENSERVER_USER"])),
        password=dict(
            type="str", no_log=True, aliases=["pass", "pwd"], fallback=(env_fallback, ["XENSERVER_PASSWORD"])
        ),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["XENSERVER_VALIDATE_CERTS"])),
        timeout=dict(type="int", default=30),
    )
    spec.update(module_spec)
    return spec


def normalise_url(value):
    """Turn the url option into a full XAPI URL.

    Args:
        value: a URL, or a bare host name or address.

    Returns:
        str: C(scheme://host[:port]) without a trailing slash.

    Raises:
        ModuleError: for a scheme other than http or https, or no host.
    """
    value = value.strip()
    if "://" not in value:
        scheme = "http" if value == HIMN_DOM0_ADDRESS else "https"
        value = "%s://%s" % (scheme, value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModuleError("url '%s' is not an XAPI address: use http://HOST, https://HOST or a bare host name." % value)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def https_url(host, port, path="", query=""):
    """An https URL for a host that a URL named over http: an explicit port is kept, except http's 80."""
    host = "[%s]" % host if ":" in host else host
    netloc = host if port in (None, 80) else "%s:%s" % (host, port)
    return urlunsplit(("https", netloc, path, query, ""))


def master_url_of(url, master):
    """Return the pool master's URL after C(HOST_IS_SLAVE) named its address.

    Always https, whatever the member's URL: the master's address is its management address, off the HIMN, and a
    login over http there would carry the root password in clear (from http://169.254.0.1, which never leaves the
    host, the member answers HOST_IS_SLAVE too). An explicit port is kept, except http's 80.
    """
    parts = urlsplit(url)
    return https_url(master, parts.port, parts.path)


def ssl_context(validate_certs):
    """The TLS rule of every XAPI connection of the collection (calls and uploads): verify unless told not to."""
    return ssl.create_default_context() if validate_certs else ssl._create_unverified_context()


def _transport(url, validate_certs, timeout):
    """Return an XML-RPC transport with a socket timeout (its C(timeout) attribute, which may change between
    calls), verifying certificates unless told not to."""
    if url.startswith("https://"):
        base = xmlrpc_client.SafeTransport
        kwargs = dict(context=ssl_context(validate_certs))
    else:
        base = xmlrpc_client.Transport
        kwargs = {}

    class TimeoutTransport(base):
        def make_connection(self, host):
            connection = base.make_connection(self, host)  # an old-style class on Python 2.7: no super()
            connection.timeout = self.timeout
            if getattr(connection, "sock", None) is not None:  # a kept-alive connection
                connection.sock.settimeout(self.timeout)
            return connection

    transport = TimeoutTransport(**kwargs)
    transport.timeout = timeout
    return transport


def is_timeout(error):
    """Whether a transport error is a socket timeout (the call took longer than its limit)."""
    return isinstance(error, socket.timeout)


class _RecordingDispatcher:
    """Like XenAPI's dispatcher (C(xapi.host.get_all())), remembering the last call for error messages."""

    def __init__(self, session, owner, name=None):
        self._session = session
        self._owner = owner
        self._name = name

    def __getattr__(self, name):
        return _RecordingDispatcher(self._session, self._owner, name if self._name is None else self._name + "." + name)

    def __call__(self, *args):
        self._owner.last_call = self._name
        return self._session.xenapi_request(self._name, args)


def explain_transport_error(url, error, call, limit=None):
    """Return the user message for an error that kept a call from reaching XAPI or being answered.

    Args:
        url: the XAPI URL.
        error: the exception raised by the transport.
        call: the XAPI call that was being made.
        limit: (seconds, the option that sets them) of the call, for a timeout's message.

    Returns:
        str: the message.
    """
    if limit is not None and is_timeout(error):
        return (
            "XAPI at %s did not answer %s within %d s (option %s): the host may be overloaded or the call stuck. "
            "Check the host (xe task-list, /var/log/xensource.log), or raise %s if the call needs longer."
            % (url, call, limit[0], limit[1], limit[1])
        )
    if is_certificate_error(error):
        return (
            "The TLS certificate of %s could not be verified: %s. Trust the host's certificate on this machine, "
            "or set validate_certs=false for a host that still has its self-signed certificate."
            % (url, getattr(error, "verify_message", None) or error)
        )
    if isinstance(error, xmlrpc_client.ProtocolError):
        return "%s answered HTTP %s %s to %s: is it a XAPI endpoint?" % (url, error.errcode, error.errmsg, call)
    if isinstance(error, xmlrpc_client.Fault):
        if "valid session" in str(error.faultString):
            return (
                "XAPI at %s kept invalidating the session during %s (SESSION_INVALID after 3 fresh logins). "
                "The toolstack may be restarting: run again when the host is up." % (url, call)
            )
        return "XAPI at %s sent an invalid answer to %s: %s" % (url, call, error.faultString)
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return (
        "Cannot reach XAPI at %s (%s): %s. Check the url option and that the host is up; from a compute VM, "
        "check that its HIMN interface has an address in 169.254.0.0/16." % (url, call, reason)
    )


def explain_failure(url, details, call):
    """Return the user message for an XAPI error.

    Args:
        url: the XAPI URL.
        details: the ErrorDescription list (code first, then parameters).
        call: the XAPI call that failed.

    Returns:
        str: the message.
    """
    code, params = (details[0], list(details[1:])) if details else ("UNKNOWN", [])
    if code == "XENAPI_PLUGIN_FAILURE" and params[1:2] == ["PluginError"]:
        return "Dom0 refused %s on %s: %s" % (call, url, params[2] if len(params) > 2 else "")
    template = FAILURE_HINTS.get(code)
    values = dict(("p%d" % i, p) for i, p in enumerate(params))
    if template:
        try:
            return template.format(url=url, call=call, **values)
        except (IndexError, KeyError):
            pass
    return "XAPI error during %s on %s: %s %s" % (call, url, code, params)


def is_certificate_error(error):
    """Whether a transport error is a failed certificate check (Python 3.7+ raises ssl.SSLCertVerificationError,
    an alias of ssl.CertificateError; before, a bad chain is an SSLError and a wrong host name a CertificateError)."""
    if isinstance(error, ssl.CertificateError):
        return True
    return isinstance(error, ssl.SSLError) and getattr(error, "reason", None) == "CERTIFICATE_VERIFY_FAILED"


TRANSPORT_ERRORS = OS_ERRORS + (
    ssl.CertificateError,
    http_client.HTTPException,
    xmlrpc_client.ProtocolError,
    xmlrpc_client.Fault,
)
# An XAPI error code: none without the library (a module that can do without it, such as himn_info, runs then).
XENAPI_FAILURE = (XenAPI.Failure,) if XenAPI else ()
# Any error of a XAPI call: an XAPI error code, or the transport's (for best-effort cleanups).
XENAPI_ERRORS = XENAPI_FAILURE + TRANSPORT_ERRORS


class XenAPIModule(BaseModule):
    """Base class of the collection's XenAPI modules (C(_base.BaseModule) with a XAPI session).

    Subclasses set C(argument_spec) and C(module_kwargs) and implement C(run()), which reads or changes
    things through C(self.xapi) and returns the result dict. C(main()) is C(ThatModule()()).
    The connection options come with the base; it logs in once, logs out in C(finally), follows
    C(HOST_IS_SLAVE) to the pool master, and turns every XenAPI or transport error into one clear failure.
    """

    @property
    def required_libraries(self):
        if self.xapi_pending:
            return ()  # a prediction without XAPI needs no XenAPI library
        return (("XenAPI", XENAPI_IMPORT_ERROR if XenAPI is None else None),)

    @property
    def xapi_pending(self):
        """Check mode with xapi_pending: XAPI cannot be reached before an earlier task of the run (the HIMN
        bootstrap of a fresh VM), so the module predicts its change with C(run_pending()) instead of connecting."""
        return bool(self.check_mode and self.params.get("xapi_pending"))

    # True for modules that can work without XAPI: no password or an unreachable XAPI leaves self.xapi None.
    xenapi_optional = False

    def __init__(self):
        super(XenAPIModule, self).__init__()
        self.session = None
        self.xapi = None
        self.url = None
        self.master_url = None
        self.last_call = "session.login_with_password"
        self.xapi_unreachable = None
        self.transport = None

    def full_argument_spec(self):
        return xenapi_argument_spec(**self.argument_spec)

    @property
    def limit(self):
        """The limit of an ordinary XAPI call, for a timeout's message: (seconds, the option)."""
        return self.params["timeout"], "timeout"

    def prepare(self):
        self.url = normalise_url(self.params["url"])

    def run(self):
        """Do the module's work through C(self.xapi) and return the result dict."""
        raise NotImplementedError

    def run_pending(self, pending):
        """Predict the module's change from its options alone (check mode with xapi_pending); modules with the
        option implement it, with C(predicted())."""
        raise NotImplementedError

    def execute(self):
        if self.xapi_pending:
            return self.run_pending(
                PluginPending(
                    "XAPI at %s cannot be reached from this machine before the HIMN bootstrap" % self.url,
                    "the HIMN bootstrap earlier in this run (xenserver.openstack.himn_network) makes it reachable",
                )
            )
        result = self._run_in_session()
        if self.master_url:
            result.setdefault("xapi_master_url", self.master_url)
        return result

    def _run_in_session(self):
        try:
            self._login()
        except XAPIUnreachable as error:
            if not self.xenapi_optional:
                raise
            self.xapi_unreachable = error.msg
        try:
            return self.run()
        except XENAPI_FAILURE as error:
            raise ModuleError(
                explain_failure(self.master_url or self.url, error.details, self.last_call),
                xapi_error=list(error.details),
            )
        except TRANSPORT_ERRORS as error:
            raise ModuleError(explain_transport_error(self.master_url or self.url, error, self.last_call, self.limit))
        finally:
            self._logout()

    def _login(self):
        if not self.params["password"]:
            if self.xenapi_optional:
                raise XAPIUnreachable("No XAPI password given.")
            raise ModuleError(
                "No XAPI password given: set the password option or the XENSERVER_PASSWORD environment variable."
            )
        try:
            self._login_at(self.url)
        except XenAPI.Failure as error:
            if error.details[:1] != ["HOST_IS_SLAVE"] or len(error.details) < 2:
                if self.xenapi_optional:
                    # A module that can do without XenAPI falls back on its other ways, saying why.
                    raise XAPIUnreachable(explain_failure(self.url, error.details, self.last_call))
                raise ModuleError(
                    explain_failure(self.url, error.details, self.last_call), xapi_error=list(error.details)
                )
            self._login_at_master(error.details[1])
        except TRANSPORT_ERRORS as error:
            raise XAPIUnreachable(explain_transport_error(self.url, error, self.last_call, self.limit))

    def _login_at_master(self, master):
        self.master_url = master_url_of(self.url, master)
        try:
            self._login_at(self.master_url)
        except XenAPI.Failure as error:
            raise ModuleError(
                "%s is a pool member whose master is %s; logging in there failed: %s"
                % (self.url, master, explain_failure(self.master_url, error.details, self.last_call)),
                xapi_error=list(error.details),
            )
        except TRANSPORT_ERRORS as error:
            raise ModuleError(
                "%s is a pool member whose master is %s, and the master cannot be reached over https (the module "
                "never logs in to another host over plain http): %s Set url to %s, or to another address of the "
                "master that this machine reaches over https (with validate_certs=false only if the master still "
                "has its self-signed certificate and you accept that)."
                % (
                    self.url,
                    master,
                    explain_transport_error(self.master_url, error, self.last_call, self.limit),
                    self.master_url,
                )
            )

    def call_dom0_plugin(self, host_ref, function, params):
        """Call a function of the collection's Dom0 plugin on a host, within the module's plugin_timeout (a plugin
        call may take longer than an ordinary call): JSON parameters in, JSON result out."""
        seconds = self.params.get("plugin_timeout") or PLUGIN_TIMEOUT
        saved, self.transport.timeout = self.transport.timeout, seconds
        try:
            return call_dom0_plugin(self.xapi, host_ref, function, params)
        except XenAPI.Failure as error:
            code = (list(error.details) or [""])[0]
            if self.check_mode and self.params.get("plugin_pending") and code in PLUGIN_ABSENT:
                url = self.master_url or self.url
                raise PluginPending(
                    "the Dom0 plugin %s is not installed yet on the host behind %s" % (DOM0_PLUGIN, url)
                    if code == "XENAPI_MISSING_PLUGIN"
                    else "the Dom0 plugin on %s is an older one, without the function %s" % (url, function)
                )
            raise
        except TRANSPORT_ERRORS as error:
            call = "host.call_plugin (%s %s)" % (DOM0_PLUGIN, function)
            raise ModuleError(
                explain_transport_error(self.master_url or self.url, error, call, (seconds, "plugin_timeout"))
            )
        finally:
            self.transport.timeout = saved

    def predicted(self, result, not_checked, pending):
        """Mark ``result`` as a prediction (check mode, plugin or XAPI not there yet) and say what went unchecked.

        Args:
            result: the module's result dict, with the change it would make.
            not_checked: what the Dom0 plugin (or XAPI) would have checked, one sentence each.
            pending: the PluginPending that call_dom0_plugin raised, or that execute() gave run_pending().

        Returns:
            dict: ``result`` with C(predicted) and C(not_checked).
        """
        result.update(predicted=True, not_checked=list(not_checked))
        for what in not_checked:
            self.ansible.warn("Not checked in check mode: %s, as %s; %s." % (what, pending.reason, pending.remedy))
        return result

    def _login_at(self, url):
        self.last_call = "session.login_with_password"
        self.transport = _transport(url, self.params["validate_certs"], self.params["timeout"])
        session = XenAPI.Session(url, transport=self.transport)
        session.xenapi.login_with_password(self.params["username"], self.params["password"], "2.0", ORIGINATOR)
        self.session = session
        self.xapi = _RecordingDispatcher(session, self)

    def _logout(self):
        if self.session is None:
            return
        try:
            self.session.xenapi.session.logout()
        except XENAPI_ERRORS:
            pass
        finally:
            self.session = None
            self.xapi = None


def read_local_vm_uuid(path="/sys/hypervisor/uuid", type_path="/sys/hypervisor/type"):
    """Return the UUID of the Xen guest this code runs in, or None outside a Xen guest.

    Args:
        path: the file holding the domain's UUID.
        type_path: the file naming the hypervisor.

    Returns:
        str or None: the VM UUID (None also for Dom0, whose UUID is all zeros).
    """
    try:
        with open(type_path) as handle:
            if handle.read().strip() != "xen":
                return None
        with open(path) as handle:
            uuid = handle.read().strip()
    except OS_ERRORS:
        return None
    return None if not uuid or uuid.strip("0-") == "" else uuid


def is_himn(network_record):
    """Return whether a network record is the Host Internal Management Network."""
    return network_record.get("other_config", {}).get("is_host_internal_management_network") == "true"


def api_version(host_record):
    """Return a host's XenAPI version as a comparable (major, minor) tuple of ints."""
    return int(host_record["API_version_major"]), int(host_record["API_version_minor"])


NULL_REF = "OpaqueRef:NULL"


def platform_version(host_record):
    """Return a host's platform version (C(software_version:platform_version)) as a tuple of ints."""
    return version_tuple(host_record["software_version"].get("platform_version", ""))


def has_pool_update(host_record):
    """Return whether a host takes updates (C(pool_update), XenServer 7.1+) rather than hotfixes only."""
    return api_version(host_record) >= POOL_UPDATE_API and platform_version(host_record) >= POOL_UPDATE_PLATFORM


def resident_host(vm, fix="start it first"):
    """Return the ref of the host a VM record runs on, or refuse a halted VM (C(fix) says what to do)."""
    if vm["resident_on"] in ("", NULL_REF):
        raise ModuleError("VM %s is not running on any host: %s." % (vm["name_label"], fix))
    return vm["resident_on"]


def find_vm(xapi, uuid, url):
    """Return (ref, record) of the VM with this UUID, reading the VM class once.

    Raises:
        ModuleError: when no such VM exists in the pool.
    """
    found = xapi.VM.get_all_records_where('field "uuid"="%s"' % uuid.replace('"', ""))
    if not found:
        raise ModuleError(
            "No VM with UUID %s exists in the pool behind %s. Check vm_uuid (or, inside a Xen guest, "
            "/sys/hypervisor/uuid) and that url points at the pool this VM runs in." % (uuid, url)
        )
    return next(iter(found.items()))


def find_himn(xapi):
    """Return (ref, record) of the pool's Host Internal Management Network, or (None, {})."""
    for ref, network in xapi.network.get_all_records_where('field "bridge"="%s"' % HIMN_BRIDGE).items():
        if is_himn(network):
            return ref, network
    return None, {}


def himn_vif(xapi, vm_ref, himn_ref):
    """Return (ref, record) of the VM's VIF on the HIMN, or (None, {})."""
    for ref, vif in xapi.VIF.get_all_records_where('field "VM"="%s"' % vm_ref).items():
        if vif["network"] == himn_ref:
            return ref, vif
    return None, {}


def call_dom0_plugin(xapi, host_ref, function, params):
    """Call a function of the collection's Dom0 plugin on a host: JSON parameters in, JSON result out."""
    return json.loads(xapi.host.call_plugin(host_ref, DOM0_PLUGIN, function, {"params": json.dumps(params)}))
