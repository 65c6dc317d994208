"""The XenServer image checks (module_utils/_vhd.py) and the vhd_tgz module, with images made by qemu-img; what
qemu-img and the tgz check must not let through (issue 18, findings 6 and 11)."""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest
from ansible_collections.xenserver.openstack.plugins.module_utils._vhd import VHDImageError, inspect_vhd_tgz
from ansible_collections.xenserver.openstack.plugins.modules import vhd_tgz
from vhdlib import FOOTER, disk, qemu_img, tgz, xenserver_image

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
    }
    assert inspect_vhd_tgz(str(image), ["sha512"])["digests"] == {"sha512": hashlib.sha512(data).hexdigest()}


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
