#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: xen_dom0_config
short_description: Dom0 housekeeping through XenAPI - cron job, firewall chain, module blacklist, conntrackd
version_added: 0.1.0
description:
  - Changes Dom0 of a XenServer / XCP-ng host through XenAPI only, never over SSH, with the collection's Dom0 plugin
    (C(host.call_plugin)). Install the plugin first (role C(xenserver.openstack.dom0_suppack)).
  - The plugin has one operation per kind of change, each with typed parameters, idempotent, and reporting whether it
    changed anything. It writes only files it renders itself, at fixed paths, from those parameters (no text of the
    caller reaches a Dom0 file), removes only files it created, and restarts only the services in its list; the
    module fails with the plugin's message as is.
  - The operations run in this order - O(unblacklist_modules), O(firewall), O(conntrackd), O(console_log_rotation),
    O(restart_services) - each only when its option is set. They go to Dom0 in one call of the plugin (its C(batch)
    function), so Dom0 starts one Python per module run. The plugin checks every operation before it runs the first
    one; an operation that fails stops the run, and the message names it and the operations done before it.
extends_documentation_fragment:
  - xenserver.openstack.xenapi
  - xenserver.openstack.xenapi.dom0_plugin
  - xenserver.openstack.xenapi.xapi_pending
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
    details:
      - The plugin works out what would change and changes nothing (no file, rule or service is touched).
  diff_mode:
    support: full
options:
  vm_uuid:
    description:
      - UUID of a VM whose host's Dom0 is changed (the compute VM).
      - If neither O(vm_uuid) nor O(host_uuid) is set, the UUID in C(/sys/hypervisor/uuid) is used, which is right
        when the module runs on the compute VM.
    type: str
  host_uuid:
    description:
      - UUID of the host whose Dom0 is changed, for runs that are not on a VM of that host.
    type: str
  console_log_rotation:
    description:
      - The guest console log job, in a file of its own, C(/etc/cron.d/xenserver-openstack-console-logs), with
        C(MAILTO=""). Root's crontab and every other cron entry are never touched.
      - The job keeps xenconsoled logging guest consoles to C(/var/log/xen/guest/console.DOMID) (where nova's
        C(console) Dom0 plugin reads them for C(nova console-log)).
      - It trims each log larger than O(console_log_rotation.max_size) to its last O(console_log_rotation.keep_size)
        bytes in place, empties the logs written before the last boot (their domain id belonged to another guest),
        and deletes the logs of domains that no longer exist once they are O(console_log_rotation.grace_minutes)
        old.
    type: dict
    suboptions:
      state:
        description:
          - Whether the job is scheduled. V(absent) removes the job's file only when the plugin wrote it.
        type: str
        choices: [present, absent]
        default: present
      schedule:
        description: Five cron fields.
        type: str
        default: "* * * * *"
      max_size:
        description: Logs larger than this many bytes are trimmed.
        type: int
        default: 1048576
      keep_size:
        description: Bytes a trimmed log keeps (less than O(console_log_rotation.max_size)).
        type: int
        default: 5120
      grace_minutes:
        description: The log of a domain that no longer exists is deleted when it is this many minutes old.
        type: int
        default: 10
  firewall:
    description:
      - The Dom0 iptables chain C(xenserver-openstack-neutron) that accepts the given ports (for the neutron OVS
        agent of the compute VM - OVSDB V(6640/tcp) and VXLAN V(4789/udp)), jumped to once from C(INPUT), ahead of
        Dom0's own rules. It is applied now and written to C(/etc/sysconfig/iptables), the file Dom0's iptables
        service loads at boot, changing only the chain's lines there.
    type: dict
    suboptions:
      state:
        description: Whether the chain and its jump exist.
        type: str
        choices: [present, absent]
        default: present
      ports:
        description: The ports the chain accepts (O(firewall.state=present)).
        type: list
        elements: dict
        default: []
        suboptions:
          protocol:
            description: The protocol.
            type: str
            choices: [tcp, udp]
            required: true
          port:
            description: The destination port.
            type: int
            required: true
  unblacklist_modules:
    description:
      - Kernel modules whose blacklisting (C(blacklist), C(install ... /bin/true), C(alias ... off) lines) is commented
        out in the files of C(/etc/modprobe.d). No file is removed (a package's configuration file that is removed
        comes back with the package's next update; an edited one stays).
      - V(bridge) is what the neutron security groups in Dom0 need.
    type: list
    elements: str
    choices: [bridge]
  conntrackd:
    description:
      - conntrackd in Dom0 in statistics mode, needed by the neutron security groups that run in Dom0. The plugin
        writes C(/etc/conntrackd/conntrackd.conf) from O(conntrackd.hash_size) and O(conntrackd.hash_limit), and
        C(/etc/logrotate.d/conntrackd) (daily, or sooner past O(conntrackd.log_maxsize)). The original
        C(conntrackd.conf) is kept once, as C(conntrackd.conf.back); an existing backup is never replaced.
        conntrackd is restarted only when its configuration changed (or a restart after an earlier change failed).
      - Skipped on hosts older than platform version 2.1.0 (XenServer 6.5), which have no conntrack; the result's
        RV(not_run) says so.
      - Skipped, with the reason in RV(not_run), when conntrack-tools is not installed in Dom0 (no
        C(/etc/conntrackd/conntrackd.conf)); then nothing is written and nothing restarted.
    type: dict
    suboptions:
      hash_size:
        description: conntrackd's C(HashSize) (1024 to 16777216).
        type: int
        default: 32768
      hash_limit:
        description: conntrackd's C(HashLimit) (1024 to 268435456).
        type: int
        default: 131072
      log_maxsize:
        description: conntrackd's logs are rotated when larger than this (logrotate C(maxsize) - a number, then
          C(k), C(M) or C(G)).
        type: str
        default: 50M
      log_rotate:
        description: How many rotated logs are kept (0 to 1000).
        type: int
        default: 7
      restart:
        description: Whether to restart conntrackd when its configuration changed.
        type: bool
        default: true
  restart_services:
    description:
      - Dom0 services to restart (with C(service NAME restart)). Reports a change whenever it restarts.
    type: list
    elements: str
    choices: [conntrackd]
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Rotate guest console logs in Dom0 every minute
  xenserver.openstack.xen_dom0_config:
    password: "{{ xenserver_password }}"
    console_log_rotation:
      max_size: 1048576
      keep_size: 5120

- name: Let the neutron agent of this compute VM reach Dom0 (OVSDB, VXLAN) and Dom0 load the bridge module
  xenserver.openstack.xen_dom0_config:
    password: "{{ xenserver_password }}"
    firewall:
      ports:
        - {protocol: tcp, port: 6640}
        - {protocol: udp, port: 4789}
    unblacklist_modules: [bridge]

- name: conntrackd in statistics mode, its logs rotated
  xenserver.openstack.xen_dom0_config:
    password: "{{ xenserver_password }}"
    conntrackd:
      hash_size: 65536
      hash_limit: 262144
      log_maxsize: 100M
"""

RETURN = r"""
host:
  description: UUID of the host whose Dom0 was changed.
  returned: success
  type: str
  sample: 4a1c9e0e-5a51-4a3c-8d4e-3b6c1f0b2a01
platform_version:
  description: The host's platform version.
  returned: success
  type: str
  sample: 3.4.0
operations:
  description: What each operation that ran reported (the plugin's answer), by operation.
  returned: success
  type: dict
  sample:
    console_log_rotation: {"changed": false, "path": "/etc/cron.d/xenserver-openstack-console-logs"}
    firewall: {"changed": true, "chain": "xenserver-openstack-neutron", "saved_rules": "/etc/sysconfig/iptables"}
not_run:
  description: Operations that were asked for but not run, with the reason.
  returned: success
  type: dict
  sample: {"conntrackd": "XenServer 6.5.0 (platform 1.9.0) has no conntrack: conntrackd is left alone"}
predicted:
  description:
    - True when the result is a prediction (check mode with O(plugin_pending), the Dom0 plugin not installed yet,
      or with O(xapi_pending), XAPI not reachable yet); each operation counts as a change, and RV(operations)
      gives, per operation, the plugin calls it would make.
  returned: when predicted
  type: bool
  sample: true
not_checked:
  description: What the Dom0 plugin (or XAPI) would have read, which a prediction could not.
  returned: when predicted
  type: list
  elements: str
  sample: ["what Dom0 already has for conntrackd, firewall (files, firewall chain, services)"]
"""

import json

from ansible_collections.xenserver.openstack.plugins.module_utils._platform import version_tuple
from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import (
    DOM0_PLUGIN_SPEC,
    XAPI_PENDING_SPEC,
    ModuleError,
    PluginPending,
    XenAPIModule,
    find_vm,
    read_local_vm_uuid,
    resident_host,
)

# Hosts older than this have no conntrack in Dom0 (XenServer 6.5 is 1.9.0).
CONNTRACK_PLATFORM = (2, 1, 0)
OPERATIONS = ("unblacklist_modules", "firewall", "conntrackd", "console_log_rotation", "restart_services")


def text_diff(header, before, after):
    return dict(before_header=header, after_header=header, before=before or "", after=after or "")


class XenDom0ConfigModule(XenAPIModule):
    argument_spec = dict(
        vm_uuid=dict(type="str"),
        host_uuid=dict(type="str"),
        console_log_rotation=dict(
            type="dict",
            options=dict(
                state=dict(type="str", choices=["present", "absent"], default="present"),
                schedule=dict(type="str", default="* * * * *"),
                max_size=dict(type="int", default=1048576),
                keep_size=dict(type="int", default=5120),
                grace_minutes=dict(type="int", default=10),
            ),
        ),
        firewall=dict(
            type="dict",
            options=dict(
                state=dict(type="str", choices=["present", "absent"], default="present"),
                ports=dict(
                    type="list",
                    elements="dict",
                    default=[],
                    options=dict(
                        protocol=dict(type="str", choices=["tcp", "udp"], required=True),
                        port=dict(type="int", required=True),
                    ),
                ),
            ),
        ),
        unblacklist_modules=dict(type="list", elements="str", choices=["bridge"]),
        conntrackd=dict(
            type="dict",
            options=dict(
                hash_size=dict(type="int", default=32768),
                hash_limit=dict(type="int", default=131072),
                log_maxsize=dict(type="str", default="50M"),
                log_rotate=dict(type="int", default=7),
                restart=dict(type="bool", default=True),
            ),
        ),
        restart_services=dict(type="list", elements="str", choices=["conntrackd"]),
    )
    argument_spec.update(DOM0_PLUGIN_SPEC, **XAPI_PENDING_SPEC)
    module_kwargs = dict(
        supports_check_mode=True,
        mutually_exclusive=[("vm_uuid", "host_uuid")],
        required_one_of=[OPERATIONS],
    )

    def check_params(self):
        self.host_uuid = self.params["host_uuid"]
        self.vm_uuid = self.params["vm_uuid"] or (None if self.host_uuid else read_local_vm_uuid())
        if not self.host_uuid and not self.vm_uuid:
            raise ModuleError(
                "Cannot tell which host's Dom0 to change: set vm_uuid or host_uuid, "
                "or run the module on the compute VM."
            )

    def _plan(self, software):
        """Each operation as plugin calls: [(operation, function, params)]; software None when it is unknown."""
        planned = []
        for name in OPERATIONS:
            if self.params[name]:
                calls = getattr(self, "_" + name)(self.params[name], software)
                planned.extend((name, function, params) for function, params in calls)
        return planned

    def run_pending(self, pending):
        """Check mode before XAPI is reachable (a fresh VM): every operation predicted, the host unknown."""
        self.result = dict(changed=False, host="", platform_version="", operations={}, not_run={})
        planned = self._plan(None)
        if not planned:
            return self.result
        return self._predicted(planned, pending, ["the host and its platform (conntrackd needs conntrack-tools)"])

    def run(self):
        host_ref = self._host()
        host = self.xapi.host.get_record(host_ref)
        software = host["software_version"]
        self.result = dict(
            changed=False,
            host=host["uuid"],
            platform_version=software.get("platform_version", ""),
            operations={},
            not_run={},
        )
        # Each operation is planned as plugin calls; all of them go to Dom0 in one call of the plugin's batch
        # function (xapi starts a Python process per plugin call), then each operation reports its answers.
        planned = self._plan(software)
        answers = []
        if planned:
            calls = [dict(function=function, params=params) for _name, function, params in planned]
            try:
                answers = self.call_dom0_plugin(host_ref, "batch", dict(calls=calls, check=self.check_mode))
            except PluginPending as pending:
                return self._predicted(planned, pending)
            answers = answers["results"]
        diffs = []
        for (name, _function, _params), answer in zip(planned, answers):
            if answer.get("skipped"):  # the plugin found nothing to act on in Dom0, and says why
                self.result["not_run"][name] = answer["skipped"]
                continue
            self.result["changed"] = self.result["changed"] or bool(answer.get("changed"))
            if name == "restart_services":
                self.result["operations"].setdefault(name, []).append(answer)
            else:
                self.result["operations"][name] = answer
            diffs.extend(self._diffs(name, answer))
        self.result["diff"] = diffs
        return self.result

    def _predicted(self, planned, pending, not_checked=()):
        """Check mode before the plugin is installed: every operation counts as a change, shown as its plugin call."""
        diffs = []
        for name, function, params in planned:
            self.result["operations"].setdefault(name, dict(changed=True, predicted=True, calls=[]))
            self.result["operations"][name]["calls"].append(dict(function=function, params=params))
            diffs.append(
                text_diff(
                    "Dom0 " + name + " (before the Dom0 plugin)",
                    "",
                    "%s %s\n" % (function, json.dumps(params, sort_keys=True)),
                )
            )
        self.result.update(changed=True, diff=diffs)
        return self.predicted(
            self.result,
            [
                "what Dom0 already has for %s (files, firewall chain, services)"
                % ", ".join(sorted(self.result["operations"]))
            ]
            + list(not_checked),
            pending,
        )

    def _host(self):
        if self.host_uuid:
            return self.xapi.host.get_by_uuid(self.host_uuid)
        _vm_ref, vm = find_vm(self.xapi, self.vm_uuid, self.url)
        return resident_host(vm)

    @staticmethod
    def _diffs(name, answer):
        """The diffs of one plugin answer: a file's or a chain's text before and after, when it changes."""
        if name == "unblacklist_modules":
            return [
                text_diff("Dom0 " + path, change["before"], change["after"])
                for path, change in sorted(answer["files"].items())
            ]
        if name == "restart_services" or answer.get("before") == answer.get("after"):
            return []
        if name == "firewall":
            return [text_diff("Dom0 iptables chain " + answer["chain"], answer["before"], answer["after"])]
        return [text_diff("Dom0 " + answer["path"], answer["before"], answer["after"])]

    # Each operation returns its plugin calls: [(function, params)].

    @staticmethod
    def _unblacklist_modules(modules, _software):
        return [("modprobe_unblacklist", dict(modules=modules))]

    @staticmethod
    def _firewall(firewall, _software):
        params = dict(state=firewall["state"])
        if firewall["state"] == "present":
            if not firewall["ports"]:
                raise ModuleError("firewall.ports must name at least one port when firewall.state is present.")
            params["rules"] = firewall["ports"]
        return [("iptables_chain", params)]

    def _conntrackd(self, conntrackd, software):
        if software is None:  # unknown (predicted without XAPI): planned, the platform named as not checked
            return [("conntrackd_config", dict(conntrackd))]
        platform = software.get("platform_version", "")
        if version_tuple(platform) < CONNTRACK_PLATFORM:
            self.result["not_run"]["conntrackd"] = "%s %s (platform %s) has no conntrack: conntrackd is left alone" % (
                software.get("product_brand", "The host"),
                software.get("product_version", ""),
                platform or "unknown",
            )
            return []
        return [("conntrackd_config", dict(conntrackd))]

    @staticmethod
    def _console_log_rotation(job, _software):
        options = dict((key, job[key]) for key in ("max_size", "keep_size", "grace_minutes"))
        return [("cron_job", dict(job="console-logs", schedule=job["schedule"], options=options, state=job["state"]))]

    @staticmethod
    def _restart_services(services, _software):
        return [("service_restart", dict(service=name)) for name in services]


def main():
    XenDom0ConfigModule()()


if __name__ == "__main__":
    main()
