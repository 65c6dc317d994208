"""The XenAPI base class: connection options, one login per run, and the clear failures it promises."""

import os
import socket
import threading
import time

import pytest
from ansible_collections.xenserver.openstack.plugins.module_utils import _xenapi
from ansible_collections.xenserver.openstack.plugins.modules import xen_host_info, xen_route
from tlscert import certificate


def creds(sim):
    return sim.scenario["credentials"]


def base_args(sim, **extra):
    args = dict(url=sim.url, username=creds(sim)["username"], password=creds(sim)["password"])
    args.update(extra)
    return args


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wrong_password_names_the_user_and_the_fix_and_hides_the_password(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_host_info, base_args(sim, password="not-the-password"))
    assert result["failed"]
    assert "refused the login of user 'root': wrong user name or password" in result["msg"]
    assert "XENSERVER_PASSWORD" in result["msg"]
    assert result["xapi_error"][0] == "SESSION_AUTHENTICATION_FAILED"
    assert "not-the-password" not in repr(result)


def test_unreachable_url_names_the_url_and_the_reason(run_module):
    url = "http://127.0.0.1:%d" % free_port()
    result = run_module(xen_host_info, dict(url=url, password="x"))
    assert result["failed"]
    assert result["msg"].startswith("Cannot reach XAPI at %s (session.login_with_password): " % url)
    assert "refused" in result["msg"].lower()
    assert "Traceback" not in repr(result)


def port_of(sim):
    return int(sim.url.rsplit(":", 1)[1])


def test_pool_member_is_followed_to_its_master_over_https(xapi_sim, run_module, master_certificate, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", master_certificate[0])
    member = xapi_sim("pool-member")
    master = xapi_sim("pool-master", host="127.0.0.2", port=port_of(member), tls=master_certificate)
    vm_uuid = member.scenario["vms"]["compute"]["uuid"]

    result = run_module(xen_host_info, base_args(member, vm_uuid=vm_uuid))

    assert not result.get("failed"), result
    assert member.url.startswith("http://") and master.url.startswith("https://")
    assert result["xapi_master_url"] == master.url
    assert result["host"]["uuid"] == member.scenario["hosts"]["host2"]["uuid"]
    assert result["host"]["is_master"] is False
    assert member.counts().get("session.login_with_password") == 1
    assert master.counts().get("session.login_with_password") == 1
    assert master.counts().get("session.logout") == 1


def test_finding_4_a_member_reached_over_http_is_never_followed_to_its_master_over_http(xapi_sim, run_module):
    """Issue 18, finding 4: from http://169.254.0.1 (the HIMN, which never leaves the host) HOST_IS_SLAVE names the
    master's management address; plain http there would send the root password across the management network."""
    member = xapi_sim("pool-member")
    master = xapi_sim("pool-master", host="127.0.0.2", port=port_of(member))  # it would answer plain http
    result = run_module(xen_host_info, base_args(member))
    assert result["failed"]
    https_url = "https://127.0.0.2:%d" % port_of(member)
    assert "is a pool member whose master is 127.0.0.2" in result["msg"]
    assert "Set url to %s" % https_url in result["msg"], result["msg"]
    assert master.counts().get("session.login_with_password") is None  # the password never went there


def test_an_untrusted_master_certificate_names_the_url_and_the_choice(xapi_sim, run_module, master_certificate):
    member = xapi_sim("pool-member")
    master = xapi_sim("pool-master", host="127.0.0.2", port=port_of(member), tls=master_certificate)
    result = run_module(xen_host_info, base_args(member))
    assert result["failed"]
    assert "TLS certificate of %s could not be verified" % master.url in result["msg"]
    assert "Set url to %s" % master.url in result["msg"] and "validate_certs=false" in result["msg"]
    assert master.counts().get("session.login_with_password") is None


@pytest.mark.parametrize(
    ("url", "master", "expected"),
    [
        ("http://169.254.0.1", "192.0.2.10", "https://192.0.2.10"),
        ("http://169.254.0.1:80", "192.0.2.10", "https://192.0.2.10"),
        ("https://192.0.2.11", "192.0.2.10", "https://192.0.2.10"),
        ("https://192.0.2.11:8443", "192.0.2.10", "https://192.0.2.10:8443"),
        ("http://127.0.0.1:8080", "127.0.0.2", "https://127.0.0.2:8080"),
    ],
)
def test_the_masters_url_is_https_whatever_the_members(url, master, expected):
    assert _xenapi.master_url_of(url, master) == expected


def test_pool_member_whose_master_is_down_says_which_host_is_master(xapi_sim, run_module):
    member = xapi_sim("pool-member")
    result = run_module(xen_host_info, base_args(member))
    master_address = member.scenario["hosts"]["host1"]["address"]
    assert result["failed"]
    assert "is a pool member whose master is %s" % master_address in result["msg"]
    assert (
        "Set url to https://%s:%d, or to another address of the master" % (master_address, port_of(member))
        in (result["msg"])
    )


def test_session_expired_mid_run_is_renewed_transparently(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    sim.expire_sessions_after(2)
    result = run_module(xen_host_info, base_args(sim))
    assert not result.get("failed"), result
    assert sim.counts()["session.login_with_password"] == 2


def test_session_that_keeps_expiring_is_a_clear_error(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    sim.always_expire(True)
    result = run_module(xen_host_info, base_args(sim))
    assert result["failed"]
    assert "kept invalidating the session" in result["msg"]


def test_missing_xenapi_library_gives_missing_required_lib(xapi_sim, run_module, monkeypatch):
    """What the guarded import leaves when XenAPI is not installed (the module itself is not reloaded: a reload
    would give the other modules' imports classes of another identity)."""
    sim = xapi_sim("xcpng-8.3")
    monkeypatch.setattr(_xenapi, "XenAPI", None)
    monkeypatch.setattr(_xenapi, "XENAPI_IMPORT_ERROR", "ModuleNotFoundError: No module named 'XenAPI'")
    result = run_module(xen_host_info, base_args(sim))
    assert result["failed"]
    assert "Failed to import the required Python library (XenAPI)" in result["msg"]
    assert sim.counts() == {}


def test_no_password_is_refused_before_any_call(xapi_sim, run_module, monkeypatch):
    monkeypatch.delenv("XENSERVER_PASSWORD", raising=False)
    sim = xapi_sim("xcpng-8.3")
    for args in (dict(url=sim.url), dict(url=sim.url, password="")):
        result = run_module(xen_host_info, args)
        assert result["failed"]
        assert "No XAPI password given" in result["msg"]
    assert sim.counts() == {}


def test_connection_options_fall_back_to_the_environment(xapi_sim, run_module, monkeypatch):
    sim = xapi_sim("xcpng-8.3")
    monkeypatch.setenv("XENSERVER_URL", sim.url)
    monkeypatch.setenv("XENSERVER_USER", creds(sim)["username"])
    monkeypatch.setenv("XENSERVER_PASSWORD", creds(sim)["password"])
    result = run_module(xen_host_info, {})
    assert not result.get("failed"), result
    assert sim.counts()["session.login_with_password"] == 1


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("169.254.0.1", "http://169.254.0.1"),
        ("xenserver-01.example.com", "https://xenserver-01.example.com"),
        ("https://192.0.2.10:8443/", "https://192.0.2.10:8443"),
        ("http://169.254.0.1", "http://169.254.0.1"),
    ],
)
def test_url_or_host_name(value, url):
    assert _xenapi.normalise_url(value) == url


def test_url_with_another_scheme_is_refused(run_module):
    result = run_module(xen_host_info, dict(url="ftp://192.0.2.10", password="x"))
    assert result["failed"]
    assert "is not an XAPI address" in result["msg"]


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    return certificate(tmp_path_factory.mktemp("tls"), "127.0.0.1")


@pytest.fixture(scope="module")
def master_certificate(tmp_path_factory):
    """The pool master's certificate (at 127.0.0.2); trusted when a test points SSL_CERT_FILE at it."""
    return certificate(tmp_path_factory.mktemp("master-tls"), "127.0.0.2")


def test_untrusted_certificate_is_a_clear_error(xapi_sim, run_module, self_signed):
    sim = xapi_sim("xcpng-8.3", tls=self_signed)
    assert sim.url.startswith("https://")
    result = run_module(xen_host_info, base_args(sim))
    assert result["failed"]
    assert "TLS certificate of %s could not be verified" % sim.url in result["msg"]
    assert "validate_certs=false" in result["msg"]


def test_validate_certs_false_accepts_a_self_signed_host(xapi_sim, run_module, self_signed):
    sim = xapi_sim("xcpng-8.3", tls=self_signed)
    result = run_module(xen_host_info, base_args(sim, validate_certs=False))
    assert not result.get("failed"), result


def test_xapi_failures_name_the_call_and_the_fix():
    url = "http://169.254.0.1"
    msg = _xenapi.explain_failure(url, ["VM_BAD_POWER_STATE", "OpaqueRef:x", "running", "halted"], "VM.start")
    assert msg == "XAPI error during VM.start on %s: VM_BAD_POWER_STATE ['OpaqueRef:x', 'running', 'halted']" % url
    missing = _xenapi.explain_failure(url, ["XENAPI_MISSING_PLUGIN", "xenserver_openstack"], "host.call_plugin")
    assert "The Dom0 plugin xenserver_openstack is not installed" in missing
    assert "Install the Dom0 plugins first (role xenserver.openstack.dom0_suppack)" in missing
    assert _xenapi.explain_failure(url, ["UUID_INVALID", "VM", "u-1"], "VM.get_by_uuid").startswith(
        "No VM with UUID u-1 exists"
    )


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers (a frozen XAPI); yields its URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_frozen_xapi_fails_within_the_timeout_naming_it(silent_server, run_module):
    started = time.monotonic()
    result = run_module(xen_host_info, dict(url=silent_server, password="x", timeout=2))
    assert time.monotonic() - started < 6
    assert result["failed"]
    assert (
        "XAPI at %s did not answer session.login_with_password within 2 s (option timeout)" % silent_server
        in (result["msg"])
    )


def test_a_dom0_plugin_call_has_its_own_limit_named_in_the_message(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    os.makedirs(sim.plugin_dir, exist_ok=True)
    plugin = os.path.join(sim.plugin_dir, "xenserver_openstack")
    with open(plugin, "w") as handle:
        handle.write("#!/usr/bin/env python\nimport time\ntime.sleep(8)\n")  # a plugin call that hangs
    os.chmod(plugin, 0o755)  # xapi execs the file
    args = base_args(sim, vm_uuid=sim.scenario["vms"]["compute"]["uuid"], networks=["198.18.1.0/24"], timeout=30)
    started = time.monotonic()
    result = run_module(xen_route, dict(args, gateway="169.254.0.2", plugin_timeout=2))
    assert time.monotonic() - started < 6
    assert result["failed"]
    assert (
        "did not answer host.call_plugin (xenserver_openstack route_ensure) within 2 s (option plugin_timeout)"
        in (result["msg"])
    ), result["msg"]
