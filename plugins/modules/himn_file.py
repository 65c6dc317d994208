#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: himn_file
short_description: Put one small text file of the collection on the compute VM, in one module run
version_added: 0.1.0
description:
  - Makes the file at O(path) hold exactly O(content), with O(owner), O(group) and O(mode), or removes it
    (O(state=absent)). The roles use it for the files they own whole on a compute VM - the HIMN interface's boot
    configuration, the multipath blacklist, the image cache job and its cron file - with the content rendered on
    the controller (C(lookup('ansible.builtin.template', ...))).
  - It does in one module run what M(ansible.builtin.template) and M(ansible.builtin.copy) do in two (a C(stat) of
    the file, then C(copy) or C(file)). The roles put these files in place on every compute VM at each run, and a
    fleet run pays the controller's CPU per module run (the collection's docs/performance.md).
  - The file is read once and written only when its content changes, to a temporary file next to it that is renamed
    over it; a new file gets its owner, group and mode before it appears under its name, and an existing one
    before its new content.
  - For text only, of a few kilobytes (the content travels in the module's arguments); for anything else, use
    M(ansible.builtin.copy).
extends_documentation_fragment:
  - ansible.builtin.files
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The whole file before and after, and owner, group and mode when they change.
options:
  path:
    description:
      - The file. A symbolic link is followed, and the file it points to is written.
    type: path
    required: true
    aliases: [dest]
  content:
    description:
      - What the file holds, as UTF-8 text. Required with O(state=present).
    type: str
  state:
    description:
      - V(present) writes the file; V(absent) removes it (a missing file is not an error).
    type: str
    choices: [present, absent]
    default: present
  directory_mode:
    description:
      - When the directory of O(path) is missing, make it (and its missing parents) with this mode, owned by root.
        Without it, a missing directory is an error that names it.
    type: raw
notes:
  - Refuses a O(path) that is a directory or another non-regular file.
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Keep multipathd off the disks nova attaches
  xenserver.openstack.himn_file:
    path: /etc/multipath/conf.d/xenserver-openstack.conf
    content: "{{ lookup('ansible.builtin.template', 'multipath-xenserver.conf.j2') }}"
    owner: root
    group: root
    mode: "0644"
    directory_mode: "0755"

- name: Remove it
  xenserver.openstack.himn_file:
    path: /etc/multipath/conf.d/xenserver-openstack.conf
    state: absent
"""

RETURN = r"""
path:
  description: The file, as given.
  returned: success
  type: str
  sample: /etc/multipath/conf.d/xenserver-openstack.conf
content_changed:
  description: Whether the content changed (was written or removed), apart from owner, group and mode.
  returned: success
  type: bool
  sample: true
"""

import os

from ansible.module_utils.common.text.converters import to_text
from ansible_collections.xenserver.openstack.plugins.module_utils._base import BaseModule, ModuleError
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import OS_ERRORS
from ansible_collections.xenserver.openstack.plugins.module_utils._textfile import read_text, write_text


class HimnFileModule(BaseModule):
    argument_spec = dict(
        path=dict(type="path", required=True, aliases=["dest"]),
        content=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        directory_mode=dict(type="raw"),
    )
    module_kwargs = dict(
        supports_check_mode=True, add_file_common_args=True, required_if=[("state", "present", ["content"])]
    )

    def run(self):
        path = os.path.realpath(self.params["path"])
        if os.path.lexists(path) and not os.path.isfile(path):
            raise ModuleError("%s is not a regular file: give the path of a file, or remove what is there." % path)
        exists = os.path.exists(path)
        before = read_text(path) if exists else ""
        result = dict(path=self.params["path"], changed=False, content_changed=False)
        if self.params["state"] == "absent":
            if exists:
                result.update(changed=True, content_changed=True)
                if not self.check_mode:
                    self._remove(path)
            self._diff(result, path, exists, before, "", {})
            return result

        after = to_text(self.params["content"])
        content_changed = after != before or not exists
        file_args = self.ansible.load_file_common_arguments(self.params, path=path)
        attributes = {}
        if content_changed and not self.check_mode:
            self._directory(os.path.dirname(path))
            write_text(self.ansible, path, exists, after, file_args, attributes)
            changed = True
        elif exists:
            changed = self.ansible.set_fs_attributes_if_different(file_args, content_changed, diff=attributes)
        else:
            self._directory(os.path.dirname(path), check=True)
            changed = True
        result.update(changed=changed, content_changed=content_changed)
        self._diff(result, path, exists, before, after if content_changed else before, attributes)
        return result

    def _directory(self, directory, check=False):
        """Make the missing directory with directory_mode (in check mode, only refuse when it could not be made)."""
        if os.path.isdir(directory):
            return
        mode = self.params["directory_mode"]
        if mode is None:
            raise ModuleError(
                "The directory %s does not exist: install the software that reads the file first, create the "
                "directory, or give directory_mode." % directory
            )
        if check:
            return
        try:
            os.makedirs(directory)
        except OS_ERRORS as error:
            raise ModuleError("Cannot make the directory %s: %s." % (directory, error.strerror or error))
        self.ansible.set_mode_if_different(directory, mode, False)

    def _remove(self, path):
        try:
            os.unlink(path)
        except OS_ERRORS as error:
            raise ModuleError("Cannot remove %s: %s." % (path, error.strerror or error))

    def _diff(self, result, path, exists, before, after, attributes):
        if not self.ansible._diff:
            return
        result["diff"] = []
        if result["content_changed"]:
            result["diff"].append(
                dict(
                    before=before,
                    after=after,
                    before_header=path if exists else "%s (absent)" % path,
                    after_header=path if self.params["state"] == "present" else "%s (absent)" % path,
                )
            )
        if attributes.get("before"):
            result["diff"].append(dict(attributes, before_header=path, after_header=path))


def main():
    HimnFileModule()()


if __name__ == "__main__":
    main()
