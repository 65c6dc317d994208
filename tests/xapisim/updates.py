"""Reading an update pack out of an uploaded VDI, the way xapi's ``pool_update.introduce`` and ``apply`` do.

A real update ISO is opened with real tools: ``xorriso`` extracts the image (Rock Ridge names), ``update.xml``
gives the record's fields, the two detached signatures are checked, the comps group ``update`` and
``primary.xml.gz`` of the yum repository give the packages ``yum install @update`` would install (the group's
members and, transitively, the repository packages they require), and ``rpm2cpio | cpio`` unpacks them
(``rpm -qp`` gives each file's mode). The result says which plugin files (executable) land in
``/etc/xapi.d/plugins`` and which other files land in Dom0 with their mode (such as the stamp
``/var/update/applied/<uuid>``, or a plugin's library that is not executable, next to it).

Signatures: ``update.xml.asc`` and ``repodata/repomd.xml.asc`` must exist and be OpenPGP signatures. When the
simulated Dom0 has a trusted keyring (``<root>/opt/xensource/gpg``, made as ``import-update-key`` makes it),
they are verified with gpg as xapi does (status ``GOODSIG`` and ``TRUST_ULTIMATE``); without one the Dom0's
trust store is not modelled and any signature is accepted.

The simulator's own tests may still upload a small JSON or YAML manifest instead of an ISO (keys as in the
returned dict, ``plugins`` mapping file names to text); anything that is neither is not an update.
"""

import glob
import gzip
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import yaml

MAX_MANIFEST = 1 << 20
PLUGIN_DIR = "/etc/xapi.d/plugins/"
REPO_NS = {"repo": "http://linux.duke.edu/metadata/repo"}
PRIMARY_NS = {"c": "http://linux.duke.edu/metadata/common", "rpm": "http://linux.duke.edu/metadata/rpm"}
INVALID_PACKAGE = "Please upload a valid package."
INVALID_SIGNATURE = "Invalid signature"
MISSING_PACKAGES = "Missing package(s) in the update."


def read_update_from_vdi(path, keyring=None):
    """Return ``dict(uuid, name_label, name_description, version, key, after_apply_guidance,
    installation_size, plugins={filename: bytes}, files={absolute path: {"mode": int, "data": bytes}})``
    for the update stored in the VDI file ``path``; ``keyring`` is the simulated Dom0's trusted gpg home.

    Raises ``ValueError(info)`` for anything that xapi would refuse (xapi: ``INVALID_UPDATE [info]``).
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(16 * 2048 + 1)
            is_iso = handle.read(5) == b"CD001"
    except OSError:
        raise ValueError("the update VDI has no content") from None
    if not is_iso:
        return _read_manifest(path)
    work = tempfile.mkdtemp(prefix="xapisim-update-")
    try:
        return _read_iso(path, work, keyring)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, check=False, **kwargs)


def _read_iso(path, work, keyring):
    iso = os.path.join(work, "iso")
    proc = _run(["xorriso", "-osirrox", "on", "-indev", path, "-extract", "/", iso])
    if proc.returncode != 0 or not os.path.isdir(iso):
        raise ValueError(INVALID_PACKAGE)
    _run(["chmod", "-R", "u+w", iso])
    info = _parse_update_xml(os.path.join(iso, "update.xml"))
    for name in ("update.xml", "repodata/repomd.xml"):
        _check_signature(os.path.join(iso, name), keyring)
    plugins, files = {}, {}
    for index, rpm in enumerate(_packages_of_group(iso)):
        for target, (mode, data) in _unpack_rpm(rpm, os.path.join(work, "rpm%d" % index)).items():
            if target.startswith(PLUGIN_DIR) and "/" not in target[len(PLUGIN_DIR) :] and mode & 0o111:
                plugins[target[len(PLUGIN_DIR) :]] = data
            else:
                files[target] = {"mode": mode, "data": data}
    info.update(plugins=plugins, files=files)
    return info


def _parse_update_xml(path):
    """The checks of xapi_pool_update.ml:parse_update_info, with its INVALID_UPDATE messages."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        raise ValueError("missing update document (update.xml) in the package.") from None
    if root.tag != "update":
        raise ValueError("missing <update> in update.xml")
    fields = {}
    for attribute in ("uuid", "name-label", "version"):
        fields[attribute] = root.get(attribute, "")
        if not fields[attribute]:
            raise ValueError("missing <%s> in update.xml" % attribute)
    description = root.find("name-description")
    if description is None or not (description.text or "").strip():
        raise ValueError("missing <name-description> in update.xml")
    guidance = [g for g in root.get("after-apply-guidance", "").split(",") if g]
    if any(g not in ("restartHVM", "restartPV", "restartHost", "restartXAPI") for g in guidance):
        guidance = []  # xapi drops the whole list for one unknown token
    size = root.get("installation-size", "0")
    return {
        "uuid": fields["uuid"],
        "name_label": fields["name-label"],
        "name_description": description.text.strip(),
        "version": fields["version"],
        "key": os.path.basename(root.get("key", "")),
        "after_apply_guidance": guidance,
        "installation_size": size if size.isdigit() else "0",
    }


def _check_signature(path, keyring):
    signature = path + ".asc"
    try:
        with open(signature, "rb") as handle:
            head = handle.read(64)
    except OSError:
        raise ValueError(INVALID_SIGNATURE) from None
    if not (head.startswith(b"-----BEGIN PGP SIGNATURE-----") or (head[:1] and head[0] & 0x80)):
        raise ValueError(INVALID_SIGNATURE)
    if not keyring or not os.path.isdir(keyring):
        return
    ring = os.path.join(keyring, "pubring.kbx")
    if not os.path.exists(ring):
        ring = os.path.join(keyring, "pubring.gpg")
    gpg = ["gpg", "--batch", "--no-autostart", "--homedir", keyring, "--no-default-keyring", "--keyring", ring]
    status = _run([*gpg, "--status-fd", "1", "--verify", signature, path], text=True).stdout
    if "[GNUPG:] GOODSIG" not in status or "[GNUPG:] TRUST_ULTIMATE" not in status:
        raise ValueError(INVALID_SIGNATURE)


def _packages_of_group(iso):
    """The package files ``yum install @update`` installs: the group's members and what they require."""
    try:
        repomd = ET.parse(os.path.join(iso, "repodata", "repomd.xml")).getroot()
        locations = {
            data.get("type"): data.find("repo:location", REPO_NS).get("href")
            for data in repomd.findall("repo:data", REPO_NS)
        }
        comps = ET.parse(os.path.join(iso, locations["group"])).getroot()
        with gzip.open(os.path.join(iso, locations["primary"])) as handle:
            primary = ET.parse(handle).getroot()
    except (OSError, ET.ParseError, KeyError, AttributeError, TypeError):
        raise ValueError(MISSING_PACKAGES) from None
    packages = {}
    for package in primary.findall("c:package", PRIMARY_NS):
        requires = package.find("c:format/rpm:requires", PRIMARY_NS)
        packages[package.findtext("c:name", namespaces=PRIMARY_NS)] = (
            package.find("c:location", PRIMARY_NS).get("href"),
            [e.get("name") for e in (requires if requires is not None else [])],
        )
    group = next((g for g in comps.findall("group") if g.findtext("id") == "update"), None)
    if group is None:
        raise ValueError(MISSING_PACKAGES)
    wanted = [p.text for p in group.findall("packagelist/packagereq")]
    chosen, files = set(), []
    while wanted:
        name = wanted.pop(0)
        if name in chosen:
            continue
        if name not in packages:
            raise ValueError(MISSING_PACKAGES)
        chosen.add(name)
        href, requires = packages[name]
        files.append(os.path.join(iso, href))
        wanted += [r for r in requires if r in packages]
    if not all(os.path.isfile(f) for f in files):
        raise ValueError(MISSING_PACKAGES)
    return files


def _unpack_rpm(rpm, target):
    """``{absolute path: (mode, bytes)}`` of the regular files in an RPM (rpm2cpio | cpio, modes from rpm)."""
    os.makedirs(target)
    with open(rpm, "rb") as handle:
        payload = _run(["rpm2cpio"], stdin=handle).stdout
    proc = _run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=payload, cwd=target)
    query = _run(
        ["rpm", "-qp", "--nosignature", "--nodigest", "--qf", "[%{FILEMODES:octal} %{FILENAMES}\n]", rpm], text=True
    )
    if proc.returncode != 0 or query.returncode != 0:
        raise ValueError(MISSING_PACKAGES)
    modes = dict((line.split(" ", 1)[1], int(line.split(" ", 1)[0], 8)) for line in query.stdout.splitlines())
    found = {}
    for local in glob.glob(os.path.join(target, "**"), recursive=True):
        if os.path.isfile(local) and not os.path.islink(local):
            name = "/" + os.path.relpath(local, target)
            with open(local, "rb") as handle:
                found[name] = (modes.get(name, 0o100644) & 0o7777, handle.read())
    return found


def _read_manifest(path):
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST + 1)
    except OSError:
        raise ValueError("the update VDI has no content") from None
    try:
        doc = yaml.safe_load(data.decode("utf-8")) if len(data) <= MAX_MANIFEST else None
    except (UnicodeDecodeError, yaml.YAMLError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("name_label"), str):
        raise ValueError(INVALID_PACKAGE)
    plugins = doc.get("plugins") or {}
    if not isinstance(plugins, dict) or not all(isinstance(v, str) for v in plugins.values()):
        raise ValueError("not a valid update: plugins must map file names to text")
    guidance = doc.get("after_apply_guidance") or []
    return {
        "uuid": str(doc.get("uuid") or ""),
        "name_label": doc["name_label"],
        "name_description": str(doc.get("name_description", "")),
        "version": str(doc.get("version", "")),
        "key": str(doc.get("key", "")),
        "after_apply_guidance": [str(g) for g in guidance],
        "installation_size": str(doc.get("installation_size", len(data))),
        "plugins": {str(name): text.encode("utf-8") for name, text in plugins.items()},
        "files": {},
    }
