# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Update packs: reading their ISO, uploading it to XAPI, and what XAPI's pool_update errors mean.

Private to the collection: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import struct
import xml.etree.ElementTree as ET

from ansible_collections.xenserver.openstack.plugins.module_utils._compat import (
    OS_ERRORS,
    STRING_TYPES,
    monotonic,
    urlencode,
    urljoin,
    urlsplit,
    urlunsplit,
)
from ansible_collections.xenserver.openstack.plugins.module_utils._compat_http import http_client, xmlrpc_client
from ansible_collections.xenserver.openstack.plugins.module_utils._xenapi import https_url, ssl_context

SECTOR = 2048
METADATA_LIMIT = 1 << 20
CHUNK_SIZE = 1 << 20
LEGACY_ORIGINATOR = "xenserver.openstack"
KEY_NAME = "RPM-GPG-KEY-xenserver-openstack"
DOCS = "docs/suppack.md of the xenserver.openstack collection"


class PackError(Exception):
    """The ISO is missing, unreadable or not a pack; the message says which and what to do."""


# --- ISO 9660 with Rock Ridge, read-only, pure Python --------------------------------------------------------


class _Record:
    def __init__(self, name, extent, size, is_dir):
        self.name, self.extent, self.size, self.is_dir = name, extent, size, is_dir


class IsoReader:
    """Reads files out of an ISO 9660 image by their Rock Ridge names (falling back on the ISO 9660 names).

    Only what a pack needs: the primary volume descriptor, directories, the SUSP C(SP)/C(CE) and Rock Ridge
    C(NM) entries, and single-extent files. Sectors are read as bytearrays, whose items are ints on Python 2.7 too.
    """

    def __init__(self, handle):
        self.handle = handle
        handle.seek(16 * SECTOR)
        descriptor = bytearray(handle.read(SECTOR))
        if len(descriptor) < SECTOR or descriptor[1:6] != b"CD001":
            raise PackError("not an ISO 9660 image")
        if descriptor[0] != 1:
            raise PackError("the first volume descriptor of the image is not a primary one")
        self.skip = 0
        self.root = self._parse(descriptor[156:190], root=True)
        if self.root is None:
            raise PackError("the ISO 9660 image has no root directory")

    def _read_at(self, sector, offset, length):
        self.handle.seek(sector * SECTOR + offset)
        return bytearray(self.handle.read(length))

    def _system_use(self, area, depth=0):
        """Return [(signature, data)] of the SUSP entries in a System Use area, following continuations."""
        entries, pos = [], 0
        while pos + 4 <= len(area):
            signature, length = area[pos : pos + 2], area[pos + 2]
            if length < 4 or pos + length > len(area):
                break
            data = area[pos + 4 : pos + length]
            if signature == b"ST":
                break
            if signature == b"CE" and len(data) >= 24 and depth < 8:
                block, offset, size = (struct.unpack_from("<I", data, at)[0] for at in (0, 8, 16))
                entries.extend(self._system_use(self._read_at(block, offset, min(size, SECTOR)), depth + 1))
            else:
                entries.append((signature, data))
            pos += length
        return entries

    def _parse(self, raw, root=False):
        if len(raw) < 34 or raw[0] < 34:
            return None
        extent, size = struct.unpack_from("<I", raw, 2)[0], struct.unpack_from("<I", raw, 10)[0]
        is_dir = bool(raw[25] & 2)
        name_length = raw[32]
        iso_name = raw[33 : 33 + name_length]
        use = raw[33 + name_length + (1 - name_length % 2) : raw[0]]
        if root:
            return _Record("", extent, size, True)
        if iso_name in (b"\0", b"\1"):
            if iso_name == b"\0" and use[:2] == b"SP" and len(use) >= 7 and use[4:6] == b"\xbe\xef":
                self.skip = use[6]
            return None
        name = bytearray()
        for signature, data in self._system_use(use[self.skip :]):
            if signature == b"NM" and data[:1] and not data[0] & 6:
                name += data[1:]
        if name:
            text = name.decode("utf-8", "replace")
        else:
            text = iso_name.decode("ascii", "replace").split(";")[0].rstrip(".").lower()
        return _Record(text, extent, size, is_dir)

    def _entries(self, directory):
        data = self._read_at(directory.extent, 0, directory.size)
        pos = 0
        while pos < len(data):
            length = data[pos]
            if length == 0:  # records do not cross sectors: the rest of this one is padding
                pos = (pos // SECTOR + 1) * SECTOR
                continue
            record = self._parse(data[pos : pos + length])
            if record is not None:
                yield record
            pos += length

    def read(self, path, limit=METADATA_LIMIT):
        """Return the bytes of the file at C(path) (like C(/update.xml)), or None if there is none."""
        node = self.root
        for part in [p for p in path.split("/") if p]:
            if not node.is_dir:
                return None
            node = next((r for r in self._entries(node) if r.name == part), None)
            if node is None:
                return None
        if node.is_dir:
            return None
        if node.size > limit:
            raise PackError("%s in the image is larger than %d bytes" % (path, limit))
        return bytes(self._read_at(node.extent, 0, node.size))


# --- pack metadata ------------------------------------------------------------------------------------------


def _xml(data, what):
    try:
        return ET.fromstring(data)
    except ET.ParseError as error:
        raise PackError("%s is not well-formed XML: %s" % (what, error))


def parse_update_xml(data):
    """The fields of an update.xml, as XAPI reads them (name-label, uuid, version are required)."""
    root = _xml(data, "update.xml")
    if root.tag != "update":
        raise PackError("update.xml has no <update> root element")
    info = dict(
        name=root.get("name-label", ""),
        uuid=root.get("uuid", "").lower(),
        version=root.get("version", ""),
        key=os.path.basename(root.get("key", "")),
        after_apply_guidance=[g for g in root.get("after-apply-guidance", "").split(",") if g],
        description=(root.findtext("name-description") or "").strip(),
    )
    for field, attribute in (("name", "name-label"), ("uuid", "uuid"), ("version", "version")):
        if not info[field]:
            raise PackError("update.xml has no %s attribute" % attribute)
    return info


def parse_xs_repository(data):
    """The identity of a legacy pack (XS-REPOSITORY)."""
    root = _xml(data, "XS-REPOSITORY")
    if root.tag != "repository":
        raise PackError("XS-REPOSITORY has no <repository> root element")
    info = dict(
        originator=root.get("originator", ""),
        name=root.get("name", ""),
        version=root.get("version", ""),
        build=root.get("build", ""),
        description=(root.findtext("description") or "").strip(),
    )
    for field in ("originator", "name", "version"):
        if not info[field]:
            raise PackError("XS-REPOSITORY has no %s attribute" % field)
    return info


def read_pack(path):
    """Describe the pack ISO at C(path): C(update) (update.xml) and/or C(legacy) (XS-REPOSITORY), C(size).

    Raises:
        PackError: the file is missing, unreadable, not an ISO, or carries neither metadata file.
    """
    if not os.path.exists(path):
        raise PackError("%s does not exist" % path)
    if not os.path.isfile(path):
        raise PackError("%s is not a file" % path)
    try:
        with open(path, "rb") as handle:
            reader = IsoReader(handle)
            update, legacy = reader.read("/update.xml"), reader.read("/XS-REPOSITORY")
            signed = reader.read("/update.xml.asc") is not None
    except OS_ERRORS as error:
        raise PackError("cannot read %s: %s" % (path, error.strerror or error))
    except PackError as error:
        raise PackError("%s: %s" % (path, error))
    if update is None and legacy is None:
        raise PackError("%s is an ISO image but not a pack: it has neither update.xml nor XS-REPOSITORY" % path)
    return dict(
        update=parse_update_xml(update) if update is not None else None,
        legacy=parse_xs_repository(legacy) if legacy is not None else None,
        signed=signed,
        size=os.path.getsize(path),
    )


# --- versions -----------------------------------------------------------------------------------------------


def version_key(text):
    """A sort key for version strings in the spirit of rpm's: numbers numerically, above letters."""
    return tuple((1, int(part), "") if part.isdigit() else (0, 0, part) for part in re.findall(r"\d+|[A-Za-z]+", text))


def compare_versions(left, right):
    """-1, 0 or 1 as C(left) is older than, the same as or newer than C(right)."""
    a, b = version_key(left), version_key(right)
    return (a > b) - (a < b)


def legacy_version(value):
    """The version in a C(software_version) pack value (C("desc, version 1.2.0, build 3"))."""
    match = re.search(r"(?:^|, )version ([^,]+)", value or "")
    return match.group(1).strip() if match else ""


# --- upload (PUT /import_raw_vdi) ---------------------------------------------------------------------------


# What breaks an upload: the socket, or the HTTP exchange.
UPLOAD_ERRORS = OS_ERRORS + (http_client.HTTPException,)


class UploadError(Exception):
    """The upload did not complete; C(sent) bytes went out before it stopped."""

    def __init__(self, msg, sent=0, status=None):
        super(UploadError, self).__init__(msg)
        self.msg, self.sent, self.status = msg, sent, status


def _connection(url, validate_certs, timeout):
    parts = urlsplit(url)
    if parts.scheme == "https":
        return http_client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl_context(validate_certs)
        )
    return http_client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def redirect_target(url, location):
    """The URL a redirect of the upload leads to. The URL carries the session id, so it never goes over plain http
    to another host (from http://169.254.0.1, the HIMN, that would be the management network), nor from https to
    http: such a target is taken over https."""
    target = urljoin(url, location)
    old, new = urlsplit(url), urlsplit(target)
    if new.scheme == "http" and (old.scheme == "https" or new.hostname != old.hostname):
        return https_url(new.hostname, new.port, new.path, new.query)
    return target


def without_query(url):
    """A URL for messages: the session id in its query is a secret."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class Deadline:
    """The limit of the whole upload: (seconds, the option that sets them), or None for none."""

    def __init__(self, limit):
        self.limit = limit
        self.at = monotonic() + limit[0] if limit else None

    def socket_timeout(self, timeout, sent, size):
        """The timeout of the next socket operation: C(timeout), or less when the limit is nearer."""
        if self.at is None:
            return timeout
        remaining = self.at - monotonic()
        if remaining <= 0:
            raise self.over(sent, size)
        return min(timeout, remaining)

    def over(self, sent, size):
        return UploadError(
            "the upload did not finish within %d s (option %s): %d of %d bytes were sent. The connection to XAPI is "
            "too slow, or XAPI stopped taking the data; raise %s if the link is that slow"
            % (self.limit[0], self.limit[1], sent, size, self.limit[1]),
            sent,
        )

    def passed(self):
        return self.at is not None and monotonic() >= self.at


def _put_file(url, path, size, validate_certs, timeout, chunk_size, deadline):
    """One PUT streaming the file in chunks; returns (status, location, sent)."""
    parts = urlsplit(url)
    connection = _connection(url, validate_certs, deadline.socket_timeout(timeout, 0, size))
    sent = 0
    try:
        connection.putrequest("PUT", "%s?%s" % (parts.path, parts.query), skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(size))
        connection.putheader("Connection", "close")
        connection.endheaders()
        send_error = None
        with open(path, "rb") as handle:
            while sent < size:
                chunk = handle.read(min(chunk_size, size - sent))
                if not chunk:
                    raise UploadError("the file shrank while it was being uploaded", sent)
                try:
                    connection.sock.settimeout(deadline.socket_timeout(timeout, sent, size))
                    connection.send(chunk)
                except OS_ERRORS as error:  # XAPI may answer (and close) before it has read the body
                    if deadline.passed():
                        raise deadline.over(sent, size)
                    send_error = error
                    break
                sent += len(chunk)
        try:
            connection.sock.settimeout(deadline.socket_timeout(timeout, sent, size))
            response = connection.getresponse()
        except UPLOAD_ERRORS as error:
            if deadline.passed():
                raise deadline.over(sent, size)
            raise UploadError("the connection broke after %d of %d bytes: %s" % (sent, size, send_error or error), sent)
        response.read(4096)
        if send_error is not None and response.status == 200:
            raise UploadError("the connection broke after %d of %d bytes: %s" % (sent, size, send_error), sent)
        return response.status, response.getheader("Location"), sent
    except UPLOAD_ERRORS as error:
        raise UploadError("the upload failed after %d of %d bytes: %s" % (sent, size, error), sent)
    finally:
        connection.close()


def upload_raw_vdi(
    base_url, query, path, validate_certs=True, timeout=30, chunk_size=CHUNK_SIZE, redirects=3, limit=None
):
    """Stream the file at C(path) to C(PUT /import_raw_vdi) in constant memory, following XAPI's redirect to a
    host that sees the SR (never over plain http to another host). C(query) holds session_id, task_id and sr_id
    (or vdi). C(timeout) bounds each socket operation, C(limit) (seconds, the option) the whole upload.

    Returns:
        int: the bytes sent.

    Raises:
        UploadError: the upload did not complete, or XAPI answered with an HTTP error.
    """
    size = os.path.getsize(path)
    url = "%s/import_raw_vdi?%s" % (base_url.rstrip("/"), urlencode(sorted(query.items())))
    deadline = Deadline(limit)
    redirected = False
    for _attempt in range(redirects + 1):
        try:
            status, location, sent = _put_file(url, path, size, validate_certs, timeout, chunk_size, deadline)
        except UploadError as error:
            if not redirected:
                raise
            raise UploadError("redirected to %s, %s" % (without_query(url), error.msg), error.sent, error.status)
        if status in (301, 302, 303, 307, 308) and location:
            url, redirected = redirect_target(url, location), True
            continue
        if status != 200:
            reason = {401: "the session was refused", 403: "the user may not import VDIs (RBAC)"}.get(status, "")
            raise UploadError("XAPI answered HTTP %d%s" % (status, ": " + reason if reason else ""), sent, status)
        return sent
    raise UploadError("XAPI redirected the upload more than %d times" % redirects)


def task_result_value(result):
    """The value of a task result, which XAPI stores as the XML-RPC encoding C(<value>...</value>)."""
    text = (result or "").strip()
    if not text.startswith("<value"):
        return text
    try:
        (value,), _method = xmlrpc_client.loads("<params><param>%s</param></params>" % text)
    except Exception:  # an unparsable result is returned as it came
        return text
    return value


def task_result_ref(result):
    """The ref in a task result, which XAPI stores as an XML-RPC C(<value>): C(<value>OpaqueRef:...</value>)."""
    value = task_result_value(result)
    ok = isinstance(value, STRING_TYPES) and value.startswith("OpaqueRef:") and value != "OpaqueRef:NULL"
    return value if ok else None


# --- what XAPI's update errors mean -------------------------------------------------------------------------


def trust_fix(key_name):
    return (
        "Make the host trust the pack's signing key, once per host, as root in Dom0: on XenServer / Citrix "
        "Hypervisor run /opt/xensource/debug/import-update-key %s; on XCP-ng also copy the key file into "
        "/etc/firstboot.d/data/keys/ (the role dom0_suppack does both with dom0_suppack_trust_key: true); see %s"
        % (key_name, DOCS)
    )


UPDATE_HINTS = {
    "INVALID_SIGNATURE": (
        "XAPI refused {where}: INVALID_UPDATE (invalid signature): the host does not trust the key that signed the "
        "pack, or the pack is not signed. {trust}. Then run again."
    ),
    "INVALID_UPDATE": (
        "XAPI refused {where}: INVALID_UPDATE {params}: the ISO is not a valid update pack. Rebuild it with "
        "tools/build_pack.py (the role dom0_suppack does) and run again."
    ),
    "UPDATE_PRECHECK_FAILED_WRONG_SERVER_VERSION": (
        "The precheck of update {label} failed on {url}: UPDATE_PRECHECK_FAILED_WRONG_SERVER_VERSION, the host's "
        "version does not fit the pack (installed: {p1}, required: {p2}). Use a pack built for this platform, or "
        "update the host first."
    ),
    "UPDATE_PRECHECK_FAILED_GPGKEY_NOT_IMPORTED": (
        "The precheck of update {label} failed on {url}: the key file /etc/pki/rpm-gpg/{key} is missing in Dom0, so "
        "the signed RPMs cannot be checked. {trust}."
    ),
    "UPDATE_PRECHECK_FAILED_OUT_OF_SPACE": (
        "The precheck of update {label} failed on {url}: not enough free space on Dom0's / (available {p1} bytes, "
        "required {p2}). Free space in Dom0 (old logs in /var/log) and run again."
    ),
    "UPDATE_PRECHECK_FAILED_PREREQUISITE_MISSING": (
        "The precheck of update {label} failed on {url}: a prerequisite is missing ({p1}). Apply it first."
    ),
    "UPDATE_PRECHECK_FAILED_CONFLICT_PRESENT": (
        "The precheck of update {label} failed on {url}: it conflicts with {p1}. Remove that first."
    ),
    "UPDATE_PRECHECK_FAILED": (
        "The precheck of update {label} failed on {url}: {code} {params}. See /var/log/xensource.log in Dom0."
    ),
    "UPDATE_APPLY_FAILED": (
        "Applying update {label} failed on {url}: {p0}. See /var/log/yum.log and /var/log/xensource.log in Dom0, "
        "fix the cause and run again."
    ),
    "OTHER_OPERATION_IN_PROGRESS": (
        "Update {label} is being applied by someone else on {url}: run again when that has finished."
    ),
    "OUT_OF_SPACE": "XAPI cannot unpack update {label} on {url}: {p0} is full in Dom0. Free space there and run again.",
    "VDI_INCOMPATIBLE_TYPE": "XAPI refused {where}: the uploaded VDI has an unsupported type. Give another sr_uuid.",
    "CANNOT_FIND_UPDATE": "XAPI lost the uploaded copy of update {label} during {call} on {url}: run again.",
}


def explain_update_failure(details, label, url, call, key_name=KEY_NAME):
    """The message for an XAPI error from pool_update.introduce / precheck / apply: what happened and the fix.

    Args:
        details: the ErrorDescription (code first).
        label: the update's name-label.
        url: the XAPI URL.
        call: the call that failed.
        key_name: the name of the public key file of the pack.
    """
    code, params = (details[0], list(details[1:])) if details else ("UNKNOWN", [])
    values = dict(
        where="%s of update %s on %s" % (call, label, url),
        label=label,
        url=url,
        call=call,
        code=code,
        params=params,
        key=key_name,
        trust=trust_fix(key_name),
        p0=params[0] if params else "?",
        p1=params[1] if len(params) > 1 else "?",
        p2=params[2] if len(params) > 2 else "?",
    )
    if code == "INVALID_UPDATE" and "signature" in " ".join(params).lower():
        code = "INVALID_SIGNATURE"
    elif code.startswith("UPDATE_PRECHECK_FAILED") and code not in UPDATE_HINTS:
        code = "UPDATE_PRECHECK_FAILED"
    return UPDATE_HINTS.get(code, "XAPI error during {where}: {code} {params}").format(**values)
