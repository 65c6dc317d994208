"""Disk images for the tests of vhd_tgz and vhd_image: made with qemu-img and the collection's own helper."""

import io
import subprocess
import tarfile

from ansible_collections.xenserver.openstack.plugins.module_utils._vhd import make_vhd_tgz

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
