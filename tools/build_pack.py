#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Dom0 supplemental pack of the xenserver.openstack collection.

Two formats:

``update`` (default)
    The update ISO that ``pool_update.introduce`` accepts on XenServer 7.1+, Citrix Hypervisor 8.x and
    XCP-ng 8.x: ``update.xml`` (+ ``.asc``), a yum repository (``Packages/``, ``repodata/`` with the comps group
    ``update``, ``repomd.xml.asc``), a payload RPM installing every file under the collection's ``dom0/`` tree
    at the same path in Dom0 (plugins in /etc/xapi.d/plugins with mode 0755, the ``*.py`` library there 0644), a
    payload RPM with the Dom0 plugins of nova's release (``--plugin-set``, or chosen by ``--nova-version``; see
    dom0_plugin_sets.py), an optional payload RPM with extra plugins, and the ``update-<label>`` RPM holding the
    stamp ``/var/update/applied/<uuid>``.
``legacy``
    The supplemental pack of XenServer 6.5 / 7.0 (``XS-REPOSITORY``, ``XS-PACKAGES``, an ``install`` script and
    the payload RPM with MD5 file digests), for ``xe-install-supplemental-pack`` in Dom0.

XAPI accepts an update ISO only when ``update.xml`` and ``repomd.xml`` carry detached signatures by a key the
host trusts: give ``--key`` (and ``--gpg-home``). docs/suppack.md says how a host is made to trust the key.

A build is known by its content. Its version is ``<collection version>-<release>`` and its RPMs have the
collection's version and that release, where the release is ``<n>.<content id>``: the content id is the start of
the digest of every file the pack installs, and n is one more than the highest release of this collection version
that ``--applied-version`` names (the versions of this label applied on the hosts), or the n of the applied build
with the same content. So a pack with other plugins always upgrades the one applied (XAPI applies an update with
``yum upgrade``, which does nothing for an RPM of the same version and release), and the same content keeps its
version. The build is reproducible: the same inputs and SOURCE_DATE_EPOCH (and signing key) give the same ISO,
byte for byte. The result is described as JSON on stdout; ``changed`` is false when the output file already had
exactly that content.

Needs rpmbuild/rpmsign (Debian package rpm), createrepo_c (createrepo-c), xorriso and gpg (gnupg).

Example::

    python3 tools/build_pack.py --gpg-home ~/.gnupg-xso --key 'xenserver.openstack packs' --output /tmp/packs
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from xml.sax.saxutils import escape, quoteattr

import dom0_plugin_sets

LABEL = "xenserver-openstack"
LEGACY_ORIGINATOR = "xenserver.openstack"
DESCRIPTION = "OpenStack Dom0 plugins of the xenserver.openstack Ansible collection"
KEY_NAME = "RPM-GPG-KEY-xenserver-openstack"
PLUGIN_DIR = "/etc/xapi.d/plugins"
CONTENT_ID_LENGTH = 12
# 2025-01-01T00:00:00Z: the timestamp of every file when SOURCE_DATE_EPOCH is not set.
DEFAULT_EPOCH = 1735689600
UUID_NAMESPACE = uuid.UUID("0b6f2c1e-8f0a-4d63-9a57-2c4e9f3d7b15")
GUIDANCE = ("restartHVM", "restartPV", "restartHost", "restartXAPI")
SAFE_PATH = re.compile(r"^(/[A-Za-z0-9_][A-Za-z0-9._+-]*)+$")
SAFE_VERSION = re.compile(r"^[0-9][A-Za-z0-9._+~]*$")
SAFE_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")
SKIPPED = re.compile(r"(^\.|^__pycache__$|\.py[co]$|~$)")
TOOLS = {"rpmbuild": "rpm", "rpmsign": "rpm", "createrepo_c": "createrepo-c", "xorriso": "xorriso", "gpg": "gnupg"}


class BuildError(Exception):
    """A build problem; the message says what to fix."""


# --- inputs -------------------------------------------------------------------------------------------------


def galaxy_version(source):
    """The collection version: from galaxy.yml (a plain ``version: X`` line) in a source tree, or from MANIFEST.json
    in an installed collection (ansible-galaxy and the Fuel plugin's copy keep no galaxy.yml)."""
    path = os.path.join(source, "galaxy.yml")
    manifest = os.path.join(source, "MANIFEST.json")
    if not os.path.exists(path) and os.path.exists(manifest):
        try:
            with open(manifest) as handle:
                version = json.load(handle)["collection_info"]["version"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BuildError("cannot read the version in %s (%s); give --version" % (manifest, error)) from None
        if not isinstance(version, str) or not version:
            raise BuildError("%s has no collection_info.version; give --version" % manifest)
        return version
    try:
        with open(path) as handle:
            for line in handle:
                match = re.match(r"^version:\s*['\"]?([^'\"\s#]+)", line)
                if match:
                    return match.group(1)
    except OSError as error:
        raise BuildError("cannot read %s: %s; give --source or --version" % (path, error.strerror)) from None
    raise BuildError("%s has no version line; give --version" % path)


class PackFile:
    """One file the pack installs in Dom0: its absolute path there, its mode and its bytes."""

    def __init__(self, path, mode, data, rpm):
        self.path, self.mode, self.data, self.rpm = path, mode, data, rpm


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def dom0_mode(target, executable):
    """The mode of a file of the collection's ``dom0/`` tree in Dom0. In the plugin directory a ``*.py`` file is a
    library the plugins import, 0644: xapi runs any executable entry there by name, so a library must not be one;
    every other file there is a plugin, 0755. Elsewhere (the plugin's jobs in /usr/libexec) the file's own exec
    bit decides."""
    if os.path.dirname(target) == PLUGIN_DIR:
        return 0o644 if target.endswith(".py") else 0o755
    return 0o755 if executable else 0o644


def dom0_files(source, rpm):
    """Every file under ``<source>/dom0`` at the same path in Dom0, with the mode of ``dom0_mode``."""
    top = os.path.join(source, "dom0")
    if not os.path.isdir(top):
        raise BuildError("%s does not exist: --source must be the collection root" % top)
    files = []
    for directory, subdirs, names in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if not SKIPPED.search(d))
        for name in sorted(n for n in names if not SKIPPED.search(n)):
            local = os.path.join(directory, name)
            target = "/" + os.path.relpath(local, top).replace(os.sep, "/")
            if not os.path.isfile(local) or os.path.islink(local):
                raise BuildError("%s is not a regular file: the pack carries regular files only" % local)
            mode = dom0_mode(target, os.stat(local).st_mode & 0o111)
            files.append(PackFile(target, mode, _read(local), rpm))
    if not files:
        raise BuildError("%s holds no files" % top)
    return files


def extra_plugin_files(directory, rpm):
    """Plugins from an extra source: the regular files directly in ``directory`` (or in its
    ``etc/xapi.d/plugins``, the layout of os-xenapi's ``os_xenapi/dom0``), all installed with mode 0755."""
    nested = os.path.join(directory, "etc", "xapi.d", "plugins")
    if os.path.isdir(nested):
        directory = nested
    if not os.path.isdir(directory):
        raise BuildError("--extra-plugins %s is not a directory" % directory)
    files = []
    for name in sorted(os.listdir(directory)):
        local = os.path.join(directory, name)
        if SKIPPED.search(name) or not os.path.isfile(local):
            continue
        files.append(PackFile(PLUGIN_DIR + "/" + name, 0o755, _read(local), rpm))
    if not files:
        raise BuildError("--extra-plugins %s holds no plugin files" % directory)
    return files


def check_files(files):
    seen = {}
    for item in files:
        if not SAFE_PATH.match(item.path):
            raise BuildError("%s: only letters, digits and ._+- are allowed in the paths the pack installs" % item.path)
        if item.path in seen:
            raise BuildError("%s comes from both %s and %s: rename one" % (item.path, seen[item.path], item.rpm))
        seen[item.path] = item.rpm


def content_digest(label, version, files):
    digest = hashlib.sha256(("%s\0%s\0" % (label, version)).encode())
    for item in sorted(files, key=lambda f: f.path):
        digest.update(("%s\0%s\0%o\0%d\0" % (item.rpm, item.path, item.mode, len(item.data))).encode())
        digest.update(item.data)
    return digest.hexdigest()


# --- tools --------------------------------------------------------------------------------------------------


def check_tools(names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        packages = sorted(set(TOOLS[n] for n in missing))
        raise BuildError(
            "missing build tools: %s. On Debian/Ubuntu: apt-get install %s" % (", ".join(missing), " ".join(packages))
        )


def run(argv, env=None, cwd=None):
    """Run a build tool; a failure raises BuildError with its output."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    except OSError as error:
        raise BuildError("cannot run %s: %s" % (argv[0], error.strerror)) from None
    if proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-3000:]
        raise BuildError("%s failed (exit %d): %s" % (" ".join(argv[:3]), proc.returncode, output))
    return proc.stdout


def tool_env(epoch, gpg_home=None):
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), LC_ALL="C", TZ="UTC")
    if gpg_home:
        env["GNUPGHOME"] = gpg_home
    return env


# --- signing ------------------------------------------------------------------------------------------------


class Signer:
    """A GPG signing key, used with a frozen clock so that signatures are reproducible."""

    def __init__(self, gpg_home, key, epoch):
        self.home = os.path.abspath(os.path.expanduser(gpg_home or os.environ.get("GNUPGHOME") or "~/.gnupg"))
        listing = self._gpg(["--with-colons", "--fixed-list-mode", "--list-secret-keys", key], epoch)
        primary = next((line.split(":") for line in listing.splitlines() if line.startswith("sec:")), None)
        fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
        if primary is None or not fingerprints:
            raise BuildError("no secret key '%s' in %s: give --key and --gpg-home" % (key, self.home))
        if len([line for line in listing.splitlines() if line.startswith("sec:")]) > 1:
            raise BuildError("--key '%s' matches several secret keys in %s: give its fingerprint" % (key, self.home))
        if primary[3] not in ("1", "3"):
            raise BuildError(
                "key %s is not an RSA key: Dom0's gpg 2.0 and rpm 4.11 verify RSA signatures only" % fingerprints[0]
            )
        self.fingerprint = fingerprints[0]
        # A signature may not be older than its key: sign at the later of the two.
        self.time = max(int(epoch), int(primary[5]) + 1)

    def _gpg(self, args, epoch=None):
        return run(["gpg", "--batch", "--no-tty", "--homedir", self.home, *args], env=tool_env(epoch or 0))

    def detach_sign(self, path):
        self._gpg(
            [
                "--faked-system-time",
                "%d!" % self.time,
                "--digest-algo",
                "SHA256",
                "--armor",
                "--local-user",
                self.fingerprint,
                "--output",
                path + ".asc",
                "--detach-sign",
                path,
            ]
        )

    def public_key(self):
        return self._gpg(["--armor", "--export-options", "export-minimal", "--export", self.fingerprint])

    def sign_rpms(self, paths, epoch):
        extra = "--batch --no-tty --faked-system-time %d!" % self.time
        run(
            [
                "rpmsign",
                "--addsign",
                "--define",
                "__gpg %s" % shutil.which("gpg"),
                "--define",
                "_gpg_name %s" % self.fingerprint,
                "--define",
                "_gpg_digest_algo sha256",
                "--define",
                "_gpg_sign_cmd_extra_args %s" % extra,
                *paths,
            ],
            env=tool_env(epoch, self.home),
        )

    def self_check(self, paths, work):
        """Verify the signatures the way XAPI does: GOODSIG and TRUST_ULTIMATE in a keyring that trusts
        only this key, ultimately."""
        home = tempfile.mkdtemp(prefix="verify-", dir=work)
        keyfile = os.path.join(home, "key.asc")
        with open(keyfile, "w") as handle:
            handle.write(self.public_key())
        gpg = ["gpg", "--batch", "--no-tty", "--no-autostart", "--homedir", home]  # no agent: nothing secret here
        env = tool_env(self.time + 1)
        run([*gpg, "--import", keyfile], env=env)
        trust = subprocess.run(
            [*gpg, "--import-ownertrust"],
            input="%s:6:\n" % self.fingerprint,
            text=True,
            capture_output=True,
            check=False,
        )
        if trust.returncode != 0:
            raise BuildError("cannot set owner trust in the self-check keyring: %s" % trust.stderr.strip())
        for path in paths:
            proc = subprocess.run(
                [*gpg, "--status-fd", "1", "--verify", path + ".asc", path], capture_output=True, text=True, check=False
            )
            if "[GNUPG:] GOODSIG" not in proc.stdout or "[GNUPG:] TRUST_ULTIMATE" not in proc.stdout:
                raise BuildError("self-check: the signature of %s does not verify: %s" % (path, proc.stderr))


# --- RPMs ---------------------------------------------------------------------------------------------------


class Package:
    """One binary RPM of the pack: its name, what it says about itself, its files and its requirements."""

    def __init__(self, name, summary, description, files, *, requires=(), posttrans=""):
        self.name, self.summary, self.description = name, summary, description
        self.files, self.requires, self.posttrans = files, list(requires), posttrans


def rpm_spec(version, release, packages):
    """One spec for all packages (the first is the main package, the others sub-packages)."""
    main = packages[0]
    lines = [
        "Name: %s" % main.name,
        "Version: %s" % version,
        "Release: %s" % release,
        "License: GPL-3.0-or-later",
        "BuildArch: noarch",
    ]
    for package in packages:
        suffix = "" if package is main else " -n %s" % package.name
        if package is not main:
            lines += ["", "%%package%s" % suffix]
        lines += ["Summary: %s" % package.summary, "AutoReqProv: no"]
        lines += ["Requires: %s" % r for r in package.requires]
        lines += ["", "%%description%s" % suffix, package.description]
    lines += ["", "%prep", "%build", "%install"]
    for package in packages:
        lines += [
            "install -D -m %04o %s %%{buildroot}%s" % (f.mode, shlex.quote(f.source), f.path) for f in package.files
        ]
    for package in packages:
        suffix = "" if package is main else " -n %s" % package.name
        lines += ["", "%%files%s" % suffix, "%defattr(-,root,root,-)"]
        lines += ["%%attr(%04o,root,root) %s" % (f.mode, f.path) for f in package.files]
        if package.posttrans:
            lines += ["", "%%posttrans%s" % suffix, package.posttrans]
    return "\n".join(lines) + "\n"


def build_rpms(work, packages, *, version, release, epoch, legacy=False):
    """Build the noarch RPMs (gzip payload, one rpmbuild run); return their paths in the order given."""
    top = os.path.join(work, "rpmbuild")
    stage = os.path.join(top, "STAGE")
    for item in [f for package in packages for f in package.files]:
        item.source = os.path.join(stage, item.path.lstrip("/"))
        os.makedirs(os.path.dirname(item.source), exist_ok=True)
        with open(item.source, "wb") as handle:
            handle.write(item.data)
    spec = os.path.join(top, packages[0].name + ".spec")
    with open(spec, "w") as handle:
        handle.write(rpm_spec(version, release, packages))
    digest = "1" if legacy else "8"  # MD5 for XenServer 6.5's rpm 4.4, SHA-256 otherwise
    defines = {
        "_topdir": top,
        "_dbpath": os.path.join(work, "rpmdb"),
        "_binary_payload": "w9.gzdio",
        "_binary_filedigest_algorithm": digest,
        "_source_filedigest_algorithm": digest,
        "_buildhost": "xenserver-openstack-build",
        "use_source_date_epoch_as_buildtime": "1",
        "clamp_mtime_to_source_date_epoch": "1",
        "__os_install_post": "%{nil}",
        "debug_package": "%{nil}",
        "_build_id_links": "none",
    }
    argv = ["rpmbuild", "-bb", "--quiet"]
    for key, value in defines.items():
        argv += ["--define", "%s %s" % (key, value)]
    run([*argv, spec], env=tool_env(epoch))
    paths = [os.path.join(top, "RPMS", "noarch", "%s-%s-%s.noarch.rpm" % (p.name, version, release)) for p in packages]
    for path in paths:
        if not os.path.isfile(path):
            raise BuildError("rpmbuild made no %s" % path)
    return paths


# Payload RPMs, in the order they are listed: suffix of the name (after the label), summary.
PAYLOADS = (
    ("-plugins", "Dom0 files of xenserver.openstack"),
    ("-nova-plugins", "Dom0 XAPI plugins that nova and neutron call"),
    ("-extra-plugins", "Extra Dom0 XAPI plugins for OpenStack"),
)


def payload_suffix(name):
    return max((suffix for suffix, _summary in PAYLOADS if name.endswith(suffix)), key=len)


def payload_packages(files):
    """One package per payload RPM named in the files: the collection's, nova's plugin set, the extra plugins."""
    order = [suffix for suffix, _summary in PAYLOADS]
    names = sorted(set(f.rpm for f in files), key=lambda n: order.index(payload_suffix(n)))
    return [
        Package(name, dict(PAYLOADS)[payload_suffix(name)], DESCRIPTION + ".", [f for f in files if f.rpm == name])
        for name in names
    ]


# --- metadata -----------------------------------------------------------------------------------------------


def update_xml(label, update_uuid, version, *, size, guidance, key, description=DESCRIPTION):
    attributes = [
        ("name-label", label),
        ("uuid", update_uuid),
        ("version", version),
        ("installation-size", str(size)),
        ("after-apply-guidance", ",".join(guidance)),
        ("enforce-homogeneity", "false"),
    ]
    if key:
        attributes.append(("key", key))
    text = " ".join("%s=%s" % (k, quoteattr(v)) for k, v in attributes)
    return '<?xml version="1.0" ?>\n<update %s>\n  <name-description>%s</name-description>\n</update>\n' % (
        text,
        escape(description),
    )


def comps_xml(members):
    required = "\n".join('      <packagereq type="mandatory">%s</packagereq>' % m for m in members)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">\n'
        "<comps>\n  <group>\n    <id>update</id>\n    <name>update</name>\n"
        "    <description>%s</description>\n    <default>true</default>\n"
        "    <uservisible>true</uservisible>\n    <packagelist>\n%s\n    </packagelist>\n  </group>\n</comps>\n"
        % (escape(DESCRIPTION), required)
    )


def xs_repository(originator, label, version, description):
    return '<?xml version="1.0" ?>\n<repository originator=%s name=%s product="XCP" version=%s>\n' % (
        quoteattr(originator),
        quoteattr(label),
        quoteattr(version),
    ) + "  <description>%s</description>\n</repository>\n" % escape(description)


def xs_packages(rpms):
    lines = []
    for path, name in rpms:
        data = _read(path)
        lines.append(
            '  <package label="%s" type="rpm" size="%d" md5="%s">%s</package>'
            % (name, len(data), hashlib.md5(data).hexdigest(), os.path.basename(path))
        )
    return '<?xml version="1.0" ?>\n<packages>\n%s\n</packages>\n' % "\n".join(lines)


LEGACY_INSTALL = r"""#!/bin/sh
# Installer of the xenserver.openstack supplemental pack for XenServer 6.5 / 7.0, run in Dom0 by
# xe-install-supplemental-pack from the mounted ISO. Never prompts (an optional -b is accepted).
# Exit codes: 0 installed, 1 a package is missing or corrupt or failed to install.
set -u
cd "$(dirname "$0")" || exit 1
KEY=@KEY@
for entry in @PACKAGES@; do
    file=${entry%%|*}; rest=${entry#*|}; name=${rest%%|*}; md5=${rest#*|}
    [ -f "$file" ] || { echo "FATAL: $file is missing from the pack" >&2; exit 1; }
    [ "$(md5sum "$file" | cut -d' ' -f1)" = "$md5" ] || { echo "FATAL: $file is corrupt" >&2; exit 1; }
    have=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$name" 2>/dev/null)
    if [ "$have" = "$(rpm -qp --qf '%{VERSION}-%{RELEASE}' "$file")" ]; then
        echo "$name is already installed at this version"
        continue
    fi
    rpm -Uhv "$file" || { echo "FATAL: packages failed to install" >&2; exit 1; }
done
mkdir -p "/etc/xensource/installed-repos/$KEY" || exit 1
cp XS-REPOSITORY XS-PACKAGES "/etc/xensource/installed-repos/$KEY/" || exit 1
HOST_UUID=$(sed -n "s/^INSTALLATION_UUID='\{0,1\}\([^']*\)'\{0,1\}$/\1/p" /etc/xensource-inventory)
xe host-refresh-pack-info host-uuid="$HOST_UUID" || exit 1
echo "Pack installation successful."
"""

LEGACY_INSTALL_SH = '#!/bin/sh\nexec "$(dirname "$0")/install" "$@"\n'


# --- ISO ----------------------------------------------------------------------------------------------------


def set_times(top, epoch):
    for directory, subdirs, names in os.walk(top, topdown=False):
        for name in names + subdirs:
            os.utime(os.path.join(directory, name), (epoch, epoch), follow_symlinks=False)
    os.utime(top, (epoch, epoch))


def make_iso(isoroot, output, volume, epoch):
    """An ISO 9660 image with Rock Ridge (real names and modes) and Joliet, reproducible."""
    set_times(isoroot, epoch)
    run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-quiet",
            "-r",
            "-J",
            "-joliet-long",
            "-no-pad",  # no 300 KiB of zeros for CD drives: less to upload, and to pass to Dom0 on legacy hosts
            "-V",
            volume[:32],
            "-o",
            output,
            isoroot,
        ],
        env=tool_env(epoch),
    )


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


# --- the build ----------------------------------------------------------------------------------------------


def build_update(work, isoroot, args, *, files, version, release, update_uuid, signer):
    payloads = payload_packages(files)
    size = sum(len(f.data) for f in files)
    key = args.key_name if signer and not args.no_key_attribute else ""
    full = "%s-%s" % (version, release)
    description = describe(args)
    document = update_xml(
        args.label, update_uuid, full, size=size, guidance=args.guidance, key=key, description=description
    )
    # The stamp XAPI reads back after apply: the same document, without the key (as Citrix's builder writes it).
    stamp_text = update_xml(
        args.label, update_uuid, full, size=size, guidance=args.guidance, key="", description=description
    )
    stamp = PackFile("/var/update/applied/" + update_uuid, 0o644, stamp_text.encode(), "update-" + args.label)
    meta = Package(
        "update-" + args.label,
        "Update stamp of %s %s" % (args.label, full),
        "Marks the update %s %s as applied for XAPI." % (args.label, full),
        [stamp],
        requires=["%s >= %s" % (p.name, full) for p in payloads],
        posttrans="echo %s >> /run/reboot-required.hfxs" % update_uuid if "restartHost" in args.guidance else "",
    )
    packages = build_rpms(work, [*payloads, meta], version=version, release=release, epoch=args.source_date_epoch)
    if key:
        signer.sign_rpms(packages, args.source_date_epoch)
    os.makedirs(os.path.join(isoroot, "Packages"))
    for path in packages:
        shutil.copy(path, os.path.join(isoroot, "Packages"))
    groups = os.path.join(work, "groups.xml")
    write(groups, comps_xml([meta.name]))
    write(os.path.join(isoroot, "update.xml"), document)
    set_times(isoroot, args.source_date_epoch)  # primary.xml records each package file's mtime
    run(
        [
            "createrepo_c",
            "--quiet",
            "-g",
            groups,
            "--revision",
            str(args.source_date_epoch),
            "--set-timestamp-to-revision",
            isoroot,
        ],
        env=tool_env(args.source_date_epoch),
    )
    metadata = [os.path.join(isoroot, "update.xml"), os.path.join(isoroot, "repodata", "repomd.xml")]
    if signer:
        for path in metadata:
            signer.detach_sign(path)
        write(os.path.join(isoroot, args.key_name), signer.public_key())
        signer.self_check(metadata, work)
    return [os.path.basename(p) for p in packages]


def build_legacy(work, isoroot, args, files, *, version, release):
    payloads = payload_packages(files)
    rpms = []
    built = build_rpms(work, payloads, version=version, release=release, epoch=args.source_date_epoch, legacy=True)
    for package, path in zip(payloads, built):
        shutil.copy(path, isoroot)
        rpms.append((os.path.join(isoroot, os.path.basename(path)), package.name))
    repository = xs_repository(LEGACY_ORIGINATOR, args.label, "%s-%s" % (version, release), describe(args))
    write(os.path.join(isoroot, "XS-REPOSITORY"), repository)
    write(os.path.join(isoroot, "XS-PACKAGES"), xs_packages(rpms))
    entries = " ".join(
        shlex.quote("%s|%s|%s" % (os.path.basename(p), n, hashlib.md5(_read(p)).hexdigest())) for p, n in rpms
    )
    script = LEGACY_INSTALL.replace("@KEY@", shlex.quote("%s:%s" % (LEGACY_ORIGINATOR, args.label)))
    write(os.path.join(isoroot, "install"), script.replace("@PACKAGES@", entries), 0o755)
    write(os.path.join(isoroot, "install.sh"), LEGACY_INSTALL_SH, 0o755)
    return [os.path.basename(path) for path, _name in rpms]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_path(args, version):
    """``<label>-<version>[-<plugin set>][-legacy].iso``: one file per plugin set, whatever its release."""
    suffix = ("-" + args.plugin_set if args.plugin_set else "") + ("-legacy" if args.format == "legacy" else "")
    name = "%s-%s%s.iso" % (args.label, version, suffix)
    if args.output is None:
        return os.path.join(args.source, ".build", "suppack", name)
    if args.output.endswith(".iso"):
        return os.path.abspath(args.output)
    return os.path.join(os.path.abspath(args.output), name)


def collect(args, version):
    """The files of the pack, checked."""
    if not SAFE_VERSION.match(version):
        raise BuildError("version '%s' must start with a digit and hold only letters, digits and ._+~" % version)
    if not SAFE_LABEL.match(args.label):
        raise BuildError("label '%s' may hold only letters, digits, _ and -" % args.label)
    files = dom0_files(args.source, args.label + "-plugins")
    if args.plugin_set:
        try:
            plugins = dom0_plugin_sets.plugin_files(args.sets, args.plugin_set, args.plugin_archives, args.cache_dir)
        except dom0_plugin_sets.PluginSetError as error:
            raise BuildError("plugin set %s: %s" % (args.plugin_set, error)) from None
        files += [
            PackFile(PLUGIN_DIR + "/" + name, 0o755, data, args.label + "-nova-plugins")
            for name, data in sorted(plugins.items())
        ]
    if args.extra_plugins:
        files += extra_plugin_files(os.path.abspath(args.extra_plugins), args.label + "-extra-plugins")
    check_files(files)
    tools = ["rpmbuild", "xorriso"]
    if args.format == "update":
        tools += ["createrepo_c"] + (["gpg", "rpmsign"] if args.key else [])
    check_tools(tools)
    return files


def install_output(image, output):
    """Move the image to the output path unless that already holds exactly it; return whether it changed."""
    if os.path.isfile(output) and sha256_file(output) == sha256_file(image):
        return False
    shutil.move(image, output + ".part")
    os.replace(output + ".part", output)
    return True


def install_public_key(signer, path):
    text = signer.public_key()
    if not (os.path.isfile(path) and _read(path).decode() == text):
        write(path, text)
    return path


def describe(args):
    """The pack's description: what it carries."""
    if not args.plugin_set:
        return DESCRIPTION
    release = args.sets["sets"][args.plugin_set]["release"]
    return "%s, with the Dom0 plugins of %s (set %s)" % (DESCRIPTION, release, args.plugin_set)


def choose_release(version, content, applied):
    """The release of a build of ``version`` with this content id, given the versions applied on the hosts: the
    release of an applied build with the same content, else one more than the highest applied release of this
    version (a build from before content ids counts as release 1)."""
    highest = 0
    for item in applied:
        base, _dash, release = item.partition("-")
        if base != version:
            continue
        number, _dot, other = release.partition(".")
        number = int(number) if number.isdigit() else 1
        if other == content:
            return "%d.%s" % (number, content)
        highest = max(highest, number)
    return "%d.%s" % (highest + 1, content)


def build(args):
    version = args.version or galaxy_version(args.source)
    files = collect(args, version)
    legacy = args.format == "legacy"
    digest = content_digest(args.label, version, files)
    release = choose_release(version, digest[:CONTENT_ID_LENGTH], args.applied_version)
    full = "%s-%s" % (version, release)
    update_uuid = args.uuid or str(uuid.uuid5(UUID_NAMESPACE, "%s/%s/%s" % (args.label, full, digest)))
    signer = Signer(args.gpg_home, args.key, args.source_date_epoch) if args.key and not legacy else None
    output = output_path(args, version)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    inputs = build_inputs(args, full, digest, update_uuid, signer)
    previous = previous_build(output, inputs)
    if previous is not None:
        return previous
    work = tempfile.mkdtemp(prefix="xso-pack-", dir=args.work_dir)
    try:
        isoroot = os.path.join(work, "iso")
        os.makedirs(isoroot)
        if legacy:
            packages = build_legacy(work, isoroot, args, files, version=version, release=release)
        else:
            packages = build_update(
                work,
                isoroot,
                args,
                files=files,
                version=version,
                release=release,
                update_uuid=update_uuid,
                signer=signer,
            )
        image = os.path.join(work, "pack.iso")
        make_iso(isoroot, image, args.label + "-" + full, args.source_date_epoch)
        changed = install_output(image, output)
        public_key = (
            install_public_key(signer, os.path.join(os.path.dirname(output), args.key_name)) if signer else None
        )
    finally:
        if not args.keep_work_dir:
            shutil.rmtree(work, ignore_errors=True)
    result = dict(
        changed=changed,
        iso=output,
        format=args.format,
        label=args.label,
        version=full,
        release=release,
        content=digest[:CONTENT_ID_LENGTH],
        plugin_set=args.plugin_set or None,
        plugin_version=args.sets["sets"][args.plugin_set]["plugin_version"] if args.plugin_set else None,
        sha256=sha256_file(output),
        size=os.path.getsize(output),
        signed=bool(signer),
        key_fingerprint=signer.fingerprint if signer else None,
        key_name=args.key_name if signer else None,
        public_key=public_key,
        packages=packages,
        files=[dict(path=f.path, mode="%04o" % f.mode) for f in sorted(files, key=lambda f: f.path)],
    )
    if legacy:
        result["legacy_key"] = "%s:%s" % (LEGACY_ORIGINATOR, args.label)
    else:
        result["uuid"] = update_uuid
    write(stamp_path(output), json.dumps(dict(inputs=inputs, result=dict(result, changed=False)), sort_keys=True))
    if args.keep_work_dir:
        result["work_dir"] = work
    return result


# --- the record of the last build: an unchanged build is not made again ------------------------------------------


def stamp_path(output):
    return output + ".build.json"


def build_inputs(args, version, digest, update_uuid, signer):
    """Everything the ISO is made of: the options, the files' digest, the signing key and time, this tool itself."""
    # Not the applied versions (they decided the release, which is in the version) nor the tables of sets.
    skipped = ("keep_work_dir", "work_dir", "applied_version", "sets", "cache_dir")
    options = dict((key, value) for key, value in vars(args).items() if key not in skipped)
    return dict(
        options=options,
        version=version,
        digest=digest,
        uuid=update_uuid,
        key=[signer.fingerprint, signer.time] if signer else None,
        tool=hashlib.sha256(_read(os.path.abspath(__file__))).hexdigest(),
    )


def previous_build(output, inputs):
    """The result of the last build when it had the same inputs and its ISO (and public key) are still there."""
    try:
        with open(stamp_path(output)) as handle:
            stamp = json.load(handle)
        result = stamp["result"]
        if stamp["inputs"] != inputs or sha256_file(output) != result["sha256"]:
            return None
        if result.get("public_key") and not os.path.isfile(result["public_key"]):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return result


def parse_args(argv):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0], epilog="See docs/suppack.md.")
    parser.add_argument(
        "--source", default=here, help="collection root holding galaxy.yml and dom0/ (default: %(default)s)"
    )
    parser.add_argument("--output", help="ISO file (*.iso) or directory (default: SOURCE/.build/suppack/)")
    parser.add_argument("--format", choices=["update", "legacy"], default="update", help="default: %(default)s")
    parser.add_argument(
        "--label", default=LABEL, help="update name-label, constant across versions (default: %(default)s)"
    )
    parser.add_argument("--version", help="pack version (default: the version in galaxy.yml)")
    parser.add_argument("--uuid", help="update uuid (default: derived from label, version and content)")
    sets = parser.add_argument_group(
        "nova's Dom0 plugins", "the plugin set of the compute's nova release (tools/dom0_plugin_sets.json)"
    )
    sets.add_argument("--plugin-set", metavar="NAME", help="a set by name, or 'none' (default: from the versions)")
    sets.add_argument("--nova-version", metavar="V", default="", help="nova's version on the computes, e.g. 21.2.4")
    sets.add_argument(
        "--os-xenapi-version", metavar="V", default="", help="os-xenapi's version there (decides before nova's)"
    )
    sets.add_argument("--plugin-archives", metavar="DIR", default="", help="offline: take the set's archives from DIR")
    sets.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=dom0_plugin_sets.DEFAULT_CACHE,
        help="where downloaded archives are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--applied-version",
        metavar="V",
        action="append",
        default=[],
        help="a version of this label applied on a host (repeat): decides the release of a build with other content",
    )
    parser.add_argument(
        "--extra-plugins", metavar="DIR", help="add the plugin files of DIR (your own plugins, in their own RPM)"
    )
    parser.add_argument("--key", help="GPG key (fingerprint, id or user id) that signs the pack")
    parser.add_argument("--gpg-home", help="GnuPG home holding the key (default: $GNUPGHOME or ~/.gnupg)")
    parser.add_argument(
        "--key-name", default=KEY_NAME, help="name of the public key file in Dom0 (default: %(default)s)"
    )
    parser.add_argument(
        "--no-key-attribute",
        action="store_true",
        help="sign update.xml and repomd.xml only: no key attribute, unsigned RPMs (no /etc/pki/rpm-gpg file needed)",
    )
    parser.add_argument(
        "--after-apply-guidance",
        dest="guidance",
        default="",
        help="comma list of %s (default: none; plugins need none)" % ", ".join(GUIDANCE),
    )
    parser.add_argument("--source-date-epoch", type=int, help="timestamp of every file (default: $SOURCE_DATE_EPOCH)")
    parser.add_argument("--work-dir", help="where to make the scratch directory (default: the system's)")
    parser.add_argument("--keep-work-dir", action="store_true", help="keep the scratch directory, for debugging")
    args = parser.parse_args(argv)
    args.source = os.path.abspath(args.source)
    args.guidance = [g for g in args.guidance.split(",") if g]
    unknown = [g for g in args.guidance if g not in GUIDANCE]
    if unknown:
        parser.error("unknown after-apply guidance %s: XAPI would drop the whole list" % ", ".join(unknown))
    if args.source_date_epoch is None:
        env = os.environ.get("SOURCE_DATE_EPOCH", "")
        args.source_date_epoch = int(env) if env.isdigit() else DEFAULT_EPOCH
    if args.uuid:
        try:
            args.uuid = str(uuid.UUID(args.uuid))
        except ValueError:
            parser.error("--uuid %s is not a UUID" % args.uuid)
    args.sets = dom0_plugin_sets.load()
    if args.format == "legacy" and args.key:
        sys.stderr.write("build_pack: legacy packs are never signed: --key ignored\n")
    return args


def choose_plugin_set(args):
    """The set named, or the one of the versions given, or none."""
    if args.plugin_set == "none" or not (args.plugin_set or args.nova_version or args.os_xenapi_version):
        return ""
    try:
        return dom0_plugin_sets.choose(args.sets, args.nova_version, args.os_xenapi_version, args.plugin_set or "")
    except dom0_plugin_sets.PluginSetError as error:
        raise BuildError(str(error)) from None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        args.plugin_set = choose_plugin_set(args)
        result = build(args)
    except BuildError as error:
        sys.stderr.write("build_pack: %s\n" % error)
        return 1
    if not result["plugin_set"]:
        sys.stderr.write(
            "build_pack: warning: no nova plugin set in the pack (give --nova-version or --plugin-set): nova's XenAPI "
            "driver stops at start without its Dom0 plugins\n"
        )
    if args.format == "update" and not result["signed"]:
        sys.stderr.write(
            "build_pack: warning: the pack is not signed; XAPI refuses unsigned update ISOs (INVALID_UPDATE)\n"
        )
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
