"""Stand-in for Dom0's ``XenAPIPlugin`` module (the simulator puts this directory on a plugin's PYTHONPATH).

Runs under Python 2.7 and 3.6+. xapi runs a plugin with one argument: an XML-RPC methodCall whose method name
is the function and whose params are ``(session ref, args map)``. ``dispatch`` calls ``fn(session, args)`` and
prints a methodResponse: ``{Status: Success, Value: <string>}`` or ``{Status: Failure, ErrorDescription: [...]}``.
"""

import sys

try:
    import xmlrpc.client as xmlrpclib

    string_types = (str,)
except ImportError:  # Python 2
    import xmlrpclib

    string_types = (str, unicode)  # noqa: F821


class Failure(Exception):
    """Raise ``Failure(code, [params])`` in a plugin function to return the XAPI error ``[code] + params``."""

    def __init__(self, code, params=()):
        Exception.__init__(self, code, params)
        self.params = [code] + [str(p) for p in params]


def _respond(struct):
    sys.stdout.write(xmlrpclib.dumps((struct,), methodresponse=True, allow_none=True))


def dispatch(fn_table):
    """Run the function named by the methodCall in ``sys.argv[1]`` and print the methodResponse."""
    params, fn = xmlrpclib.loads(sys.argv[1])
    session, args = params[0], (params[1] if len(params) > 1 else {})
    if fn not in fn_table:
        return _respond({"Status": "Failure", "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", fn]})
    try:
        result = fn_table[fn](session, args)
        if not isinstance(result, string_types):
            raise TypeError("plugin function returned %s, not a string" % type(result).__name__)
        _respond({"Status": "Success", "Value": result})
    except Failure as exc:
        _respond({"Status": "Failure", "ErrorDescription": exc.params})
    except Exception as exc:
        _respond({"Status": "Failure", "ErrorDescription": ["XENAPI_PLUGIN_FAILURE", fn, type(exc).__name__, str(exc)]})
