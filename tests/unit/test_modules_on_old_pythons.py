"""Every module, run the way Ansible runs it on a compute VM or controller of the old fleet.

Python 2.7 and 3.6 targets are managed by ansible-core 2.16, Python 3.8 targets by 2.19 (2.20+ refuse them):
each run is that line's own ansible-playbook, its AnsiballZ wrapper and module_utils, with the target venv's
interpreter (.build/targets/pyX.Y: XenAPI and openstacksdk at OpenStack's Train / Ussuri pins) as
ansible_python_interpreter. The modules talk to the XAPI simulator on loopback (with the Dom0 plugin), to a real
Glance, to qemu-img; himn_nat to the real iptables of a network namespace made for it. Where a module only
reads, its answer must be the one the in-process run on the controller's Python gives.
"""

import json
import os
import subprocess
import uuid

import pytest
import yaml
from ansible_collections.xenserver.openstack.plugins.module_utils._vhd import inspect_vhd_tgz
from ansible_collections.xenserver.openstack.plugins.modules import himn_info, xen_host_info, xen_route
from pythons import OLD_TARGETS, line_for, target_python
from test_vhd_image import PROPERTIES
from test_xen_dom0_config import CRON, dom0  # noqa: F401 (dom0 is a fixture)
from test_xen_suppack import applied, build, key  # noqa: F401 (key is a fixture)
from vhdlib import disk

# ansible-playbook's own keys in a task result, beside what the module returned.
ANSIBLE_KEYS = {"invocation", "_ansible_no_log", "warnings", "deprecations", "diff", "changed", "action"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory, key):  # noqa: F811 (the fixture imported above)
    return build(tmp_path_factory.mktemp("pack") / "pack.iso", key=key)


def run_playbook(version, tasks, work, netns=None):
    """Run the tasks on localhost with the line that manages ``version`` and the target venv's Python.

    Returns ({task name: result}, output); every task must have run.
    """
    line = line_for(version)
    playbook = work / "play.yml"
    playbook.write_text(
        yaml.safe_dump([dict(name="old " + version, hosts="localhost", gather_facts=False, tasks=tasks)])
    )
    argv = [line.tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    argv += ["-e", "ansible_python_interpreter=" + target_python(version)]
    env = line.env()
    env.update(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    run = subprocess.run(prefix + argv, capture_output=True, text=True, env=env, cwd=str(work), check=False)
    output = run.stdout + run.stderr
    assert "{" in run.stdout, output
    report = json.loads(run.stdout[run.stdout.index("{") :])
    results = {task["task"]["name"]: task["hosts"]["localhost"] for play in report["plays"] for task in play["tasks"]}
    assert [t["name"] for t in tasks] == list(results), output
    return results, output


def module_answer(result):
    return {name: value for name, value in result.items() if name not in ANSIBLE_KEYS}


def task(name, module, args, check_mode=False):
    entry = {"name": name, "xenserver.openstack." + module: args}
    if check_mode:
        entry["check_mode"] = True
    return entry


@pytest.mark.parametrize("version", OLD_TARGETS)
def test_xenapi_and_image_modules_on_old_pythons(version, dom0, pack, glance, run_module, tmp_path):  # noqa: F811, PLR0917
    sim, root, _log = dom0()
    xapi = sim.module_args()
    image = "TestVM-py%s-%s" % (version, uuid.uuid4().hex[:8])
    raw, tgz = disk(tmp_path, "disk.raw", fmt="raw", size="4M"), tmp_path / "disk.vhd.tgz"
    routes = dict(xapi, networks=["198.18.1.0/24", "198.18.2.0/24"])
    job = dict(schedule="*/5 * * * *", max_size=65536, keep_size=4096)
    lo = dict(dom0_address="127.0.0.2")  # no password: XenAPI is skipped, lo's 127.0.0.1/8 holds the address
    glance_image = dict(cloud=glance.cloud, name=image, filename=str(tgz), properties=PROPERTIES)
    tasks = [
        task("host facts", "xen_host_info", xapi),
        task("routes, check mode", "xen_route", routes, check_mode=True),
        task("console logs", "xen_dom0_config", dict(xapi, console_log_rotation=job)),
        task("console logs again", "xen_dom0_config", dict(xapi, console_log_rotation=job)),
        task("pack", "xen_suppack", dict(xapi, iso=pack["iso"])),
        task("pack again", "xen_suppack", dict(xapi, iso=pack["iso"])),
        task("himn by address", "himn_info", lo),
        task("vhd tgz", "vhd_tgz", dict(src=str(raw), dest=str(tgz), src_format="raw")),
        task("glance image", "vhd_image", glance_image),
        task("glance image again", "vhd_image", glance_image),
    ]
    expected = dict(
        facts=run_module(xen_host_info, xapi),
        himn=run_module(himn_info, lo),
        routes=run_module(xen_route, routes, check_mode=True),
    )
    results, output = run_playbook(version, tasks, tmp_path)
    failed = {name: result.get("msg") for name, result in results.items() if result.get("failed")}
    assert not failed, output

    # Read-only answers are the controller Python's, word for word.
    assert module_answer(results["host facts"]) == module_answer(expected["facts"])
    himn, python = module_answer(results["himn by address"]), results["himn by address"]["python"]
    assert dict(himn, python=None) == dict(module_answer(expected["himn"]), python=None)
    # Except the Python that ran it, which it names: the old one, with XenAPI (tests/targets).
    assert (python["executable"], python["version"].rsplit(".", 1)[0], python["xenapi"]) == (
        target_python(version),
        version,
        True,
    )
    assert results["himn by address"]["interface"] == "lo" and results["himn by address"]["found_by"] == "address"
    check = results["routes, check mode"]
    assert check["changed"] and check == dict(check, **module_answer(expected["routes"]))
    assert check["diff"] == expected["routes"]["diff"]
    assert sorted(check["routes"]) == routes["networks"]

    # Changes happen once, in Dom0, in Glance, on disk.
    assert [results["console logs"]["changed"], results["console logs again"]["changed"]] == [True, False]
    assert "--keep-size 4096 --max-size 65536" in (root / CRON).read_text()
    assert [results["pack"]["changed"], results["pack again"]["changed"]] == [True, False]
    assert applied(sim) == [(pack["label"], pack["version"])]
    assert results["vhd tgz"]["changed"] and inspect_vhd_tgz(str(tgz))["members"] == ["0.vhd"]
    uploaded = results["glance image"]
    assert uploaded["uploaded"] and uploaded["image"]["disk_format"] == "vhd"
    assert uploaded["image"]["container_format"] == "ovf" and uploaded["image"]["vm_mode"] == "hvm"
    assert results["glance image again"]["changed"] is False


@pytest.fixture
def nat_netns():
    """A namespace with a HIMN NIC (eth2) and the bridges whose networks Dom0 reaches, as on a compute VM."""
    name = "%sold-%s" % (os.environ.get("XS_BED_PREFIX", "xs-"), uuid.uuid4().hex[:8])
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            "ip link set lo up",
            "ip link add eth2 type veth peer name eth2p",
            "ip link add br-mgmt type bridge",
            "ip link add br-storage type bridge",
        ):
            subprocess.run(["ip", "netns", "exec", name, *command.split()], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.root
@pytest.mark.parametrize("version", OLD_TARGETS)
def test_himn_nat_on_old_pythons(version, nat_netns, tmp_path):
    files = dict(rules_file=str(tmp_path / "rules.v4"), sysctl_file=str(tmp_path / "sysctl.conf"))
    nat = dict(files, himn_interface="eth2", port_forwards=[dict(interface="br-mgmt", port=80)])
    tasks = [
        task("nat", "himn_nat", nat),
        task("nat again", "himn_nat", nat),
        task("nat removed", "himn_nat", dict(files, state="absent")),
    ]
    results, output = run_playbook(version, tasks, tmp_path, netns=nat_netns)
    assert [results[name]["changed"] for name in ("nat", "nat again", "nat removed")] == [True, False, True], output
    assert "-t nat -A HIMN-PREROUTING -i br-mgmt -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 " in (
        "\n".join(results["nat"]["rules"])
    )
    assert results["nat"]["ip_forward"] == 1 and results["nat removed"]["ip_forward"] == 0
    live = subprocess.run(
        ["ip", "netns", "exec", nat_netns, "iptables-save"], capture_output=True, text=True, check=True
    )
    assert "HIMN-" not in live.stdout and not os.path.exists(files["rules_file"])


@pytest.mark.parametrize("version", OLD_TARGETS)
def test_ini_settings_on_old_pythons(version, tmp_path):
    """The file as the in-process run writes it, the secret kept out of the whole output, once."""
    path = tmp_path / "nova-compute.conf"
    path.write_text(
        "[DEFAULT]\n# the driver\ncompute_driver=libvirt.LibvirtDriver\n[xenserver]\n#connection_url = <None>\n"
    )
    args = dict(
        path=str(path),
        mode="0640",
        settings=[
            dict(section="DEFAULT", option="compute_driver", value="xenapi.XenAPIDriver"),
            dict(section="DEFAULT", option="force_config_drive", value=True),
            dict(section="xenserver", option="connection_url", value="http://169.254.0.1"),
        ],
        secrets=[dict(section="xenserver", option="connection_password", value="pw-%s-secret" % version)],
    )
    tasks = [
        task("check", "ini_settings", args, check_mode=True),
        dict(task("write", "ini_settings", args), diff=True),
        task("again", "ini_settings", args),
    ]
    results, output = run_playbook(version, tasks, tmp_path)
    assert [results[name]["changed"] for name in ("check", "write", "again")] == [True, True, False], output
    assert "pw-%s-secret" % version not in output
    assert "connection_password = ********" in results["write"]["diff"][0]["after"]
    assert path.read_text() == (
        "[DEFAULT]\n# the driver\ncompute_driver = xenapi.XenAPIDriver\nforce_config_drive = True\n[xenserver]\n"
        "#connection_url = <None>\nconnection_url = http://169.254.0.1\nconnection_password = pw-%s-secret\n" % version
    )
    assert oct(os.stat(str(path)).st_mode & 0o777) == "0o640"


@pytest.mark.parametrize("version", OLD_TARGETS)
def test_ini_settings_writes_a_new_file_on_old_pythons(version, tmp_path):
    """A fresh node has no nova-compute.conf yet: the module writes it whole (native strings on Python 2)."""
    path = tmp_path / "new.conf"
    args = dict(path=str(path), mode="0640", settings=[dict(section="xenserver", option="cache_images", value="all")])
    results, output = run_playbook(
        version, [task("new", "ini_settings", args), task("again", "ini_settings", args)], tmp_path
    )
    assert [results[name]["changed"] for name in ("new", "again")] == [True, False], output
    assert path.read_text() == "[xenserver]\ncache_images = all\n"


@pytest.mark.parametrize("version", OLD_TARGETS)
def test_himn_file_on_old_pythons(version, tmp_path):
    """A file of the roles (the HIMN's ifupdown stanza) in a directory made for it, then nothing to do, then gone."""
    path = tmp_path / "interfaces.d" / "xenserver-himn"
    stanza = "# xenserver.openstack: the HIMN\nauto eth2\niface eth2 inet dhcp\n"
    args = dict(path=str(path), content=stanza, mode="0644", directory_mode="0755")
    tasks = [
        task("check", "himn_file", args, check_mode=True),
        dict(task("write", "himn_file", args), diff=True),
        task("again", "himn_file", args),
        task("remove", "himn_file", dict(path=str(path), state="absent")),
    ]
    results, output = run_playbook(version, tasks, tmp_path)
    assert [results[n]["changed"] for n in ("check", "write", "again", "remove")] == [True, True, False, True], output
    assert results["write"]["diff"][0]["after"] == stanza
    assert not path.exists() and oct(os.stat(str(path.parent)).st_mode & 0o777) == "0o755"
