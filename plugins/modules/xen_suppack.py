#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: xen_suppack
short_description: Apply the collection's Dom0 supplemental pack (an update ISO) on a XenServer / XCP-ng host
version_added: 0.1.0
description:
  - Makes sure the update pack in O(iso) is applied on the host a compute VM runs on, through XenAPI only
    (XenServer 7.1 and later, Citrix Hypervisor 8, XCP-ng 8.2 and 8.3). The pack carries the Dom0 plugins that
    nova, neutron and this collection call; C(tools/build_pack.py) of the collection builds it.
  - Looks the update up by name and version. When that version is not applied on the host, streams the ISO to
    XAPI (C(PUT /import_raw_vdi), in constant memory whatever the ISO size) into a temporary VDI, introduces
    it (an update that XAPI already knows is reused), prechecks and applies it on the host, and removes the
    temporary VDI (C(pool_update.pool_clean)). If any step after the upload fails, the uploaded VDI is removed
    too and no update record that is applied nowhere is left behind.
  - A newer version than the one applied on the host is applied (an upgrade). An older one is not; the module
    says so in a warning.
  - On legacy hosts (XenServer 6.5 and 7.0, which have no C(pool_update)) the module installs nothing. It
    reports RV(legacy=true) and whether the pack is installed, read from the C(originator:name) keys of
    C(host.software_version). The role C(xenserver.openstack.dom0_suppack) then installs the legacy pack with
    C(xe-install-supplemental-pack) in Dom0 over SSH.
  - Before anything is uploaded, checks that the pool's default SR is of a type in O(default_sr_types), because
    nova's Dom0 plugins keep images in C(/images) on the default SR, which must be file-based.
extends_documentation_fragment:
  - xenserver.openstack.xenapi
  - xenserver.openstack.xenapi.xapi_pending
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - Only reads; uploads nothing.
  diff_mode:
    support: full
options:
  iso:
    description:
      - Path of the pack ISO on the machine that runs the module (the compute VM, when the module runs there).
      - Built by C(tools/build_pack.py); an update ISO for modern hosts, or (C(--format legacy)) a legacy pack,
        whose identity the module then reads on a legacy host.
      - In check mode, when O(name) and O(version) are given, the ISO may be missing (not copied there yet); the
        module then predicts from name and version alone.
    type: path
    required: true
  name:
    description:
      - Name (C(name-label)) of the update.
      - Defaults to the one in the ISO's C(update.xml). When given, it must match the ISO.
    type: str
  version:
    description:
      - Version of the update.
      - Defaults to the one in the ISO's C(update.xml). When given, it must match the ISO.
    type: str
  vm_uuid:
    description:
      - UUID of the compute VM whose host gets the pack.
      - If neither O(vm_uuid) nor O(host_uuid) is set, the UUID in C(/sys/hypervisor/uuid) is used when the
        module runs inside a Xen guest; elsewhere the pool must have exactly one host, which is used.
    type: str
  host_uuid:
    description:
      - UUID of the host that gets the pack, instead of O(vm_uuid).
    type: str
  sr_uuid:
    description:
      - UUID of the SR that takes the temporary VDI of the upload.
      - Defaults to the pool's default SR.
    type: str
  default_sr_types:
    description:
      - SR types the pool's default SR may have. The module fails, naming the type and the fix, when the default
        SR is missing or of another type.
      - Set to an empty list to skip the check (only when no nova Dom0 plugins are in the pack).
    type: list
    elements: str
    default: [ext, nfs]
  wait_timeout:
    description:
      - Seconds the upload of the pack (the whole transfer, O(timeout) being the limit of each network operation),
        the precheck and the apply may take, each. When they are over the module fails naming this option.
      - The upload goes to the pool master over https when O(url) is a member (see O(url)); a redirect of the
        upload to another host is never followed over plain http.
    type: int
    default: 600
notes:
  - XAPI accepts an update ISO only when it is signed by a key that Dom0 trusts. Trusting a key takes a root shell
    in Dom0, once per host; no XenAPI call does it. See the collection's docs/suppack.md, or the role's
    C(dom0_suppack_trust_key).
  - In a pool, run the module for one host at a time (the role uses C(throttle) 1 for the hosts that share a pool,
    by xenserver.openstack.xen_host_info's C(host.pool_uuid)), as the temporary VDI is shared by the hosts of the
    pool while they apply. Hosts of different pools may apply at the same time.
  - The plugins need no reboot or toolstack restart; the module returns what the update's C(after_apply_guidance)
    asks for.
seealso:
  - module: xenserver.openstack.xen_host_info
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Apply the Dom0 plugin pack on the host of this compute VM, over the HIMN
  xenserver.openstack.xen_suppack:
    password: "{{ xenserver_password }}"
    iso: /var/tmp/xenserver-openstack/xenserver-openstack-0.1.0.iso

- name: Apply it from the controller on a given host, uploading to a given SR
  xenserver.openstack.xen_suppack:
    url: https://xcp-ng-01.example.com
    password: "{{ xenserver_password }}"
    iso: "{{ playbook_dir }}/.build/suppack/xenserver-openstack-0.1.0.iso"
    host_uuid: 4a1c9e0e-5a51-4a3c-8d4e-3b6c1f0b2a01
    sr_uuid: 9b2f1c3d-7a4e-4b5f-8c6d-0e1f2a3b4c5d
  register: pack

- name: Restart the toolstack when the update asks for it
  ansible.builtin.debug:
    msg: "Run xe-toolstack-restart in Dom0"
  when: pack.toolstack_restart_required
"""

RETURN = r"""
name:
  description: Name (C(name-label)) of the pack.
  returned: success
  type: str
  sample: xenserver-openstack
version:
  description: Version of the pack in O(iso).
  returned: success
  type: str
  sample: 0.1.0
uuid:
  description: UUID of the update applied on the host after the run (that would be, in check mode); empty on
    legacy hosts.
  returned: success
  type: str
  sample: 619f6f62-ec87-5a6b-a36b-1765164d518c
host:
  description: UUID of the host that gets the pack; empty when predicted with O(xapi_pending).
  returned: success
  type: str
  sample: cb0b80d0-55eb-4154-a747-62a4a2cbccca
previous_version:
  description: Version of the pack applied (installed) on the host before the run; empty when none was.
  returned: success
  type: str
  sample: ""
applied_version:
  description: Version applied (installed) on the host after the run (that would be, in check mode); empty when
    none is.
  returned: success
  type: str
  sample: 0.1.0
installed:
  description: Whether this version of the pack, or a newer one, is applied (installed) on the host after the
    run (in check mode, now).
  returned: success
  type: bool
  sample: true
uploaded:
  description: Whether the ISO was uploaded in this run.
  returned: success
  type: bool
  sample: true
legacy:
  description: Whether the host is a legacy host without C(pool_update) (XenServer 6.5 / 7.0), where the pack
    must be installed with C(xe-install-supplemental-pack) in Dom0.
  returned: success
  type: bool
  sample: false
legacy_key:
  description: The C(host.software_version) key of the legacy pack (C(originator:name)).
  returned: when RV(legacy) is true
  type: str
  sample: xenserver.openstack:xenserver-openstack
precheck:
  description: What C(pool_update.precheck) answered (C(ok), C(ok_livepatch_complete), C(ok_livepatch_incomplete)).
  returned: when the update was applied in this run
  type: str
  sample: ok
after_apply_guidance:
  description: What the update asks for after it is applied (C(restartHost), C(restartXAPI), C(restartHVM),
    C(restartPV)); empty for plugins.
  returned: success
  type: list
  elements: str
  sample: []
reboot_required:
  description: Whether the update applied in this run (that would be, in check mode) asks for a host reboot.
  returned: success
  type: bool
  sample: false
toolstack_restart_required:
  description: Whether the update applied in this run (that would be, in check mode) asks for a toolstack
    restart (C(xe-toolstack-restart) in Dom0).
  returned: success
  type: bool
  sample: false
predicted:
  description: True when the result is a prediction (check mode with O(xapi_pending), XAPI not reachable yet); the
    pack counts as not applied.
  returned: when predicted
  type: bool
  sample: true
not_checked:
  description: What the module would have read through XAPI, which a prediction could not.
  returned: when predicted
  type: list
  elements: str
  sample: ["whether the host has this pack applied already, its platform and the pool's default SR"]
"""

import os
import platform
import time

from ansible_collections.xenserver.openstack.plugins.module_utils._compat import monotonic
from ansible_collections.xenserver.openstack.plugins.module_utils._suppack import (
    KEY_NAME,
    LEGACY_ORIGINATOR,
    PackError,
    UploadError,
    compare_versions,
    explain_update_failure,
    legacy_version,
    read_pack,
    task_result_ref,
    task_result_value,
    upload_raw_vdi,
    version_key,
)
from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import (
    NULL_REF,
    XAPI_PENDING_SPEC,
    XENAPI_ERRORS,
    ModuleError,
    XenAPI,
    XenAPIModule,
    find_vm,
    has_pool_update,
    read_local_vm_uuid,
    resident_host,
)


def _state_line(name, version, host_name, uuid=""):
    if not version:
        return "%s: not applied on %s\n" % (name, host_name)
    return "%s %s: applied on %s%s\n" % (name, version, host_name, " (update %s)" % uuid if uuid else "")


class XenSuppackModule(XenAPIModule):
    argument_spec = dict(
        iso=dict(type="path", required=True),
        name=dict(type="str"),
        version=dict(type="str"),
        vm_uuid=dict(type="str"),
        host_uuid=dict(type="str"),
        sr_uuid=dict(type="str"),
        default_sr_types=dict(type="list", elements="str", default=["ext", "nfs"]),
        wait_timeout=dict(type="int", default=600),
    )
    argument_spec.update(XAPI_PENDING_SPEC)
    module_kwargs = dict(supports_check_mode=True, mutually_exclusive=[("vm_uuid", "host_uuid")])

    # -- options and the ISO ------------------------------------------------------------------------------------
    def check_params(self):
        iso = self.params["iso"]
        try:
            self.pack = read_pack(iso)
        except PackError as error:
            if self._predict_without_iso(iso):
                return
            raise ModuleError(
                "Cannot use the pack ISO on this machine (%s): %s. Build the pack with tools/build_pack.py of the "
                "collection (the role xenserver.openstack.dom0_suppack builds it and copies it here), or set iso to "
                "the path of a pack ISO on the machine that runs this module. Nothing was changed."
                % (platform.node(), error)
            )
        update, legacy = self.pack["update"], self.pack["legacy"]
        self.key = (update or {}).get("key") or KEY_NAME
        self.update_call = ""
        if update:
            self.name, self.version = update["name"], update["version"]
            self.legacy_identity = (LEGACY_ORIGINATOR, update["name"], update["version"])
        else:
            self.name, self.version = legacy["name"], legacy["version"]
        if legacy:
            self.legacy_identity = (legacy["originator"], legacy["name"], legacy["version"])
        for option, found in (("name", self.name), ("version", self.version)):
            wanted = self.params[option]
            if wanted is not None and wanted != found:
                raise ModuleError(
                    "%s '%s' does not match the pack in %s, whose %s is '%s': give the ISO of that %s, or leave %s "
                    "unset." % (option, wanted, iso, option, found, option, option)
                )
        if self.params["wait_timeout"] < 1:
            raise ModuleError("wait_timeout must be at least 1 second.")

    def _predict_without_iso(self, iso):
        """In check mode, with name and version given, a missing ISO (not copied yet) still allows a prediction."""
        name, version = self.params["name"], self.params["version"]
        if not (self.check_mode and name and version and not os.path.exists(iso)):
            return False
        self.ansible.warn(
            "%s does not exist yet: check mode predicts from name %s and version %s." % (iso, name, version)
        )
        update = dict(name=name, version=version, uuid="", key="", after_apply_guidance=[], description="")
        self.pack = dict(update=update, legacy=None, signed=False, size=0)
        self.name, self.version, self.key, self.update_call = name, version, KEY_NAME, ""
        self.legacy_identity = (LEGACY_ORIGINATOR, name, version)
        return True

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self):
        host_ref, host = self._target_host()
        pool = next(iter(self.xapi.pool.get_all_records().values()))
        default_sr = self._check_default_sr(pool)
        result = dict(
            changed=False,
            name=self.name,
            version=self.version,
            uuid="",
            host=host["uuid"],
            legacy=False,
            uploaded=False,
            after_apply_guidance=[],
            reboot_required=False,
            toolstack_restart_required=False,
        )
        if not has_pool_update(host):
            return self._legacy(host, result)
        if self.pack["update"] is None:
            raise ModuleError(
                "%s is a legacy supplemental pack (XS-REPOSITORY, no update.xml), but host %s (platform %s) takes "
                "update ISOs: build one with tools/build_pack.py (without --format legacy)."
                % (self.params["iso"], host["name_label"], host["software_version"].get("platform_version", "?"))
            )
        return self._modern(host_ref, host, default_sr, result)

    def run_pending(self, pending):
        """Check mode before XAPI is reachable (a fresh VM): the pack counts as not applied on a host not read."""
        guidance = (self.pack["update"] or {}).get("after_apply_guidance", [])
        line = "%s %s: applied on the host of this VM\n" % (self.name, self.version)
        result = dict(
            changed=True,
            name=self.name,
            version=self.version,
            uuid=(self.pack["update"] or {}).get("uuid", ""),
            host="",
            legacy=False,
            uploaded=False,
            previous_version="",
            applied_version=self.version,
            installed=False,
            after_apply_guidance=guidance,
            reboot_required="restartHost" in guidance,
            toolstack_restart_required="restartXAPI" in guidance,
            msg="%s %s would be uploaded and applied on the host of this VM." % (self.name, self.version),
            diff=dict(before="", after=line),
        )
        return self.predicted(
            result,
            [
                "whether the host has this pack (or a newer one) applied already, and its platform",
                "the pool's default SR, where the pack is uploaded",
            ],
            pending,
        )

    def _target_host(self):
        if self.params["host_uuid"]:
            found = self.xapi.host.get_all_records_where(
                'field "uuid"="%s"' % self.params["host_uuid"].replace('"', "")
            )
            if not found:
                raise ModuleError(
                    "No host with UUID %s is in the pool behind %s: check host_uuid."
                    % (self.params["host_uuid"], self.url)
                )
            return next(iter(found.items()))
        vm_uuid = self.params["vm_uuid"] or read_local_vm_uuid()
        if vm_uuid:
            _vm_ref, vm = find_vm(self.xapi, vm_uuid, self.url)
            host_ref = resident_host(vm, "it has no host to get the pack: start it, or give host_uuid")
            return host_ref, self.xapi.host.get_record(host_ref)
        hosts = self.xapi.host.get_all_records()
        if len(hosts) != 1:
            raise ModuleError(
                "Cannot tell which host of the pool behind %s gets the pack: set vm_uuid or host_uuid, or run the "
                "module on the compute VM." % self.url
            )
        return next(iter(hosts.items()))

    def _check_default_sr(self, pool):
        types = self.params["default_sr_types"]
        sr_ref = pool["default_SR"]
        if sr_ref in ("", NULL_REF):
            if types:
                raise ModuleError(
                    "The pool behind %s has no default SR. Nova's Dom0 plugins keep images in /images on the default "
                    "SR, which must be file-based (%s): make such an SR the default "
                    "(xe pool-param-set uuid=<pool> default-SR=<sr>) and run again." % (self.url, ", ".join(types))
                )
            return None
        sr = self.xapi.SR.get_record(sr_ref)
        if types and sr["type"] not in types:
            raise ModuleError(
                "The pool's default SR '%s' (%s) is of type %s, but nova's Dom0 plugins need /images on a file-based "
                "default SR (type %s). Make a file-based SR the pool's default: add an NFS SR (xe sr-create "
                "type=nfs ...) or an ext local SR, then xe pool-param-set uuid=<pool> default-SR=<sr>; or set "
                "default_sr_types to the SR types to accept. Nothing was uploaded."
                % (sr["name_label"], sr["uuid"], sr["type"], " or ".join(types))
            )
        return dict(sr, ref=sr_ref)

    def _legacy(self, host, result):
        originator, name, version = self.legacy_identity
        key = "%s:%s" % (originator, name)
        value = host["software_version"].get(key)
        installed_version = legacy_version(value) if value is not None else ""
        installed = bool(installed_version) and compare_versions(installed_version, version) >= 0
        platform_version = host["software_version"].get("platform_version", "?")
        if installed:
            msg = "Legacy host %s (platform %s): pack %s %s is installed." % (
                host["name_label"],
                platform_version,
                key,
                installed_version,
            )
        else:
            msg = (
                "Legacy host %s (platform %s) has no pool_update: install the legacy pack %s %s in Dom0 with "
                "xe-install-supplemental-pack (build it with tools/build_pack.py --format legacy; the role "
                "xenserver.openstack.dom0_suppack does both, over SSH to the dom0 host)."
                % (host["name_label"], platform_version, key, version)
            )
        result.update(
            legacy=True,
            legacy_key=key,
            installed=installed,
            previous_version=installed_version,
            applied_version=installed_version,
            msg=msg,
        )
        return result

    # -- modern hosts: pool_update --------------------------------------------------------------------------------
    def _modern(self, host_ref, host, default_sr, result):
        update = self.pack["update"]
        records = self.xapi.pool_update.get_all_records_where('field "name__label"="%s"' % self.name.replace('"', ""))
        applied = sorted(
            (r for r in records.values() if host_ref in r["hosts"]), key=lambda r: version_key(r["version"])
        )
        current = applied[-1] if applied else None
        previous = current["version"] if current else ""
        result.update(previous_version=previous, after_apply_guidance=update["after_apply_guidance"])
        same = sorted((r for r in applied if r["version"] == self.version), key=lambda r: r["uuid"] != update["uuid"])
        keep = same[0] if same else (current if current and compare_versions(previous, self.version) > 0 else None)
        if keep is not None:
            if keep["version"] != self.version:
                self.ansible.warn(
                    "Host %s has the newer update %s %s applied: %s %s was not applied (no downgrade)."
                    % (host["name_label"], self.name, keep["version"], self.name, self.version)
                )
                msg = "A newer version (%s) is applied on %s; nothing was done." % (keep["version"], host["name_label"])
            else:
                if keep["uuid"] != update["uuid"]:
                    self.ansible.warn(
                        "Host %s has %s %s applied from another build (update %s, not %s): the same version and "
                        "content made with another uuid. Build the pack with the collection's tools/build_pack.py "
                        "without --uuid, which gives a build of other content a higher release."
                        % (host["name_label"], self.name, self.version, keep["uuid"], update["uuid"])
                    )
                msg = "%s %s is already applied on %s." % (self.name, self.version, host["name_label"])
            line = _state_line(self.name, keep["version"], host["name_label"], keep["uuid"])
            result.update(
                uuid=keep["uuid"],
                applied_version=keep["version"],
                installed=True,
                after_apply_guidance=keep["after_apply_guidance"],
                msg=msg,
                diff=dict(before=line, after=line),
            )
            return result
        guidance = update["after_apply_guidance"]
        result.update(
            changed=True,
            diff=dict(
                before=_state_line(self.name, previous, host["name_label"], current["uuid"] if current else ""),
                after=_state_line(self.name, self.version, host["name_label"], update["uuid"]),
            ),
            reboot_required="restartHost" in guidance,
            toolstack_restart_required="restartXAPI" in guidance,
        )
        if self.check_mode:
            result.update(
                uuid=update["uuid"],
                applied_version=self.version,
                installed=bool(current) and compare_versions(previous, self.version) >= 0,
                msg="%s %s would be uploaded and applied on %s%s."
                % (self.name, self.version, host["name_label"], " (upgrade from %s)" % previous if previous else ""),
            )
            return result
        sr_ref = self._upload_sr(default_sr)
        record, precheck = self._install(host_ref, sr_ref)
        guidance = record["after_apply_guidance"]
        result.update(
            uuid=record["uuid"],
            applied_version=record["version"],
            installed=True,
            uploaded=True,
            precheck=precheck,
            after_apply_guidance=guidance,
            reboot_required="restartHost" in guidance,
            toolstack_restart_required="restartXAPI" in guidance,
            msg="%s %s was applied on %s%s."
            % (self.name, self.version, host["name_label"], " (upgrade from %s)" % previous if previous else ""),
        )
        return result

    def _upload_sr(self, default_sr):
        if self.params["sr_uuid"]:
            found = self.xapi.SR.get_all_records_where('field "uuid"="%s"' % self.params["sr_uuid"].replace('"', ""))
            if not found:
                raise ModuleError(
                    "No SR with UUID %s is in the pool behind %s: check sr_uuid." % (self.params["sr_uuid"], self.url)
                )
            return next(iter(found))
        if default_sr is None:
            raise ModuleError(
                "The pool behind %s has no default SR to take the upload: give sr_uuid, or set a default SR "
                "(xe pool-param-set uuid=<pool> default-SR=<sr>)." % self.url
            )
        return default_sr["ref"]

    def _install(self, host_ref, sr_ref):
        """Upload, introduce, precheck, apply, clean; return (update record, precheck answer)."""
        for attempt in (1, 2):
            vdi = self._upload(sr_ref)
            update_ref, ours = self._introduce(vdi)
            try:
                precheck = self._wait_async("precheck", update_ref, host_ref)
                self._wait_async("apply", update_ref, host_ref)
            except XenAPI.Failure as failure:
                if ours:
                    self._discard(update_ref)
                if failure.details[:1] == ["CANNOT_FIND_UPDATE"] and not ours and attempt == 1:
                    continue  # someone cleaned the update's VDI while we used it: upload our copy again
                raise ModuleError(
                    explain_update_failure(failure.details, self.name, self._xapi_url(), self.update_call, self.key)
                    + " Nothing was installed; no uploaded copy was left on the SR.",
                    xapi_error=list(failure.details),
                )
            self._clean(update_ref)
            return self.xapi.pool_update.get_record(update_ref), precheck
        raise ModuleError("unreachable")  # pragma: no cover

    def _xapi_url(self):
        return self.master_url or self.url

    def _upload(self, sr_ref):
        """PUT the ISO into a new VDI on the SR; return the VDI ref. On failure nothing is left on the SR."""
        size = self.pack["size"]
        before = set(self.xapi.SR.get_VDIs(sr_ref))
        task = self.xapi.task.create(
            "xenserver.openstack: upload %s %s" % (self.name, self.version), "xen_suppack: PUT /import_raw_vdi"
        )
        try:
            problem = None
            try:
                upload_raw_vdi(
                    self._xapi_url(),
                    dict(session_id=self.session.handle, task_id=task, sr_id=sr_ref, format="raw"),
                    self.params["iso"],
                    validate_certs=self.params["validate_certs"],
                    timeout=self.params["timeout"],
                    limit=(self.params["wait_timeout"], "wait_timeout"),
                )
            except UploadError as error:
                problem = error.msg
            status = self._wait_task(task, self.params["timeout"] if problem else self.params["wait_timeout"])
            vdi = task_result_ref(self.xapi.task.get_result(task)) if status == "success" else None
            if status == "failure":
                problem = problem or "XAPI failed the upload: %s" % self.xapi.task.get_error_info(task)
            elif status != "success":
                problem = problem or "XAPI's upload task ended %s" % status
            elif vdi is None:
                problem = problem or "XAPI's upload task named no VDI"
            if problem:
                self._remove_upload(sr_ref, before, vdi, size)
                raise ModuleError(
                    "Uploading %s (%d bytes) to %s/import_raw_vdi failed: %s. Nothing was installed and no uploaded "
                    "copy was left on the SR; check the connection to XAPI and run again."
                    % (self.params["iso"], size, self._xapi_url(), problem)
                )
        finally:
            self._quietly(self.xapi.task.destroy, task)
        self._quietly(self.xapi.VDI.set_name_label, vdi, "Update: %s %s" % (self.name, self.version))
        return vdi

    def _remove_upload(self, sr_ref, before, vdi, size):
        """Destroy the VDI of a failed upload: the one the task named, else the one XAPI made for it."""
        if vdi:
            self._quietly(self.xapi.VDI.destroy, vdi)
            return
        try:
            new = set(self.xapi.SR.get_VDIs(sr_ref)) - before
            for ref in new:
                record = self.xapi.VDI.get_record(ref)
                if record["name_label"].lower() == "imported vdi" and record["virtual_size"] in (str(size), "0"):
                    self._quietly(self.xapi.VDI.destroy, ref)
        except XENAPI_ERRORS:
            pass

    def _introduce(self, vdi):
        """Return (update ref, whether it now holds our VDI); on failure the VDI is destroyed."""
        try:
            return self._wait_async("introduce", vdi), True
        except XenAPI.Failure as failure:
            self._quietly(self.xapi.VDI.destroy, vdi)
            if failure.details[:1] == ["UPDATE_ALREADY_EXISTS"] and len(failure.details) > 1:
                return self.xapi.pool_update.get_by_uuid(failure.details[1]), False
            raise ModuleError(
                explain_update_failure(failure.details, self.name, self._xapi_url(), self.update_call, self.key)
                + " Nothing was installed; the uploaded copy was removed.",
                xapi_error=list(failure.details),
            )
        except ModuleError:
            self._quietly(self.xapi.VDI.destroy, vdi)
            raise

    def _wait_async(self, call, *args):
        """Run pool_update.<call> as a task and wait for it; a failure raises XenAPI.Failure as the call would."""
        self.update_call = "pool_update.%s" % call
        task = getattr(self.xapi.Async.pool_update, call)(*args)
        try:
            status = self._wait_task(task, self.params["wait_timeout"])
            if status == "success":
                return task_result_value(self.xapi.task.get_result(task))
            if status == "failure":
                raise XenAPI.Failure(self.xapi.task.get_error_info(task))
            raise ModuleError(
                "pool_update.%s of %s on %s did not finish (task %s) within wait_timeout (%d s): it may still be "
                "running. Run again later; an update that ends up applied is then found."
                % (call, self.name, self._xapi_url(), status, self.params["wait_timeout"])
            )
        finally:
            self._quietly(self.xapi.task.destroy, task)

    def _wait_task(self, task, timeout):
        deadline = monotonic() + timeout
        delay = 0.05
        while True:
            status = self.xapi.task.get_status(task)
            if status != "pending" or monotonic() >= deadline:
                return status
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _clean(self, update_ref):
        """Remove the update's VDI (pool_clean), falling back on destroying it."""
        try:
            self.xapi.pool_update.pool_clean(update_ref)
        except XenAPI.Failure:
            vdi = self.xapi.pool_update.get_vdi(update_ref)
            if vdi != NULL_REF:
                self._quietly(self.xapi.VDI.destroy, vdi)

    def _discard(self, update_ref):
        """After a failed precheck or apply: remove the VDI, and the record if no host has it applied."""
        self._quietly(self._clean, update_ref)
        try:
            if not self.xapi.pool_update.get_hosts(update_ref):
                self.xapi.pool_update.destroy(update_ref)
        except XENAPI_ERRORS:
            pass

    def _quietly(self, function, *args):
        """Best-effort cleanup: errors are ignored (the error being reported matters more)."""
        call = self.last_call
        try:
            function(*args)
        except XENAPI_ERRORS:
            pass
        finally:
            self.last_call = call


def main():
    XenSuppackModule()()


if __name__ == "__main__":
    main()
