"""tools/build_pack.py: the ISOs it builds, opened with real tools (isoinfo, rpm, rpm2cpio/cpio, gpg)."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET

import gpgkey
import pluginsets
import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
BUILD = [sys.executable, os.path.join(ROOT, "tools", "build_pack.py")]
PLUGIN = "/etc/xapi.d/plugins/xenserver_openstack"
PLUGIN_SOURCE = os.path.join(ROOT, "dom0", PLUGIN.lstrip("/"))
LIBRARY = "/etc/xapi.d/plugins/xenserver_openstack_lib.py"
# Every file of the collection's dom0/ tree, at its path in Dom0.
DOM0_FILES = sorted(
    "/" + os.path.relpath(os.path.join(folder, name), os.path.join(ROOT, "dom0"))
    for folder, _dirs, names in os.walk(os.path.join(ROOT, "dom0"))
    for name in names
)


def galaxy_version():
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        return re.search(r"^version:\s*(\S+)", handle.read(), re.M).group(1)


def run_build(*args, env=None):
    return subprocess.run([*BUILD, *args], capture_output=True, text=True, env=env, check=False)


def build(*args, env=None):
    proc = run_build(*args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def signed(key, *args):
    return build("--gpg-home", key["home"], "--key", key["fingerprint"], *args)


def isoinfo_list(iso):
    """{path: mode string} of the ISO's Rock Ridge tree, from isoinfo -R -l."""
    listing = subprocess.run(["isoinfo", "-R", "-l", "-i", iso], capture_output=True, text=True, check=True).stdout
    found, directory = {}, "/"
    for line in listing.splitlines():
        if line.startswith("Directory listing of "):
            directory = line[len("Directory listing of ") :].strip()
        elif line[:1] in ("-", "d") and not line.rstrip().endswith((" .", " ..")):
            found[directory + line.split()[-1]] = line.split()[0]
    return found


def extract(iso, path, target):
    with open(target, "wb") as handle:
        subprocess.run(["isoinfo", "-R", "-i", iso, "-x", path], stdout=handle, check=True)
    return str(target)


def rpm_query(rpm, *args):
    argv = ["rpm", "-qp", "--nosignature", *args, rpm]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    home = str(tmp_path_factory.mktemp("gpg") / "home")
    yield dict(home=home, fingerprint=gpgkey.signing_key(home, "build test"))
    gpgkey.stop_agent(home)


@pytest.fixture(scope="module")
def pack(tmp_path_factory, key):
    return signed(key, "--output", str(tmp_path_factory.mktemp("pack")))


def test_update_iso_carries_the_plugin_rpm(pack, tmp_path):
    iso = pack["iso"]
    version = "%s-%s" % (galaxy_version(), pack["release"])
    assert pack["release"] == "1." + pack["content"] and pack["version"] == version
    assert os.path.basename(iso) == "xenserver-openstack-%s.iso" % galaxy_version()
    tree = isoinfo_list(iso)
    payload = "/Packages/xenserver-openstack-plugins-%s.noarch.rpm" % version
    meta = "/Packages/update-xenserver-openstack-%s.noarch.rpm" % version
    for path in ("/update.xml", "/update.xml.asc", "/repodata/repomd.xml", "/repodata/repomd.xml.asc", payload, meta):
        assert path in tree, sorted(tree)

    rpm = extract(iso, payload, tmp_path / "payload.rpm")
    listing = subprocess.run(["rpm", "-qlpv", "--nosignature", rpm], capture_output=True, text=True, check=True).stdout
    modes = dict((entry.split()[-1], entry.split()[0]) for entry in listing.splitlines())
    # The plugin is executable, its library is not (xapi would run it as a plugin by name).
    assert (modes[PLUGIN], modes[LIBRARY]) == ("-rwxr-xr-x", "-rw-r--r--"), listing
    assert all(line.split()[1:4] == ["1", "root", "root"] for line in listing.splitlines()), listing
    assert rpm_query(rpm, "--requires").split("\n") == [
        "rpmlib(CompressedFileNames) <= 3.0.4-1",
        "rpmlib(FileDigests) <= 4.6.0-1",
        "rpmlib(PayloadFilesHavePrefix) <= 4.0-1",
        "",
    ]
    assert rpm_query(rpm, "--qf", "%{PAYLOADCOMPRESSOR} %{ARCH}") == "gzip noarch"
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    payload_cpio = subprocess.run(["rpm2cpio", rpm], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet"], input=payload_cpio, cwd=unpacked, check=True)
    for path in DOM0_FILES:
        with open(os.path.join(ROOT, "dom0", path.lstrip("/")), "rb") as handle:
            assert (unpacked / path.lstrip("/")).read_bytes() == handle.read(), path

    stamp = extract(iso, meta, tmp_path / "meta.rpm")
    assert "xenserver-openstack-plugins >= %s" % version in rpm_query(stamp, "--requires")
    assert rpm_query(stamp, "-l").strip() == "/var/update/applied/%s" % pack["uuid"]
    checked = subprocess.run(["rpm", "-Kv", rpm], capture_output=True, text=True, check=False).stdout
    assert "Header V4 RSA/SHA256 Signature, key ID %s" % pack["key_fingerprint"][-8:].lower() in checked

    update = ET.fromstring(open(extract(iso, "/update.xml", tmp_path / "update.xml")).read())
    assert (update.tag, update.get("name-label"), update.get("version"), update.get("uuid")) == (
        "update",
        "xenserver-openstack",
        version,
        pack["uuid"],
    )
    assert update.get("key") == "RPM-GPG-KEY-xenserver-openstack" and update.get("after-apply-guidance") == ""
    assert update.findtext("name-description").strip()
    sizes = [os.path.getsize(os.path.join(ROOT, "dom0", path.lstrip("/"))) for path in DOM0_FILES]
    assert int(update.get("installation-size")) == sum(sizes)


def test_signatures_verify_the_way_xapi_checks_them(pack, tmp_path):
    iso = pack["iso"]
    home = tmp_path / "dom0gpg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--no-autostart", "--homedir", str(home)]
    subprocess.run([*gpg, "--import", pack["public_key"]], check=True, capture_output=True)

    def status(name):
        document = extract(iso, "/" + name, tmp_path / os.path.basename(name))
        signature = extract(iso, "/" + name + ".asc", tmp_path / (os.path.basename(name) + ".asc"))
        return subprocess.run(
            [*gpg, "--status-fd", "1", "--verify", signature, document], capture_output=True, text=True, check=False
        ).stdout

    assert "GOODSIG" in status("update.xml") and "TRUST_ULTIMATE" not in status("update.xml")
    trust = "%s:6:\n" % pack["key_fingerprint"]
    subprocess.run([*gpg, "--import-ownertrust"], input=trust, text=True, check=True, capture_output=True)
    for name in ("update.xml", "repodata/repomd.xml"):
        answer = status(name)
        assert "[GNUPG:] GOODSIG" in answer and "[GNUPG:] TRUST_ULTIMATE" in answer, answer
    with open(tmp_path / "update.xml", "a") as handle:
        handle.write("<!-- tampered -->\n")
    tampered = subprocess.run(
        [*gpg, "--status-fd", "1", "--verify", str(tmp_path / "update.xml.asc"), str(tmp_path / "update.xml")],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "BADSIG" in tampered


def test_same_inputs_give_the_same_iso(key, pack, tmp_path):
    again = signed(key, "--output", str(tmp_path / "again"))
    assert again["sha256"] == pack["sha256"] and again["uuid"] == pack["uuid"]
    assert signed(key, "--output", again["iso"])["changed"] is False
    later = signed(key, "--output", str(tmp_path / "later"), "--source-date-epoch", "1767225600")
    assert later["sha256"] != pack["sha256"] and later["uuid"] == pack["uuid"]
    # Other content, same version: another update uuid, the same label.
    source = tmp_path / "source"
    shutil.copytree(os.path.join(ROOT, "dom0"), source / "dom0")
    shutil.copy(os.path.join(ROOT, "galaxy.yml"), source)
    with open(source / "dom0" / PLUGIN.lstrip("/"), "a") as handle:
        handle.write("# changed\n")
    other = signed(key, "--source", str(source), "--output", str(tmp_path / "other"))
    assert other["uuid"] != pack["uuid"] and other["label"] == pack["label"]


def test_extra_plugins_go_into_their_own_rpm(key, tmp_path):
    extra = tmp_path / "os_xenapi" / "dom0" / "etc" / "xapi.d" / "plugins"
    extra.mkdir(parents=True)
    (extra / "xenhost.py").write_text("#!/usr/bin/env python\nprint('xenhost')\n")
    (extra / "netwrap.py").write_text("#!/usr/bin/env python\n")
    (extra / "__pycache__").mkdir()
    (extra / "stale.pyc").write_bytes(b"\0")
    result = signed(key, "--extra-plugins", str(tmp_path / "os_xenapi" / "dom0"), "--output", str(tmp_path / "out"))
    version = result["version"]
    assert "xenserver-openstack-extra-plugins-%s.noarch.rpm" % version in result["packages"]
    rpm_path = "/Packages/xenserver-openstack-extra-plugins-%s.noarch.rpm" % version
    rpm = extract(result["iso"], rpm_path, tmp_path / "x")
    listing = subprocess.run(["rpm", "-qlpv", "--nosignature", rpm], capture_output=True, text=True, check=True).stdout
    names = sorted((line.split()[0], line.split()[-1]) for line in listing.splitlines())
    assert names == [("-rwxr-xr-x", "/etc/xapi.d/plugins/netwrap.py"), ("-rwxr-xr-x", "/etc/xapi.d/plugins/xenhost.py")]
    meta = extract(result["iso"], "/Packages/update-xenserver-openstack-%s.noarch.rpm" % version, tmp_path / "m")
    assert "xenserver-openstack-extra-plugins >= %s" % version in rpm_query(meta, "--requires")

    (extra / "xenserver_openstack").write_text("clash\n")
    clash = run_build("--extra-plugins", str(extra), "--output", str(tmp_path / "clash"))
    assert clash.returncode == 1 and "comes from both" in clash.stderr


def test_legacy_pack(tmp_path):
    result = build("--format", "legacy", "--output", str(tmp_path))
    iso = result["iso"]
    tree = isoinfo_list(iso)
    rpm_name = "xenserver-openstack-plugins-%s.noarch.rpm" % result["version"]
    assert tree["/install"].startswith("-r-xr-xr-x") and tree["/install.sh"].startswith("-r-xr-xr-x")
    assert {"/XS-REPOSITORY", "/XS-PACKAGES", "/" + rpm_name} <= set(tree)
    assert "/update.xml" not in tree and not any(p.startswith("/repodata") for p in tree)
    repository = ET.fromstring(open(extract(iso, "/XS-REPOSITORY", tmp_path / "XS-REPOSITORY")).read())
    assert "%s:%s" % (repository.get("originator"), repository.get("name")) == result["legacy_key"]
    assert repository.get("product") == "XCP" and repository[0].tag == "description"
    rpm = extract(iso, "/" + rpm_name, tmp_path / rpm_name)
    package = ET.fromstring(open(extract(iso, "/XS-PACKAGES", tmp_path / "XS-PACKAGES")).read())[0]
    with open(rpm, "rb") as handle:
        data = handle.read()
    assert package.get("md5") == hashlib.md5(data).hexdigest() and int(package.get("size")) == len(data)
    # MD5 file digests (32 hex digits), which XenServer 6.5's rpm 4.4 reads; rpm stores no algorithm tag for them.
    assert rpm_query(rpm, "--qf", "%{FILEDIGESTALGO}") == "(none)"
    assert [len(d) for d in rpm_query(rpm, "--qf", "[%{FILEDIGESTS}\n]").split()] == [32] * len(DOM0_FILES)
    assert "FileDigests" not in rpm_query(rpm, "--requires")
    install = extract(iso, "/install", tmp_path / "install")
    subprocess.run(["sh", "-n", install], check=True)
    assert rpm_name in open(install).read()


def test_unsigned_update_pack_is_built_with_a_warning(tmp_path):
    proc = run_build("--output", str(tmp_path))
    assert proc.returncode == 0 and "INVALID_UPDATE" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["signed"] is False and "/update.xml.asc" not in isoinfo_list(result["iso"])


def test_missing_tools_are_named_with_their_package(tmp_path):
    proc = run_build("--output", str(tmp_path), env=dict(os.environ, PATH=str(tmp_path)))
    assert proc.returncode == 1 and "apt-get install" in proc.stderr and "createrepo-c" in proc.stderr


def test_bad_version_and_guidance_are_refused(tmp_path):
    assert "must start with a digit" in run_build("--version", "1-2", "--output", str(tmp_path)).stderr
    assert "unknown after-apply guidance" in run_build("--after-apply-guidance", "reboot").stderr


def test_dom0_files_are_python_2_7_and_3_6_compatible(tmp_path):
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    argv = [vermin, "-t=2.7-", "-t=3.6-", "--violations", "--no-tips"]
    sources = [os.path.join(ROOT, "dom0", path.lstrip("/")) for path in DOM0_FILES]
    check = subprocess.run([*argv, *sources], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "Minimum required versions" in check.stdout, check.stdout + check.stderr
    # The check does catch a Python 3.6+ construct in a file without .py suffix, as the plugin is.
    broken = tmp_path / "plugin"
    broken.write_text(open(PLUGIN_SOURCE).read() + "\nNAME = 'x'\nMESSAGE = f'{NAME}'\n")
    assert subprocess.run([*argv, str(broken)], capture_output=True, check=False).returncode != 0


def test_installed_collection_takes_its_version_from_manifest_json(tmp_path):
    """ansible-galaxy (and the Fuel plugin's copy) install a collection with MANIFEST.json and no galaxy.yml."""
    installed = tmp_path / "openstack"
    shutil.copytree(os.path.join(ROOT, "dom0"), str(installed / "dom0"))
    (installed / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "7.3.1"}}))
    result = build("--source", str(installed), "--output", str(tmp_path / "out"))
    assert result["version"] == "7.3.1-1." + result["content"] and result["iso"].endswith("-7.3.1.iso")
    (installed / "MANIFEST.json").write_text(json.dumps({"collection_info": {}}))
    proc = run_build("--source", str(installed), "--output", str(tmp_path / "out"))
    assert proc.returncode == 1 and "MANIFEST.json" in proc.stderr and "give --version" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unchanged_build_is_not_made_again(key, tmp_path):
    """The record next to the ISO (<iso>.build.json) gives the last result back while nothing the ISO is made of
    changed; a change of the files, of an option, or to the ISO itself builds again."""
    source = tmp_path / "source"
    shutil.copytree(os.path.join(ROOT, "dom0"), source / "dom0")
    shutil.copy(os.path.join(ROOT, "galaxy.yml"), source)
    out = str(tmp_path / "out")
    first = signed(key, "--source", str(source), "--output", out)
    made = os.stat(first["iso"]).st_mtime_ns
    again = signed(key, "--source", str(source), "--output", out)
    assert again == dict(first, changed=False) and os.stat(first["iso"]).st_mtime_ns == made
    with open(source / "dom0" / PLUGIN.lstrip("/"), "a") as handle:
        handle.write("# changed\n")
    changed = signed(key, "--source", str(source), "--output", out)
    assert changed["changed"] is True and changed["uuid"] != first["uuid"]
    later = signed(key, "--source", str(source), "--output", out, "--source-date-epoch", "1767225600")
    assert later["changed"] is True and later["sha256"] != changed["sha256"]
    with open(later["iso"], "r+b") as handle:  # past the ISO's system area, which is zeros
        handle.seek(later["size"] - 2048)
        handle.write(b"damaged")
    repaired = signed(key, "--source", str(source), "--output", out, "--source-date-epoch", "1767225600")
    assert repaired["changed"] is True and repaired["sha256"] == later["sha256"]


# --- nova's Dom0 plugin sets -------------------------------------------------------------------------------------
SETS, ARCHIVES, OS_XENAPI = pluginsets.SETS, pluginsets.ARCHIVES, pluginsets.OS_XENAPI
dom0_plugin_sets = pluginsets.dom0_plugin_sets


@pytest.fixture(scope="module")
def os_xenapi_wheel():
    """os-xenapi 0.3.4's wheel from PyPI (checked against its pin), cached under .build/archives."""
    pluginsets.archive()
    return os.path.join(ARCHIVES, OS_XENAPI["file"])


def with_sets(*args):
    return ("--cache-dir", ARCHIVES, *args)


def rpm_files(iso, rpm, tmp_path):
    local = extract(iso, "/Packages/" + rpm, tmp_path / rpm)
    listing = subprocess.run(["rpm", "-qlpv", "--nosignature", local], capture_output=True, text=True, check=True)
    return dict((line.split()[-1], line.split()[0]) for line in listing.stdout.splitlines())


PLUGIN_DIR = "/etc/xapi.d/plugins"


def test_the_pack_carries_the_plugins_of_the_computes_nova(key, os_xenapi_wheel, tmp_path):
    """nova 21 calls os-xenapi 0.3.4's plugins: they go in their own RPM, executable, byte for byte the pinned ones."""
    result = signed(key, *with_sets("--nova-version", "21.2.4", "--output", str(tmp_path)))
    assert result["plugin_set"] == "os-xenapi-0.3.4" and result["plugin_version"] == "2.1"
    assert os.path.basename(result["iso"]) == "xenserver-openstack-%s-os-xenapi-0.3.4.iso" % galaxy_version()
    rpm = "xenserver-openstack-nova-plugins-%s.noarch.rpm" % result["version"]
    assert rpm in result["packages"]
    files = rpm_files(result["iso"], rpm, tmp_path)
    assert sorted(files) == sorted(PLUGIN_DIR + "/" + name for name in OS_XENAPI["files"])
    assert set(files.values()) == {"-rwxr-xr-x"}  # 0666 in the wheel; xapi execs the file
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    payload = subprocess.run(["rpm2cpio", str(tmp_path / rpm)], capture_output=True, check=True).stdout
    subprocess.run(["cpio", "-idm", "--quiet"], input=payload, cwd=unpacked, check=True)
    for name, pinned in OS_XENAPI["files"].items():
        data = (unpacked / PLUGIN_DIR.lstrip("/") / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == pinned, name
    description = ET.fromstring(open(extract(result["iso"], "/update.xml", tmp_path / "u.xml")).read())
    assert "os-xenapi-0.3.4" in description.findtext("name-description")


@pytest.mark.parametrize(
    ("versions", "wanted"),
    [
        (("13.1.4", ""), "nova-13"),
        (("14.0.10", ""), "nova-14"),
        (("15.1.5", ""), "os-xenapi-0.1.1"),
        (("16.1.8", ""), "os-xenapi-0.2.0"),
        (("17.0.13", ""), "os-xenapi-0.3.1"),
        (("20.6.1", ""), "os-xenapi-0.3.4"),
        (("21.2.4", ""), "os-xenapi-0.3.4"),
        (("18.3.0", "0.3.1"), "os-xenapi-0.3.1"),  # the os-xenapi installed decides
        (("18.3.0", "0.3.2"), "os-xenapi-0.3.4"),  # one the collection has no set for: nova's release decides
    ],
)
def test_the_set_follows_nova_and_os_xenapi(versions, wanted):
    assert dom0_plugin_sets.choose(SETS, *versions) == wanted


def test_every_set_is_pinned_file_by_file():
    for name, plugin_set in SETS["sets"].items():
        assert plugin_set["version_plugin"] in [f for s in plugin_set["sources"] for f in s["files"]], name
        for source in plugin_set["sources"]:
            assert source["files"] and all(re.match("^[0-9a-f]{64}$", h) for h in source["files"].values()), name
            assert source["url"].startswith("https://") and source["url"].endswith("/" + source["file"])


def test_bad_plugin_set_inputs_are_refused_before_anything_is_built(os_xenapi_wheel, tmp_path):
    out = tmp_path / "out"
    victoria = run_build(*with_sets("--nova-version", "22.0.0", "--output", str(out)))
    assert victoria.returncode == 1 and "nova 22.0.0: the collection has no Dom0 plugin set" in victoria.stderr
    unknown = run_build(*with_sets("--plugin-set", "os-xenapi-9", "--output", str(out)))
    assert unknown.returncode == 1 and "unknown Dom0 plugin set 'os-xenapi-9'" in unknown.stderr
    offline = tmp_path / "offline"
    offline.mkdir()
    missing = run_build("--nova-version", "21.2.4", "--plugin-archives", str(offline), "--output", str(out))
    assert missing.returncode == 1 and OS_XENAPI["file"] + " is not in the offline archive directory" in missing.stderr
    assert OS_XENAPI["url"] in missing.stderr
    # An archive that is not the pinned one: another sha256.
    with open(os_xenapi_wheel, "rb") as handle:
        (offline / OS_XENAPI["file"]).write_bytes(handle.read() + b"\0")
    tampered = run_build("--nova-version", "21.2.4", "--plugin-archives", str(offline), "--output", str(out))
    assert tampered.returncode == 1 and "not the pinned %s" % OS_XENAPI["sha256"] in tampered.stderr
    for proc in (victoria, unknown, missing, tampered):
        assert "Traceback" not in proc.stderr
    assert not out.exists() or not os.listdir(out)


def test_a_file_that_differs_from_its_pin_is_refused(tmp_path):
    """Per-file pins hold for archives PyPI has no digest for (nova 13's sdist): a changed file is refused."""
    plugins = "nova-13.1.4/plugins/xenserver/xenapi/etc/xapi.d/plugins"
    source = dict(SETS["sets"]["nova-13"]["sources"][0])
    archive = tmp_path / source["file"]
    with tarfile.open(archive, "w:gz") as tar:
        for name in source["files"]:
            data = b"not nova's file\n"
            info = tarfile.TarInfo("%s/%s" % (plugins, name))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(dom0_plugin_sets.PluginSetError, match=r"has sha256 .* not the pinned"):
        dom0_plugin_sets.plugin_files(SETS, "nova-13", archives_dir=str(tmp_path))


def test_a_build_is_known_by_its_content(key, os_xenapi_wheel, tmp_path):
    """Other plugins give a higher release than any applied (XAPI's yum upgrade installs it); the same content keeps
    its version and uuid; a build of the same content again changes nothing."""
    out = str(tmp_path / "out")
    first = signed(key, *with_sets("--nova-version", "21.2.4", "--output", out))
    assert first["release"] == "1." + first["content"]
    # Applied on a host: the next run names it, and the same content keeps its release, uuid and ISO.
    again = signed(key, *with_sets("--nova-version", "21.2.4", "--applied-version", first["version"], "--output", out))
    assert (again["version"], again["uuid"], again["changed"]) == (first["version"], first["uuid"], False)
    # Other plugins (the Queens set) over the applied build: release 2.
    other = signed(
        key, *with_sets("--plugin-set", "os-xenapi-0.3.1", "--applied-version", first["version"], "--output", out)
    )
    assert other["content"] != first["content"] and other["release"] == "2." + other["content"]
    assert other["uuid"] != first["uuid"]
    rpm = "xenserver-openstack-plugins-%s.noarch.rpm" % other["version"]
    local = extract(other["iso"], "/Packages/" + rpm, tmp_path / rpm)
    assert rpm_query(local, "--qf", "%{VERSION}-%{RELEASE}") == other["version"]
    # Back to the first content while the second is applied: higher again, never a downgrade.
    back = signed(
        key,
        *with_sets("--nova-version", "21.2.4", "--applied-version", other["version"], "--output", out),
    )
    assert back["release"] == "3." + first["content"]
