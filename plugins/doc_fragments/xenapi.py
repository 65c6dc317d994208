# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Connection options shared by every module that talks to XAPI."""

    DOCUMENTATION = r"""
options:
  url:
    description:
      - URL of the XAPI endpoint (C(http://) or C(https://)), or a bare host name or address.
      - A bare name means C(https://NAME), except the HIMN address C(169.254.0.1), which means C(http://169.254.0.1).
      - The default is Dom0 as seen from a compute VM over the Host Internal Management Network (HIMN).
      - If not set, the value of the E(XENSERVER_URL) or E(XENSERVER_HOST) environment variable is used.
    type: str
    default: http://169.254.0.1
    aliases: [hostname, host]
  username:
    description:
      - User name for the XAPI login.
      - If not set, the value of the E(XENSERVER_USER) environment variable is used.
    type: str
    default: root
    aliases: [user]
  password:
    description:
      - Password for the XAPI login. It is never printed or returned.
      - If not set, the value of the E(XENSERVER_PASSWORD) environment variable is used.
    type: str
    aliases: [pass, pwd]
  validate_certs:
    description:
      - Whether to verify the TLS certificate of an C(https://) endpoint.
      - Set to V(false) only for a host that still has its self-signed certificate.
      - If not set, the value of the E(XENSERVER_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for XAPI to accept a connection or answer a call. When they are over, the module fails
        naming the call and this option.
    type: int
    default: 30
notes:
  - When O(url) names a pool member, the module follows the C(HOST_IS_SLAVE) answer and talks to the pool master,
    always over C(https://) with O(validate_certs), as the master's address is its management address, where a
    login over plain http would carry the password in clear. A master it cannot reach that way is a failure that
    names the C(https://) URL to give as O(url).
  - Every module run logs in once and logs out when it ends, also when it fails.
requirements:
  - XenAPI (the Python package from PyPI) on the host that runs the module
"""

    # The modules that call the collection's Dom0 plugin.
    DOM0_PLUGIN = r"""
options:
  plugin_timeout:
    description:
      - Seconds the call of the collection's Dom0 plugin may take (xapi starts a Python in Dom0 for it, and it may
        restart a service there). O(timeout) is the limit of every other XAPI call.
      - When they are over, the module fails naming the call and this option; Dom0 may still finish the call.
    type: int
    default: 120
  plugin_pending:
    description:
      - Set it in check mode when an earlier task of the same run would install the Dom0 plugin (the
        xenserver.openstack.dom0_suppack role only predicts the install in check mode).
      - In check mode, when the plugin is not installed yet or lacks the function called, the module then reports the
        change it would make from its options, marks it RV(predicted), and names in RV(not_checked) what the plugin
        would have checked in Dom0, instead of failing.
      - Outside check mode, or when the plugin answers, it changes nothing.
    type: bool
    default: false
"""

    # The modules that change Dom0 and can predict their change without XAPI (check mode on a fresh compute VM).
    XAPI_PENDING = r"""
options:
  xapi_pending:
    description:
      - Set it in check mode when XAPI cannot be reached from this machine before an earlier task of the same run
        (on a fresh compute VM, the HIMN bootstrap of the xenserver.openstack.himn_network role gives the HIMN
        interface its address, or installs the XenAPI library, only in a real run).
      - In check mode the module then neither imports XenAPI nor connects; it reports the change it would make from
        its options, marks it RV(predicted), and names in RV(not_checked) everything it would have read through XAPI.
      - Outside check mode it changes nothing.
    type: bool
    default: false
"""
