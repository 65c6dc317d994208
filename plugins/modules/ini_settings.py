#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ini_settings
short_description: Set and remove settings of one INI file in one go, secrets masked
version_added: 0.1.0
description:
  - Puts a list of settings into one INI file (the files of OpenStack's services, read by oslo.config, or by
    Python's ConfigParser), reading it once and writing it at most once, atomically.
  - A setting is O(settings[].section), O(settings[].option), O(settings[].value) and O(settings[].state).
    V(present) makes the option appear once in its section with that value; V(absent) removes it.
  - Edits in place and leaves everything else as it is, comments included. A setting already in place is not
    touched, whatever its spacing (C(option=value) stays as it is). A changed option is written as
    C(option = value) on the line of its first occurrence, and its other occurrences in the section (repeats,
    continuation lines) go. A new option goes right after its commented-out sample in the section
    (C(#option = <default>), as the sample configurations of OpenStack's services have them), else after the
    section's last line; a new section goes at the end of the file.
  - Lines are read as oslo.config reads them - C(option = value), or with a colon for the equals sign; comments
    starting with C(#) or C(;); an indented line continuing the value above it.
  - Values given in O(secrets) never show - not in the task's arguments, its result nor its diff, where they
    and the values they replace read C(********). The diff shows only the options the task manages.
  - The file is written to a temporary file next to it and renamed over it. A new file gets O(owner),
    O(group) and O(mode) before it appears under its name, and an existing file gets them before its new content,
    so a secret is never readable under other permissions than those asked for.
extends_documentation_fragment:
  - ansible.builtin.files
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the lines of the options of O(settings) and O(secrets) under their sections, before and after,
        with the values of O(secrets) masked; plus owner, group and mode when they change. The rest of the file is
        not shown, as other options of the file may hold secrets of their own (a database URL, a service password).
options:
  path:
    description:
      - The INI file. A symbolic link is followed, and the file it points to is edited.
      - Its directory must exist.
    type: path
    required: true
    aliases: [dest]
  settings:
    description:
      - The settings to put in place, in order.
      - A section and option may appear once in O(settings) and O(secrets) together.
    type: list
    elements: dict
    default: []
    suboptions:
      section:
        description:
          - The section, without brackets, for example V(DEFAULT) or V(xenserver).
        type: str
        required: true
      option:
        description:
          - The option's name.
        type: str
        required: true
      value:
        description:
          - The value, on one line. Booleans are written V(True) and V(False), numbers as they are written.
          - Required with O(settings[].state=present).
        type: raw
      state:
        description:
          - V(present) sets the option to O(settings[].value); V(absent) removes every occurrence of it from the
            section.
        type: str
        choices: [present, absent]
        default: present
  secrets:
    description:
      - Settings whose values are secrets (passwords, tokens), as O(settings), applied after them.
      - Their values are not logged and show as C(********) in the diff and in RV(current).
    type: list
    elements: dict
    default: []
    suboptions:
      section:
        description:
          - The section, without brackets.
        type: str
        required: true
      option:
        description:
          - The option's name.
        type: str
        required: true
      value:
        description:
          - The secret value, on one line. Required with O(secrets[].state=present).
        type: raw
      state:
        description:
          - V(present) sets the option; V(absent) removes it.
        type: str
        choices: [present, absent]
        default: present
  read:
    description:
      - Options whose values to return in RV(current), as the file had them before this task.
    type: list
    elements: dict
    default: []
    suboptions:
      section:
        description:
          - The section, without brackets.
        type: str
        required: true
      option:
        description:
          - The option's name.
        type: str
        required: true
  create:
    description:
      - Create the file when it does not exist. If V(false), a missing file is an error.
    type: bool
    default: true
notes:
  - Like M(community.general.ini_file), with a list of settings per task instead of one, secrets kept out of the
    output, and the format operators expect from OpenStack's sample configurations kept.
  - Option and section names are compared as they are written (oslo.config compares them that way, bar
    C(DEFAULT)).
seealso:
  - module: community.general.ini_file
    description: One setting per task, for INI files of any flavour.
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Point nova-compute at XenServer, the password kept out of the output
  xenserver.openstack.ini_settings:
    path: /etc/nova/nova-compute.conf
    owner: root
    group: nova
    mode: "0640"
    settings:
      - {section: xenserver, option: connection_url, value: http://169.254.0.1}
      - {section: xenserver, option: connection_username, value: root}
      - {section: xenserver, option: vif_driver, state: absent}
    secrets:
      - {section: xenserver, option: connection_password, value: "{{ xenserver_password }}"}

- name: Read the memcached servers of nova.conf
  xenserver.openstack.ini_settings:
    path: /etc/nova/nova.conf
    create: false
    read:
      - {section: keystone_authtoken, option: memcached_servers}
"""

RETURN = r"""
changes:
  description: What changed (or would change, in check mode), one item per setting, in the order applied.
  returned: success
  type: list
  elements: dict
  contains:
    action:
      description: V(added), V(updated) (another value, or repeats removed) or V(removed).
      type: str
    option:
      description: The option.
      type: str
    section:
      description: The section.
      type: str
  sample:
    - {action: updated, option: connection_url, section: xenserver}
    - {action: removed, option: vif_driver, section: xenserver}
current:
  description:
    - The values of the options of O(read) before this task, by section and option; null for an option the file
      does not have. For an option given several times, the last one, as oslo.config reads it.
  returned: success
  type: dict
  sample: {keystone_authtoken: {memcached_servers: "192.0.2.11:11211,192.0.2.12:11211"}}
path:
  description: The file, as given.
  returned: success
  type: str
  sample: /etc/nova/nova-compute.conf
"""

import os
import re

from ansible_collections.xenserver.openstack.plugins.module_utils._base import BaseModule, ModuleError
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import STRING_TYPES
from ansible_collections.xenserver.openstack.plugins.module_utils._textfile import read_text, write_text

MASK = "********"
# How a secret that this task changes reads after the change, so that the diff shows that it changed.
MASK_CHANGED = "******** (new value)"


def _setting_spec(secret):
    return dict(
        type="list",
        elements="dict",
        default=[],
        no_log=False,
        options=dict(
            section=dict(type="str", required=True),
            option=dict(type="str", required=True),
            value=dict(type="raw", no_log=secret),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
    )


def value_text(value):
    """The text an INI file holds for a value: booleans as oslo.config writes them, numbers as they are."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def split_option(text):
    """Split C(key = value) or C(key: value) at the first C(=) or C(:), as oslo.config does; None if neither."""
    positions = [i for i in (text.find("="), text.find(":")) if i >= 0]
    if not positions:
        return None
    at = min(positions)
    return text[:at].strip(), text[at + 1 :].strip()


class Option:
    """One occurrence of an option: its lines C(start) to C(end) (continuations included) and its value."""

    def __init__(self, section, key, start, value):
        self.section = section
        self.key = key
        self.start = start
        self.end = start
        self.value = value


class Section:
    """One occurrence of a section: its header line and the last line before the next header."""

    def __init__(self, name, header):
        self.name = name
        self.header = header
        self.end = header


def parse(lines):
    """Return (sections, options) of an INI text given as lines, in file order.

    Blank lines and comments (C(#), C(;)) end a value; an indented line after an option continues its value;
    options before the first section belong to none and are left alone.
    """
    sections, options = [], []
    current, last = None, None
    for index, line in enumerate(lines):
        text = line.rstrip()
        if current is not None:
            current.end = index
        if not text:
            last = None
        elif text[0] in " \t" and last is not None:
            last.end = index
            last.value += "\n" + text.strip()
        else:
            text = text.strip()
            last = None
            if text[0] in "#;":
                continue
            if text[0] == "[" and text.endswith("]"):
                if current is not None:
                    current.end = index - 1
                current = Section(text[1:-1].strip(), index)
                sections.append(current)
                continue
            parts = split_option(text)
            if current is not None and parts and parts[0]:
                last = Option(current.name, parts[0], index, parts[1])
                options.append(last)
    return sections, options


def option_line(option, value):
    return "%s = %s" % (option, value) if value else "%s =" % option


class IniText:
    """An INI file's lines, edited one setting at a time."""

    def __init__(self, text):
        self.lines = text.split("\n")
        if self.lines[-1] == "":
            self.lines.pop()

    def text(self, lines=None):
        lines = self.lines if lines is None else lines
        return "".join(line + "\n" for line in lines)

    def occurrences(self, section, option):
        return [found for found in parse(self.lines)[1] if found.section == section and found.key == option]

    def value(self, section, option):
        """The value oslo.config reads (the last occurrence), or None."""
        found = self.occurrences(section, option)
        return found[-1].value if found else None

    def remove(self, found):
        for occurrence in reversed(found):
            del self.lines[occurrence.start : occurrence.end + 1]

    def set(self, section, option, value, state):
        """Put one setting in place; return what was done (C(added), C(updated), C(removed)) or None."""
        found = self.occurrences(section, option)
        if state == "absent":
            self.remove(found)
            return "removed" if found else None
        if found:
            if len(found) == 1 and found[0].value == value:
                return None
            self.remove(found[1:])
            if found[0].value != value:
                self.lines[found[0].start : found[0].end + 1] = [option_line(option, value)]
            return "updated"
        spans = [span for span in parse(self.lines)[0] if span.name == section]
        if not spans:
            if self.lines and self.lines[-1].strip():
                self.lines.append("")
            self.lines.extend(["[%s]" % section, option_line(option, value)])
            return "added"
        self.lines.insert(self._insertion_point(spans, option), option_line(option, value))
        return "added"

    def _insertion_point(self, spans, option):
        """Right after the option's commented-out sample in the section, else after the section's last line."""
        sample = re.compile(r"^[#;]\s*%s\s*[=:]" % re.escape(option))
        for span in spans:
            for index in range(span.header + 1, span.end + 1):
                if sample.match(self.lines[index]):
                    return index + 1
        span = spans[0]
        last = span.header
        for index in range(span.header + 1, span.end + 1):
            if self.lines[index].strip():
                last = index
        return last + 1

    def view(self, keys, masks):
        """The lines of the options C(keys) under their sections, in file order, secrets replaced by their masks.

        The diff shows this, not the whole file: other options of the file may hold secrets of their own.
        """
        options = parse(self.lines)[1]
        shown = []
        for section in unique(key[0] for key in keys):
            lines = []
            for found in options:
                if found.section != section or (section, found.key) not in keys:
                    continue
                mask = masks.get((section, found.key))
                if mask is None:
                    lines.extend(self.lines[found.start : found.end + 1])
                else:
                    lines.append(re.match(r"\s*[^=:]*?\s*[=:]", self.lines[found.start]).group(0) + " " + mask)
            if lines:
                shown.extend(["[%s]" % section] + lines)
        return self.text(shown)


def unique(items):
    """The items in their order, each once."""
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


class IniSettingsModule(BaseModule):
    argument_spec = dict(
        path=dict(type="path", required=True, aliases=["dest"]),
        settings=_setting_spec(secret=False),
        secrets=_setting_spec(secret=True),
        read=dict(
            type="list",
            elements="dict",
            default=[],
            options=dict(section=dict(type="str", required=True), option=dict(type="str", required=True)),
        ),
        create=dict(type="bool", default=True),
    )
    module_kwargs = dict(supports_check_mode=True, add_file_common_args=True)

    def check_params(self):
        self.wanted = []
        seen = set()
        for secret, name in ((False, "settings"), (True, "secrets")):
            for item in self.params[name]:
                where = "%s: [%s] %s" % (name, item["section"], item["option"])
                if (item["section"], item["option"]) in seen:
                    raise ModuleError("%s is given twice: give each option once in settings and secrets." % where)
                seen.add((item["section"], item["option"]))
                self._check_names(where, item["section"], item["option"])
                value = value_text(item["value"])
                if item["state"] == "present":
                    self._check_value(where, value, secret)
                self.wanted.append((item["section"], item["option"], value, item["state"], secret))
        for item in self.params["read"]:
            self._check_names("read: [%s] %s" % (item["section"], item["option"]), item["section"], item["option"])

    @staticmethod
    def _check_names(where, section, option):
        if not section.strip() or section != section.strip() or re.search(r"[\[\]\r\n]", section):
            raise ModuleError("%s: the section must be a name without brackets, line breaks or outer spaces." % where)
        if not option.strip() or option != option.strip() or re.search(r"[=:\r\n]", option) or option[0] in "#;[":
            raise ModuleError(
                "%s: the option must be a name without '=', ':', line breaks or outer spaces, "
                "not starting with '#', ';' or '['." % where
            )

    @staticmethod
    def _check_value(where, value, secret):
        shown = "its value" if secret else "value %r" % value
        if value is None:
            raise ModuleError("%s: state=present needs a value; give one, or state=absent to remove it." % where)
        if not isinstance(value, STRING_TYPES):
            raise ModuleError(
                "%s: %s is a %s; give a string, a number or a boolean." % (where, shown, type(value).__name__)
            )
        if "\n" in value or "\r" in value or value != value.strip():
            raise ModuleError(
                "%s: %s has line breaks or outer spaces, which the file cannot hold; give it on one line, trimmed."
                % (where, shown)
            )

    def run(self):
        path = os.path.realpath(self.params["path"])
        exists = self._check_path(path)
        ini = IniText(read_text(path, "text INI") if exists else "")
        before = IniText(ini.text())
        secret_keys = set((item["section"], item["option"]) for item in self.params["secrets"])
        current = {}
        for item in self.params["read"]:
            value = ini.value(item["section"], item["option"])
            if value is not None and (item["section"], item["option"]) in secret_keys:
                value = MASK
            current.setdefault(item["section"], {})[item["option"]] = value

        changes, masks_before, masks_after = [], {}, {}
        for section, option, value, state, secret in self.wanted:
            action = ini.set(section, option, value, state)
            if action:
                changes.append(dict(section=section, option=option, action=action))
            if secret:
                masks_before[(section, option)] = MASK
                masks_after[(section, option)] = MASK_CHANGED if action == "updated" else MASK

        content_changed = ini.lines != before.lines or not exists
        file_args = self.ansible.load_file_common_arguments(self.params, path=path)
        attributes = {}
        if content_changed and not self.check_mode:
            write_text(self.ansible, path, exists, ini.text(), file_args, attributes)
            changed = True
        else:
            changed = self.ansible.set_fs_attributes_if_different(file_args, content_changed, diff=attributes)

        result = dict(changed=changed, path=self.params["path"], changes=changes, current=current)
        if self.ansible._diff:
            result["diff"] = []
            if attributes.get("before"):
                result["diff"].append(dict(attributes, before_header=path, after_header=path))
            if content_changed:
                keys = [wanted[:2] for wanted in self.wanted]
                text = dict(before=before.view(keys, masks_before), after=ini.view(keys, masks_after))
                text.update(before_header=path if exists else "%s (absent)" % path, after_header=path)
                result["diff"].insert(0, text)
        return result

    def _check_path(self, path):
        """Return whether the file exists; refuse a path that is not a file, or that cannot be created."""
        if os.path.exists(path):
            if not os.path.isfile(path):
                raise ModuleError("%s is not a regular file: give the path of an INI file." % self.params["path"])
            return True
        if not self.params["create"]:
            raise ModuleError("%s does not exist: create it first, or set create=true." % self.params["path"])
        if not os.path.isdir(os.path.dirname(path)):
            raise ModuleError(
                "The directory of %s does not exist: install the software that reads the file first, or create "
                "the directory." % self.params["path"]
            )
        return False


def main():
    IniSettingsModule()()


if __name__ == "__main__":
    main()
