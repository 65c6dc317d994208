"""Stand-in for the ``XenAPIPlugin`` module of Dom0's site-packages, for Python 2.7 and 3.6+.

It behaves as xen-api's (``scripts/examples/python/XenAPIPlugin.py``, the copy XCP-ng 8.3 installs for Python 2
and 3; the same dispatch since XenServer 5.5, ``python3/examples/XenAPIPlugin.py`` on master):

- ``dispatch(fn_table)`` wants exactly one argument, the methodCall xapi passes; it calls
  ``fn_table[method](session, args)`` where ``session`` is ``XenAPI.xapi_local()`` (Dom0's own XenAPI module, over
  xapi's Unix socket) logged in with the caller's session ref, and ``args`` the struct of strings;
- it prints the methodResponse ``{Status: Success, Value: result}`` with ``print`` (a trailing newline),
  marshalled without ``allow_none`` (a ``None`` result fails as a TypeError, any other value is marshalled as
  what it is and xapi judges it);
- ``Failure(code, params)`` becomes ``{Status: Failure, ErrorDescription: [code] + params}`` (params as given);
  any other exception ``[XENAPI_PLUGIN_FAILURE, method, class name, str(exception)]``, ``SystemExit`` excepted;
  an unknown method ``[UNKNOWN_XENAPI_PLUGIN_FUNCTION, method]``;
- it returns: a plugin that dispatches twice prints two responses (xapi reads the first).
"""

from __future__ import print_function

import sys

import XenAPI

if sys.version_info[0] == 2:
    import xmlrpclib
else:
    import xmlrpc.client as xmlrpclib


class Failure(Exception):
    """Raise ``Failure(code, [param, ...])`` to answer the XAPI error ``[code, param, ...]``."""

    def __init__(self, code, params):
        Exception.__init__(self)
        self.params = [code] + params

    def __str__(self):
        return str(self.params)


def _response(status, key, value):
    return xmlrpclib.dumps(({"Status": status, key: value},), "", True)


def success_message(result):
    return _response("Success", "Value", result)


def failure_message(description):
    return _response("Failure", "ErrorDescription", description)


def dispatch(fn_table):
    if len(sys.argv) != 2:
        raise Exception("Incorrect number of commandline arguments")
    params, method = xmlrpclib.loads(sys.argv[1])
    if method not in fn_table:
        print(failure_message(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", method]))
        return
    session = XenAPI.xapi_local()
    session._session = params[0]
    try:
        print(success_message(fn_table[method](session, params[1])))
    except SystemExit:
        raise
    except Failure as exc:
        print(failure_message(exc.params))
    except Exception as exc:
        print(failure_message(["XENAPI_PLUGIN_FAILURE", method, exc.__class__.__name__, str(exc)]))
