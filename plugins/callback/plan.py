# Copyright: xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: plan
type: aggregate
short_description: One short report per host of what a run would change (check mode) or changed
description:
  - At the end of the run, prints one block per host (hosts in the natural order of their names) listing each task
    that reported a change (that would, in check mode), in the order they ran, with what the collection's modules say
    about it in a few words - the pack and its version, the Dom0 routes, the NAT rules, the names of the
    configuration keys (never their values), the Dom0 housekeeping parts - and the hosts with nothing to change, so
    that a change window is reviewed on one screen.
  - Changes that are predictions (check mode before the Dom0 plugin is installed, or before XAPI is reachable from a
    fresh compute VM) are marked C(predicted), and what could not be checked without the change is named on a
    C(not checked) line.
  - Failed and unreachable hosts are listed as such. It works beside any stdout callback, C(--diff) included.
  - Enable it with C(callbacks_enabled = xenserver.openstack.plan) in ansible.cfg, or
    E(ANSIBLE_CALLBACKS_ENABLED=xenserver.openstack.plan).
options:
  plan_file:
    description:
      - Also write the report, as JSON (per host, the list of changes), to this file on the controller, for a
        review or a ticket. The file is written at the end of the run.
    type: path
    env:
      - name: XENSERVER_OPENSTACK_PLAN_FILE
    ini:
      - section: xenserver_openstack_plan
        key: plan_file
"""

import json
import re

from ansible import context
from ansible.plugins.callback import CallbackBase


def _short(module, result):
    """A few words on what a changed task did (would do), from the result of the collection's modules; never the
    value of a setting (ini_settings names the keys only)."""
    name = module.rsplit(".", 1)[-1]
    if name == "xen_suppack":
        version = result.get("applied_version") or result.get("version") or ""
        host = result.get("host") or "of this VM (not read yet)"
        return "pack %s %s applied on host %s" % (result.get("name", ""), version, host)
    if name == "xen_route":
        return "Dom0 routes: " + ", ".join(
            "%s via %s" % (network, route.get("gateway")) for network, route in sorted(result.get("routes", {}).items())
        )
    if name == "himn_nat":
        added, removed = result.get("rules_added", []), result.get("rules_removed", [])
        files = result.get("changed_files", [])
        return "iptables rules: %d to add%s%s%s" % (
            len(added),
            (" (%s)" % ", ".join(_nat(rule) for rule in added if _nat(rule))) if added else "",
            (", %d to remove" % len(removed)) if removed else "",
            ("; files: " + ", ".join(files)) if files else "",
        )
    if name == "ini_settings":
        keys = ["%s %s.%s" % (c.get("action"), c.get("section"), c.get("option")) for c in result.get("changes", [])]
        return "%s: %s" % (result.get("path", "?"), ", ".join(keys) or "file attributes")
    if name == "xen_dom0_config":
        changed = sorted(key for key, answer in result.get("operations", {}).items() if _changed(answer))
        return "Dom0 housekeeping: " + ", ".join(changed)
    return ""


def _nat(rule):
    """The address translation of one iptables rule in a few words ('' for the filter and jump rules)."""
    words = rule.split()

    def arg(flag):
        return words[words.index(flag) + 1] if flag in words[:-1] else "?"

    if "MASQUERADE" in words:
        return "masquerade %s out of %s" % (arg("-s"), arg("-o"))
    if "DNAT" in words:
        return "%s/%s on %s to %s" % (arg("-p"), arg("--dport"), arg("-i"), arg("--to-destination"))
    return ""


def _natural(name):
    """Sort key of a host name: compute-2 before compute-10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _changed(answer):
    if isinstance(answer, list):
        return any(_changed(item) for item in answer)
    return isinstance(answer, dict) and bool(answer.get("changed"))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "xenserver.openstack.plan"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.changes = {}
        self.failed = {}
        self.hosts = []

    def _host(self, result):
        name = result._host.get_name()
        if name not in self.hosts:
            self.hosts.append(name)
        return name

    def v2_runner_on_ok(self, result):
        host = self._host(result)
        data = result._result
        if not data.get("changed"):
            return
        task = result._task
        module = task.action or ""
        entry = {
            "task": task.get_name().replace("xenserver.openstack.", "", 1),
            "what": _short(module, data) if module.startswith("xenserver.openstack.") else "",
            "predicted": bool(data.get("predicted")),
            "not_checked": list(data.get("not_checked", [])),
        }
        if task.loop and data.get("results"):
            labels = [
                str(item.get("_ansible_item_label", item.get("item")))
                for item in data["results"]
                if item.get("changed")
            ]
            entry["what"] = entry["what"] or ", ".join(labels)
        self.changes.setdefault(host, []).append(entry)

    def v2_runner_on_skipped(self, result):
        self._host(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self.failed[self._host(result)] = "failed at: %s" % result._task.get_name()

    def v2_runner_on_unreachable(self, result):
        self.failed[self._host(result)] = "unreachable at: %s" % result._task.get_name()

    def _lines(self, check):
        verb = "would change" if check else "changed"
        lines = []
        for host in self.hosts:
            changes = self.changes.get(host, [])
            state = self.failed.get(host)
            if not changes:
                lines.append("%s: %s" % (host, state or ("nothing to change" if check else "nothing changed")))
                continue
            lines.append("%s: %d task(s) %s%s" % (host, len(changes), verb, (" - " + state) if state else ""))
            for change in changes:
                mark = " [predicted]" if change["predicted"] else ""
                lines.append("  - %s%s%s" % (change["task"], (": " + change["what"]) if change["what"] else "", mark))
                for what in change["not_checked"]:
                    lines.append("      not checked (needs the change first): %s" % what)
        return lines

    def v2_playbook_on_stats(self, stats):
        check = bool(context.CLIARGS.get("check"))
        self.hosts.extend(host for host in stats.processed if host not in self.hosts)
        self.hosts.sort(key=_natural)
        title = "PLAN (check mode: nothing was changed)" if check else "CHANGES MADE"
        self._display.banner(title)
        for line in self._lines(check):
            self._display.display(line)
        path = self.get_option("plan_file")
        if path:
            report = dict(
                check_mode=check,
                hosts=dict(
                    (host, dict(changes=self.changes.get(host, []), failed=self.failed.get(host)))
                    for host in self.hosts
                ),
            )
            with open(path, "w") as handle:
                json.dump(report, handle, indent=2, sort_keys=True)
