# Run by the nova_xenapi role with nova's Python (2.7 or 3) as ``python -c <this>``, the connection as JSON on stdin
# ({"url", "username", "password", "timeout"}); not a module. It makes the XenAPI session nova-compute makes at start,
# with nova's own client library: os-xenapi's XenAPISession (nova 15 and later) or nova's own (nova 13 and 14). That
# session logs in and checks the version of the Dom0 plugins (dom0_plugin_version.py / nova_plugin_version), the
# check that stops nova-compute at start when the plugins are missing or older than it needs.
# It prints one JSON object: {"ok": true, "client", "required"} or {"ok": false, "client", "required", "kind",
# "error"}, kind being missing_plugin, plugin_version, client_python3, login, plugin_failure, unreachable or other.
import json
import re
import sys

try:
    from xmlrpc.client import ProtocolError  # novermin: Python 3, xmlrpclib below on 2.7
except ImportError:  # Python 2
    from xmlrpclib import ProtocolError  # novermin: Python 2.7 only


def client():
    """(name, session class, required plugin version, XenAPI module) of nova's own client."""
    try:
        from os_xenapi.client import XenAPI, session

        return "os-xenapi", session.XenAPISession, session.XenAPISession.PLUGIN_REQUIRED_VERSION, XenAPI
    except ImportError:
        import XenAPI
        from nova.virt.xenapi.client import session

        return "nova", session.XenAPISession, session.XenAPISession.PLUGIN_REQUIRED_VERSION, XenAPI


def open_session(name, cls, wanted):
    if name == "os-xenapi":
        return cls(
            wanted["url"],
            wanted["username"],
            wanted["password"],
            originator="xenserver.openstack",
            timeout=wanted["timeout"],
            concurrent=1,
        )
    import nova.conf  # nova 13/14: the session reads [xenserver] options (one connection is enough here)

    nova.conf.CONF([], project="nova", default_config_files=[])
    nova.conf.CONF.set_override("connection_concurrent", 1, "xenserver")
    nova.conf.CONF.set_override("login_timeout", wanted["timeout"], "xenserver")
    return cls(wanted["url"], wanted["username"], wanted["password"])


def classify(details):
    """(kind, error list) of a XenAPI failure's details (a list, or the message string os-xenapi raises)."""
    if not isinstance(details, (list, tuple)):
        details = [str(details)]
    details = [str(d) for d in details]
    code = details[0] if details else ""
    if code == "XENAPI_MISSING_PLUGIN":
        return "missing_plugin", details
    if re.search(r"[Pp]lugin version mismatch", code):
        return "plugin_version", details
    if code in ("SESSION_AUTHENTICATION_FAILED", "HOST_IS_SLAVE", "SESSION_INVALID"):
        return "login", details
    if code in ("XENAPI_PLUGIN_FAILURE", "UNKNOWN_XENAPI_PLUGIN_FUNCTION"):
        return "plugin_failure", details
    return "other", details


def main():
    wanted = json.loads(sys.stdin.read())
    result = {"ok": False, "client": "", "required": ""}
    try:
        name, cls, required, xenapi = client()
    except ImportError as error:
        result.update(kind="other", error=["nova's XenAPI client library does not import: %s" % error])
        return result
    result.update(client=name, required=required)
    try:
        open_session(name, cls, wanted)
        result.update(ok=True)
    except xenapi.Failure as failure:
        kind, details = classify(failure.details)
        result.update(kind=kind, error=details)
    except TypeError as error:
        # os-xenapi 0.3.4 from Python 3: pickle.loads() of the plugin's text answer.
        kind = "client_python3" if "bytes-like" in str(error) else "other"
        result.update(kind=kind, error=["TypeError: %s" % error])
    except ProtocolError as error:
        # os-xenapi 0.3.4 from Python 3 sends its pickle as <base64>, which xapi answers with HTTP 500.
        kind = "client_python3" if sys.version_info[0] >= 3 and error.errcode == 500 else "other"
        result.update(kind=kind, error=["HTTP %s %s from %s" % (error.errcode, error.errmsg, wanted["url"])])
    except (IOError, OSError) as error:
        result.update(kind="unreachable", error=["%s: %s" % (type(error).__name__, error)])
    except Exception as error:  # anything else nova's client raises; the role shows it as is
        result.update(kind="other", error=["%s: %s" % (type(error).__name__, error)])
    return result


print(json.dumps(main()))
