"""The simulator's Dom0 as its plugins see it (tests/xapisim/dom0.py): its own file system in a mount namespace,
xapi's Unix socket with local root sessions, the `xe` stand-in, and os-xenapi 0.3.4's real Dom0 plugins run by
host.call_plugin through the real XenAPI client. Root only: the Dom0 paths need the mount namespace."""

import json
import os
import pickle
import re
import subprocess
import textwrap
import xmlrpc.client

import pluginsets
import pytest
import XenAPI
from xapisim import dom0

pytestmark = pytest.mark.root

# What a Python 2 client (nova 20 on Python 2.7) sends: pickle.dumps(dict(args=(), kwargs={})), protocol 0, a str.
PY2_PICKLE = "(dp0\nS'args'\np1\n(tsS'kwargs'\np2\n(dp3\ns."
HOST_UUID = "cb0b80d0-55eb-4154-a747-62a4a2cbccca"
LOCAL_LOGIN = textwrap.dedent("""\
    import json, XenAPI
    session = XenAPI.xapi_local()
    session.xenapi.login_with_password("root", "not the password")
    host = session.xenapi.session.get_this_host(session.handle)
    print(json.dumps([session.xenapi.host.get_name_label(host), session.xenapi.VM.get_all() != []]))
    """)


@pytest.fixture(scope="session")
def os_xenapi_plugins():
    """``{file name: bytes}`` of os-xenapi 0.3.4's Dom0 plugins: the collection's plugin set of nova 18-21
    (tools/dom0_plugin_sets.json: from PyPI, pinned by sha256 per archive and per file, cached in .build/archives)."""
    return pluginsets.dom0_plugin_sets.plugin_files(pluginsets.SETS, "os-xenapi-0.3.4", cache_dir=pluginsets.ARCHIVES)


def login(sim):
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password("root", "xenroot", "2.1", "nova")
    return session


@pytest.fixture
def os_xenapi_dom0(xapi_sim, os_xenapi_plugins):
    """``sim, session, host = os_xenapi_dom0(scenario)``: a Dom0 with os-xenapi's plugins installed as its RPM's
    %install does (chmod a+x)."""

    def start(scenario="xcpng-8.3"):
        sim = xapi_sim(scenario)
        for name, data in os_xenapi_plugins.items():
            path = os.path.join(sim.plugin_dir, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o755)
        session = login(sim)
        return sim, session, session.xenapi.host.get_all()[0]

    return start


def xe(sim, *args):
    status, out, err = sim.dom0.run(["xe", *args])
    return status, out.decode(), err.decode()


# -- os-xenapi 0.3.4's plugins -------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["xcpng-8.3", "xcpng-8.2.1", "citrix-8.2"])
def test_nova_checks_the_plugin_version_as_a_python_2_client(os_xenapi_dom0, scenario):
    assert pickle.loads(PY2_PICKLE.encode()) == {"args": (), "kwargs": {}}
    _sim, session, host = os_xenapi_dom0(scenario)
    args = {"params": PY2_PICKLE, "host_uuid": HOST_UUID}
    answer = session.xenapi.host.call_plugin(host, "dom0_plugin_version.py", "get_version", args)
    assert answer == "S'2.1'\np1\n."
    assert pickle.loads(answer.encode()) == "2.1"


def test_a_python_3_clients_pickle_is_refused_with_http_500(os_xenapi_dom0):
    _sim, session, host = os_xenapi_dom0()
    params = pickle.dumps({"args": (), "kwargs": {}}, protocol=4)  # bytes: xmlrpc.client sends <base64>
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        session.xenapi.host.call_plugin(host, "dom0_plugin_version.py", "get_version", {"params": params})
    assert (info.value.errcode, info.value.errmsg) == (500, "Internal Error")


def test_host_data_comes_from_the_scenario_through_xe(os_xenapi_dom0):
    sim, session, host = os_xenapi_dom0()
    machine_conf = os.stat("/usr/etc/xenhost.conf") if os.path.exists("/usr/etc/xenhost.conf") else None
    data = json.loads(session.xenapi.host.call_plugin(host, "xenhost.py", "host_data", {"host_uuid": HOST_UUID}))
    spec = sim.scenario["hosts"]["host1"]
    assert data["host_uuid"] == HOST_UUID and data["host_hostname"] == "xcp-ng-83"
    assert data["host_name-label"] == "xcp-ng-83" and data["host_name-description"] == "Default install"
    assert data["host_ip_address"] == "192.0.2.10"
    assert data["host_memory"] == {
        "total": int(spec["memory_total"]),
        "overhead": int(spec["memory_overhead"]),
        "free": int(spec["memory_free"]),
        "free-computed": int(spec["memory_free"]),
    }
    assert data["host_capabilities"] == spec["capabilities"]
    assert data["host_other-config"]["iscsi_iqn"] == "iqn.2024-01.com.example:host1"
    cpu = data["host_cpu_info"]
    assert (cpu["cpu_count"], cpu["socket_count"], cpu["family"], cpu["model"], cpu["stepping"]) == (16, "2", 6, 63, 2)
    assert cpu["modelname"] == spec["cpu_info"]["modelname"] and cpu["flags"] == spec["cpu_info"]["flags"]
    # xenhost.py made its configuration file in Dom0's /usr/etc, not the machine's
    with open(os.path.join(sim.root, "usr", "etc", "xenhost.conf")) as f:
        assert json.load(f) == {}
    assert (os.stat("/usr/etc/xenhost.conf") if os.path.exists("/usr/etc/xenhost.conf") else None) == machine_conf


def test_xenhosts_pickled_functions_answer_first_and_uptime_runs(os_xenapi_dom0):
    _sim, session, host = os_xenapi_dom0()
    call = session.xenapi.host.call_plugin
    # xenhost.py dispatches twice for its pickled functions: the second response is never read
    devices = pickle.loads(call(host, "xenhost.py", "get_pci_device_details", {"params": PY2_PICKLE}).encode())
    assert devices == subprocess.run(["lspci", "-vmmnk"], capture_output=True, text=True, check=True).stdout
    assert " load average: " in json.loads(call(host, "xenhost.py", "host_uptime", {"host_uuid": HOST_UUID}))["uptime"]


def test_set_host_enabled_runs_xe_and_keeps_xenhosts_own_quirk(os_xenapi_dom0):
    _sim, session, host = os_xenapi_dom0()
    args = {"host_uuid": HOST_UUID, "enabled": "false"}
    assert json.loads(session.xenapi.host.call_plugin(host, "xenhost.py", "set_host_enabled", args)) == {
        "status": "disabled"
    }
    assert session.xenapi.host.get_enabled(host) is False
    # it compares xe's "true\n" with "true": "disabled" whatever the host is (os-xenapi xenhost.py:125-131)
    args["enabled"] = "true"
    answer = session.xenapi.host.call_plugin(host, "xenhost.py", "set_host_enabled", args)
    assert json.loads(answer) == {"status": "disabled"} and session.xenapi.host.get_enabled(host) is True


# -- the Unix socket and xe ----------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["xcpng-8.3", "pool-member"])
def test_local_logins_on_xapis_socket_are_root_on_this_host(xapi_sim, scenario):
    """Any password, no HOST_IS_SLAVE on a pool member, and the session's host is this one (the plugins' view)."""
    sim = xapi_sim(scenario)
    status, out, err = sim.dom0.run([dom0.python_interpreter("2.7", ["six"]), "-c", LOCAL_LOGIN])
    assert status == 0, err
    assert json.loads(out) == [sim.db.raw("host", sim.api.local_host)["name_label"], True]


SESSION_PLUGIN = """#!/usr/bin/env python
import XenAPIPlugin


def this_host(session, args):
    return session.xenapi.host.get_name_label(session.xenapi.session.get_this_host(session._session))


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"this_host": this_host})
"""


def test_a_plugin_calls_xapi_back_with_the_callers_session(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    path = os.path.join(sim.plugin_dir, "session-probe")
    with open(path, "w") as f:
        f.write(SESSION_PLUGIN)
    os.chmod(path, 0o755)
    session = login(sim)
    host = session.xenapi.host.get_all()[0]
    sim.reset_counts()
    assert session.xenapi.host.call_plugin(host, "session-probe", "this_host", {}) == "xcp-ng-83"
    assert sim.counts() == {"host.call_plugin": 1, "session.get_this_host": 1, "host.get_name_label": 1}


def test_xe_host_param_list_prints_as_xe_does(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    status, out, err = xe(sim, "host-param-list", "uuid=" + HOST_UUID)
    assert (status, err) == (0, "")
    assert out.endswith("\n\n\n") and not out.endswith("\n\n\n\n")
    lines = out[: -len("\n\n\n")].split("\n")
    keys = [line.split(": ", 1)[0] for line in lines]
    width = len("virtual-hardware-platform-versions (SRO)") + 4
    assert lines[0].startswith("uuid ( RO)" + " " * (width - len("uuid ( RO)")) + ": " + HOST_UUID)
    assert all(len(k) == width and k.startswith(" ") for k in keys[1:])
    fields = {k.strip(): v for k, v in (line.split(": ", 1) for line in lines)}
    assert fields["name-label ( RW)"] == "xcp-ng-83" and fields["enabled ( RO)"] == "true"
    assert fields["capabilities (SRO)"] == "xen-3.0-x86_64; hvm-3.0-x86_32; hvm-3.0-x86_32p; hvm-3.0-x86_64"
    assert fields["other-config (MRW)"].startswith("boot_time: 1735718400; agent_start_time: ")
    assert fields["cpu_info (MRO)"].startswith("cpu_count: 16; socket_count: 2; vendor: GenuineIntel; ")
    assert fields["memory-total ( RO)"] == "68718952448" and fields["memory-free-computed ( RO)"] == "60127559680"
    assert fields["patches (SRO) [DEPRECATED]"] == "" and fields["suspend-image-sr-uuid ( RW)"] == "<not in database>"
    assert re.fullmatch(r"[0-9a-f-]{36}; afcf0613-b81a-46ac-bedf-c13183f5de28", fields["resident-vms (SRO)"])
    assert "blobs ( RO): " in out  # an empty value keeps the space after the colon


def test_xe_param_get_pool_list_enable_and_errors(xapi_sim):
    sim = xapi_sim("xcpng-8.3")
    uuid = "uuid=" + HOST_UUID
    assert xe(sim, "host-param-get", uuid, "param-name=enabled") == (0, "true\n", "")
    assert xe(sim, "host-param-get", uuid, "param-name=cpu_info", "param-key=socket_count") == (0, "2\n", "")
    sr = sim.scenario["srs"]["local"]["uuid"]
    assert xe(sim, "pool-list", "params=default-SR", "minimal=true") == (0, sr + "\n", "")
    assert xe(sim, "pool-list", "params=default-SR") == (0, "default-SR ( RW)    : %s\n\n\n" % sr, "")
    assert xe(sim, "host-disable", uuid) == (0, "", "")
    assert xe(sim, "host-param-get", uuid, "param-name=enabled") == (0, "false\n", "")
    assert xe(sim, "host-enable", uuid)[0] == 0 and sim.db.raw("host", sim.api.local_host)["enabled"] is True
    assert xe(sim, "host-param-list", "uuid=nope") == (
        1,
        "",
        "The uuid you supplied was invalid.\ntype: host\nuuid: nope\n",
    )
    status, _, err = xe(sim, "host-param-get", uuid, "param-name=cpu_info", "param-key=nope")
    assert status == 1 and err.endswith("message: Failure: Key nope not found in map\n")
    assert (
        xe(sim, "host-param-get", uuid, "param-name=nope")[2]
        == "Error code: Missing parameter\nError parameters: nope\n"
    )
    assert xe(sim, "frobnicate") == (1, "", "Unknown command: frobnicate\nFor usage run: 'xe help'\n")
    status, _, err = xe(sim, "vm-shutdown", "--multiple", "resident-on=" + HOST_UUID)
    assert status == 1 and "not simulated" in err


# -- the file system -----------------------------------------------------------------------------
def test_each_dom0_has_its_own_file_system_and_the_machine_keeps_its_own(xapi_sim):
    sims = [xapi_sim("xcpng-8.3"), xapi_sim("xcpng-8.3")]
    script = (
        "import os; open('/usr/etc/marker', 'w').write(os.environ['PATH']); print(sorted(os.listdir('/var/lib/xcp')))"
    )
    machine = set(os.listdir("/usr/etc")) if os.path.isdir("/usr/etc") else set()
    for n, sim in enumerate(sims):
        status, out, err = sim.dom0.run([dom0.python_interpreter("2.7", ["six"]), "-c", script])
        assert (status, out.decode()) == (0, "['xapi']\n"), err
        assert os.path.exists(os.path.join(sim.root, "usr", "etc", "marker")), n
    assert (set(os.listdir("/usr/etc")) if os.path.isdir("/usr/etc") else set()) == machine
    for path in dom0.MOUNTS:  # every Dom0 path is the simulator's root
        status, out, _ = sims[0].dom0.run(["stat", "-L", "-c", "%d:%i", path])
        local = os.stat(sims[0].dom0.local(path))
        assert out.decode().strip() == "%d:%d" % (local.st_dev, local.st_ino), path
