# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""http.client and xmlrpc.client under their Python 2.7 and 3 names, for the code that talks to XAPI.

Apart from _compat because these two imports cost more than the rest of it together (about 10 ms on each module run,
and on each controller process that loads the collection's filters, which never talk HTTP).

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["http_client", "xmlrpc_client"]

# Each import below exists on one side only; "novermin" tells the version check (vermin) so.
try:
    import http.client as http_client  # novermin
    import xmlrpc.client as xmlrpc_client  # novermin
except ImportError:  # Python 2.7
    import httplib as http_client  # novermin
    import xmlrpclib as xmlrpc_client  # novermin
