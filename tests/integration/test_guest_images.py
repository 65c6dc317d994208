"""The guest_images role through ansible-playbook, on localhost, against the real Glance of tests/glancebed.

The source image is a qcow2 made here with qemu-img and served by an HTTP server on 127.0.0.1 that counts
its requests, so the test needs no network and can tell that a re-run downloads nothing.
"""

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading

import openstack
import pytest
from bedlib import ansible_env, task_results

PLAYBOOK = """\
- name: XenServer-format test images
  hosts: localhost
  gather_facts: false
  roles:
    - role: xenserver.openstack.guest_images
"""


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory and records the path of every request."""

    def log_message(self, *args):
        self.server.paths.append(self.path)


@pytest.fixture
def image_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; ``server.paths`` lists the requests."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(CountingHandler, directory=root))
    server.paths = []
    server.root = root
    server.url = "http://127.0.0.1:%d" % server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make_qcow2(path, size="24M"):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def run_role(tmp_path, extra_vars):
    """Run the role on localhost (this interpreter, which has openstacksdk); return (rc, report, output)."""
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps(extra_vars))
    run = subprocess.run(
        [
            "ansible-playbook",
            str(tmp_path / "play.yml"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
            "-e",
            "@%s" % (tmp_path / "vars.json"),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=False,
    )
    start = run.stdout.find("{")
    report = json.loads(run.stdout[start:]) if start >= 0 else None
    return run.returncode, report, run.stdout + run.stderr


def changed_tasks(report):
    """The names (without the role prefix) of the tasks that reported a change."""
    return [
        task["task"]["name"].split(" : ", 1)[-1]
        for play in report["plays"]
        for task in play["tasks"]
        if task["hosts"].get("localhost", {}).get("changed")
    ]


def test_role_replaces_testvm_once_then_changes_and_downloads_nothing(glance, image_server, tmp_path):
    conn = openstack.connect(**glance.cloud)
    source = make_qcow2(image_server.root / "cirros.img")
    user_image = conn.image.create_image(
        "user-image",
        filename=str(make_qcow2(tmp_path / "user.qcow2", "4M")),
        disk_format="qcow2",
        container_format="bare",
        allow_duplicates=True,
    )
    old = conn.image.create_image(
        "TestVM",
        filename=str(make_qcow2(tmp_path / "old.qcow2", "4M")),
        disk_format="qcow2",
        container_format="bare",
        visibility="public",
        allow_duplicates=True,
    )
    user_record = conn.image.get("/images/%s" % user_image.id).json()
    extra_vars = dict(
        guest_images_cloud=glance.cloud,
        guest_images_cache_dir=str(tmp_path / "cache"),
        guest_images_packages=[],  # qemu-utils is installed by scripts/setup.sh; no apt runs in tests
        guest_images_host_platform_versions=["3.4.0", "2.2.0"],
        guest_images_list=[
            dict(
                name="TestVM",
                url=image_server.url + "/cirros.img",
                checksum="sha256:" + hashlib.sha256(source.read_bytes()).hexdigest(),
                format="qcow2",
                properties=dict(vm_mode="{{ guest_images_vm_mode }}", os_type="linux", hypervisor_type="xen"),
            ),
            dict(name="F17-x86_64-cfntools", enabled=False, url="", format="vhd-tgz"),
        ],
    )

    code, report, output = run_role(tmp_path, extra_vars)

    assert code == 0, output[-3000:]
    assert [name.split(" ")[0] for name in changed_tasks(report)] == ["Create", "Download", "Convert", "Ensure"]
    (testvm,) = list(conn.image.images(name="TestVM"))
    record = conn.image.get("/images/%s" % testvm.id).json()
    assert (record["container_format"], record["disk_format"], record["visibility"]) == ("ovf", "vhd", "public")
    assert (record["vm_mode"], record["os_type"], record["hypervisor_type"]) == ("hvm", "linux", "xen")
    assert testvm.id != old.id
    assert conn.image.get("/images/%s" % user_image.id).json() == user_record
    assert list(conn.image.images(name="F17-x86_64-cfntools")) == []
    assert image_server.paths == ["/cirros.img"]
    uploads = glance.uploads()
    # The long steps, conversion and upload, ran in the background and were polled; each label says how far.
    for step in ("Convert", "Ensure"):
        (item,) = task_results(report, "localhost", "xenserver.openstack.guest_images : " + step)[0]["results"]
        assert item["ansible_job_id"] and item["finished"] == 1, item
        assert item["_ansible_item_label"] == (
            "TestVM (qcow2, image 1 of 1)" if step == "Convert" else "TestVM (image 1 of 1)"
        ), item

    code, report, output = run_role(tmp_path, extra_vars)

    assert code == 0, output[-3000:]
    assert report["stats"]["localhost"]["changed"] == 0, changed_tasks(report)
    assert image_server.paths == ["/cirros.img"]
    assert glance.uploads() == uploads
    assert [i.id for i in conn.image.images(name="TestVM")] == [testvm.id]

    # Only XenServer hosts older than platform 3.0.0 (XCP-ng / Citrix Hypervisor 8): PV, set in place.
    code, report, output = run_role(tmp_path, dict(extra_vars, guest_images_host_platform_versions=["2.2.0"]))

    assert code == 0, output[-3000:]
    assert [name.split(" ")[0] for name in changed_tasks(report)] == ["Ensure"]
    (result,) = task_results(report, "localhost", "xenserver.openstack.guest_images : Ensure")[0]["results"]
    assert result["uploaded"] is False and result["image"]["vm_mode"] == "xen"
    assert [i.id for i in conn.image.images(name="TestVM")] == [testvm.id]
    assert glance.uploads() == uploads
    assert os.path.exists(tmp_path / "cache" / "TestVM.vhd.tgz")
