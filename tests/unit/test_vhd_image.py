"""The vhd_image module against a real Glance (the ``glance`` fixture of tests/glancebed: glance-api from PyPI under
gunicorn, no Keystone). Test images in Glance get names of their own (``uid``), so the tests share one Glance and
can run in any order.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import openstack
import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.xenserver.openstack.plugins.modules import vhd_image
from glancebed.server import free_port
from vhdlib import FOOTER, disk, tgz, xenserver_image


def uid(prefix="TestVM"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


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


def test_a_new_image_is_checked_while_it_uploads_and_named_only_then(glance, conn, tmp_path, run_module):
    """No image of the name can hold the file (none of its size): one pass over the file, the check beside the
    upload, into a private image of its own name that gets the name once the check passed."""
    name = uid()
    image = xenserver_image(tmp_path)
    start = len(glance.requests())

    result = run_module(vhd_image, module_args(glance, name, image))

    assert result["changed"] is True and result["uploaded"] is True, result
    record = raw(conn, result["image"]["id"])
    md5 = hashlib.md5(image.read_bytes()).hexdigest()
    assert (record["name"], record["visibility"], record["checksum"]) == (name, "public", md5)
    assert record["owner_specified.openstack.md5"] == md5
    assert record["owner_specified.openstack.sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert images_named(conn, vhd_image.UPLOAD_NAME % name) == []
    changes = [(r["method"], r["path"]) for r in glance.requests()[start:] if r["method"] != "GET"]
    image_path = "/images/%s" % record["id"]
    assert changes == [("POST", "/images"), ("PUT", image_path + "/file"), ("PATCH", image_path)], changes


def test_a_broken_file_found_while_it_uploads_never_appears_under_the_name(glance, conn, tmp_path, run_module):
    """A gzip tar whose first member is not 0.vhd passes the first bytes' check; the check beside the upload finds
    it, and the uploaded image is deleted."""
    name = uid()
    broken = tgz(tmp_path / "broken.vhd.tgz", [("1.vhd", b"\0" * 4096 + FOOTER)])

    result = run_module(vhd_image, module_args(glance, name, broken))

    assert result["failed"] is True and "The first member of %s is 1.vhd, not 0.vhd" % broken in result["msg"]
    assert images_named(conn, name) == [] and images_named(conn, vhd_image.UPLOAD_NAME % name) == []
    assert [r["method"] for r in glance.requests() if r["method"] == "DELETE"], "the upload was not deleted"


def test_an_interrupted_upload_is_deleted_by_the_next_run(glance, conn, tmp_path, run_module):
    name = uid()
    args = module_args(glance, name, xenserver_image(tmp_path))
    first = run_module(vhd_image, args)
    leftover = conn.image.create_image(
        vhd_image.UPLOAD_NAME % name, disk_format="vhd", container_format="ovf", allow_duplicates=True
    )

    result = run_module(vhd_image, args)

    assert result["changed"] is True and result["uploaded"] is False and result["deleted"] == [leftover.id]
    assert images_named(conn, vhd_image.UPLOAD_NAME % name) == []
    assert [i.id for i in images_named(conn, name)] == [first["image"]["id"]]


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
