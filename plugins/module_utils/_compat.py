# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The standard library names that moved between Python 2.7 and 3, in one place.

The collection's modules run on the compute VMs' Python: 2.7 (nova Mitaka-Train), 3.6 (Ubuntu 18.04, CentOS 8),
3.8 (Ussuri, Ubuntu 20.04) and later. Everything else is written so that it runs on all of them unchanged.
ansible.module_utils.six is not used: ansible-core deprecates it from 2.22 on.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = [
    "OS_ERRORS",
    "STRING_TYPES",
    "if_nametoindex",
    "monotonic",
    "parse_qsl",
    "shlex_join",
    "urlencode",
    "urljoin",
    "urlsplit",
    "urlunsplit",
]

# Each import below exists on one side only; "novermin" tells the version check (vermin) so.
# http.client and xmlrpc.client are in _compat_http: importing them costs more than everything here together, and the
# controller-side checks (plugin_utils) that take names from here never talk HTTP.
try:
    from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit  # novermin
except ImportError:  # Python 2.7
    from urllib import urlencode  # novermin
    from urlparse import parse_qsl, urljoin, urlsplit, urlunsplit  # novermin

try:
    from time import monotonic  # novermin
except ImportError:  # Python 2.7
    from time import time as monotonic

try:
    from shlex import quote  # novermin
except ImportError:  # Python 2.7
    from pipes import quote

try:
    from socket import if_nametoindex  # novermin
except ImportError:  # Python 2.7

    def if_nametoindex(name):
        """The index of a network interface, as socket.if_nametoindex; IOError when there is no such interface."""
        with open("/sys/class/net/%s/ifindex" % name) as handle:
            return int(handle.read())


# str and unicode on Python 2.7 (text from JSON module arguments is unicode there), str on Python 3.
STRING_TYPES = (str, type(u""))  # fmt: skip


def shlex_join(argv):
    """A command line for messages, quoted for a POSIX shell (shlex.join, which Python 3.8 brought)."""
    return " ".join(quote(arg) for arg in argv)


# What an I/O or socket error is: on Python 2.7 IOError (and socket.error, its subclass) is not an OSError.
OS_ERRORS = (IOError, OSError)
