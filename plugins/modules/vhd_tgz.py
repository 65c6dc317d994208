#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vhd_tgz
short_description: Turn a raw or qcow2 disk image into a XenServer-format image (a gzip tar of VHD)
version_added: 0.1.0
description:
  - Converts a disk image that C(qemu-img) reads (raw, qcow2, vmdk, ...) to a dynamic VHD with
    C(qemu-img convert -O vpc), and puts it as C(0.vhd) in a gzip tar, the image format that nova's XenAPI
    driver boots (Glance C(disk_format=vhd), C(container_format=ovf)).
  - Prebuilt XenServer images of CirrOS and the like are no longer published; this makes one from the usual
    cloud images.
  - Works like C(make) - O(dest) is rebuilt only when it is missing, older than O(src), or O(force=true).
    qemu-img writes a new UUID and time stamp into every VHD, so a rebuilt O(dest) never has the same checksum
    as the previous one.
  - O(dest) is written to a temporary file next to it and renamed, so it is always either the previous file or
    the complete new one.
  - Upload the result with M(xenserver.openstack.vhd_image).
  - O(src) is inspected first with C(qemu-img info --output=json -f FORMAT) - an image that makes qemu-img read
    another file (a backing file, an external data file, VMDK extents) is refused, as that file's content would go
    into an image that Glance may make public; so is a file named C(json:...), which qemu would read as a
    description of what to open.
extends_documentation_fragment:
  - xenserver.openstack.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  src:
    description:
      - Path of the disk image to convert, on the host that runs the module.
    type: path
    required: true
  dest:
    description:
      - Path of the XenServer-format image to write, conventionally C(NAME.vhd.tgz).
      - Its directory must exist.
    type: path
    required: true
  src_format:
    description:
      - The qemu-img format name of O(src), for example V(qcow2) or V(raw).
      - If not set, the module tells it from the first bytes of O(src) (qcow2, vmdk, vhdx, vpc, else raw). qemu-img
        always gets the format with C(-f), as its own probing would read a raw disk whose guest wrote a qcow2 header
        as that qcow2, and follow its backing file.
    type: str
  compression_level:
    description:
      - gzip compression level, from V(0) (store only) to V(9).
    type: int
    default: 6
  force:
    description:
      - Rebuild O(dest) even when it is newer than O(src).
    type: bool
    default: false
notes:
  - Citrix's guide to XenServer images prefers VHDs exported by XenServer itself (C(xe vdi-export format=vhd)),
    because growing a qemu-img-made VHD in Dom0 was reported to fail. A test image booted at its own size does not
    need that; if instances of larger flavors fail to grow their disk, build the image that way and upload it with
    M(xenserver.openstack.vhd_image).
requirements:
  - qemu-img (Debian and Ubuntu package C(qemu-utils)) on the host that runs the module
author:
  - xenserver.openstack developers (@xenserver)
"""

EXAMPLES = r"""
- name: Download CirrOS, checksum verified
  ansible.builtin.get_url:
    url: https://download.cirros-cloud.net/0.4.0/cirros-0.4.0-x86_64-disk.img
    dest: /var/cache/images/cirros-0.4.0-x86_64-disk.img
    checksum: sha256:a8dd75ecffd4cdd96072d60c2237b448e0c8b2bc94d57f10fdbc8c481d9005b8
    mode: "0644"

- name: Make the XenServer-format image of it
  xenserver.openstack.vhd_tgz:
    src: /var/cache/images/cirros-0.4.0-x86_64-disk.img
    src_format: qcow2
    dest: /var/cache/images/cirros-0.4.0-x86_64-disk.vhd.tgz

# The same from a shell, without a playbook:
# ansible localhost -m xenserver.openstack.vhd_tgz -a 'src=cirros.img src_format=qcow2 dest=cirros.vhd.tgz'
"""

RETURN = r"""
dest:
  description: Path of the XenServer-format image.
  returned: success
  type: str
  sample: /var/cache/images/cirros-0.4.0-x86_64-disk.vhd.tgz
size:
  description: Size of O(dest) in bytes; in check mode, of the existing O(dest) (V(0) when there is none).
  returned: success
  type: int
  sample: 12716457
src_format:
  description: The format O(src) was read as (O(src_format), or the one its first bytes show); only when it was
    converted.
  returned: changed and not in check mode
  type: str
  sample: qcow2
"""

import os

from ansible.module_utils.common.text.converters import to_native
from ansible_collections.xenserver.openstack.plugins.module_utils._base import BaseModule, ModuleError
from ansible_collections.xenserver.openstack.plugins.module_utils._vhd import VHDImageError, make_vhd_tgz

QEMU_IMG_MISSING = (
    "qemu-img is not installed on this host: install the qemu-utils package (Debian, Ubuntu) or qemu-img "
    "(RHEL family), or run the module where it is."
)


def dest_state(src, dest):
    """Return why C(dest) needs building (C(absent), C(older than src)) or C(up to date)."""
    if not os.path.exists(dest):
        return "absent"
    if os.path.getmtime(dest) < os.path.getmtime(src):
        return "older than src"
    return "up to date"


class VhdTgzModule(BaseModule):
    """Build O(dest) from O(src) when it is absent, older than O(src), or O(force) asks."""

    argument_spec = dict(
        src=dict(type="path", required=True),
        dest=dict(type="path", required=True),
        src_format=dict(type="str"),
        compression_level=dict(type="int", default=6),
        force=dict(type="bool", default=False),
    )
    module_kwargs = dict(supports_check_mode=True)

    def check_params(self):
        src, dest = self.params["src"], self.params["dest"]
        if not os.path.isfile(src):
            raise ModuleError(
                "src %s does not exist or is not a file: give the path of the disk image to convert." % src
            )
        if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
            raise ModuleError("The directory of dest %s does not exist: create it first." % dest)
        if not 0 <= self.params["compression_level"] <= 9:
            raise ModuleError("compression_level must be 0 to 9, not %d." % self.params["compression_level"])

    def run(self):
        src, dest = self.params["src"], self.params["dest"]
        state = dest_state(src, dest)
        changed = self.params["force"] or state != "up to date"
        result = {}
        if changed and not self.check_mode:
            qemu_img = self.ansible.get_bin_path("qemu-img")
            if qemu_img is None:
                raise ModuleError(QEMU_IMG_MISSING)
            try:
                result["src_format"] = make_vhd_tgz(
                    self.ansible.run_command,
                    qemu_img,
                    src,
                    dest,
                    src_format=self.params["src_format"],
                    compression_level=self.params["compression_level"],
                )
            except VHDImageError as error:
                raise ModuleError(to_native(error))
        after = "built from %s" % src if changed else state
        result.update(
            changed=changed,
            dest=dest,
            size=os.path.getsize(dest) if os.path.exists(dest) else 0,
            diff=dict(before="%s: %s\n" % (dest, state), after="%s: %s\n" % (dest, after)),
        )
        return result


def main():
    VhdTgzModule()()


if __name__ == "__main__":
    main()
