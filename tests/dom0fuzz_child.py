"""The fuzz's runner of Dom0 plugin calls, under Dom0's Python (2.7 or 3.6), inside the fuzz's network namespace.

Usage: ``python dom0fuzz_child.py PLUGIN``. It loads the plugin once (XENSERVER_OPENSTACK_ROOT points at the fuzz's
scratch root), then reads one JSON request per line, ``{"function": NAME, "args": {...}}``, calls the function as
xapi's dispatch does (``FUNCTIONS[NAME](session, args)``, args as xmlrpclib gives them) and writes one JSON line:
``{"outcome": "done", "value": ...}``, ``{"outcome": "refused", "message": ...}`` (a PluginError) or
``{"outcome": "crash", "traceback": ...}`` (any other exception: what xapi would show as a traceback).
"""

import json
import sys
import traceback

try:
    from importlib.machinery import SourceFileLoader

    PLUGIN = SourceFileLoader("xenserver_openstack", sys.argv[1]).load_module()
except ImportError:  # Python 2
    import imp

    PLUGIN = imp.load_source("xenserver_openstack", sys.argv[1])


def as_xmlrpclib_gives(value):
    """Python 2's xmlrpclib gives ASCII strings as str and others as unicode."""
    if str is bytes and not isinstance(value, str):
        try:
            return value.encode("ascii")
        except UnicodeError:
            return value
    return value


def call(request):
    args = dict((as_xmlrpclib_gives(k), as_xmlrpclib_gives(v)) for k, v in request["args"].items())
    try:
        value = PLUGIN.FUNCTIONS[request["function"]]("OpaqueRef:fuzz", args)
        if not isinstance(value, str):
            raise TypeError("the function returned %s, not str" % type(value).__name__)
        answer = json.loads(value)
        if not isinstance(answer, dict):
            raise TypeError("the function returned JSON that is not an object")
        return {"outcome": "done", "value": answer}
    except PLUGIN.PluginError as error:
        refusal = error
    except Exception:
        return {"outcome": "crash", "traceback": traceback.format_exc()}
    try:
        message = str(refusal)  # what xapi's dispatch does with it, which must not fail
        message.encode("ascii")
    except UnicodeError:
        return {"outcome": "crash", "traceback": "the refusal's message is not ASCII text:\n" + traceback.format_exc()}
    return {"outcome": "refused", "message": message}


for line in iter(sys.stdin.readline, ""):
    sys.stdout.write(json.dumps(call(json.loads(line))) + "\n")
    sys.stdout.flush()
