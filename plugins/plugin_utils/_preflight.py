# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fail-fast checks of site.yml (the preflight and the operator's inputs), as pure functions of data.

Controller-only and private to the collection: other collections must not import it. The misc_patches role's
filter plugin (plugins/filter/misc_patches.py) exposes these functions to Jinja; nothing here talks to XAPI or
to a node. Every check returns a list of problems, each a dict ``{check, message}`` whose message says what is
wrong, on which host, and how to fix it. The caller shows all problems of all checks together.
"""

import difflib

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import STRING_TYPES
from ansible_collections.xenserver.openstack.plugins.module_utils._ipv4 import IPv4Network
from ansible_collections.xenserver.openstack.plugins.module_utils._platform import (
    POOL_UPDATE_PLATFORM,
    missing_himn_vif_message,
    version_tuple,
)

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


PASSWORD_FIX = (
    "Set xenserver_password in the inventory (keep it in a vault), or export XENSERVER_PASSWORD on the controller "
    "before running ansible-playbook."
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
    known = ("hypervisor", *tuple(FORBIDDEN_OPTIONS), *ALLOWED_OPTIONS)
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
            "xenserver_password is empty (and XENSERVER_PASSWORD is not in the controller's environment): XAPI, "
            "nova-compute ([xenserver] connection_password) and the neutron agent all log in to the XenServer hosts "
            "with it; the checks of the host through XAPI did not run without it. " + PASSWORD_FIX,
        )
    ]


# --- The host, through XAPI (the result of xen_host_info) ----------------------------------------------------


def _matches_platform(platform_version, entry_version):
    """Whether a host's platform version is an entry's version or starts with it (C(3.2) matches C(3.2.1))."""
    host = version_tuple(platform_version)
    wanted = version_tuple(entry_version)
    return host[: len(wanted)] == wanted


def _describe_host(host):
    product = ("%s %s" % (host.get("product_brand", ""), host.get("product_version", ""))).strip() or "unknown product"
    return "%s (platform %s) on host %s" % (product, host.get("platform_version") or "unknown", host.get("name_label"))


def _platform_entry(found, table):
    """The entry of a table whose platform version the host's equals or starts with, or None."""
    return next((entry for entry in table if _matches_platform(found, entry["platform_version"])), None)


def platform_problems(host, platforms, refused=()):
    """Check that the host runs a supported platform version.

    Args:
        host: the C(host) of xen_host_info.
        platforms: entries C({platform_version, products}); a host matches an entry whose version equals its
            platform version or is a prefix of it.
        refused: entries C({platform_version, products, reason}) of platforms refused for a known reason (the
            reason is shown); a supported entry wins over a refused one.

    Returns:
        list: one problem naming the version found when it is not supported, else none.
    """
    found = host.get("platform_version", "")
    if _platform_entry(found, platforms):
        return []
    listed = ", ".join("%s (platform %s)" % (e["products"], e["platform_version"]) for e in platforms) or "none"
    known = _platform_entry(found, refused)
    if known:
        return [
            _problem(
                "platform",
                "%s is refused: %s Upgrade the host to a supported version (%s; see docs/supported-platforms.md)."
                % (_describe_host(host), known["reason"].strip().rstrip(".") + ".", listed),
            )
        ]
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
        if any(r["applied"] for n in [name, *list(hotfix.get("superseded_by", []))] for r in known.get(n, [])):
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


def host_problems(host_info, platforms, hotfix_table, sr_types, *, check_himn=True, refused_platforms=()):
    """Run every check of the host on the result of xen_host_info.

    Args:
        host_info: the registered result of xenserver.openstack.xen_host_info; when the module failed (its
            result has no C(host)), its message becomes the one problem.
        platforms: the supported platform table.
        hotfix_table: the required hotfix table.
        sr_types: the accepted default SR types.
        check_himn: whether to check the compute VM's HIMN VIF.
        refused_platforms: platforms refused with a reason (see platform_problems).

    Returns:
        list: all problems found. A host whose platform is refused gets no hotfix problems (an upgrade makes them
        moot).
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
    problems = platform_problems(host, platforms, refused_platforms)
    if not problems:
        problems += hotfix_problems(host, host_info.get("hotfixes", []), host_info.get("updates", []), hotfix_table)
    problems += sr_problems(host, host_info.get("default_sr", {}), sr_types)
    if check_himn:
        problems += himn_problems(host, host_info.get("vm", {}))
    return problems


def preflight_problems(
    host_info,
    *,
    options=None,
    password_given=True,
    platforms=(),
    hotfix_table=(),
    sr_types=("ext", "nfs"),
    check_himn=True,
    refused_platforms=(),
    problems=(),
):
    """Return every problem of the inventory choices and of the host, in the order they are shown.

    C(problems) are those other checks found already (the other roles' inputs, see input_problems); they come
    first, and a password problem among them replaces this check's own.
    """
    found = list(problems)
    if not any(p["check"] == "password" for p in found):
        found += password_problems(password_given)
    found += option_problems(options)
    found += host_problems(
        host_info,
        list(platforms),
        list(hotfix_table),
        list(sr_types),
        check_himn=check_himn,
        refused_platforms=list(refused_platforms),
    )
    return found


# --- Operator inputs: every role's variables, checked before anything changes ----------------------------------

# Role variables whose default is taken from an inventory-level variable (see each role's defaults/main.yml): a
# message names both, since the operator set the one or the other. tests/unit/test_inputs.py checks this table
# against the roles' defaults.
INVENTORY_NAMES = dict(
    nova_xenapi_connection_url="xenserver_url",
    nova_xenapi_connection_username="xenserver_username",
    nova_xenapi_connection_password="xenserver_password",
    nova_xenapi_validate_certs="xenserver_validate_certs",
    nova_xenapi_vm_uuid="xenserver_vm_uuid",
    nova_xenapi_public_vip="openstack_public_vip",
    nova_xenapi_public_ssl="openstack_public_ssl",
    nova_xenapi_mgmt_interface="openstack_management_interface",
    nova_xenapi_neutron_network_type="openstack_segmentation_type",
    nova_xenapi_neutron_physnet="openstack_tenant_physnet",
    nova_xenapi_neutron_physnet_interface="openstack_tenant_nic",
    nova_xenapi_ceilometer_enabled="openstack_options.ceilometer",
    himn_network_vm_uuid="xenserver_vm_uuid",
    himn_network_port_forwards="openstack_management_interface",
    dom0_suppack_vm_uuid="xenserver_vm_uuid",
    misc_patches_vm_uuid="xenserver_vm_uuid",
)


def spec_options(argument_specs):
    """The options of every entry point of a role's meta/argument_specs.yml (its parsed content), by name."""
    options = {}
    for entry in (argument_specs or {}).get("argument_specs", {}).values():
        for name, option in (entry.get("options") or {}).items():
            options.setdefault(name, option)
    return options


def _shown(name):
    inventory = INVENTORY_NAMES.get(name)
    return "%s (default from %s)" % (name, inventory) if inventory else name


def _text(value):
    if isinstance(value, STRING_TYPES):
        return "'%s'" % value
    return "%r (a %s)" % (value, type(value).__name__)


def _is_bool(value):
    try:
        boolean(value, strict=True)
    except TypeError:
        return False
    return True


def _as_bool(value, default=False):
    try:
        return boolean(value, strict=True)
    except TypeError:
        return default


def type_problem(name, value, option):  # noqa: PLR0911 (one answer per type)
    """The message for a value that is not of its option's type or not among its choices, or None."""
    kind = option.get("type", "str")
    shown = _shown(name)
    if option.get("no_log"):
        if value is not None and not isinstance(value, STRING_TYPES):
            return "%s is not a string: give it as one (its value is not shown)." % shown
        return None
    if kind == "bool":
        if _is_bool(value):
            return None
        return "%s is %s, not true or false: set it to true or false (in the inventory, or -e %s=true)." % (
            shown,
            _text(value),
            name,
        )
    if kind == "int":
        try:
            if not isinstance(value, bool):
                int(str(value).strip())
                return None
        except ValueError:
            pass
        return "%s is %s, not a whole number: set it to one." % (shown, _text(value))
    if kind == "list" and not isinstance(value, list):
        return (
            "%s is %s, not a list: give a YAML list in the inventory, or JSON on the command line "
            "(-e '{\"%s\": [...]}')." % (shown, _text(value), name)
        )
    if kind == "dict" and not isinstance(value, dict):
        return (
            "%s is %s, not a mapping: give a YAML mapping in the inventory, or JSON on the command line "
            "(-e '{\"%s\": {...}}')." % (shown, _text(value), name)
        )
    if kind in ("str", "path") and isinstance(value, (list, dict)):
        return "%s is a %s, not a string: give it as one." % (shown, type(value).__name__)
    if option.get("choices") and str(value) not in [str(c) for c in option["choices"]]:
        return "%s is %s; it must be one of: %s." % (shown, _text(value), ", ".join(map(str, option["choices"])))
    return None


def _interface_problem(name, interface, context, needs_address, what):
    """A problem when ``interface`` is not an interface of the VM (or has no IPv4 address), if they are known."""
    interfaces = context.get("interfaces")
    if interfaces is None or not interface:
        return None
    where = context.get("host") or "this VM"
    if interface not in interfaces:
        return "%s is %s, which is not an interface of %s (it has %s). Set it to %s." % (
            _shown(name),
            _text(interface),
            where,
            ", ".join(sorted(interfaces)) or "none",
            what,
        )
    if needs_address and not (context.get("networks") or {}).get(interface):
        return "%s is %s, which has no IPv4 address on %s. Give it its address first, or set it to %s." % (
            _shown(name),
            _text(interface),
            where,
            what,
        )
    return None


def _nova_xenapi_problems(values, context):
    found = []
    if not values.get("nova_xenapi_connection_password"):
        found.append(
            _problem(
                "password",
                "The XenServer password is not set: %s is empty, and XAPI, nova-compute ([xenserver] "
                "connection_password) and the neutron agent log in to the hosts with it. %s"
                % (_shown("nova_xenapi_connection_password"), PASSWORD_FIX),
            )
        )
    if not str(values.get("nova_xenapi_public_vip") or "").strip():
        found.append(
            "%s is not set: nova-compute's noVNC base URL (http(s)://VIP:6080/vnc_auto.html) is built from the "
            "cloud's public VIP. Set openstack_public_vip in the inventory to the public VIP address or name."
            % _shown("nova_xenapi_public_vip")
        )
    if _as_bool(values.get("nova_xenapi_neutron_enabled"), True):
        network_type = values.get("nova_xenapi_neutron_network_type")
        if network_type == "vlan":
            nic = str(values.get("nova_xenapi_neutron_physnet_interface") or "").strip()
            if not nic:
                found.append(
                    "%s is not set: with VLAN segmentation the neutron agent's bridge_mappings need the compute VM's "
                    "NIC on physnet %s (its VIF names the Dom0 bridge). Set openstack_tenant_nic to that NIC, for "
                    "example eth1."
                    % (_shown("nova_xenapi_neutron_physnet_interface"), values.get("nova_xenapi_neutron_physnet"))
                )
            else:
                found.append(
                    _interface_problem(
                        "nova_xenapi_neutron_physnet_interface", nic, context, False, "the NIC on the VLAN physnet"
                    )
                )
        elif network_type == "tunnel":
            found.append(
                "%s is tunnel: XenAPI computes in this design are VLAN-only, so VXLAN and GRE tenant networks are "
                "refused (their endpoint would be Dom0, whose tunnel address and VXLAN/GRE firewall this collection "
                "does not manage). Use VLAN segmentation: set openstack_segmentation_type to vlan, with "
                "openstack_tenant_physnet and openstack_tenant_nic." % _shown("nova_xenapi_neutron_network_type")
            )
    if not str(values.get("nova_xenapi_vnc_proxyclient_address") or "").strip():
        found.append(
            _interface_problem(
                "nova_xenapi_mgmt_interface",
                values.get("nova_xenapi_mgmt_interface"),
                context,
                True,
                "the management interface (the VNC proxy reaches the consoles at its address)",
            )
        )
    return found


def _himn_network_problems(values, context):
    found = []
    routes = values.get("himn_network_routes") or []
    for index, route in enumerate(routes if isinstance(routes, list) else []):
        try:
            IPv4Network("%s" % route)
        except ValueError as error:
            if "host bits set" in str(error):
                network = IPv4Network("%s" % route, strict=False)
                found.append(
                    "himn_network_routes[%d] '%s' has host bits set: the network is %s. Give the network address."
                    % (index, route, network)
                )
            else:
                found.append(
                    "himn_network_routes[%d] '%s' is not an IPv4 network in CIDR form (%s): give networks such as "
                    "192.168.0.0/24." % (index, route, error)
                )
    interfaces = values.get("himn_network_forward_interfaces") or []
    if not routes and isinstance(interfaces, list):
        for interface in interfaces:
            found.append(
                _interface_problem(
                    "himn_network_forward_interfaces",
                    interface,
                    context,
                    True,
                    "the interfaces whose networks Dom0 must reach, or give the networks in himn_network_routes",
                )
            )
    forwards = values.get("himn_network_port_forwards") or []
    for index, forward in enumerate(forwards if isinstance(forwards, list) else []):
        if isinstance(forward, dict):
            found.append(
                _interface_problem(
                    "himn_network_port_forwards[%d].interface" % index,
                    forward.get("interface"),
                    context,
                    False,
                    "an interface of the VM",
                )
            )
    return found


SIGNING_FIX = (
    "Give the fingerprint of the signing key in dom0_suppack_gpg_key and its keyring in dom0_suppack_gpg_home (in "
    "Fuel: Settings, Compute, 'Pack signing key'), or a signed pack in dom0_suppack_iso; each host's Dom0 must trust "
    "the key (docs/suppack.md)."
)


def _unsigned_problems(unsigned, dom0):
    """Before the host is read (before anything changes): without a Dom0 to reach over SSH, only an update pack can
    be installed, and XAPI applies signed ones only."""
    if unsigned and not dom0:
        return [
            "dom0_suppack_gpg_key is empty and no ready pack is given (dom0_suppack_iso), so the pack would be "
            "unsigned, which XenServer 7.1 and later and XCP-ng refuse (INVALID_UPDATE); only XenServer 7.0 takes "
            "an unsigned pack, in its Dom0 over SSH (dom0_suppack_dom0_host). " + SIGNING_FIX
        ]
    return []


def _dom0_suppack_problems(values, context):
    host = (context.get("host_info") or {}).get("host")
    if not _as_bool(values.get("dom0_suppack_install"), True):
        return []
    unsigned = not values.get("dom0_suppack_iso") and not str(values.get("dom0_suppack_gpg_key") or "").strip()
    dom0 = str(values.get("dom0_suppack_dom0_host") or "")
    if not host:
        return _unsigned_problems(unsigned, dom0)
    platform = version_tuple(host.get("platform_version", "0"))
    if platform < version_tuple(values.get("dom0_suppack_min_platform_version") or "0"):
        return []  # too old for the pack at all: the platform check says so
    legacy = platform < POOL_UPDATE_PLATFORM
    if not legacy and unsigned:
        return [
            "%s runs platform %s, whose XAPI applies signed update packs only (an unsigned one fails with "
            "INVALID_UPDATE), but dom0_suppack_gpg_key is empty, so the pack built for it would be unsigned. %s"
            % (host.get("name_label"), host.get("platform_version"), SIGNING_FIX)
        ]
    return _dom0_host_problems(values, context, host, legacy, dom0)


def _dom0_host_problems(values, context, host, legacy, dom0):
    """A legacy host, or the trust step, needs the host's Dom0 in the inventory (reached over SSH)."""
    if legacy:
        why = (
            "%s runs platform %s, which has no pool_update: the pack is installed with xe-install-supplemental-pack "
            "in Dom0 over SSH" % (host.get("name_label"), host.get("platform_version"))
        )
    elif _as_bool(values.get("dom0_suppack_trust_key")):
        why = "dom0_suppack_trust_key is true: the pack's signing key is imported in Dom0 over SSH"
    else:
        return []
    if dom0 and dom0 in (context.get("hosts") or [dom0]):
        return []
    return [
        "%s, but dom0_suppack_dom0_host %s. Add the host's Dom0 to the inventory (group dom0, user root) and set "
        "dom0_suppack_dom0_host to its name%s."
        % (
            why,
            "names %s, which is not in the inventory" % _text(dom0) if dom0 else "is not set",
            "" if legacy else ", or trust the key by hand (docs/suppack.md) and leave dom0_suppack_trust_key false",
        )
    ]


ROLE_CHECKS = dict(
    nova_xenapi=_nova_xenapi_problems,
    himn_network=_himn_network_problems,
    dom0_suppack=_dom0_suppack_problems,
)


def input_problems(values, role, argument_specs, context=None):
    """Check a role's variables as the play resolved them, before anything changes.

    Args:
        values: {variable: value} of the role's variables (defaults, overridden by the inventory and -e). A name
            with the role's prefix that is no option of the role is a problem (a misspelt variable does nothing).
        role: the role's short name (its own checks: required settings, interfaces, legacy hosts).
        argument_specs: the parsed meta/argument_specs.yml of the role: each value must be of its option's type
            (booleans strictly: true/false/yes/no/on/off/1/0, also as strings from -e) and among its choices.
        context: what the play knows of the node, all optional - C(interfaces) (names), C(networks) ({interface:
            [IPv4 networks]}), C(host) (its name), C(host_info) (the xen_host_info result), C(hosts) (the
            inventory's hosts).

    Returns:
        list: problems C({check, message}), C(check) V(inputs) (or V(password)), each naming the variable and the fix.
    """
    context = context or {}
    options = spec_options(argument_specs)
    found = []
    for name in sorted(values):
        if name in options:
            if values[name] is not None:
                found.append(type_problem(name, values[name], options[name]))
        elif name.startswith(role + "_"):
            close = difflib.get_close_matches(name, list(options), 1)
            found.append(
                "%s is not a variable of the role %s, so it changes nothing: correct its name%s, or remove it."
                % (name, role, " (%s?)" % close[0] if close else "")
            )
    if role in ROLE_CHECKS:
        found += ROLE_CHECKS[role](values, context)
    return [p if isinstance(p, dict) else _problem("inputs", p) for p in found if p]
