# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading and writing the text files the collection's modules manage on a node (ini_settings, himn_file).

A file is read whole as UTF-8 and written to a temporary file next to it, then renamed over it: a reader sees the
old file or the new one, never half of it. A new file gets its owner, group and mode before it appears under its
name, and an existing file gets them before its new content, so what it holds is never readable under other
permissions than those asked for.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import tempfile

from ansible.module_utils.common.text.converters import to_text
from ansible_collections.xenserver.openstack.plugins.module_utils._base import ModuleError
from ansible_collections.xenserver.openstack.plugins.module_utils._compat import OS_ERRORS


def read_text(path, kind="text"):
    """Return the UTF-8 text of the file at PATH (newlines as they are); ModuleError naming it otherwise."""
    try:
        with io.open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ModuleError("%s is not UTF-8 text (%s): only %s files can be edited." % (path, error, kind))
    except OS_ERRORS as error:
        raise ModuleError("Cannot read %s: %s." % (path, error.strerror or error))


def write_text(ansible, path, exists, text, file_args, attributes):
    """Write TEXT to PATH atomically with the owner, group and mode of FILE_ARGS (AnsibleModule's
    load_file_common_arguments); ATTRIBUTES gets their diff (before/after) when an existing file's change."""
    if exists:
        ansible.set_fs_attributes_if_different(file_args, False, diff=attributes)
    directory = os.path.dirname(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    except OS_ERRORS as error:
        raise ModuleError("Cannot write in %s: %s." % (directory, error.strerror or error))
    ansible.add_cleanup_file(temporary)
    with io.open(handle, "w", encoding="utf-8", newline="") as stream:
        # A new file's text is built of native strings only: bytes on Python 2, which a text stream refuses.
        stream.write(to_text(text))
    if exists:
        ansible.atomic_move(temporary, path, unsafe_writes=ansible.params.get("unsafe_writes", False))
        return
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    ansible.set_fs_attributes_if_different(dict(file_args, path=temporary), False)
    os.rename(temporary, path)
