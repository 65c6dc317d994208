# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fail-fast checks and the code-patch bookkeeping of the misc_patches role, as pure functions of data.

Private to the collection: other collections must not import it. The role's filter plugin
(plugins/filter/misc_patches.py) exposes these functions to Jinja; nothing here talks to XAPI or to a node.

Preflight: every check returns a list of problems, each a dict ``{check, message}`` whose message says what is
wrong, on which host, and how to fix it. The caller shows all problems of all checks together.

Patches: a patch set is data (name, file, target directory, strip level, services). Which patches to apply
is decided from GNU patch dry runs (reverse dry run succeeds: already there; forward dry run succeeds: would
apply; neither: conflict), and the patches this role applied are recorded in an index so that
``state: absent`` reverts those, and only those.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath
import re

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import STRING_TYPES
from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import missing_himn_vif_message

# --- OpenStack options -------------------------------------------------------------------------------------

HYPERVISORS = ("xen", "xenserver")
DEFAULT_OPTIONS = dict(hypervisor="xen")
# Choices that cannot go with XenServer computes: key -> why, and what to do instead.
FORBIDDEN_OPTIONS = dict(
    volumes_ceph=(
        "Cinder volumes on Ceph RBD cannot be attached to XenServer guests: XenServer attaches Cinder volumes "
        "over iSCSI only (Dom0 has no RBD client). Set openstack_options.volumes_ceph to false and use a Cinder "
        "backend that exports iSCSI (LVM over iSCSI, for example)."
    ),
    ephemeral_ceph=(
        "Nova ephemeral disks on Ceph RBD are not possible with the XenAPI driver: it keeps instance disks as "
        "VHD files in the host's default SR and has no RBD image backend. Set openstack_options.ephemeral_ceph "
        "to false (the disks go to the default ext or nfs SR)."
    ),
    sahara=(
        "Sahara (data processing) was never validated with XenServer computes (its plugins and images assume "
        "libvirt/KVM guests), and the Fuel XenServer plugin refused it. Set openstack_options.sahara to false."
    ),
    murano=(
        "Murano (application catalog) was never validated with XenServer computes (its images and agent assume "
        "libvirt/KVM guests), and the Fuel XenServer plugin refused it. Set openstack_options.murano to false."
    ),
    mongo=(
        "An external MongoDB (for Ceilometer) was never validated with XenServer computes, and the Fuel "
        "XenServer plugin refused it. Set openstack_options.mongo to false."
    ),
    ironic=(
        "Ironic (bare metal) adds nova-compute services with the ironic driver beside the XenAPI computes; the "
        "combination was never validated and the Fuel XenServer plugin refused it. Set openstack_options.ironic "
        "to false."
    ),
)
# Choices that go with XenServer: accepted so that the one variable can describe the whole environment.
ALLOWED_OPTIONS = ("ceilometer", "images_ceph", "objects_ceph")
HYPERVISOR_REASONS = dict(
    kvm=(
        "libvirt with KVM would run guests inside the compute VM, where there is no hardware virtualisation: "
        "on these nodes nova-compute drives the XenServer host through XenAPI (compute_driver "
        "xenapi.XenAPIDriver)."
    ),
    qemu=(
        "libvirt with QEMU would emulate guests inside the compute VM instead of running them on the XenServer "
        "host: on these nodes nova-compute drives the host through XenAPI (compute_driver xenapi.XenAPIDriver)."
    ),
    vcenter=(
        "the VMware vCenter driver manages a vSphere cluster, not XenServer hosts; this collection configures "
        "XenAPI computes only, and the Fuel XenServer plugin refused vCenter beside them."
    ),
)


def _problem(check, message):
    return dict(check=check, message=message)


def option_problems(options):
    """Check the environment's OpenStack choices (the inventory variable C(openstack_options)).

    Args:
        options: a dict with C(hypervisor) and booleans C(volumes_ceph), C(ephemeral_ceph), C(sahara),
            C(murano), C(mongo), C(ironic) (plus the allowed C(ceilometer), C(images_ceph), C(objects_ceph));
            None or {} means XenServer and nothing else.

    Returns:
        list: problems, one per refused or malformed choice, each with the reason.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return [
            _problem(
                "options",
                "openstack_options is %s, not a mapping: give it as a dict, for example "
                "{hypervisor: xen, volumes_ceph: false}." % type(options).__name__,
            )
        ]
    problems = []
    known = ("hypervisor",) + tuple(FORBIDDEN_OPTIONS) + ALLOWED_OPTIONS
    for key in sorted(options, key=str):
        if key not in known:
            problems.append(
                _problem(
                    "options",
                    "openstack_options has an unknown key '%s' (known: %s): correct its spelling, so that a "
                    "refused choice cannot slip through under another name." % (key, ", ".join(known)),
                )
            )
    hypervisor = options.get("hypervisor", DEFAULT_OPTIONS["hypervisor"])
    name = str(hypervisor).strip().lower()
    if name not in HYPERVISORS:
        reason = HYPERVISOR_REASONS.get(name, "it is not XenServer, the only hypervisor this collection configures.")
        problems.append(
            _problem(
                "options",
                "openstack_options.hypervisor is '%s', refused: %s Set it to xen, or deploy those computes "
                "without this collection." % (hypervisor, reason),
            )
        )
    for key in tuple(FORBIDDEN_OPTIONS) + ALLOWED_OPTIONS:
        if key not in options:
            continue
        try:
            enabled = boolean(options[key], strict=True)
        except TypeError:
            problems.append(
                _problem(
                    "options",
                    "openstack_options.%s is %r, not true or false: set it to one of them." % (key, options[key]),
                )
            )
            continue
        if enabled and key in FORBIDDEN_OPTIONS:
            problems.append(
                _problem("options", "openstack_options.%s is true, refused: %s" % (key, FORBIDDEN_OPTIONS[key]))
            )
    return problems


def password_problems(password_given):
    """Refuse an empty XenServer password (the value itself never reaches this code)."""
    if password_given:
        return []
    return [
        _problem(
            "password",
            "xenserver_password is empty: XAPI, nova-compute ([xenserver] connection_password) and the neutron "
            "agent all log in to the XenServer hosts with it. Set it in the inventory (keep it in a vault); the "
            "checks of the host through XAPI did not run without it.",
        )
    ]


# --- The host, through XAPI (the result of xen_host_info) ----------------------------------------------------


# XenServer 7.1 (platform 2.2.0) replaced hotfixes (pool_patch) with updates (pool_update).
POOL_UPDATE_PLATFORM = (2, 2)


def version_tuple(text):
    """Return C('2.2.0') as (2, 2, 0); parts that are not numbers count as 0."""
    parts = []
    for part in str(text).strip().split("."):
        match = re.match(r"\d+", part)
        parts.append(int(match.group(0)) if match else 0)
    return tuple(parts)


def _matches_platform(platform_version, entry_version):
    """Whether a host's platform version is an entry's version or starts with it (C(3.2) matches C(3.2.1))."""
    host = version_tuple(platform_version)
    wanted = version_tuple(entry_version)
    return host[: len(wanted)] == wanted


def _describe_host(host):
    product = ("%s %s" % (host.get("product_brand", ""), host.get("product_version", ""))).strip() or "unknown product"
    return "%s (platform %s) on host %s" % (product, host.get("platform_version") or "unknown", host.get("name_label"))


def platform_problems(host, platforms):
    """Check that the host runs a supported platform version.

    Args:
        host: the C(host) of xen_host_info.
        platforms: entries C({platform_version, products}); a host matches an entry whose version equals its
            platform version or is a prefix of it.

    Returns:
        list: one problem naming the version found when it is not supported, else none.
    """
    found = host.get("platform_version", "")
    if any(_matches_platform(found, entry["platform_version"]) for entry in platforms):
        return []
    listed = ", ".join("%s (platform %s)" % (e["products"], e["platform_version"]) for e in platforms) or "none"
    oldest = min(platforms, key=lambda e: version_tuple(e["platform_version"])) if platforms else None
    if oldest and version_tuple(found) < version_tuple(oldest["platform_version"]):
        return [
            _problem(
                "platform",
                "%s is older than every supported version; the oldest supported is %s (platform %s). Upgrade the "
                "host to a supported version (%s; see docs/supported-platforms.md)."
                % (_describe_host(host), oldest["products"], oldest["platform_version"], listed),
            )
        ]
    return [
        _problem(
            "platform",
            "%s is not a supported version (supported: %s; see docs/supported-platforms.md). Use a supported "
            "version, or, once you have validated this one, add it to misc_patches_supported_platforms."
            % (_describe_host(host), listed),
        )
    ]


def _required_hotfixes(host, table):
    """Return the hotfix entries C({name, reason, superseded_by}) the table requires for this host's product."""
    required = []
    for entry in table:
        if str(entry.get("product_version", "")) != host.get("product_version"):
            continue
        if entry.get("product_brand") and entry["product_brand"] != host.get("product_brand"):
            continue
        for hotfix in entry.get("hotfixes", []):
            required.append(hotfix if isinstance(hotfix, dict) else dict(name=hotfix))
    return required


def hotfix_problems(host, hotfixes, updates, table):
    """Check that the hotfixes or updates the table requires for the host's product are applied on it.

    Args:
        host: the C(host) of xen_host_info.
        hotfixes: legacy hotfixes (C(pool_patch)) with C(applied) on this host; empty on XenServer 7.1+.
        updates: updates (C(pool_update)) with C(applied) on this host; empty before XenServer 7.1.
        table: entries C({product_version, product_brand (optional), hotfixes: [name or {name, reason,
            superseded_by}]}).

    Returns:
        list: one problem per missing hotfix, naming it, with the commands that apply it.
    """
    legacy = version_tuple(host.get("platform_version", "0")) < POOL_UPDATE_PLATFORM
    known = {}
    for record in list(hotfixes) + list(updates):
        known.setdefault(record["name_label"], []).append(record)
    where = "host %s (%s %s)" % (host.get("name_label"), host.get("product_brand"), host.get("product_version"))
    problems = []
    for hotfix in _required_hotfixes(host, table):
        name = hotfix["name"]
        if any(r["applied"] for n in [name] + list(hotfix.get("superseded_by", [])) for r in known.get(n, [])):
            continue
        why = " It is needed because %s." % hotfix["reason"].rstrip(".") if hotfix.get("reason") else ""
        if known.get(name):
            verb = "patch-apply" if legacy else "update-apply"
            message = (
                "Hotfix %s is uploaded to the pool but not applied on %s.%s Fix: in Dom0, run "
                "'xe %s uuid=%s host-uuid=%s' and follow the hotfix's after-apply guidance."
                % (name, where, why, verb, known[name][0]["uuid"], host.get("uuid"))
            )
        else:
            upload = "patch-upload file-name=%s.xsupdate" if legacy else "update-upload file-name=%s.iso"
            message = (
                "Hotfix %s is not applied on %s.%s Fix: download %s from the vendor's support site, then in Dom0 "
                "run 'xe %s' and 'xe %s uuid=<the UUID it prints> host-uuid=%s' (or install it with XenCenter), "
                "and follow its after-apply guidance."
                % (
                    name,
                    where,
                    why,
                    name,
                    upload % name,
                    "patch-apply" if legacy else "update-apply",
                    host.get("uuid"),
                )
            )
        problems.append(_problem("hotfix", message))
    return problems


def sr_problems(host, default_sr, sr_types):
    """Check that the pool's default SR is file-based (its type is one of C(sr_types))."""
    fix = (
        "make a file-based SR the pool's default (in Dom0: 'xe pool-param-set uuid=$(xe pool-list --minimal) "
        "default-SR=<UUID of an ext or nfs SR>'), or reinstall the host with thin provisioning so that its local "
        "storage is ext."
    )
    if not default_sr:
        return [
            _problem("default_sr", "The pool of host %s has no default SR. Fix: %s" % (host.get("name_label"), fix))
        ]
    if default_sr.get("type") in sr_types:
        return []
    return [
        _problem(
            "default_sr",
            "The default SR '%s' (%s) of the pool of host %s is of type %s; nova's XenAPI driver needs a "
            "file-based default SR (type %s): its Dom0 plugins keep images and instance disks as VHD files there. "
            "Fix: %s"
            % (
                default_sr.get("name_label"),
                default_sr.get("uuid"),
                host.get("name_label"),
                default_sr.get("type"),
                " or ".join(sr_types),
                fix,
            ),
        )
    ]


def himn_problems(host, vm):
    """Check that the compute VM has a plugged VIF on the Host Internal Management Network."""
    if not vm:
        return [
            _problem(
                "himn",
                "The compute VM is unknown: this node is not a Xen guest (no /sys/hypervisor/uuid) and no VM UUID was "
                "given, so its HIMN VIF cannot be checked. Run the checks on the compute VM, or set "
                "xenserver_vm_uuid (misc_patches_vm_uuid) to its UUID.",
            )
        ]
    himn = [vif for vif in vm.get("vifs", []) if vif.get("himn")]
    if not himn:
        return [
            _problem(
                "himn",
                "%s The VM's UUID is %s; it runs on host %s."
                % (missing_himn_vif_message(vm.get("name_label")), vm.get("uuid"), host.get("name_label")),
            )
        ]
    if not any(vif.get("attached") for vif in himn):
        vif = himn[0]
        return [
            _problem(
                "himn",
                "VM %s has a VIF on the Host Internal Management Network (device %s, MAC %s) but it is not plugged. "
                "Fix: in Dom0, run 'xe vif-plug uuid=%s' (the VM needs its PV drivers), or restart the VM."
                % (vm.get("name_label"), vif.get("device"), vif.get("mac"), vif.get("uuid")),
            )
        ]
    return []


def host_problems(host_info, platforms, hotfix_table, sr_types, check_himn=True):
    """Run every check of the host on the result of xen_host_info.

    Args:
        host_info: the registered result of xenserver.openstack.xen_host_info; when the module failed (its
            result has no C(host)), its message becomes the one problem.
        platforms: the supported platform table.
        hotfix_table: the required hotfix table.
        sr_types: the accepted default SR types.
        check_himn: whether to check the compute VM's HIMN VIF.

    Returns:
        list: all problems found.
    """
    if not host_info or host_info.get("skipped"):
        return []
    if "host" not in host_info:
        return [
            _problem(
                "xapi",
                "The XenServer host could not be read through XAPI, so its platform, hotfixes, default SR and HIMN "
                "were not checked: %s" % host_info.get("msg", "no answer"),
            )
        ]
    host = host_info["host"]
    problems = platform_problems(host, platforms)
    problems += hotfix_problems(host, host_info.get("hotfixes", []), host_info.get("updates", []), hotfix_table)
    problems += sr_problems(host, host_info.get("default_sr", {}), sr_types)
    if check_himn:
        problems += himn_problems(host, host_info.get("vm", {}))
    return problems


def preflight_problems(
    host_info,
    options=None,
    password_given=True,
    platforms=(),
    hotfix_table=(),
    sr_types=("ext", "nfs"),
    check_himn=True,
):
    """Return every problem of the inventory choices and of the host, in the order they are shown."""
    problems = password_problems(password_given)
    problems += option_problems(options)
    problems += host_problems(host_info, list(platforms), list(hotfix_table), list(sr_types), check_himn)
    return problems


# --- Patches -----------------------------------------------------------------------------------------------

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
