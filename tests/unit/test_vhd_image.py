"""The XenServer image checks (module_utils/_vhd.py), the vhd_tgz helper, and the vhd_image module against a
real Glance (the ``glance`` fixture of tests/glancebed: glance-api from PyPI under gunicorn, no Keystone).

Disk images are made here with qemu-img; test images in Glance get names of their own (``uid``), so the
tests share one Glance and can run in any order.
"""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid

import openstack
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.xenserver.openstack.plugins.module_utils._vhd import (
    VHDImageError,
    inspect_vhd_tgz,
    make_vhd_tgz,
)
from ansible_collections.xenserver.openstack.plugins.modules import vhd_image, vhd_tgz
from glancebed.server import free_port

FOOTER = b"conectix" + b"\0" * 504


def run_command(argv):
    """A stand-in for AnsibleModule.run_command, for the helper called outside a module."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def qemu_img(*args):
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=True).stdout


def disk(tmp_path, name, fmt="qcow2", size="8M"):
    """A disk image made by qemu-img."""
    path = tmp_path / name
    qemu_img("create", "-q", "-f", fmt, str(path), size)
    return path


def xenserver_image(tmp_path, name="image.vhd.tgz"):
    """A XenServer-format image made by the collection's helper from a fresh qcow2; each has new content
    (qemu-img writes a new UUID into each VHD)."""
    dest = tmp_path / name
    make_vhd_tgz(run_command, "qemu-img", str(disk(tmp_path, name + ".qcow2")), str(dest), src_format="qcow2")
    return dest


def tgz(path, members):
    """Write a gzip tar of (name, bytes) members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def uid(prefix="TestVM"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


# --- the checks of a XenServer-format image --------------------------------------------------------------------


def test_inspect_accepts_a_helper_made_image_and_digests_the_whole_file(tmp_path):
    image = xenserver_image(tmp_path)
    data = image.read_bytes()
    found = inspect_vhd_tgz(str(image))
    assert found["members"] == ["0.vhd"]
    assert found["size"] == len(data)
    assert found["digests"] == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }


def test_inspect_accepts_a_vhd_chain(tmp_path):
    image = tgz(tmp_path / "chain.tgz", [("0.vhd", b"x" * 4096 + FOOTER), ("./1.vhd", FOOTER)])
    assert inspect_vhd_tgz(str(image))["members"] == ["0.vhd", "1.vhd"]


def test_qcow2_is_refused_with_the_way_to_convert_it(tmp_path):
    with pytest.raises(VHDImageError, match=r"is a qcow2 image.*xenserver\.openstack\.vhd_tgz.*qemu-img convert"):
        inspect_vhd_tgz(str(disk(tmp_path, "cirros.qcow2")))


def test_raw_is_refused_with_the_way_to_convert_it(tmp_path):
    with pytest.raises(VHDImageError, match=r"not a gzip file.*raw disk image.*xenserver\.openstack\.vhd_tgz"):
        inspect_vhd_tgz(str(disk(tmp_path, "cirros.raw", fmt="raw")))


def test_a_bare_vhd_is_refused_with_the_way_to_pack_it(tmp_path):
    with pytest.raises(VHDImageError, match=r"is a bare VHD file.*tar -czf .* 0\.vhd"):
        inspect_vhd_tgz(str(disk(tmp_path, "cirros.vhd", fmt="vpc")))


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([("1.vhd", FOOTER), ("0.vhd", FOOTER)], r"first member .* is 1\.vhd, not 0\.vhd"),
        ([("0.vhd", FOOTER), ("notes.txt", FOOTER)], r"holds notes\.txt, which is not a VHD file"),
        ([("0.vhd", FOOTER), ("sub/1.vhd", FOOTER)], r"holds sub/1\.vhd, which is not a VHD file"),
        ([("0.vhd", b"\0" * 4096)], r"0\.vhd in .* does not end with a VHD footer"),
        ([("0.vhd", FOOTER + b"\0" * 512)], r"does not end with a VHD footer"),
        ([("0.vhd", b"conectix")], r"does not end with a VHD footer"),
        ([], r"is an empty tar"),
    ],
)
def test_a_tgz_that_is_not_a_vhd_chain_is_refused(tmp_path, members, problem):
    with pytest.raises(VHDImageError, match=problem):
        inspect_vhd_tgz(str(tgz(tmp_path / "image.tgz", members)))


def test_a_directory_member_is_refused(tmp_path):
    path = tmp_path / "image.tgz"
    with tarfile.open(path, "w:gz") as tar:
        vhd = tarfile.TarInfo("0.vhd")
        vhd.size = len(FOOTER)
        tar.addfile(vhd, io.BytesIO(FOOTER))
        directory = tarfile.TarInfo("1.vhd")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
    with pytest.raises(VHDImageError, match=r"holds 1\.vhd, which is not a VHD file"):
        inspect_vhd_tgz(str(path))


@pytest.mark.parametrize("damage", ["gzip of no tar", "truncated"])
def test_a_broken_gzip_tar_is_refused(tmp_path, damage):
    path = tmp_path / "image.tgz"
    if damage == "truncated":
        whole = xenserver_image(tmp_path).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    else:
        subprocess.run(["gzip", "-c"], input=b"no tar here" * 100, stdout=path.open("wb"), check=True)
    with pytest.raises(VHDImageError, match=r"is not a valid gzip tar"):
        inspect_vhd_tgz(str(path))


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(VHDImageError, match=r"does not exist or is not a file"):
        inspect_vhd_tgz(str(tmp_path / "nothing.tgz"))


# --- the raw / qcow2 to XenServer tgz helper -------------------------------------------------------------------


def test_vhd_tgz_makes_a_dynamic_vhd_named_0_vhd_of_the_disk(tmp_path, run_module):
    src = disk(tmp_path, "cirros.qcow2", size="20M")
    dest = tmp_path / "cirros.vhd.tgz"
    result = run_module(vhd_tgz, dict(src=str(src), dest=str(dest), src_format="qcow2"))
    assert result["changed"] is True and result["size"] == dest.stat().st_size
    with tarfile.open(dest, "r:gz") as tar:
        assert tar.getnames() == ["0.vhd"]
        assert tar.getmember("0.vhd").uid == 0
        tar.extract("0.vhd", tmp_path / "out", filter="data")
    info = json.loads(qemu_img("info", "--output=json", str(tmp_path / "out" / "0.vhd")))
    assert info["format"] == "vpc"
    assert info["virtual-size"] >= 20 * 1024 * 1024
    assert inspect_vhd_tgz(str(dest))["members"] == ["0.vhd"]


def test_vhd_tgz_rebuilds_only_when_src_is_newer_or_forced(tmp_path, run_module):
    src = disk(tmp_path, "cirros.raw", fmt="raw")
    args = dict(src=str(src), dest=str(tmp_path / "cirros.vhd.tgz"), src_format="raw")
    run_module(vhd_tgz, args)
    built = (tmp_path / "cirros.vhd.tgz").read_bytes()
    again = run_module(vhd_tgz, args)
    assert again["changed"] is False and (tmp_path / "cirros.vhd.tgz").read_bytes() == built
    assert run_module(vhd_tgz, dict(args, force=True), check_mode=True)["changed"] is True
    assert (tmp_path / "cirros.vhd.tgz").read_bytes() == built
    os.utime(src, (time.time() + 5, time.time() + 5))
    newer = run_module(vhd_tgz, args)
    assert newer["changed"] is True and newer["diff"]["before"].endswith(": older than src\n")
    assert (tmp_path / "cirros.vhd.tgz").read_bytes() != built


def test_vhd_tgz_in_check_mode_writes_nothing(tmp_path, run_module):
    src = disk(tmp_path, "cirros.qcow2")
    result = run_module(vhd_tgz, dict(src=str(src), dest=str(tmp_path / "x.vhd.tgz")), check_mode=True)
    assert result["changed"] is True and result["diff"]["before"].endswith(": absent\n")
    assert os.listdir(tmp_path) == ["cirros.qcow2"]


def test_vhd_tgz_reports_what_qemu_img_says_and_leaves_no_file(tmp_path, run_module):
    src = tmp_path / "junk.img"
    src.write_bytes(b"junk" * 1000)
    result = run_module(vhd_tgz, dict(src=str(src), dest=str(tmp_path / "x.vhd.tgz"), src_format="qcow2"))
    assert result["failed"] is True
    assert result["msg"].startswith("qemu-img cannot read %s as qcow2: " % src)
    assert sorted(os.listdir(tmp_path)) == ["junk.img"]


def test_vhd_tgz_names_a_missing_src(tmp_path, run_module):
    result = run_module(vhd_tgz, dict(src=str(tmp_path / "none.img"), dest=str(tmp_path / "x.vhd.tgz")))
    assert result["failed"] is True and "src %s does not exist" % (tmp_path / "none.img") in result["msg"]


# --- vhd_image against the real Glance ------------------------------------------------------------------------


@pytest.fixture
def conn(glance):
    return openstack.connect(**glance.cloud)


def images_named(conn, name):
    return sorted((i for i in conn.image.images(name=name)), key=lambda i: i.created_at)


def raw(conn, image_id):
    return conn.image.get("/images/%s" % image_id).json()


def upload_qcow2(conn, tmp_path, name):
    """An old hypervisor-specific image, as MOS left TestVM: a real qcow2, bare."""
    image = conn.image.create_image(
        name,
        filename=str(disk(tmp_path, name + ".qcow2")),
        disk_format="qcow2",
        container_format="bare",
        visibility="public",
        allow_duplicates=True,
    )
    return raw(conn, image.id)


PROPERTIES = dict(vm_mode="hvm", os_type="linux", auto_disk_config=False, hypervisor_type="xen")


def module_args(glance, name, filename, **extra):
    return dict(dict(cloud=glance.cloud, name=name, filename=str(filename), properties=PROPERTIES), **extra)


def test_replaces_an_old_qcow2_testvm_by_one_vhd_image_and_leaves_other_names_alone(glance, conn, tmp_path, run_module):
    name, user_name = uid(), uid("user-image")
    user_image = upload_qcow2(conn, tmp_path, user_name)
    old = upload_qcow2(conn, tmp_path, name)
    image = xenserver_image(tmp_path)

    result = run_module(vhd_image, module_args(glance, name, image))

    assert result["changed"] is True and result["uploaded"] is True
    assert result["deleted"] == [old["id"]]
    (new,) = images_named(conn, name)
    record = raw(conn, new.id)
    assert (record["container_format"], record["disk_format"], record["status"]) == ("ovf", "vhd", "active")
    assert record["checksum"] == hashlib.md5(image.read_bytes()).hexdigest()
    assert record["visibility"] == "public"
    assert {k: record[k] for k in PROPERTIES} == dict(PROPERTIES, auto_disk_config="False")
    assert result["image"]["id"] == new.id
    assert raw(conn, user_image["id"]) == user_image


def test_a_second_run_changes_nothing_and_sends_no_image_data(glance, conn, tmp_path, run_module):
    name = uid()
    args = module_args(glance, name, xenserver_image(tmp_path))
    first = run_module(vhd_image, args)
    uploads = glance.uploads()

    second = run_module(vhd_image, args)

    assert second["changed"] is False and second["uploaded"] is False and second["deleted"] == []
    assert glance.uploads() == uploads
    assert [i.id for i in images_named(conn, name)] == [first["image"]["id"]]
    assert second["diff"]["before"] == second["diff"]["after"]


def test_check_mode_changes_nothing_and_tells_what_would_change(glance, conn, tmp_path, run_module):
    name = uid()
    old = upload_qcow2(conn, tmp_path, name)
    requests = len(glance.requests())

    result = run_module(vhd_image, module_args(glance, name, xenserver_image(tmp_path)), check_mode=True)

    assert result["changed"] is True and result["uploaded"] is True and result["deleted"] == [old["id"]]
    assert [raw(conn, i.id) for i in images_named(conn, name)] == [old]
    assert not [r for r in glance.requests()[requests:] if r["method"] != "GET"]


def test_diff_shows_the_image_metadata_before_and_after(glance, conn, tmp_path, run_module):
    name = uid()
    upload_qcow2(conn, tmp_path, name)
    image = xenserver_image(tmp_path)

    result = run_module(vhd_image, module_args(glance, name, image))

    (before,) = result["diff"]["before"]["images"]
    (after,) = result["diff"]["after"]["images"]
    assert (before["container_format"], before["disk_format"], before["properties"]["vm_mode"]) == (
        "bare",
        "qcow2",
        None,
    )
    assert after == dict(
        name=name,
        status="active",
        container_format="ovf",
        disk_format="vhd",
        visibility="public",
        checksum=hashlib.md5(image.read_bytes()).hexdigest(),
        properties=dict(auto_disk_config="False", hypervisor_type="xen", os_type="linux", vm_mode="hvm"),
    )


def test_new_properties_are_set_in_place_without_upload(glance, conn, tmp_path, run_module):
    name = uid()
    args = module_args(glance, name, xenserver_image(tmp_path))
    first = run_module(vhd_image, args)
    uploads = glance.uploads()

    result = run_module(vhd_image, dict(args, properties=dict(PROPERTIES, vm_mode="xen", xenapi_use_agent="False")))

    assert result["changed"] is True and result["uploaded"] is False and result["deleted"] == []
    assert glance.uploads() == uploads
    record = raw(conn, first["image"]["id"])
    assert (record["vm_mode"], record["xenapi_use_agent"], record["os_type"]) == ("xen", "False", "linux")
    assert [i.id for i in images_named(conn, name)] == [first["image"]["id"]]


def test_new_content_is_uploaded_before_the_old_image_goes(glance, conn, tmp_path, run_module):
    name = uid()
    old = run_module(vhd_image, module_args(glance, name, xenserver_image(tmp_path, "old.vhd.tgz")))["image"]
    start = len(glance.requests())

    result = run_module(vhd_image, module_args(glance, name, xenserver_image(tmp_path, "new.vhd.tgz")))

    assert result["uploaded"] is True and result["deleted"] == [old["id"]]
    changes = [(r["method"], r["path"]) for r in glance.requests()[start:] if r["method"] in ("PUT", "DELETE")]
    assert changes == [("PUT", "/images/%s/file" % result["image"]["id"]), ("DELETE", "/images/%s" % old["id"])]


def test_duplicates_of_the_name_are_reduced_to_the_right_one(glance, conn, tmp_path, run_module):
    name = uid()
    image = xenserver_image(tmp_path)
    args = module_args(glance, name, image)
    keep = run_module(vhd_image, args)["image"]
    duplicate = conn.image.create_image(
        name, filename=str(image), disk_format="vhd", container_format="ovf", allow_duplicates=True
    )

    result = run_module(vhd_image, args)

    assert result["changed"] is True and result["uploaded"] is False and result["deleted"] == [duplicate.id]
    assert [i.id for i in images_named(conn, name)] == [keep["id"]]


def test_state_absent_deletes_every_image_of_the_name_only(glance, conn, tmp_path, run_module):
    name, other = uid(), uid("other")
    doomed = [upload_qcow2(conn, tmp_path, name)["id"] for _ in range(2)]
    kept = upload_qcow2(conn, tmp_path, other)

    result = run_module(vhd_image, dict(cloud=glance.cloud, name=name, state="absent"))

    assert result["changed"] is True and sorted(result["deleted"]) == sorted(doomed)
    assert images_named(conn, name) == [] and raw(conn, kept["id"]) == kept
    assert run_module(vhd_image, dict(cloud=glance.cloud, name=name, state="absent"))["changed"] is False


def test_a_protected_image_of_the_name_stops_the_module_before_any_change(glance, conn, tmp_path, run_module):
    name = uid()
    old = upload_qcow2(conn, tmp_path, name)
    conn.image.update_image(old["id"], is_protected=True)
    uploads = glance.uploads()

    result = run_module(vhd_image, module_args(glance, name, xenserver_image(tmp_path)))

    assert result["failed"] is True
    assert "Image %s %s is protected" % (name, old["id"]) in result["msg"] and "--unprotected" in result["msg"]
    assert glance.uploads() == uploads and [i.id for i in images_named(conn, name)] == [old["id"]]
    conn.image.update_image(old["id"], is_protected=False)


def test_a_qcow2_file_is_refused_before_glance_is_asked_anything(glance, conn, tmp_path, run_module):
    name = uid()
    old = upload_qcow2(conn, tmp_path, name)
    requests = len(glance.requests())

    result = run_module(vhd_image, module_args(glance, name, disk(tmp_path, "cirros.qcow2")))

    assert result["failed"] is True
    assert "is a qcow2 image" in result["msg"] and "xenserver.openstack.vhd_tgz" in result["msg"]
    assert "Traceback" not in json.dumps(result)
    assert len(glance.requests()) == requests
    assert [raw(conn, i.id) for i in images_named(conn, name)] == [old]


def test_glance_own_fields_are_refused_as_properties(glance, tmp_path, run_module):
    args = module_args(glance, uid(), xenserver_image(tmp_path), properties=dict(vm_mode="hvm", visibility="x"))
    result = run_module(vhd_image, args)
    assert result["failed"] is True and "must not set Glance's own fields visibility" in result["msg"]


def test_waits_for_a_glance_that_starts_20_s_later(glance_factory, tmp_path, run_module):
    late = glance_factory()
    timer = threading.Timer(20, late.start)
    started = time.monotonic()
    timer.start()
    try:
        result = run_module(vhd_image, module_args(late, "TestVM", xenserver_image(tmp_path), wait_timeout=60))
    finally:
        timer.cancel()
    elapsed = time.monotonic() - started
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["image"]["status"] == "active"
    assert 20 <= elapsed < 50


def test_a_glance_that_never_answers_fails_in_bounded_time_naming_the_endpoint(tmp_path, run_module):
    endpoint = "http://127.0.0.1:%d" % free_port()
    args = dict(
        cloud=dict(auth_type="none", auth=dict(endpoint=endpoint)),
        name="TestVM",
        filename=str(xenserver_image(tmp_path)),
        wait_timeout=3,
    )
    started = time.monotonic()
    result = run_module(vhd_image, args)
    assert time.monotonic() - started < 10
    assert result["failed"] is True
    assert result["msg"].startswith("Glance at %s" % endpoint)
    assert "did not answer within 3 s" in result["msg"] and "raise wait_timeout" in result["msg"]


def test_keystone_secrets_never_appear_in_the_output(tmp_path, run_module, capsys):
    keystone = "http://127.0.0.1:%d/v3" % free_port()
    cloud = dict(
        auth_type="password",
        auth=dict(auth_url=keystone, username="admin", password="cloud-dict-s3cret", project_name="admin"),
    )
    args = dict(
        cloud=cloud,
        auth=dict(password="auth-option-s3cret", user_domain_name="Default", project_domain_name="Default"),
        name="TestVM",
        filename=str(xenserver_image(tmp_path)),
        wait_timeout=0,
    )
    result = run_module(vhd_image, args)
    output = json.dumps(result)
    assert result["failed"] is True and "Keystone is %s" % keystone in result["msg"]
    assert "s3cret" not in output


def test_finding_3_a_cloud_dict_never_reaches_the_log_and_only_secrets_are_masked(tmp_path, run_module, monkeypatch):
    """Issue 18, finding 3: AnsibleModule logs every run's options to syslog/the journal as it starts."""
    logged = []
    monkeypatch.setattr(AnsibleModule, "log", lambda self, msg, log_args=None: logged.append(msg))
    keystone = "http://127.0.0.1:%d/v3" % free_port()
    cloud = dict(
        auth_type="password",
        interface="public",
        auth=dict(auth_url=keystone, username="admin", password="cloud-dict-s3cret", project_name="admin"),
    )
    args = dict(cloud=cloud, name="TestVM", filename=str(xenserver_image(tmp_path)), wait_timeout=0)
    result = run_module(vhd_image, args)
    assert logged and logged[0].startswith("Invoked with")
    assert "s3cret" not in "\n".join(logged)
    assert "s3cret" not in json.dumps(result)
    # Only the secrets are masked in the output, not every value of the cloud (a word like "public" or a URL).
    assert result["failed"] is True and "Keystone is %s" % keystone in result["msg"]


# --- issue 18: what qemu-img and the tgz check must not let through -------------------------------------------

SECRET = b"controller secret " * 4096  # 72 kB of a file of the controller's


def vhd_bytes(dest, tmp_path):
    """The 0.vhd in a built XenServer image, converted back to raw (what a guest of the image would see)."""
    with tarfile.open(dest, "r:gz") as tar:
        tar.extract("0.vhd", tmp_path / "check", filter="data")
    raw = tmp_path / "check" / "0.raw"
    qemu_img("convert", "-f", "vpc", "-O", "raw", str(tmp_path / "check" / "0.vhd"), str(raw))
    return raw.read_bytes()


def crafted(tmp_path, kind):
    """A disk image that makes qemu-img read another file of the machine: (path, format to give, file it reads)."""
    secret = tmp_path / "secret.raw"
    secret.write_bytes(SECRET)
    if kind == "backing file":
        path = tmp_path / "evil.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(path))
        return path, "qcow2"
    if kind == "backing file, format probed":
        path = tmp_path / "evil.img"
        qemu_img("create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(path))
        return path, None
    if kind == "external data file":
        path = tmp_path / "evil.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=%s,data_file_raw=on" % secret, str(path), "72K")
        secret.write_bytes(SECRET)  # qemu-img create made the data file anew
        return path, "qcow2"
    if kind == "vmdk extent":
        path = tmp_path / "evil.vmdk"
        path.write_text(
            '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n'
            'RW 144 FLAT "%s" 0\n' % secret
        )
        return path, "vmdk"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["backing file", "backing file, format probed", "external data file", "vmdk extent"])
def test_finding_6_a_crafted_disk_image_cannot_put_a_controller_file_into_the_vhd(tmp_path, run_module, kind):
    """Issue 18, finding 6: qemu-img follows what an image names (a backing file, an external data file, VMDK
    extents) and probes the format; the VHD would go to Glance as a public image."""
    src, fmt = crafted(tmp_path, kind)
    dest = tmp_path / "evil.vhd.tgz"
    args = dict(src=str(src), dest=str(dest))
    if fmt:
        args["src_format"] = fmt
    result = run_module(vhd_tgz, args)
    if dest.exists():  # today's code: the controller's file is in the image
        assert SECRET[:1024] not in vhd_bytes(dest, tmp_path)
    assert result["failed"] is True, result
    assert "refusing to convert it" in result["msg"] and str(src) in result["msg"]
    assert not dest.exists()


def test_finding_6_a_json_pseudo_file_name_is_a_file_name(tmp_path, run_module, monkeypatch):
    """qemu reads a file name that starts with json: as a description of what to open."""
    (tmp_path / "secret.raw").write_bytes(SECRET)
    name = 'json:{"driver": "raw", "file": {"driver": "file", "filename": "secret.raw"}}'
    shutil.copy(disk(tmp_path, "plain.raw", fmt="raw"), tmp_path / name)
    monkeypatch.chdir(tmp_path)
    result = run_module(vhd_tgz, dict(src=name, dest=str(tmp_path / "out.vhd.tgz"), src_format="raw"))
    if (tmp_path / "out.vhd.tgz").exists():
        assert SECRET[:1024] not in vhd_bytes(tmp_path / "out.vhd.tgz", tmp_path)
    assert result["failed"] is True and "json:" in result["msg"]


def test_the_format_is_always_given_to_qemu_img(tmp_path, run_module):
    """Without src_format the module tells the format from the file's first bytes and gives it to qemu-img with -f
    (qemu-img's own probing reads a raw disk whose guest wrote a qcow2 header as that qcow2)."""
    for name, fmt in (("plain.qcow2", "qcow2"), ("plain.raw", "raw")):
        result = run_module(vhd_tgz, dict(src=str(disk(tmp_path, name, fmt=fmt)), dest=str(tmp_path / (name + ".tgz"))))
        assert result["changed"] is True and result["src_format"] == fmt, result


@pytest.mark.parametrize(
    "members", [[("0.vhd", FOOTER), ("0.vhd", FOOTER)], [("0.vhd", FOOTER), ("1.vhd", FOOTER), ("./0.vhd", FOOTER)]]
)
def test_finding_11_a_tgz_with_two_0_vhd_is_refused(tmp_path, members):
    """Issue 18, finding 11: Dom0 unpacks the tar, so the later 0.vhd would silently replace the first."""
    with pytest.raises(VHDImageError, match=r"holds 0\.vhd twice"):
        inspect_vhd_tgz(str(tgz(tmp_path / "image.tgz", members)))


def run_module_process(module, args, timeout):
    """Run a module as its own Python process (as Ansible does), killed after ``timeout`` s; return (result or None
    when it was killed, seconds it took)."""
    args_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    with args_file:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, args_file)
    collections = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), ".build", "collections")
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, module.__file__, args_file.name],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, PYTHONPATH=collections),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - started
    finally:
        os.unlink(args_file.name)
    return json.loads(done.stdout), time.monotonic() - started


def test_a_frozen_glance_fails_within_wait_timeout_plus_5_s_naming_glance_and_the_timeout(glance_factory, tmp_path):
    """Issue 18: a Glance that accepts connections and never answers (its processes stopped) hung the images play
    forever. The documented bound: wait_timeout + 5 s."""
    frozen = glance_factory()
    frozen.start()
    frozen.wait_ready()
    os.killpg(frozen.process.pid, signal.SIGSTOP)
    try:
        args = module_args(frozen, "TestVM", xenserver_image(tmp_path), wait_timeout=5)
        result, took = run_module_process(vhd_image, args, timeout=60)
    finally:
        os.killpg(frozen.process.pid, signal.SIGCONT)
    assert result is not None, "the module was still waiting after %d s" % took
    print("vhd_image against a frozen Glance, wait_timeout 5: failed after %.1f s" % took)
    assert took < 5 + 5, took
    assert result["failed"] is True
    assert result["msg"].startswith("Glance at %s did not answer within 5 s" % frozen.endpoint), result["msg"]
    assert "raise wait_timeout" in result["msg"]
