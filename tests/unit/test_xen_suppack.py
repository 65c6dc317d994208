"""xen_suppack against the XAPI simulator, with pack ISOs built by tools/build_pack.py and signed by a test key.

The simulator opens the uploaded ISO with real tools (xorriso, rpm2cpio, cpio) and, on apply, installs the files
of its RPMs, so a plugin call after the apply runs the plugin that came out of the pack.
"""

import http.client
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import XenAPI
from ansible_collections.xenserver.openstack.plugins.module_utils import _suppack
from ansible_collections.xenserver.openstack.plugins.modules import xen_suppack
from xapisim.pytest_plugin import scenario_path

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
BUILD = [sys.executable, os.path.join(ROOT, "tools", "build_pack.py")]
MODERN = ["xcpng-8.3", "xcpng-8.2.1", "citrix-8.2"]
PUT = "PUT /import_raw_vdi"


# -- fixtures ------------------------------------------------------------------------------------------------
def make_key(home, name="xenserver.openstack test packs"):
    os.makedirs(home, mode=0o700)
    subprocess.run(
        ["gpg", "--batch", "--homedir", home, "--passphrase", "", "--quick-gen-key", name, "rsa2048", "sign", "never"],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        ["gpg", "--batch", "--homedir", home, "--with-colons", "--list-secret-keys"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def build(output, *extra, key=None):
    argv = [*BUILD, "--output", str(output), *extra]
    if key:
        argv += ["--gpg-home", key["home"], "--key", key["fingerprint"]]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def stop_agent(home):
    """gpg started an agent for the key's home: stop it (by its home, never by name)."""
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    home = str(tmp_path_factory.mktemp("gpg") / "home")
    yield dict(home=home, fingerprint=make_key(home))
    stop_agent(home)


@pytest.fixture(scope="module")
def packs(tmp_path_factory, key):
    """The collection's pack at its galaxy.yml version, two explicit versions (the newer asks for a toolstack
    restart), and the legacy pack."""
    out = tmp_path_factory.mktemp("packs")
    return dict(
        current=build(out / "current.iso", key=key),
        v1=build(out / "v1.iso", "--version", "1.0.0", key=key),
        v11=build(out / "v11.iso", "--version", "1.1.0", "--after-apply-guidance", "restartXAPI", key=key),
        legacy=build(out / "legacy.iso", "--format", "legacy"),
    )


def args_for(sim, iso, **extra):
    return sim.module_args(iso=iso, **extra)


def session_for(sim):
    session = XenAPI.Session(sim.url)
    creds = sim.scenario["credentials"]
    session.xenapi.login_with_password(creds["username"], creds["password"], "2.0", "test_xen_suppack")
    return session


def applied(sim):
    """(name_label, version) of the updates applied on the scenario's compute host."""
    host = sim.scenario["hosts"][sim.scenario["vms"]["compute"]["resident_on"]]["name_label"]
    return sorted((u["name_label"], u["version"]) for u in sim.state()["updates"] if host in u["hosts"])


def warnings(result):
    """The warning texts of a result (ansible-core 2.19+ returns them as structured events)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def write_scenario(tmp_path, base, text):
    path = tmp_path / "scenario.yml"
    path.write_text("extends: %s\n%s" % (scenario_path(base), textwrap.dedent(text)))
    return str(path)


def assert_nothing_left(sim):
    assert sim.vdi_count() == 0, sim.state()["vdis"]
    assert sim.state()["updates"] == [], "an update record that is applied nowhere was left behind"


# -- the normal runs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", MODERN)
def test_check_then_apply_then_nothing(xapi_sim, run_module, packs, scenario):
    sim = xapi_sim(scenario)
    pack = packs["current"]
    args = args_for(sim, pack["iso"])

    check = run_module(xen_suppack, args, check_mode=True)
    assert check["changed"] is True and check["uuid"] == pack["uuid"]
    assert "not applied" in check["diff"]["before"] and pack["version"] in check["diff"]["after"]
    assert PUT not in sim.counts() and sim.vdi_count() == 0 and applied(sim) == []

    first = run_module(xen_suppack, args)
    assert first["changed"] is True and first["uploaded"] is True, first
    assert (first["uuid"], first["applied_version"], first["previous_version"]) == (pack["uuid"], pack["version"], "")
    assert first["precheck"] == "ok" and first["installed"] is True and first["legacy"] is False
    assert first["reboot_required"] is False and first["toolstack_restart_required"] is False
    assert sim.counts()[PUT] == 1
    assert applied(sim) == [(pack["label"], pack["version"])]
    assert sim.vdi_count() == 0, "the temporary VDI must be removed (pool_clean)"

    session = session_for(sim)
    host = session.xenapi.VM.get_resident_on(session.xenapi.VM.get_by_uuid(args["vm_uuid"]))
    answer = json.loads(session.xenapi.host.call_plugin(host, "xenserver_openstack", "version", {}))
    assert answer["plugin"] == "xenserver_openstack" and "version" in answer["functions"]

    sim.reset_counts()
    second = run_module(xen_suppack, args)
    assert second["changed"] is False and second["uploaded"] is False, second
    assert second["uuid"] == pack["uuid"] and second["installed"] is True
    assert PUT not in sim.counts() and not any(c.startswith("Async.") for c in sim.counts())
    assert second["diff"]["before"] == second["diff"]["after"]


@pytest.mark.parametrize("python", ["2.7", "3.6"])
def test_the_packed_plugin_runs_under_dom0_python(xapi_sim, run_module, packs, tmp_path, python):
    """xapi runs the plugin's `#!/usr/bin/env python` with Dom0's /usr/bin/python: 2.7 on XCP-ng 8.3, 3.6 on a Dom0
    whose python is Python 3."""
    sim = xapi_sim(write_scenario(tmp_path, "xcpng-8.3", 'dom0: {python: "%s"}\n' % python))
    assert run_module(xen_suppack, args_for(sim, packs["current"]["iso"]))["changed"] is True
    session = session_for(sim)
    answer = json.loads(
        session.xenapi.host.call_plugin(session.xenapi.host.get_all()[0], "xenserver_openstack", "version", {})
    )
    assert answer["plugin"] == "xenserver_openstack"


def test_newer_is_applied_and_older_is_not(xapi_sim, run_module, packs):
    sim = xapi_sim("xcpng-8.3")
    v1, v11 = packs["v1"]["version"], packs["v11"]["version"]  # 1.0.0-1.<content>, 1.1.0-1.<content>
    assert run_module(xen_suppack, args_for(sim, packs["v1"]["iso"]))["changed"] is True
    upgrade = run_module(xen_suppack, args_for(sim, packs["v11"]["iso"]))
    assert upgrade["changed"] is True and upgrade["previous_version"] == v1
    assert upgrade["applied_version"] == v11 and upgrade["toolstack_restart_required"] is True
    assert upgrade["after_apply_guidance"] == ["restartXAPI"]
    assert applied(sim) == [("xenserver-openstack", v11)]

    sim.reset_counts()
    older = run_module(xen_suppack, args_for(sim, packs["v1"]["iso"]))
    assert older["changed"] is False and older["applied_version"] == v11 and older["installed"] is True
    assert "newer version (%s)" % v11 in older["msg"], older
    # (ansible-core sends module warnings to the controller's display instead once a test in this process has
    # loaded controller code, so the warning itself is checked only when it is in the result.)
    assert "warnings" not in older or any("newer" in w and v11 in w for w in warnings(older)), older
    assert PUT not in sim.counts()
    assert applied(sim) == [("xenserver-openstack", v11)]


def test_a_known_update_whose_vdi_was_cleaned_is_uploaded_again(xapi_sim, run_module, packs):
    """Another host of the pool applied it and cleaned its VDI: introduce takes the new upload (no error)."""
    sim = xapi_sim("xcpng-8.3")
    session = session_for(sim)
    x = session.xenapi
    with open(packs["current"]["iso"], "rb") as handle:
        data = handle.read()
    task = x.task.create("upload", "")
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    conn = http.client.HTTPConnection("127.0.0.1", int(sim.url.rsplit(":", 1)[1]))
    conn.request("PUT", "/import_raw_vdi?session_id=%s&task_id=%s&sr_id=%s" % (session.handle, task, sr), data)
    assert conn.getresponse().status == 200
    update = x.pool_update.introduce(_suppack.task_result_ref(x.task.get_result(task)))
    x.pool_update.pool_clean(update)
    assert sim.vdi_count() == 0

    result = run_module(xen_suppack, args_for(sim, packs["current"]["iso"]))
    assert result["changed"] is True and result["uuid"] == x.pool_update.get_uuid(update)
    assert x.pool_update.get_hosts(update) == x.host.get_all() and sim.vdi_count() == 0
    assert len(sim.state()["updates"]) == 1


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"]
    subprocess.run([*argv, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def test_upload_over_https_follows_validate_certs(xapi_sim, run_module, packs, self_signed):
    sim = xapi_sim("xcpng-8.3", tls=self_signed)
    assert sim.url.startswith("https://")
    result = run_module(xen_suppack, args_for(sim, packs["current"]["iso"], validate_certs=False))
    assert result["changed"] is True and result["uploaded"] is True and sim.counts()[PUT] == 1
    # The upload itself verifies the certificate like the XML-RPC transport does.
    with pytest.raises(_suppack.UploadError, match="CERTIFICATE_VERIFY_FAILED"):
        _suppack.upload_raw_vdi(sim.url, {"session_id": "x"}, packs["current"]["iso"], validate_certs=True)


# -- failures: one clear message, nothing left behind --------------------------------------------------------
def test_upload_broken_off_midway_then_rerun(xapi_sim, run_module, packs, monkeypatch):
    sim = xapi_sim("xcpng-8.3")
    args = args_for(sim, packs["current"]["iso"])
    size = os.path.getsize(packs["current"]["iso"])
    real_send, sent = http.client.HTTPConnection.send, [0]

    def breaking_send(self, data):
        if getattr(self, "_method", None) == "PUT" and not isinstance(data, str) and len(data) > 1000:
            sent[0] += len(data)
            if sent[0] > size // 2:
                self.sock.close()
                raise BrokenPipeError(32, "Broken pipe")
        return real_send(self, data)

    monkeypatch.setattr(_suppack, "CHUNK_SIZE", 64 * 1024)
    monkeypatch.setattr(http.client.HTTPConnection, "send", breaking_send)
    broken = run_module(xen_suppack, args)
    assert broken.get("failed") and "upload" in broken["msg"].lower() and "run again" in broken["msg"], broken
    assert sim.counts()[PUT] == 1
    assert_nothing_left(sim)

    monkeypatch.setattr(http.client.HTTPConnection, "send", real_send)
    again = run_module(xen_suppack, args)
    assert again["changed"] is True and applied(sim) == [("xenserver-openstack", packs["current"]["version"])]
    assert sim.vdi_count() == 0


def test_invalid_signature(xapi_sim, run_module, packs, tmp_path):
    sim = xapi_sim(write_scenario(tmp_path, "xcpng-8.3", "behaviour: {update_signature: invalid}\n"))
    result = run_module(xen_suppack, args_for(sim, packs["current"]["iso"]))
    assert result.get("failed") and result["xapi_error"] == ["INVALID_UPDATE", "Invalid signature"]
    assert "import-update-key" in result["msg"] and "/etc/firstboot.d/data/keys" in result["msg"]
    assert sim.counts()[PUT] == 1
    assert_nothing_left(sim)


def test_a_key_dom0_does_not_trust_is_refused_until_imported(xapi_sim, run_module, packs, key, tmp_path):
    """The simulated Dom0's keyring (/opt/xensource/gpg) works like XAPI's: GOODSIG and TRUST_ULTIMATE needed."""
    sim = xapi_sim("xcpng-8.3")
    keyring = os.path.join(sim.root, "opt", "xensource", "gpg")
    os.makedirs(keyring, mode=0o700)
    gpg = ["gpg", "--batch", "--no-autostart", "--homedir", keyring]
    imported = subprocess.run([*gpg, "--import", packs["current"]["public_key"]], capture_output=True, check=False)
    assert imported.returncode == 0, imported.stderr.decode()
    refused = run_module(xen_suppack, args_for(sim, packs["current"]["iso"]))
    assert refused["xapi_error"] == ["INVALID_UPDATE", "Invalid signature"], refused
    assert_nothing_left(sim)
    # What import-update-key does after the import: owner trust "ultimate".
    trust = "%s:6:\n" % key["fingerprint"]
    subprocess.run([*gpg, "--import-ownertrust"], input=trust, text=True, check=True, capture_output=True)
    assert run_module(xen_suppack, args_for(sim, packs["current"]["iso"]))["changed"] is True


def test_precheck_wrong_server_version(xapi_sim, run_module, packs, tmp_path):
    sim = xapi_sim(write_scenario(tmp_path, "xcpng-8.2.1", "behaviour: {precheck: wrong_server_version}\n"))
    result = run_module(xen_suppack, args_for(sim, packs["current"]["iso"]))
    assert result.get("failed") and result["xapi_error"][0] == "UPDATE_PRECHECK_FAILED_WRONG_SERVER_VERSION"
    assert "pack built for this platform" in result["msg"] and "Nothing was installed" in result["msg"]
    assert_nothing_left(sim)
    assert not os.path.exists(os.path.join(sim.plugin_dir, "xenserver_openstack"))


def test_missing_iso(xapi_sim, run_module, tmp_path):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_suppack, args_for(sim, str(tmp_path / "nowhere.iso")))
    assert result.get("failed") and "does not exist" in result["msg"] and "tools/build_pack.py" in result["msg"]
    assert sim.counts() == {}, "nothing may be called for a missing ISO"
    assert_nothing_left(sim)


def test_a_file_that_is_not_a_pack(xapi_sim, run_module, tmp_path):
    sim = xapi_sim("xcpng-8.3")
    junk = tmp_path / "junk.iso"
    junk.write_bytes(b"\0" * 40000)
    result = run_module(xen_suppack, args_for(sim, str(junk)))
    assert result.get("failed") and "not an ISO 9660 image" in result["msg"] and sim.counts() == {}


def test_lvm_default_sr(xapi_sim, run_module, packs):
    sim = xapi_sim("lvm-sr")
    result = run_module(xen_suppack, args_for(sim, packs["current"]["iso"]))
    assert result.get("failed") and "type lvm" in result["msg"], result
    assert "default-SR" in result["msg"] and "file-based" in result["msg"]
    assert PUT not in sim.counts()
    assert_nothing_left(sim)
    # With the check switched off the upload goes to the (LVM) default SR all the same.
    assert run_module(xen_suppack, args_for(sim, packs["current"]["iso"], default_sr_types=[]))["changed"] is True


def test_name_or_version_that_does_not_match_the_iso(xapi_sim, run_module, packs):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_suppack, args_for(sim, packs["current"]["iso"], version="9.9.9"))
    assert result.get("failed") and "does not match" in result["msg"] and sim.counts() == {}


# -- legacy hosts ----------------------------------------------------------------------------------------------
def test_legacy_host_reports_what_the_role_must_do(xapi_sim, run_module, packs, tmp_path):
    sim = xapi_sim("xenserver-6.5")
    result = run_module(xen_suppack, args_for(sim, packs["legacy"]["iso"]))
    assert result["changed"] is False and result["legacy"] is True and result["installed"] is False, result
    assert result["legacy_key"] == packs["legacy"]["legacy_key"]
    assert "xe-install-supplemental-pack" in result["msg"]
    assert not any(c.startswith("pool_update") for c in sim.counts()) and PUT not in sim.counts()

    value = "OpenStack Dom0 plugins, version %s" % packs["legacy"]["version"]
    done = xapi_sim(
        write_scenario(
            tmp_path,
            "xenserver-6.5",
            'hosts:\n  host1:\n    software_version:\n      "%s": "%s"\n' % (packs["legacy"]["legacy_key"], value),
        )
    )
    result = run_module(xen_suppack, args_for(done, packs["legacy"]["iso"]))
    assert result["legacy"] is True and result["installed"] is True and result["changed"] is False
    assert result["applied_version"] == packs["legacy"]["version"]
    # The update ISO names the same pack on a legacy host.
    assert run_module(xen_suppack, args_for(done, packs["current"]["iso"]))["installed"] is True


def test_a_legacy_pack_on_a_modern_host(xapi_sim, run_module, packs):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_suppack, args_for(sim, packs["legacy"]["iso"]))
    assert result.get("failed") and "legacy supplemental pack" in result["msg"] and PUT not in sim.counts()


# -- helpers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("maker", ["genisoimage", "xorriso"])
def test_iso_reader_finds_rock_ridge_names(tmp_path, maker):
    """The module's pure-Python reader: long names, nested directories, a root directory of several sectors."""
    tree = tmp_path / "tree"
    deep = tree / "repodata" / ("d" * 90) / "sub"
    deep.mkdir(parents=True)
    (tree / "update.xml").write_text(
        '<update name-label="x" uuid="u" version="1"><name-description>d</name-description></update>'
    )
    (deep / ("%s-primary.xml.gz" % ("f" * 64))).write_bytes(b"deep")
    for n in range(60):
        (tree / ("file-with-a-rather-long-name-%03d.txt" % n)).write_text(str(n))
    iso = str(tmp_path / "t.iso")
    argv = ["genisoimage"] if maker == "genisoimage" else ["xorriso", "-as", "mkisofs"]
    subprocess.run([*argv, "-quiet", "-r", "-o", iso, str(tree)], check=True, capture_output=True)
    with open(iso, "rb") as handle:
        reader = _suppack.IsoReader(handle)
        assert reader.read("/update.xml").startswith(b"<update")
        assert reader.read("/repodata/%s/sub/%s-primary.xml.gz" % ("d" * 90, "f" * 64)) == b"deep"
        assert reader.read("/file-with-a-rather-long-name-059.txt") == b"59"
        assert reader.read("/missing") is None and reader.read("/repodata") is None
    assert _suppack.read_pack(iso)["update"]["name"] == "x"


def test_version_order():
    ordered = ["0.9", "0.10", "1.0.0", "1.0.1", "1.1", "1.1.0a", "2"]
    assert sorted(reversed(ordered), key=_suppack.version_key) == ordered
    assert _suppack.compare_versions("1.0", "1.0") == 0
    assert _suppack.legacy_version("Pack, version 1.2.0, build 3") == "1.2.0"


def test_task_results():
    assert _suppack.task_result_ref("<value>OpaqueRef:abc</value>") == "OpaqueRef:abc"
    assert _suppack.task_result_ref("<value>OpaqueRef:NULL</value>") is None
    assert _suppack.task_result_value("<value>ok_livepatch_complete</value>") == "ok_livepatch_complete"


@pytest.mark.parametrize(
    ("details", "fix"),
    [
        (["UPDATE_PRECHECK_FAILED_GPGKEY_NOT_IMPORTED", "xenserver-openstack"], "import-update-key"),
        (["UPDATE_PRECHECK_FAILED_OUT_OF_SPACE", "xenserver-openstack", "10", "20"], "Free space"),
        (["UPDATE_PRECHECK_FAILED_UNKNOWN_ERROR", "xenserver-openstack", "boom"], "xensource.log"),
        (["UPDATE_APPLY_FAILED", "yum said no"], "yum.log"),
        (["INVALID_UPDATE", "missing <uuid> in update.xml"], "tools/build_pack.py"),
        (["OTHER_OPERATION_IN_PROGRESS", "Applying the update", "OpaqueRef:x"], "run again"),
    ],
)
def test_update_errors_name_the_fix(details, fix):
    message = _suppack.explain_update_failure(details, "xenserver-openstack", "http://h", "pool_update.apply")
    assert fix in message and not message.startswith("XAPI error during")


# -- the upload leaves the HIMN only over https, and is bounded ------------------------------------------------
class Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request line; answers a PUT with what the server's ``answer`` says."""

    def do_PUT(self):
        self.server.requests.append(self.requestline)
        status, location, read_rate = self.server.answer
        length = int(self.headers.get("Content-Length", 0))
        while length > 0:
            chunk = self.rfile.read(min(length, read_rate or length))
            if not chunk:
                break
            length -= len(chunk)
            if read_rate:
                time.sleep(0.5)  # a host that takes the data slower and slower: read_rate bytes a half second
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """Factory: a plain HTTP server on (host, port) answering PUTs with (status, location, read rate)."""
    servers = []

    def start(host, port=0, answer=(200, None, None)):
        server = http.server.ThreadingHTTPServer((host, port), Recorder)
        server.requests, server.answer = [], answer
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_finding_4_an_upload_redirected_off_the_himn_never_goes_over_plain_http(http_server, tmp_path):
    """Issue 18, finding 4: the upload's URL carries the session id; a redirect to another host of the pool over
    plain http would show it on the management network."""
    member = http_server("127.0.0.1")
    port = member.server_address[1]
    master = http_server("127.0.0.2", port)
    member.answer = (302, "http://127.0.0.2:%d/import_raw_vdi?session_id=OpaqueRef:s3cret" % port, None)
    iso = tmp_path / "pack.iso"
    iso.write_bytes(b"x" * 4096)
    with pytest.raises(_suppack.UploadError) as error:
        _suppack.upload_raw_vdi("http://127.0.0.1:%d" % port, {"session_id": "OpaqueRef:s3cret"}, str(iso))
    assert "redirected to https://127.0.0.2:%d/import_raw_vdi" % port in str(error.value)
    assert "s3cret" not in str(error.value)
    assert not any("s3cret" in line for line in master.requests), master.requests
    # Within the HIMN (the same host), a redirect over http is followed.
    member.answer = (302, "http://127.0.0.1:%d/import_raw_vdi?session_id=OpaqueRef:s3cret&x=1" % port, None)
    with pytest.raises(_suppack.UploadError, match="more than 3 times"):
        _suppack.upload_raw_vdi("http://127.0.0.1:%d" % port, {"session_id": "OpaqueRef:s3cret"}, str(iso))
    assert len(member.requests) == 1 + 4


def test_an_upload_that_crawls_fails_within_its_limit_naming_it(http_server, tmp_path):
    slow = http_server("127.0.0.1", answer=(200, None, 16384))
    iso = tmp_path / "pack.iso"
    iso.write_bytes(b"x" * (8 << 20))
    started = time.monotonic()
    with pytest.raises(_suppack.UploadError) as error:
        _suppack.upload_raw_vdi(
            "http://127.0.0.1:%d" % slow.server_address[1],
            {"session_id": "x"},
            str(iso),
            timeout=30,
            limit=(3, "wait_timeout"),
        )
    assert time.monotonic() - started < 8
    assert "did not finish within 3 s (option wait_timeout)" in str(error.value)


def test_xapi_pending_predicts_the_install_without_any_xapi_call(xapi_sim, run_module, packs, monkeypatch):
    """Check mode on a fresh VM: XAPI unreachable and, on a fresh VM, maybe no XenAPI library yet either."""
    sim = xapi_sim("xcpng-8.3")
    pack = packs["current"]
    monkeypatch.setattr(xen_suppack, "XenAPI", None)
    from ansible_collections.xenserver.openstack.plugins.module_utils import _xenapi

    monkeypatch.setattr(_xenapi, "XenAPI", None)
    monkeypatch.setattr(_xenapi, "XENAPI_IMPORT_ERROR", "ImportError: No module named XenAPI")

    check = run_module(xen_suppack, args_for(sim, pack["iso"], xapi_pending=True), check_mode=True)
    assert check["changed"] and check["predicted"] and check["installed"] is False, check
    assert (check["name"], check["version"], check["uuid"], check["host"]) == (
        pack["label"],
        pack["version"],
        pack["uuid"],
        "",
    )
    assert any("applied already" in what for what in check["not_checked"]), check
    assert sim.counts() == {}

    # Without xapi_pending the module needs the library, and says so.
    failed = run_module(xen_suppack, args_for(sim, pack["iso"]), check_mode=True)
    assert failed["failed"] and "XenAPI" in failed["msg"], failed
