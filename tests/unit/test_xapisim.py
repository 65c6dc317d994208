"""Tests of the XAPI simulator (tests/xapisim), driven through the real XenAPI client over HTTP."""

import http.client
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import xmlrpc.client
from urllib.parse import urlsplit

import pytest
import xapisim.server
import XenAPI
from xapisim import ScenarioError, Simulator, load_scenario
from xapisim.pytest_plugin import SCENARIO_DIR, scenario_names, scenario_path

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPUTE_UUID = "afcf0613-b81a-46ac-bedf-c13183f5de28"

PLUGIN = textwrap.dedent("""\
    #!/usr/bin/env python
    import sys

    import XenAPIPlugin


    def echo(session, args):
        return "%s|%s|%d.%d" % (session._session[:10], args.get("x"), sys.version_info[0], sys.version_info[1])


    if __name__ == "__main__":
        XenAPIPlugin.dispatch({"echo": echo})
    """)


def login(sim, url=None):
    session = XenAPI.Session(url or sim.url)
    session.xenapi.login_with_password("root", "xenroot", "2.21", "test_xapisim")
    return session


def failure(call, *args):
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def put_raw(sim, query, chunks, length=None):
    """PUT /import_raw_vdi streaming ``chunks`` (chunked encoding when ``length`` is None)."""
    conn = http.client.HTTPConnection(urlsplit(sim.url).hostname, urlsplit(sim.url).port, timeout=10)
    conn.putrequest("PUT", "/import_raw_vdi?" + query)
    conn.putheader(
        "Content-Length" if length is not None else "Transfer-Encoding",
        str(length) if length is not None else "chunked",
    )
    conn.endheaders()
    for chunk in chunks:
        conn.send(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
    if length is None:
        conn.send(b"0\r\n\r\n")
    status = conn.getresponse().status
    conn.close()
    return status


def upload(sim, session, data):
    """Upload ``data`` into a new VDI on the default SR; return the VDI ref."""
    x = session.xenapi
    task = x.task.create("upload", "")
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    assert put_raw(sim, "session_id=%s&task_id=%s&sr_id=%s" % (session.handle, task, sr), [data], len(data)) == 200
    assert x.task.get_status(task) == "success"
    return xmlrpc.client.loads("<params><param>%s</param></params>" % x.task.get_result(task))[0][0]


def write_scenario(tmp_path, text, name="scenario.yml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).replace("BASE", scenario_path("xcpng-8.3")))
    return str(path)


# -- sessions and generic messages ---------------------------------------------------------------
def test_login_and_bad_password(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    assert session.API_version == "2.21"
    host = session.xenapi.session.get_this_host(session.handle)
    assert session.xenapi.host.get_record(host)["software_version"]["product_brand"] == "XCP-ng"
    bad = XenAPI.Session(sim.url)
    assert failure(bad.xenapi.login_with_password, "root", "wrong") == [
        "SESSION_AUTHENTICATION_FAILED",
        "root",
        "Authentication failure",
    ]
    session.xenapi.session.logout()
    assert sim.state()["sessions"] == 0


def test_query_language(xapi_sim):
    x = login(xapi_sim("xcpng-8.3")).xenapi
    where = x.VM.get_all_records_where
    dom0 = where('field "is_control_domain"="TRUE"')
    assert [r["domid"] for r in dom0.values()] == ["0"]
    compute = where('field "is_control_domain"="false" and field "power_state"="Running"')
    assert [r["uuid"] for r in compute.values()] == [COMPUTE_UUID]
    assert len(where('field "domid"="0" or field "domid"="1"')) == 2
    assert list(where('not field "is_control_domain"="true"')) == list(compute)
    assert list(where('(field "name__label"="compute-1" or false) and not (field "domid"="7")')) == list(compute)
    assert len(where("true")) == 2
    assert where("false") == {}
    host = x.host.get_all()[0]
    assert list(where('field "resident_on"="%s" and field "domid"="1"' % host)) == list(compute)
    assert failure(where, 'field "domid"=')[0] == "INTERNAL_ERROR"


def test_error_codes_and_generic_messages(xapi_sim):
    x = login(xapi_sim("xcpng-8.3")).xenapi
    assert failure(x.VM.get_record, "OpaqueRef:nope") == ["HANDLE_INVALID", "VM", "OpaqueRef:nope"]
    assert failure(x.VM.get_by_uuid, "0000") == ["UUID_INVALID", "VM", "0000"]
    assert failure(x.VM.frobnicate) == ["MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"]
    assert failure(x.VM.get_record) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "2", "1"]
    vm = x.VM.get_by_uuid(COMPUTE_UUID)
    assert x.VM.get_by_name_label("compute-1") == [vm]
    assert x.VM.get_xenstore_data(vm)["vm-data/himn_mac"] == "a6:4d:ca:18:25:30"
    x.VM.add_to_other_config(vm, "k", "v")
    assert failure(x.VM.add_to_other_config, vm, "k", "w") == [
        "MAP_DUPLICATE_KEY",
        "VM",
        "other_config",
        COMPUTE_UUID,
        "k",
    ]
    x.VM.remove_from_other_config(vm, "k")
    x.VM.remove_from_other_config(vm, "k")
    assert "k" not in x.VM.get_other_config(vm)
    x.VM.set_name_label(vm, "renamed")
    x.VM.add_tags(vm, "a")
    assert (x.VM.get_name_label(vm), x.VM.get_tags(vm)) == ("renamed", ["a"])
    assert failure(x.VM.set_uuid, vm, "x")[0] == "MESSAGE_METHOD_UNKNOWN"
    host = x.host.get_all()[0]
    assert x.VM.get_resident_on(vm) == host and vm in x.host.get_resident_VMs(host)
    assert x.VM.get_domid(vm) == "1"
    assert x.host.get_API_version_minor(host) == "21"


def test_session_expiry_relogin(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    sim.reset_counts()
    sim.expire_sessions()
    assert session.xenapi.pool.get_all()
    assert sim.counts() == {"pool.get_all": 2, "session.login_with_password": 1}
    sim.reset_counts()
    sim.expire_sessions_after(2)
    for _ in range(3):
        session.xenapi.host.get_all()
    assert sim.counts() == {"host.get_all": 4, "session.login_with_password": 1}
    sim.reset_counts()
    sim.expire_sessions_at("pool.get_all")
    session.xenapi.host.get_all()
    assert session.xenapi.pool.get_all() and session.xenapi.pool.get_all()
    assert sim.counts() == {"host.get_all": 1, "pool.get_all": 3, "session.login_with_password": 1}


def test_always_expire_gives_fault(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    sim.always_expire(True)
    with pytest.raises(xmlrpc.client.Fault, match="Tried 3 times"):
        session.xenapi.host.get_all()
    assert sim.counts()["session.login_with_password"] == 4
    sim.always_expire(False)
    assert session.xenapi.host.get_all()


def test_pool_member_host_is_slave_and_himn(xapi_sim):
    member = xapi_sim("pool-member")
    port = urlsplit(member.url).port
    plain = XenAPI.Session(member.url)
    assert failure(plain.xenapi.login_with_password, "root", "xenroot") == ["HOST_IS_SLAVE", "127.0.0.2"]
    local = XenAPI.Session(member.url)
    local.slave_local_login_with_password("root", "xenroot")
    x = local.xenapi
    assert x.host.get_address(x.session.get_this_host(local.handle)) == "127.0.0.1"
    local.xenapi.session.logout()
    # Follow the redirection, as callers do, to the master on the same port.
    master = xapi_sim("pool-master", host="127.0.0.2", port=port)
    session = login(master, "http://127.0.0.2:%d" % port)
    x = session.xenapi
    assert x.host.get_address(x.session.get_this_host(session.handle)) == "127.0.0.2"
    # On a HIMN address the member serves the call as if it were the master.
    himn = xapi_sim("pool-member", himn_addresses=("127.0.0.1",))
    session = login(himn)
    x = session.xenapi
    assert x.host.get_address(x.session.get_this_host(session.handle)) == "127.0.0.2"
    compute = x.VM.get_by_uuid(COMPUTE_UUID)
    assert x.host.get_address(x.VM.get_resident_on(compute)) == "127.0.0.1"


def test_pool_update_gated_by_platform_version(xapi_sim):
    old = login(xapi_sim("xenserver-6.5")).xenapi
    assert failure(old.pool_update.get_all) == ["MESSAGE_METHOD_UNKNOWN", "pool_update.get_all"]
    assert failure(old.Async.pool_update.get_all) == ["MESSAGE_METHOD_UNKNOWN", "Async.pool_update.get_all"]
    assert old.pool_patch.get_by_name_label("XS65ESP1013") == []
    fixed = login(xapi_sim("xenserver-6.5-hotfix")).xenapi
    (patch,) = fixed.pool_patch.get_by_name_label("XS65ESP1013")
    (host_patch,) = fixed.pool_patch.get_host_patches(patch)
    assert fixed.host_patch.get_host(host_patch) == fixed.host.get_all()[0]
    new = login(xapi_sim("xenserver-7.1")).xenapi
    (update,) = new.pool_update.get_by_name_label("XS71ECU1009")
    assert new.host.get_updates(new.host.get_all()[0]) == [update]


def test_async_task(xapi_sim):
    x = login(xapi_sim("xcpng-8.3")).xenapi
    host = x.host.get_all()[0]
    task = x.Async.host.get_software_version(host)
    assert x.task.get_status(task) == "success"
    value = xmlrpc.client.loads("<params><param>%s</param></params>" % x.task.get_result(task))[0][0]
    assert value["platform_version"] == "3.4.0"
    task = x.Async.VM.get_record("OpaqueRef:bad")
    assert x.task.get_status(task) == "failure"
    assert x.task.get_error_info(task) == ["HANDLE_INVALID", "VM", "OpaqueRef:bad"]
    x.task.destroy(task)
    assert failure(x.task.get_status, task)[0] == "HANDLE_INVALID"
    assert x.task.get_result(x.Async.SR.scan(x.SR.get_all()[0])) == "<value></value>"


# -- /import_raw_vdi -----------------------------------------------------------------------------
def test_import_raw_vdi_streams_5mb(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    x = session.xenapi
    task = x.task.create("upload", "")
    sr = x.SR.get_by_name_label("Local storage")[0]
    block = os.urandom(64 * 1024)
    query = "session_id=%s&task_id=%s&sr_id=%s&format=raw" % (session.handle, task, sr)
    assert put_raw(sim, query, [block] * 80, 80 * len(block)) == 200
    assert x.task.get_status(task) == "success"
    vdi = x.task.get_result(task)[len("<value>") : -len("</value>")]
    rec = x.VDI.get_record(vdi)
    assert (rec["virtual_size"], rec["SR"]) == (str(5 * 1024 * 1024), sr)
    assert vdi in x.SR.get_VDIs(sr)
    path = os.path.join(sim.root, "var", "xapisim", "vdi", rec["uuid"])
    assert os.path.getsize(path) == 5 * 1024 * 1024
    # chunked transfer encoding into the existing VDI
    task = x.task.create("upload", "")
    assert put_raw(sim, "session_id=%s&task_id=%s&vdi=%s" % (session.handle, task, vdi), [b"abc", b"de"]) == 200
    assert open(path, "rb").read() == b"abcde" and x.VDI.get_virtual_size(vdi) == "5"
    assert sim.counts()["PUT /import_raw_vdi"] == 2
    x.VDI.destroy(vdi)
    assert not os.path.exists(path) and sim.vdi_count() == 0
    assert put_raw(sim, "session_id=OpaqueRef:bad&sr_id=%s" % sr, [b"x"], 1) == 403
    task = x.task.create("upload", "")
    assert put_raw(sim, "session_id=%s&task_id=%s&sr_id=OpaqueRef:no" % (session.handle, task), [b"x"], 1) == 404
    assert x.task.get_error_info(task) == ["HANDLE_INVALID", "SR", "OpaqueRef:no"]
    assert put_raw(sim, "session_id=%s&sr_id=%s&format=vhd" % (session.handle, sr), [b"x"], 1) == 400
    assert sim.vdi_count() == 0


def test_import_raw_vdi_aborted_upload(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    x = session.xenapi
    task = x.task.create("upload", "")
    sr = x.SR.get_all()[0]
    sock = socket.create_connection((urlsplit(sim.url).hostname, urlsplit(sim.url).port))
    sock.sendall(
        (
            "PUT /import_raw_vdi?session_id=%s&task_id=%s&sr_id=%s HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 1000000\r\n\r\n" % (session.handle, task, sr)
        ).encode()
        + b"\0" * 500000
    )
    sock.close()
    deadline = time.time() + 5
    while x.task.get_status(task) == "pending" and time.time() < deadline:
        time.sleep(0.02)
    assert x.task.get_status(task) == "failure"
    assert sim.vdi_count() == 0
    assert os.listdir(os.path.join(sim.root, "var", "xapisim", "vdi")) == []


def test_cut_upload_resets_the_next_upload_only(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    x = session.xenapi
    sr = x.SR.get_all()[0]
    block = b"\0" * (64 * 1024)
    sim.cut_next_upload(256 * 1024)
    task = x.task.create("upload", "")
    query = "session_id=%s&task_id=%s&sr_id=%s" % (session.handle, task, sr)
    with pytest.raises(OSError):  # reset by the simulator: the client cannot send the rest
        put_raw(sim, query, [block] * 160, 160 * len(block))
    assert x.task.get_status(task) == "failure" and x.task.get_error_info(task)[0] == "VDI_IO_ERROR"
    assert "cut_upload" in x.task.get_error_info(task)[1]
    assert sim.vdi_count() == 0
    task = x.task.create("upload", "")
    query = "session_id=%s&task_id=%s&sr_id=%s" % (session.handle, task, sr)
    assert put_raw(sim, query, [block] * 8, 8 * len(block)) == 200
    assert x.task.get_status(task) == "success" and sim.vdi_count() == 1
    with pytest.raises(ValueError):
        sim.cut_next_upload(0)


def test_load_reseeds_from_another_scenario_and_keeps_the_root(xapi_sim, tmp_path):
    sim = xapi_sim("xcpng-8.3")
    marker = os.path.join(sim.root, "etc", "marker")
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    open(marker, "w").close()
    login(sim)
    assert sim.state()["sessions"] == 1
    sim.load(scenario_path("lvm-sr"))
    assert sim.state()["sessions"] == 0
    x = login(sim).xenapi
    assert [r["type"] for r in x.SR.get_all_records().values()] == ["lvm"]
    assert os.path.exists(marker) and sim.counts()["session.login_with_password"] == 2
    with pytest.raises(ScenarioError):
        sim.load(str(tmp_path / "missing.yml"))
    assert [r["type"] for r in x.SR.get_all_records().values()] == ["lvm"]


def test_pool_member_can_refuse_the_login_on_its_himn_address_too(xapi_sim, tmp_path):
    (tmp_path / "member.yml").write_text(
        "extends: %s\nbehaviour: {host_is_slave_on_himn: true}\n" % os.path.join(SCENARIO_DIR, "pool-member.yml")
    )
    sim = xapi_sim(str(tmp_path / "member.yml"), himn_addresses=("127.0.0.1",))
    assert failure(XenAPI.Session(sim.url).xenapi.login_with_password, "root", "xenroot") == [
        "HOST_IS_SLAVE",
        "127.0.0.2",
    ]


# -- pool_update ---------------------------------------------------------------------------------
def test_pool_update_lifecycle_installs_plugins(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    x = session.xenapi
    manifest = json.dumps(
        {
            "name_label": "xenserver-openstack",
            "version": "2.0.1",
            "key": "XS-OPENSTACK",
            "after_apply_guidance": ["restartXAPI"],
            "plugins": {"suppack-test": PLUGIN},
        }
    )
    update = x.pool_update.introduce(upload(sim, session, manifest.encode()))
    rec = x.pool_update.get_record(update)
    assert (rec["name_label"], rec["version"], rec["after_apply_guidance"]) == (
        "xenserver-openstack",
        "2.0.1",
        ["restartXAPI"],
    )
    assert failure(x.pool_update.introduce, upload(sim, session, manifest.encode())) == [
        "UPDATE_ALREADY_EXISTS",
        rec["uuid"],
    ]
    assert failure(x.pool_update.introduce, upload(sim, session, os.urandom(4096)))[0] == "INVALID_UPDATE"
    host = x.host.get_all()[0]
    assert x.pool_update.precheck(update, host) == "ok"
    x.pool_update.apply(update, host)
    plugin = os.path.join(sim.plugin_dir, "suppack-test")
    assert stat.S_IMODE(os.stat(plugin).st_mode) == 0o755
    assert x.host.call_plugin(host, "suppack-test", "echo", {"x": "1"}).split("|")[1] == "1"
    assert x.pool_update.get_hosts(update) == [host] and x.host.get_updates(host) == [update]
    assert failure(x.pool_update.apply, update, host) == ["UPDATE_ALREADY_APPLIED", update]
    assert failure(x.pool_update.pool_apply, update) == ["UPDATE_ALREADY_APPLIED_IN_POOL", update]
    assert failure(x.pool_update.destroy, update) == ["UPDATE_IS_APPLIED"]
    vdis = sim.vdi_count()
    x.pool_update.pool_clean(update)
    assert sim.vdi_count() == vdis - 1 and x.pool_update.get_vdi(update) == "OpaqueRef:NULL"
    assert [u["name_label"] for u in sim.state()["updates"]] == ["xenserver-openstack"]


def test_update_behaviour_switches(xapi_sim, tmp_path):
    path = write_scenario(
        tmp_path,
        """\
        extends: BASE
        behaviour: {update_signature: invalid, precheck: wrong_server_version}
        updates:
          - {name_label: pending-pack, version: "1.0"}
        """,
    )
    sim = xapi_sim(path)
    session = login(sim)
    x = session.xenapi
    manifest = json.dumps({"name_label": "pack", "version": "1"}).encode()
    assert failure(x.pool_update.introduce, upload(sim, session, manifest)) == ["INVALID_UPDATE", "Invalid signature"]
    (update,) = x.pool_update.get_by_name_label("pending-pack")
    details = failure(x.pool_update.precheck, update, x.host.get_all()[0])
    assert details[:2] == ["UPDATE_PRECHECK_FAILED_WRONG_SERVER_VERSION", update]


# -- VIF / network -------------------------------------------------------------------------------
def test_vif_lifecycle_and_himn_lease(xapi_sim):
    x = login(xapi_sim("xcpng-8.3")).xenapi
    vm = x.VM.get_by_uuid(COMPUTE_UUID)
    (himn,) = x.network.get_all_records_where('field "bridge"="xenapi"')
    vif = x.VIF.create(
        {
            "device": "3",
            "network": himn,
            "VM": vm,
            "MAC": "",
            "MTU": "1500",
            "other_config": {},
            "qos_algorithm_type": "",
            "qos_algorithm_params": {},
        }
    )
    mac = x.VIF.get_MAC(vif)
    assert len(mac.split(":")) == 6 and x.VIF.get_MAC_autogenerated(vif) is True
    assert x.network.get_assigned_ips(himn)[vif] == "169.254.0.3"
    assert vif in x.VM.get_VIFs(vm) and vif in x.network.get_VIFs(himn)
    assert failure(x.VIF.create, {"device": "3", "network": himn, "VM": vm}) == ["DEVICE_ALREADY_EXISTS", "3"]
    x.VIF.plug(vif)
    assert failure(x.VIF.plug, vif) == ["DEVICE_ALREADY_ATTACHED", vif]
    assert failure(x.VIF.destroy, vif)[0] == "OPERATION_NOT_ALLOWED"
    x.VIF.unplug(vif)
    x.VIF.destroy(vif)
    assert vif not in x.network.get_assigned_ips(himn) and vif not in x.VM.get_VIFs(vm)
    assert failure(x.network.destroy, himn) == ["CANNOT_DESTROY_SYSTEM_NETWORK", himn]


# -- reboot, control endpoints, TLS --------------------------------------------------------------
def test_reboot_wipes_volatile_and_runs_udev_hooks(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)
    volatile = os.path.join(sim.root, "var", "volatile")
    os.makedirs(os.path.join(volatile, "routes"))
    open(os.path.join(volatile, "routes", "r1"), "w").close()
    open(os.path.join(volatile, "flag"), "w").close()
    rules = os.path.join(sim.root, "etc", "udev", "rules.d")
    os.makedirs(rules)
    with open(os.path.join(rules, "90-xenapi.rules"), "w") as f:
        f.write(
            'SUBSYSTEM=="net", KERNEL=="xenapi", ACTION=="add", RUN+="/usr/libexec/hook.sh one"\n'
            'SUBSYSTEM=="net", KERNEL=="eth0", RUN+="/usr/libexec/hook.sh other"\n'
        )
    hook = os.path.join(sim.root, "usr", "libexec", "hook.sh")
    os.makedirs(os.path.dirname(hook), exist_ok=True)  # usr/libexec/xenserver-openstack is a mount
    with open(hook, "w") as f:
        f.write('#!/bin/sh\necho "$1 $INTERFACE" >> "$XAPISIM_ROOT/hook.log"\n')
    os.chmod(hook, 0o755)
    sim.reset_counts()
    assert sim.reboot() == [[[hook, "one"], 0]]
    assert os.listdir(volatile) == []
    assert open(os.path.join(sim.root, "hook.log")).read() == "one xenapi\n"
    assert session.xenapi.host.get_all()
    assert sim.counts()["session.login_with_password"] == 1


def test_reboot_flushes_routes_only_in_a_namespace_of_its_own(xapi_sim, monkeypatch, capfd):
    flushed, real_run = [], subprocess.run

    def run(argv, **kwargs):  # never run "ip" for real: this may be the machine's own namespace
        return flushed.append(argv) if argv[0] == "ip" else real_run(argv, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    sim = xapi_sim("xcpng-8.3", netns=True)
    monkeypatch.setattr(xapisim.server, "_in_own_netns", lambda: False)
    sim.reboot()
    assert flushed == [] and "routes kept" in capfd.readouterr().err
    monkeypatch.setattr(xapisim.server, "_in_own_netns", lambda: True)
    sim.reboot()
    assert flushed == [["ip", "route", "flush", "proto", "static"], ["ip", "route", "flush", "proto", "boot"]]


def test_http_control_endpoints(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    session = login(sim)

    def control(path, method="POST"):
        request = urllib.request.Request(sim.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request) as resp:
            return resp.read().decode()

    assert control("/_sim/health", "GET") == "ok"
    assert json.loads(control("/_sim/counts", "GET"))["session.login_with_password"] == 1
    control("/_sim/reset_counts")
    assert json.loads(control("/_sim/counts", "GET")) == {}
    control("/_sim/expire_sessions")
    session.xenapi.host.get_all()
    control("/_sim/expire_after?n=1")
    session.xenapi.host.get_all()
    session.xenapi.host.get_all()
    assert sim.counts()["session.login_with_password"] == 2
    control("/_sim/expire_at?method=host.get_all")
    session.xenapi.host.get_all()
    assert sim.counts()["session.login_with_password"] == 3
    control("/_sim/always_expire?on=1")
    with pytest.raises(xmlrpc.client.Fault):
        session.xenapi.host.get_all()
    control("/_sim/always_expire?on=0")
    assert json.loads(control("/_sim/reboot")) == []
    assert json.loads(control("/_sim/state", "GET"))["vdis"] == []
    control("/_sim/cut_upload?after=10")
    assert sim.take_cut() == 10 and sim.take_cut() is None
    control("/_sim/load?scenario=%s" % scenario_path("lvm-sr"))
    assert [r["type"] for r in login(sim).xenapi.SR.get_all_records().values()] == ["lvm"]
    with pytest.raises(urllib.error.HTTPError, match="400"):
        control("/_sim/load?scenario=/nonexistent.yml")


def test_tls(xapi_sim, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    sim = xapi_sim("xcpng-8.3", tls=(cert, key))
    assert sim.url.startswith("https://")
    with pytest.raises(ssl.SSLCertVerificationError):
        login(sim)
    session = XenAPI.Session(sim.url, ignore_ssl=True)
    session.xenapi.login_with_password("root", "xenroot")
    assert session.xenapi.host.get_all()


# -- scenarios and CLI ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_loads_and_serves(name, tmp_path):
    scenario = load_scenario(scenario_path(name))
    assert scenario["description"]
    with Simulator(scenario_path(name), root=str(tmp_path)) as sim:
        session = XenAPI.Session(sim.url)
        session.slave_local_login_with_password("root", "xenroot")
        x = session.xenapi
        host = x.host.get_record(x.session.get_this_host(session.handle))
        local = scenario["hosts"][scenario.get("local_host") or scenario["pool"]["master"]]
        assert host["address"] == local["address"]
        assert len(x.VM.get_all_records_where('field "is_control_domain"="true"')) == len(scenario["hosts"])
        platform = tuple(int(p) for p in host["software_version"]["platform_version"].split("."))
        if platform >= (2, 2, 0):
            assert isinstance(x.pool_update.get_all(), list)
        else:
            assert failure(x.pool_update.get_all)[0] == "MESSAGE_METHOD_UNKNOWN"


@pytest.mark.parametrize(
    "text,where,message",
    [
        (
            "vms: {compute: {vifs: [{device: '0', network: mgmt}, {device: '1', network: foo}]}}",
            "vms.compute.vifs[1].network",
            "unknown network 'foo' (known: himn, mgmt, storage)",
        ),
        ("bogus: 1", "bogus", "unknown key"),
        ("hosts: {host1: {API_version_minor: many}}", "hosts.host1.API_version_minor", "expected an integer"),
        ("credentials: {username: root, password: null}", "credentials.password", "required field missing"),
        (
            "vms: {compute: {vifs: [{device: '0', network: mgmt, MAC: 'zz:00:00:00:00:00'}]}}",
            "vms.compute.vifs[0].MAC",
            "bad MAC format",
        ),
        ("pool: {uuid: not-a-uuid}", "pool.uuid", "bad UUID format"),
        ("vms: {compute: {power_state: Sleeping}}", "vms.compute.power_state", "is not one of"),
        ("hosts: {host1: {software_version: {xapi: 1.20}}}", "hosts.host1.software_version.xapi", "expected a string"),
    ],
)
def test_bad_scenarios_name_file_and_field(tmp_path, text, where, message):
    path = write_scenario(tmp_path, "extends: BASE\n" + text + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith("%s: %s: " % (path, where))
    assert message in str(info.value)


def test_bad_scenario_files(tmp_path):
    broken = write_scenario(tmp_path, "hosts: [unclosed\n", "broken.yml")
    with pytest.raises(ScenarioError, match="^%s: " % broken):
        load_scenario(broken)
    orphan = write_scenario(tmp_path, "extends: missing.yml\n", "orphan.yml")
    with pytest.raises(ScenarioError, match="^%s: extends: no such file" % orphan):
        load_scenario(orphan)
    assert os.path.isfile(os.path.join(SCENARIO_DIR, "_base.yml"))


def run_cli(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=TESTS_DIR)
    return subprocess.Popen(
        [sys.executable, "-m", "xapisim", *args], env=env, stderr=subprocess.PIPE, text=True, **kwargs
    )


def test_cli_bad_scenario_exits_2(tmp_path):
    path = write_scenario(tmp_path, "extends: BASE\nvms: {compute: {vifs: [{device: '0', network: foo}]}}\n")
    proc = run_cli("--scenario", path)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert err.splitlines() == [
        "xapisim: %s: vms.compute.vifs[0].network: unknown network 'foo' (known: himn, mgmt, storage)" % path
    ]


def test_cli_serves_and_stops_on_sigterm(tmp_path):
    port_file, pid_file = tmp_path / "port", tmp_path / "pid"
    proc = run_cli(
        "--scenario",
        scenario_path("xcpng-8.3"),
        "--root",
        str(tmp_path / "root"),
        "--port-file",
        str(port_file),
        "--pid-file",
        str(pid_file),
    )
    try:
        deadline = time.time() + 10
        while not port_file.exists() and time.time() < deadline:
            time.sleep(0.02)
        url = "http://127.0.0.1:%s" % port_file.read_text().strip()
        assert int(pid_file.read_text()) == proc.pid
        with urllib.request.urlopen(url + "/_sim/health") as resp:
            assert resp.read() == b"ok"
        XenAPI.Session(url).xenapi.login_with_password("root", "xenroot")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "session.login_with_password OK" in err
    assert not port_file.exists() and not pid_file.exists()
