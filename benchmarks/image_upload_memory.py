"""Peak memory and throughput of an image upload by xenserver.openstack.vhd_image, against openstacksdk's own
create_image on the same file, into the real Glance of tests/glancebed.

    . scripts/env.sh && python benchmarks/image_upload_memory.py [--size-mib 1024] [--keep]

Two XenServer-format images are made with qemu-img in a temporary directory outside the repository: a
small one (16 MiB) and a large one (1 GiB by default) - each a fixed-size VHD of a sparse raw disk, in a
gzip tar stored without compression so that the file to upload has the full size. Each upload runs in a
process of its own; its peak RSS comes from wait4(). The module's time includes its checking pass (gunzip
of every member, md5 and sha256 of the file); create_image only uploads. Not a timed test: it
prints figures and ratios.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from glancebed.server import GlanceServer  # noqa: E402

MODULE_RUN = """
import json, sys
from ansible.module_utils.testing import patch_module_args
from ansible_collections.xenserver.openstack.plugins.modules import vhd_image
with patch_module_args(json.loads(sys.argv[1])):
    vhd_image.main()
"""
SDK_RUN = """
import json, sys, openstack
cloud, name, filename = json.loads(sys.argv[1])
image = openstack.connect(**cloud).image.create_image(
    name, filename=filename, disk_format="vhd", container_format="ovf", allow_duplicates=True)
print(json.dumps({"changed": True, "image": {"id": image.id}}))
"""


def make_image(work, name, size_mib):
    """A XenServer-format image of about size_mib MiB: fixed VHD of a sparse raw disk, gzip level 0."""
    raw, vhd, tgz = (os.path.join(work, name + ext) for ext in (".raw", ".vhd", ".vhd.tgz"))
    with open(raw, "wb") as disk:
        disk.truncate(size_mib * 1024 * 1024)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", raw, vhd], check=True)
    with tarfile.open(tgz, "w:gz", compresslevel=0) as tar:
        tar.add(vhd, arcname="0.vhd")
    os.remove(raw)
    os.remove(vhd)
    return tgz


def measured(argv):
    """Run a process; return (its JSON output, wall seconds, peak RSS in MiB)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, ".build", "collections"), ROOT]))
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    if status:
        raise SystemExit("%s failed: %s" % (argv[:3], output[-2000:]))
    return json.loads(output), elapsed, usage.ru_maxrss / 1024.0


def upload_with_module(glance, name, filename):
    args = dict(cloud=glance.cloud, name=name, filename=filename, properties=dict(vm_mode="hvm"))
    result, elapsed, rss = measured([sys.executable, "-c", MODULE_RUN, json.dumps(args)])
    assert result.get("uploaded") is True, result
    return elapsed, rss


def upload_with_sdk(glance, name, filename):
    _result, elapsed, rss = measured([sys.executable, "-c", SDK_RUN, json.dumps([glance.cloud, name, filename])])
    return elapsed, rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the large image (default 1024)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix="image-upload-bench-")
    glance = GlanceServer(os.path.join(work, "glance"))
    try:
        glance.prepare()
        glance.start()
        glance.wait_ready()
        images = dict(small=make_image(work, "small", 16), large=make_image(work, "large", options.size_mib))
        rows = {}
        for label, filename in images.items():
            size = os.path.getsize(filename) / 1024.0 / 1024.0
            module_time, module_rss = upload_with_module(glance, "bench-module-" + label, filename)
            sdk_time, sdk_rss = upload_with_sdk(glance, "bench-sdk-" + label, filename)
            rows[label] = dict(size=size, module=(module_time, module_rss), sdk=(sdk_time, sdk_rss))
        report(rows)
    finally:
        glance.stop()
        if options.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work)


def report(rows):
    print(
        "%-6s %10s | %-28s | %-28s"
        % ("image", "size MiB", "vhd_image: s, MiB/s, RSS MiB", "create_image: s, MiB/s, RSS")
    )
    for label, row in rows.items():
        cells = []
        for who in ("module", "sdk"):
            seconds, rss = row[who]
            cells.append("%6.2f s %7.1f MiB/s %6.1f MiB" % (seconds, row["size"] / seconds, rss))
        print("%-6s %10.1f | %s | %s" % (label, row["size"], cells[0], cells[1]))
    small, large = rows["small"], rows["large"]
    print("vhd_image peak RSS, large / small image:          %.2f" % (large["module"][1] / small["module"][1]))
    print("create_image peak RSS, large / small image:       %.2f" % (large["sdk"][1] / small["sdk"][1]))
    print("vhd_image / create_image peak RSS, large image:   %.2f" % (large["module"][1] / large["sdk"][1]))
    print("vhd_image / create_image throughput, large image: %.2f" % (large["sdk"][0] / large["module"][0]))


if __name__ == "__main__":
    main()
