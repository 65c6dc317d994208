# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""XenServer-format images: a gzip tar of VHD files whose first member is C(0.vhd).

That is what nova's XenAPI driver and the Dom0 glance plugin expect for C(disk_format=vhd),
C(container_format=ovf). This file checks such a file without unpacking it (one streaming pass that
also computes the digests Glance compares), and builds one from a raw or qcow2 disk image.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import hashlib
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib

CHUNK = 1024 * 1024
VHD_COOKIE = b"conectix"
VHD_FOOTER_SIZE = 512
QCOW2_MAGIC = b"QFI\xfb"
GZIP_MAGIC = b"\x1f\x8b"
# gzip's error for a damaged stream: gzip.BadGzipFile (an OSError) from Python 3.8 on, a plain IOError before.
BAD_GZIP = getattr(gzip, "BadGzipFile", IOError)
# The digests computed while checking: md5 is Glance's C(checksum), sha256 what openstacksdk records in the image's
# C(owner_specified.openstack.sha256) property. Glance's own C(os_hash_algo) (sha512 by default) is computed only to
# compare the file with images that have it (vhd_image), in the same pass: an upload needs none of it.
DIGESTS = ("md5", "sha256")
CONVERT_HINT = (
    "Convert it with the xenserver.openstack.vhd_tgz module (qemu-img convert -O vpc, then a gzip tar whose "
    "first member is 0.vhd), for example: ansible localhost -m xenserver.openstack.vhd_tgz -a 'src=%s dest=%s'"
)


class VHDImageError(Exception):
    """A file is not what a XenServer-format image must be; the message names the file, the problem and the fix."""


class _DigestingReader:
    """A read-only file object that feeds every byte read through it to hashlib digests."""

    def __init__(self, raw, algorithms):
        self._raw = raw
        self.digests = dict((name, hashlib.new(name)) for name in algorithms)
        self.size = 0

    def read(self, size=-1):
        data = self._raw.read(size)
        for digest in self.digests.values():
            digest.update(data)
        self.size += len(data)
        return data

    def drain(self):
        """Read (and digest) what the tar reader left unread: end-of-archive padding."""
        while self.read(CHUNK):
            pass

    def hexdigests(self):
        return dict((name, digest.hexdigest()) for name, digest in self.digests.items())


def _tail(stream, size):
    """Read C(stream) to its end, in chunks, and return its last C(size) bytes."""
    tail = b""
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return tail
        tail = (tail + chunk)[-size:]


def _reject_other_formats(path, head):
    """Raise a VHDImageError telling what C(path) is, when its first bytes show it is not a gzip file."""
    suggested = os.path.splitext(path)[0] + ".vhd.tgz"
    if head.startswith(QCOW2_MAGIC):
        raise VHDImageError(
            "%s is a qcow2 image, not a XenServer-format image (a gzip tar of VHD files). %s"
            % (path, CONVERT_HINT % (path, suggested))
        )
    with open(path, "rb") as image:
        image.seek(max(0, os.path.getsize(path) - VHD_FOOTER_SIZE))
        footer = image.read(VHD_FOOTER_SIZE)
    if head.startswith(VHD_COOKIE) or footer.startswith(VHD_COOKIE):
        raise VHDImageError(
            "%s is a bare VHD file: XenServer images are a gzip tar of VHD files. Put it in one as 0.vhd, "
            "for example: cp %s 0.vhd && tar -czf %s 0.vhd" % (path, path, suggested)
        )
    raise VHDImageError(
        "%s is not a gzip file, so not a XenServer-format image (a gzip tar of VHD files); a raw disk image "
        "looks like this. %s" % (path, CONVERT_HINT % (path, suggested))
    )


def _check_member(path, index, member, tar, seen):
    """Check one tar member: C(0.vhd) first, a regular file named C(*.vhd) once only, ending with a VHD footer."""
    name = posixpath.normpath(member.name)
    if name in seen:
        # Dom0 unpacks the tar: the later member would silently replace the one checked (and digested) first.
        raise VHDImageError(
            "%s holds %s twice: XenServer images hold each VHD of the chain once. Rebuild it (tar -czf IMAGE.tgz "
            "0.vhd)." % (path, name)
        )
    seen.add(name)
    if index == 0 and name != "0.vhd":
        raise VHDImageError(
            "The first member of %s is %s, not 0.vhd: XenServer images hold their VHD chain as 0.vhd "
            "(the leaf), 1.vhd, ... Rebuild it with 0.vhd first (tar -czf IMAGE.tgz 0.vhd)." % (path, member.name)
        )
    if not member.isfile() or "/" in name or not name.endswith(".vhd"):
        raise VHDImageError(
            "%s holds %s, which is not a VHD file at the top of the archive: XenServer images hold only "
            "0.vhd, 1.vhd, ... Rebuild it with those files only." % (path, member.name)
        )
    footer = _tail(tar.extractfile(member), VHD_FOOTER_SIZE)
    if len(footer) < VHD_FOOTER_SIZE or not footer.startswith(VHD_COOKIE):
        raise VHDImageError(
            "%s in %s is not a VHD file: it does not end with a VHD footer (cookie 'conectix'). Make it with "
            "qemu-img convert -O vpc (or the xenserver.openstack.vhd_tgz module)." % (member.name, path)
        )
    return name


def check_head(path):
    """Refuse at once a missing file, or one whose first bytes show it is not a gzip file (qcow2, raw, a bare VHD).

    Raises:
        VHDImageError: naming the file, what it is, and the way to convert it.
    """
    if not os.path.isfile(path):
        raise VHDImageError("%s does not exist or is not a file: give the path of a XenServer-format image." % path)
    with open(path, "rb") as image:
        head = image.read(VHD_FOOTER_SIZE)
    if not head.startswith(GZIP_MAGIC):
        _reject_other_formats(path, head)


def inspect_vhd_tgz(path, algorithms=DIGESTS):
    """Check that C(path) is a XenServer-format image and compute its digests, in one streaming pass.

    Nothing is unpacked to disk and no member is held in memory: each member is read in chunks and
    only its last 512 bytes (the VHD footer) are kept.

    Args:
        path: the file to check.
        algorithms: the hashlib names of the digests to compute over the whole file.

    Returns:
        dict: C(members) (names, C(0.vhd) first), C(size) in bytes, C(digests) (name to hex digest).

    Raises:
        VHDImageError: the file is missing or is not a gzip tar of VHD files with C(0.vhd) first.
    """
    check_head(path)
    with open(path, "rb") as image:
        reader = _DigestingReader(image, algorithms)
        try:
            with tarfile.open(fileobj=reader, mode="r|gz", bufsize=CHUNK) as tar:
                seen = set()
                members = [_check_member(path, index, member, tar, seen) for index, member in enumerate(tar)]
        except (tarfile.TarError, BAD_GZIP, EOFError, zlib.error) as error:
            raise VHDImageError(
                "%s is not a valid gzip tar (%s). XenServer images are a gzip tar of VHD files; %s"
                % (path, error, CONVERT_HINT % ("DISK_IMAGE", path))
            )
        if not members:
            raise VHDImageError("%s is an empty tar: it must hold 0.vhd. Rebuild it (tar -czf IMAGE.tgz 0.vhd)." % path)
        reader.drain()
    return dict(members=members, size=reader.size, digests=reader.hexdigests())


def detect_format(path):
    """The qemu-img format of a disk image by its first bytes (and a VHD's footer): qcow2, vmdk, vhdx, vpc, else
    raw. The collection never lets qemu-img probe: it reads a raw disk whose guest wrote a qcow2 header as that
    qcow2, backing file and all."""
    with open(path, "rb") as image:
        head = image.read(64)
        image.seek(max(0, os.path.getsize(path) - VHD_FOOTER_SIZE))
        footer = image.read(VHD_FOOTER_SIZE)
    for magic, name in ((QCOW2_MAGIC, "qcow2"), (b"KDMV", "vmdk"), (b"# Disk DescriptorFile", "vmdk")):
        if head.startswith(magic):
            return name
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(VHD_COOKIE) or footer.startswith(VHD_COOKIE):
        return "vpc"
    return "raw"


def _other_files(info, src):
    """The files other than C(src) that C(qemu-img info) says the image reads: backing files, external data files,
    VMDK extents, child nodes."""
    found = []
    if isinstance(info, dict):
        for key, value in sorted(info.items()):
            if key in ("backing-filename", "full-backing-filename", "data-file") and value:
                found.append("%s %s" % (key.replace("full-", ""), value))
            elif key == "filename" and isinstance(value, str) and os.path.abspath(value) != src:
                found.append("%s %s" % (key, value))
            else:
                found.extend(_other_files(value, src))
    elif isinstance(info, list):
        for item in info:
            found.extend(_other_files(item, src))
    return sorted(set(found))


def inspect_disk(run_command, qemu_img, src, src_format):
    """Check with C(qemu-img info --output=json -f FORMAT) that the disk image C(src) (an absolute path) reads no
    other file: a backing file, an external data file or VMDK extents could be any file of this machine, and the
    converted image goes to Glance. Return qemu-img's description of it."""
    rc, out, err = run_command([qemu_img, "info", "--output=json", "-f", src_format, src])
    if rc:
        raise VHDImageError(
            "qemu-img cannot read %s as %s: %s. Give its format as src_format." % (src, src_format, err.strip())
        )
    try:
        info = json.loads(out)
    except ValueError:
        raise VHDImageError("qemu-img info gave no JSON for %s: %s" % (src, out.strip()[:200]))
    others = _other_files(info, src)
    if others:
        raise VHDImageError(
            "%s (%s) makes qemu-img read other files (%s): refusing to convert it, as their content would go into "
            "the image. Flatten it into a self-contained image first (qemu-img convert -O qcow2 on a copy that you "
            "trust), or give the right src_format." % (src, src_format, "; ".join(others))
        )
    return info


def make_vhd_tgz(run_command, qemu_img, src, dest, src_format=None, compression_level=6):
    """Build the XenServer-format image C(dest) from the disk image C(src).

    C(src) is inspected first (C(inspect_disk)), then converted to a dynamic VHD with C(qemu-img convert -f FORMAT
    -O vpc) in a temporary directory next to C(dest), put in a gzip tar as C(0.vhd), and the result renamed to
    C(dest) (so C(dest) is either the old file or the complete new one). qemu-img always gets the format (-f) and
    an absolute path (a name like C(json:{...}) or C(nbd:...) would otherwise be read as what to open).

    Args:
        run_command: runs a command given as a list and returns (rc, stdout, stderr), like
            C(AnsibleModule.run_command).
        qemu_img: path of the qemu-img program.
        src: the raw, qcow2 (or any qemu-img-readable) disk image.
        dest: the C(.tgz) file to write.
        src_format: the qemu-img format name of C(src); None takes it from the file's first bytes (detect_format).
        compression_level: gzip level, 0 (none) to 9.

    Returns:
        str: the format C(src) was read as.

    Raises:
        VHDImageError: C(src) reads other files, or qemu-img failed; the message carries its error.
    """
    if os.path.basename(src).startswith("json:"):
        raise VHDImageError(
            "%s is named like qemu's json: pseudo-files (a description of what to open): refusing to convert it. "
            "Rename the file." % src
        )
    src = os.path.abspath(src)
    src_format = src_format or detect_format(src)
    inspect_disk(run_command, qemu_img, src, src_format)
    directory = os.path.dirname(os.path.abspath(dest))
    work = tempfile.mkdtemp(dir=directory, prefix=".vhd_tgz-")
    try:
        vhd = os.path.join(work, "0.vhd")
        command = [qemu_img, "convert", "-f", src_format, "-O", "vpc", "-o", "subformat=dynamic"]
        rc, _out, err = run_command(command + [src, vhd])
        if rc:
            raise VHDImageError("qemu-img could not convert %s to VHD: %s" % (src, err.strip() or "exit %d" % rc))
        packed = os.path.join(work, "image.tgz")
        with tarfile.open(packed, "w:gz", compresslevel=compression_level) as tar:
            tar.add(vhd, arcname="0.vhd", filter=_anonymous)
        os.chmod(packed, 0o644)
        os.rename(packed, dest)  # same file system: replaces dest atomically
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return src_format


def _anonymous(info):
    """Record the VHD as root's: Dom0 unpacks the image as root, which keeps the owner the archive names."""
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
