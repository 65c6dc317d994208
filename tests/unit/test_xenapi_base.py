"""The XenAPI base class: connection options, one login per run, and the clear failures it promises."""

import datetime
import socket

import pytest
from ansible_collections.xenserver.openstack.plugins.module_utils import _xenapi
from ansible_collections.xenserver.openstack.plugins.modules import xen_host_info


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


def test_pool_member_is_followed_to_its_master(xapi_sim, run_module):
    member = xapi_sim("pool-member")
    master = xapi_sim("pool-master", host="127.0.0.2", port=int(member.url.rsplit(":", 1)[1]))
    vm_uuid = member.scenario["vms"]["compute"]["uuid"]

    result = run_module(xen_host_info, base_args(member, vm_uuid=vm_uuid))

    assert not result.get("failed"), result
    assert result["xapi_master_url"] == master.url
    assert result["host"]["uuid"] == member.scenario["hosts"]["host2"]["uuid"]
    assert result["host"]["is_master"] is False
    assert member.counts().get("session.login_with_password") == 1
    assert master.counts().get("session.login_with_password") == 1
    assert master.counts().get("session.logout") == 1


def test_pool_member_whose_master_is_down_says_which_host_is_master(xapi_sim, run_module):
    member = xapi_sim("pool-member")
    result = run_module(xen_host_info, base_args(member))
    master_address = member.scenario["hosts"]["host1"]["address"]
    assert result["failed"]
    assert "is a pool member whose master is %s" % master_address in result["msg"]
    assert "Set url to an address of the master" in result["msg"]


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
    result = run_module(xen_host_info, dict(url=sim.url))
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
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(folder / "cert.pem"), str(folder / "key.pem")


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
