#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: xen_host_info
short_description: Read what a XenServer / XCP-ng host runs, has installed and offers a compute VM
version_added: 0.1.0
description:
  - Reads, through XenAPI, the facts the other roles of this collection decide on.
  - The product (brand, version), platform and API versions of the host.
  - The updates (C(pool_update)) and, on hosts older than XenServer 7.1, the hotfixes (C(pool_patch) / C(host_patch))
    with whether each is applied on this host, and the legacy supplemental packs (C(originator:name) keys of
    C(host.software_version)).
  - The pool's default SR, and the Host Internal Management Network (HIMN).
  - A VM and its VIFs, given by O(vm_uuid) or found from C(/sys/hypervisor/uuid) when the module runs inside a Xen
    guest. That is the usual case, where it runs on the compute VM and talks to Dom0 over the HIMN.
  - When a VM is known, "this host" is the host the VM runs on; otherwise it is the host the session is connected to.
  - Reads each object class at most once per run.
extends_documentation_fragment:
  - xenserver.openstack.xenapi
  - xenserver.openstack.attributes.info_module
options:
  vm_uuid:
    description:
      - UUID of the VM to describe.
      - If not set, the UUID in C(/sys/hypervisor/uuid) is used when the module runs inside a Xen guest, and no VM is
        described otherwise.
    type: str
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Read the facts of the host this compute VM runs on, over the HIMN
  xenserver.openstack.xen_host_info:
    password: "{{ xenserver_password }}"

- name: Read a host through its management address, certificate verified
  xenserver.openstack.xen_host_info:
    url: https://xenserver-01.example.com
    username: root
    password: "{{ xenserver_password }}"
    vm_uuid: 7f3f5b1e-3f0c-4c1b-9a53-0c7c2b8f1a11
"""

RETURN = r"""
host:
  description: The host the VM runs on, or the host of the session when no VM is known.
  returned: success
  type: dict
  contains:
    uuid:
      description: Host UUID.
      type: str
      sample: 4a1c9e0e-5a51-4a3c-8d4e-3b6c1f0b2a01
    name_label:
      description: Host name in XAPI.
      type: str
      sample: xcp-ng-83
    hostname:
      description: Host name of Dom0.
      type: str
      sample: xcp-ng-83
    address:
      description: Management address.
      type: str
      sample: 192.0.2.10
    is_master:
      description: Whether the host is the pool master.
      type: bool
      sample: true
    pool_uuid:
      description: UUID of the host's pool (hosts of one pool share its updates and default SR).
      type: str
      sample: 0b9d1e52-3f6a-4c1e-9d7b-2f1a6c0e8d44
      version_added: 0.2.0
    product_brand:
      description: Product name.
      type: str
      sample: XCP-ng
    product_version:
      description: Product version.
      type: str
      sample: 8.3.0
    platform_version:
      description: XCP platform version (1.9.0 is XenServer 6.5, 2.2.0 is XenServer 7.1).
      type: str
      sample: 3.4.0
    api_version:
      description: XenAPI version of the pool master, C(major.minor).
      type: str
      sample: "2.21"
    software_version:
      description: The whole C(software_version) map.
      type: dict
      sample: {"product_brand": "XCP-ng", "product_version": "8.3.0", "platform_version": "3.4.0"}
updates:
  description: The pool's updates (C(pool_update)); empty on hosts older than XenServer 7.1.
  returned: success
  type: list
  elements: dict
  sample: [{"uuid": "5b0ad6a1-22c4-4bc1-8a4b-3a2b5f6a7c81", "name_label": "xenserver-openstack",
            "version": "0.1.0", "applied": true}]
legacy_packs:
  description: Supplemental packs installed the legacy way, from the C(originator:name) keys of C(software_version).
  returned: success
  type: list
  elements: dict
  sample: [{"key": "xs:xenserver-openstack", "originator": "xs", "name": "xenserver-openstack",
            "description": "OpenStack XenServer plugins, version 2015.1"}]
hotfixes:
  description:
    - Legacy hotfixes (C(pool_patch)) with whether each is applied on this host.
    - Read only on hosts older than XenServer 7.1, where hotfixes are not C(pool_update) records.
  returned: success
  type: list
  elements: dict
  sample: [{"uuid": "0c3f9d1e-6c51-4f5b-9d2a-1e3f5a7b9c01", "name_label": "XS65ESP1013", "version": "1.0",
            "applied": true}]
default_sr:
  description: The pool's default SR; empty when the pool has none.
  returned: success
  type: dict
  sample: {"uuid": "9b2f1c3d-7a4e-4b5f-8c6d-0e1f2a3b4c5d", "name_label": "Local storage", "type": "ext"}
himn:
  description: The Host Internal Management Network; empty when the pool has none.
  returned: success
  type: dict
  sample: {"uuid": "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b", "name_label": "Host internal management network",
           "bridge": "xenapi", "assigned_ips": ["169.254.0.2"]}
vm:
  description: The VM (from O(vm_uuid) or C(/sys/hypervisor/uuid)) and its VIFs; empty when no VM is known.
  returned: success
  type: dict
  sample:
    uuid: 7f3f5b1e-3f0c-4c1b-9a53-0c7c2b8f1a11
    name_label: compute-1
    power_state: Running
    resident_on: 4a1c9e0e-5a51-4a3c-8d4e-3b6c1f0b2a01
    vifs:
      - {"uuid": "2f3e4d5c-6b7a-4899-8a0b-1c2d3e4f5a6c", "device": "9", "mac": "02:58:53:00:00:01",
         "network": "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b", "bridge": "xenapi", "attached": true, "himn": true,
         "ip": "169.254.0.2"}
"""

from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import (
    XenAPIModule,
    api_version,
    find_vm,
    has_pool_update,
    is_himn,
    read_local_vm_uuid,
)


def _applied(records, host_ref, field):
    """Describe update or hotfix records with whether each is applied on C(host_ref)."""
    return sorted(
        (
            dict(uuid=r["uuid"], name_label=r["name_label"], version=r["version"], applied=host_ref in r[field])
            for r in records
        ),
        key=lambda item: item["name_label"],
    )


def legacy_packs(software_version):
    """Return the legacy supplemental packs recorded as C(originator:name) keys of C(software_version)."""
    packs = []
    for key, description in sorted(software_version.items()):
        originator, sep, name = key.partition(":")
        if sep and originator and name:
            packs.append(dict(key=key, originator=originator, name=name, description=description))
    return packs


class XenHostInfoModule(XenAPIModule):
    argument_spec = dict(vm_uuid=dict(type="str"))
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        hosts = self.xapi.host.get_all_records()
        pool = next(iter(self.xapi.pool.get_all_records().values()))
        networks = self.xapi.network.get_all_records()
        vm_ref, vm = self._vm()
        host_ref = (
            vm["resident_on"]
            if vm and vm["resident_on"] in hosts
            else self.xapi.session.get_this_host(self.session.handle)
        )
        host = hosts[host_ref]
        master = hosts[pool["master"]]
        legacy = not has_pool_update(master)
        return dict(
            changed=False,
            host=self._host(host, pool, host_ref == pool["master"], master),
            updates=[] if legacy else _applied(self.xapi.pool_update.get_all_records().values(), host_ref, "hosts"),
            legacy_packs=legacy_packs(host["software_version"]),
            hotfixes=self._hotfixes(host_ref) if legacy else [],
            default_sr=self._default_sr(pool["default_SR"]),
            himn=self._himn(networks),
            vm=self._vm_facts(vm_ref, vm, hosts, networks),
        )

    @staticmethod
    def _host(host, pool, is_master, master):
        software = host["software_version"]
        return dict(
            uuid=host["uuid"],
            name_label=host["name_label"],
            hostname=host["hostname"],
            address=host["address"],
            is_master=is_master,
            pool_uuid=pool["uuid"],
            product_brand=software.get("product_brand", ""),
            product_version=software.get("product_version", ""),
            platform_version=software.get("platform_version", ""),
            api_version="%s.%s" % api_version(master),
            software_version=software,
        )

    def _vm(self):
        uuid = self.params["vm_uuid"] or read_local_vm_uuid()
        return find_vm(self.xapi, uuid, self.url) if uuid else (None, {})

    def _hotfixes(self, host_ref):
        applied = set(r["pool_patch"] for r in self.xapi.host_patch.get_all_records().values() if r["host"] == host_ref)
        patches = self.xapi.pool_patch.get_all_records()
        return sorted(
            (
                dict(uuid=r["uuid"], name_label=r["name_label"], version=r["version"], applied=ref in applied)
                for ref, r in patches.items()
            ),
            key=lambda item: item["name_label"],
        )

    def _default_sr(self, sr_ref):
        if sr_ref in ("", "OpaqueRef:NULL"):
            return {}
        sr = self.xapi.SR.get_record(sr_ref)
        return dict(uuid=sr["uuid"], name_label=sr["name_label"], type=sr["type"])

    @staticmethod
    def _himn(networks):
        for network in networks.values():
            if is_himn(network):
                return dict(
                    uuid=network["uuid"],
                    name_label=network["name_label"],
                    bridge=network["bridge"],
                    assigned_ips=sorted(network["assigned_ips"].values()),
                )
        return {}

    def _vm_facts(self, vm_ref, vm, hosts, networks):
        if not vm:
            return {}
        vifs = self.xapi.VIF.get_all_records_where('field "VM"="%s"' % vm_ref)
        return dict(
            uuid=vm["uuid"],
            name_label=vm["name_label"],
            power_state=vm["power_state"],
            resident_on=hosts[vm["resident_on"]]["uuid"] if vm["resident_on"] in hosts else "",
            xenstore_data=vm["xenstore_data"],
            vifs=sorted((self._vif(ref, vif, networks) for ref, vif in vifs.items()), key=lambda v: int(v["device"])),
        )

    @staticmethod
    def _vif(ref, vif, networks):
        network = networks.get(vif["network"], {})
        facts = dict(
            uuid=vif["uuid"],
            device=vif["device"],
            mac=vif["MAC"],
            network=network.get("uuid", ""),
            bridge=network.get("bridge", ""),
            attached=vif["currently_attached"],
            himn=is_himn(network),
        )
        ip = network.get("assigned_ips", {}).get(ref)
        if ip:
            facts["ip"] = ip
        return facts


def main():
    XenHostInfoModule()()


if __name__ == "__main__":
    main()
