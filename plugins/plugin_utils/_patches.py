# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The code-patch bookkeeping of the misc_patches role, as pure functions of data.

Controller-only and private to the collection: other collections must not import it. The role's filter plugin
(plugins/filter/misc_patches.py) exposes these functions to Jinja.

A patch set is data (name, file, target directory, strip level, services). Which patches to apply is decided from
GNU patch dry runs (reverse dry run succeeds: already there; forward dry run succeeds: would apply; neither:
conflict), and the patches this role applied are recorded in an index so that ``state: absent`` reverts those, and
only those.
"""

import posixpath
import re

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import STRING_TYPES

PATCH_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class PatchDataError(ValueError):
    """The patch data is malformed; the message lists every problem."""


def _check_patch(entry, where, site_dir, errors):
    """Return a patch entry normalised to C({name, file, basedir, strip, services, enabled}), adding to C(errors)."""
    unknown = sorted(set(entry) - {"name", "file", "dir", "strip", "services", "enabled", "description"})
    if unknown:
        errors.append("%s: unknown keys %s" % (where, ", ".join(unknown)))
    name = str(entry.get("name", ""))
    if not PATCH_NAME_RE.match(name):
        errors.append("%s: name must be letters, digits, '.', '_' or '-' (it names the record file)" % where)
    if not entry.get("file"):
        errors.append("%s: file is missing" % where)
    strip = entry.get("strip", 1)
    if isinstance(strip, bool) or not str(strip).isdigit():
        errors.append("%s: strip must be a whole number, not %r" % (where, strip))
        strip = 0
    services = entry.get("services", [])
    if not isinstance(services, list) or not all(isinstance(s, STRING_TYPES) and s for s in services):
        errors.append("%s: services must be a list of service names" % where)
        services = []
    try:
        enabled = boolean(entry.get("enabled", True), strict=True)
    except TypeError:
        errors.append("%s: enabled must be true or false" % where)
        enabled = False
    directory = str(entry.get("dir") or "")
    if not posixpath.isabs(directory):
        if not site_dir:
            errors.append("%s: dir %r is relative, and the site directory is unknown" % (where, directory))
        directory = posixpath.normpath(posixpath.join(str(site_dir), directory))
    return dict(
        name=name,
        file=str(entry.get("file", "")),
        basedir=directory,
        strip=int(strip),
        services=services,
        enabled=enabled,
    )


def patch_plan(patch_sets, release, extra_patches=(), site_dir=""):
    """Return the patches to manage on a node: the release's set, then the extra patches, normalised.

    Args:
        patch_sets: dict release -> list of C({name, file, dir, strip, services, enabled, description}).
        release: the OpenStack release of the node (a key of C(patch_sets); no key means no patches).
        extra_patches: more entries, applied after the set.
        site_dir: the directory a relative C(dir) is taken in (where the Python packages live).

    Returns:
        list: entries C({name, file, basedir, strip, services}) of the enabled patches, in order.

    Raises:
        PatchDataError: listing every malformed entry.
    """
    entries = list((patch_sets or {}).get(release) or []) + list(extra_patches or [])
    plan, errors, seen = [], [], set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.append("patch %d: expected a mapping with name, file, dir, strip, services" % (index + 1))
            continue
        where = "patch %d (%s)" % (index + 1, entry.get("name", "no name"))
        patch = _check_patch(entry, where, site_dir, errors)
        if patch["name"] in seen:
            errors.append("%s: the name %s is used twice" % (where, patch["name"]))
        seen.add(patch["name"])
        if patch.pop("enabled"):
            plan.append(patch)
    if errors:
        raise PatchDataError("The patch data has problems: " + "; ".join(errors))
    return plan


def patch_actions(plan, dry_runs, records):
    """Decide what to do with each patch from its dry run and the record of what this role applied.

    Args:
        plan: the output of patch_plan.
        dry_runs: the results of ansible.posix.patch run in check mode with C(failed_when: false), one per plan
            entry, in order: C(changed) means the patch would apply; unchanged means it is already there
            (its reverse dry run succeeded); a C(msg) means it neither applies nor is there.
        records: the names of the patches this role applied (their record files exist on the node).

    Returns:
        list: the plan entries, each with C(action): C(apply), C(keep) (there, applied by this role),
        C(distribution) (there, not applied by this role) or C(conflict) (with C(error)).
    """
    if len(dry_runs) != len(plan):
        raise PatchDataError("%d dry-run results for %d patches" % (len(dry_runs), len(plan)))
    actions = []
    for entry, result in zip(plan, dry_runs):
        item = dict(entry)
        if result.get("failed") or result.get("msg"):
            item["action"] = "conflict"
            item["error"] = " ".join(str(result.get("msg") or "the dry run failed").split())
        elif result.get("changed"):
            item["action"] = "apply"
        else:
            item["action"] = "keep" if entry["name"] in records else "distribution"
        actions.append(item)
    return actions


def conflict_messages(actions, state="present"):
    """Return one message per patch that can be neither applied (or reverted) nor found so already.

    Args:
        actions: the output of patch_actions.
        state: C(present) when applying, C(absent) when reverting.
    """
    messages = []
    for a in actions:
        if a["action"] != "conflict":
            continue
        where = "Patch %s (%s) in %s with -p%d" % (a["name"], a["file"], a["basedir"], a["strip"])
        if state == "absent":
            messages.append(
                "%s cannot be reverted, and is not reverted already: %s. The patched files changed after this role "
                "applied it (a package upgrade?). Nothing was changed. Fix: reinstall the package to get its "
                "original code, then delete the record (misc_patches_state_dir)." % (where, a.get("error", ""))
            )
        else:
            messages.append(
                "%s does not apply, and is not already there: %s. Nothing was changed. Fix: check that the "
                "installed code is the release the patch set is for (misc_patches_openstack_release), and that an "
                "older version of the patch is not applied (misc_patches_state: absent reverts the recorded copy)."
                % (where, a.get("error", ""))
            )
    return messages


def patch_index(previous, actions, release=""):
    """Return the record of patches on the node after this run.

    Args:
        previous: the index read from the node ({} when there was none).
        actions: the output of patch_actions.
        release: the OpenStack release the patches were chosen for.

    Returns:
        dict: name -> C({origin, file, basedir, strip, services, release}); C(origin) is C(role) for patches
        this role applied (it reverts them with C(state: absent)) and C(distribution) for fixes the installed
        code already had. Entries of earlier runs that are no longer in the plan are kept.
    """
    index = dict(previous or {})
    for action in actions:
        if action["action"] == "conflict":
            continue
        origin = "distribution" if action["action"] == "distribution" else "role"
        index[action["name"]] = dict(
            origin=origin,
            file=action["file"],
            basedir=action["basedir"],
            strip=action["strip"],
            services=list(action["services"]),
            release=release,
        )
    return index


def revert_plan(index, names=None):
    """Return the recorded patches this role applied, newest last, as plan entries (optionally only C(names))."""
    plan = []
    for name in sorted(index or {}):
        entry = index[name]
        if entry.get("origin") != "role" or (names and name not in names):
            continue
        plan.append(
            dict(
                name=name,
                file=entry.get("file", ""),
                basedir=entry["basedir"],
                strip=int(entry.get("strip", 1)),
                services=list(entry.get("services", [])),
            )
        )
    return plan


def services_to_restart(actions_or_results):
    """Return the services of the patches that changed, each once, in first-seen order.

    Args:
        actions_or_results: results of a looped patch task (each with C(changed) and C(item)).
    """
    services = []
    for result in actions_or_results:
        if not result.get("changed"):
            continue
        for service in result.get("item", {}).get("services", []):
            if service not in services:
                services.append(service)
    return services
