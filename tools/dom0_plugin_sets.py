# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Dom0 plugin sets of nova's releases: which set a compute needs, and its files, fetched and checked.

A set is the plugins that nova (and neutron's agent) of an OpenStack release call in Dom0: os-xenapi's
``dom0`` plugins for nova 15 to 21, nova's and neutron's own trees before. ``dom0_plugin_sets.json`` (next to
this file) pins each source archive by its sha256 where PyPI publishes one, and every file taken from it by
its own sha256, so that what goes into the pack is exactly the release's code whatever mirror it came from.

Archives come from an offline directory when one is given (and must be there), else from a cache directory,
else from their URL (then kept in the cache). Nothing is ever taken unchecked.
"""

import hashlib
import io
import json
import os
import tarfile
import urllib.error
import urllib.request
import zipfile

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dom0_plugin_sets.json")
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "xenserver-openstack", "archives")
DOWNLOAD_TIMEOUT = 60


class PluginSetError(Exception):
    """A plugin set problem; the message names the set or archive and says what to do."""


def load(path=DATA):
    with open(path) as handle:
        return json.load(handle)


def _major(version):
    head = str(version or "").split(".", maxsplit=1)[0]
    return head if head.isdigit() else ""


def choose(data, nova_version="", os_xenapi_version="", name=""):
    """The name of the set for a compute: ``name`` if given, else by the os-xenapi the compute has, else by
    nova's major version."""
    if name:
        if name not in data["sets"]:
            raise PluginSetError(
                "unknown Dom0 plugin set '%s': the collection has %s" % (name, ", ".join(sorted(data["sets"])))
            )
        return name
    if os_xenapi_version and os_xenapi_version in data["os_xenapi"]:
        return data["os_xenapi"][os_xenapi_version]
    major = _major(nova_version)
    if major in data["nova"]:
        return data["nova"][major]
    known = sorted(data["nova"], key=int)
    if not nova_version:
        raise PluginSetError(
            "the nova release is unknown, so the Dom0 plugins it calls are too: give the nova version (nova %s-%s) "
            "or a plugin set (%s)" % (known[0], known[-1], ", ".join(sorted(data["sets"])))
        )
    raise PluginSetError(
        "nova %s: the collection has no Dom0 plugin set for it. nova's XenAPI driver exists from nova %s (Mitaka) "
        "to %s (Ussuri); nova 22 (Victoria) removed it%s. Give a plugin set by name (%s) if you know which plugins "
        "this nova calls."
        % (
            nova_version,
            known[0],
            known[-1],
            "" if not os_xenapi_version else " (os-xenapi %s is not one the collection knows)" % os_xenapi_version,
            ", ".join(sorted(data["sets"])),
        )
    )


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _check_archive(source, path, data):
    pinned = source.get("sha256")
    if pinned and sha256(data) != pinned:
        raise PluginSetError(
            "%s has sha256 %s, not the pinned %s: it is not the release the collection was checked with, or it "
            "is damaged. Remove it and give the file from %s" % (path, sha256(data), pinned, source["url"])
        )


def _download(source, cache_dir):
    target = os.path.join(cache_dir, source["file"])
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with urllib.request.urlopen(source["url"], timeout=DOWNLOAD_TIMEOUT) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise PluginSetError(
            "cannot download %s (%s). On a machine without that network, put the file in a directory and give it "
            "as the offline archive directory (build_pack.py --plugin-archives DIR, role variable "
            "dom0_suppack_plugin_archives)" % (source["url"], reason)
        ) from None
    _check_archive(source, source["url"], data)
    with open(target + ".part", "wb") as handle:
        handle.write(data)
    os.replace(target + ".part", target)
    return data


def fetch(source, archives_dir="", cache_dir=DEFAULT_CACHE):
    """The bytes of a source archive, checked against its pin."""
    if archives_dir:
        path = os.path.join(archives_dir, source["file"])
        if not os.path.isfile(path):
            raise PluginSetError(
                "%s is not in the offline archive directory %s: download it from %s and put it there"
                % (source["file"], archives_dir, source["url"])
            )
        data = _read(path)
        _check_archive(source, path, data)
        return data
    cached = os.path.join(cache_dir, source["file"])
    if os.path.isfile(cached):
        data = _read(cached)
        if not source.get("sha256") or sha256(data) == source["sha256"]:
            return data
    return _download(source, cache_dir)


def _members(name, data):
    """{member name: bytes reader} of a tar (gzip or not) or zip archive."""
    if name.endswith(".whl") or name.endswith(".zip"):
        archive = zipfile.ZipFile(io.BytesIO(data))
        return dict((n, lambda n=n: archive.read(n)) for n in archive.namelist())
    archive = tarfile.open(fileobj=io.BytesIO(data))
    return dict((m.name, lambda m=m: archive.extractfile(m).read()) for m in archive.getmembers() if m.isfile())


def source_files(source, data):
    """{plugin file name: bytes} taken from a source archive, each file checked against its pin."""
    try:
        members = _members(source["file"], data)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as error:
        raise PluginSetError("%s is not a readable archive: %s" % (source["file"], error)) from None
    files = {}
    for name, pinned in sorted(source["files"].items()):
        member = "%s/%s" % (source["path"], name)
        if member not in members:
            raise PluginSetError(
                "%s has no %s: it is not the archive the set was pinned from (%s)"
                % (source["file"], member, source["url"])
            )
        content = members[member]()
        if sha256(content) != pinned:
            raise PluginSetError(
                "%s in %s has sha256 %s, not the pinned %s: the archive does not hold the release's file"
                % (member, source["file"], sha256(content), pinned)
            )
        files[name] = content
    return files


def plugin_files(data, name, archives_dir="", cache_dir=DEFAULT_CACHE):
    """{plugin file name: bytes} of the set ``name``, from all its sources."""
    files = {}
    for source in data["sets"][name]["sources"]:
        for plugin, content in source_files(source, fetch(source, archives_dir, cache_dir)).items():
            if plugin in files:
                raise PluginSetError("set %s: %s comes from two sources" % (name, plugin))
            files[plugin] = content
    return files
