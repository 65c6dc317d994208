# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the collection knows of XenServer platforms, without XenAPI: versions, and the fix for a missing HIMN VIF.

Shared by the modules (through _xenapi) and by the controller-side checks (plugin_utils/_preflight.py), which must not
import XenAPI, ssl and http.client for it: they run in every task process that uses the collection's filters.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# XenServer 7.1 (API 2.6, platform 2.2.0) introduced pool_update; older hosts know only pool_patch.
POOL_UPDATE_API = (2, 6)
POOL_UPDATE_PLATFORM = (2, 2, 0)


def version_tuple(text):
    """Return C('2.2.0') as (2, 2, 0); parts that are not numbers count as 0 (C('8.2.1-beta') is (8, 2, 1))."""
    parts = []
    for part in str(text).strip().split("."):
        match = re.match(r"\d+", part)
        parts.append(int(match.group(0)) if match else 0)
    return tuple(parts)


def missing_himn_vif_message(vm_name):
    """The fix for a compute VM without its HIMN VIF (None: this VM, its name unknown)."""
    fix = (
        "In Dom0, add one: xe vif-create vm-uuid=<vm> network-uuid=$(xe network-list bridge=xenapi --minimal) "
        "device=9, then xe vm-param-set uuid=<vm> xenstore-data:vm-data/himn_mac=<its MAC> and restart the VM "
        "(or use the XenCenter HIMN tool)."
    )
    if vm_name is None:
        return "This VM may have no VIF on the Host Internal Management Network. %s" % fix
    return "VM %s has no VIF on the Host Internal Management Network. %s" % (vm_name, fix)
