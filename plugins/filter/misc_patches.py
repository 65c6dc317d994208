# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters of the misc_patches role: the preflight verdict and the patch bookkeeping, from data.

The checks are pure functions of what xen_host_info read and of the inventory, so they run on the controller
and can report every problem of a host at once, also when XAPI could not be read. See
plugins/plugin_utils/_preflight.py and _patches.py for the logic; the documentation of each filter is in the .yml
file of the same name.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.xenserver.openstack.plugins.plugin_utils import _patches, _preflight


def preflight_problems(host_info, **options):
    """Return every problem of the inventory choices and of the host (a list of C({check, message})).

    The options are those of plugin_utils._preflight.preflight_problems (options, password_given, platforms,
    hotfix_table, sr_types, check_himn).
    """
    for key in ("platforms", "hotfix_table"):
        options[key] = options.get(key) or []
    try:
        return _preflight.preflight_problems(host_info or {}, **options)
    except (KeyError, TypeError, AttributeError) as error:
        raise AnsibleFilterError(
            "preflight_problems: malformed input (misc_patches_supported_platforms, misc_patches_required_hotfixes "
            "or the xen_host_info result): %s" % error
        ) from error


def input_problems(values, role, argument_specs, **context):
    """Return every problem of a role's variables (types, choices, required settings, interfaces) at once.

    See plugin_utils._preflight.input_problems; the context keys are interfaces, networks, host, host_info, hosts.
    """
    if not isinstance(values, dict):
        raise AnsibleFilterError("input_problems: the values must be a mapping of variable names, not %s" % values)
    return _preflight.input_problems(values, role, argument_specs or {}, context)


def patch_plan(patch_sets, release, extra_patches=(), site_dir=""):
    """Return the enabled patches of a release's set plus the extra ones, with absolute target directories."""
    try:
        return _patches.patch_plan(patch_sets, release, extra_patches, site_dir)
    except _patches.PatchDataError as error:
        raise AnsibleFilterError(str(error)) from error


def patch_actions(plan, dry_runs, records):
    """Return the plan entries with the action their dry run calls for (apply, keep, distribution, conflict)."""
    try:
        return _patches.patch_actions(plan, list(dry_runs), list(records))
    except _patches.PatchDataError as error:
        raise AnsibleFilterError(str(error)) from error


def patch_conflicts(actions, state="present"):
    """Return one message per patch that neither applies (or reverts) nor is so already."""
    return _patches.conflict_messages(actions, state)


def patch_index(previous, actions, release=""):
    """Return the record of the patches on the node after this run."""
    return _patches.patch_index(previous, actions, release)


def patch_revert_plan(index, names=None):
    """Return the recorded patches this role applied, as plan entries for reverting them."""
    return _patches.revert_plan(index, names)


def patch_restart_services(results):
    """Return the services of the patches whose task changed something, each once."""
    return _patches.services_to_restart(results)


class FilterModule:
    """Filters of the misc_patches role."""

    def filters(self):
        return dict(
            preflight_problems=preflight_problems,
            input_problems=input_problems,
            patch_plan=patch_plan,
            patch_actions=patch_actions,
            patch_conflicts=patch_conflicts,
            patch_index=patch_index,
            patch_revert_plan=patch_revert_plan,
            patch_restart_services=patch_restart_services,
        )
