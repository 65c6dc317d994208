"""The dom0_suppack role through ansible-playbook, against the XAPI simulator on loopback.

The compute VM is localhost (ansible_connection: local); its XAPI URL points at a simulator started by the test.
The role builds and signs the pack with tools/build_pack.py, copies it, and applies it with xen_suppack.
"""

import json
import os
import subprocess
import sys

import gpgkey
import pluginsets
import pytest
import XenAPI
import yaml
from bedlib import ROOT, ansible_env, failures, task_results

PUT = "PUT /import_raw_vdi"
ROLE_NAME = "xenserver.openstack.dom0_suppack"
ROLE = ROLE_NAME + " : "
PLAYBOOK = """\
- name: Install the Dom0 plugins on the host of the compute VM
  hosts: compute
  gather_facts: false
  module_defaults:
    group/xenserver.openstack.xenapi:
      url: "{{ xenserver_url }}"
      username: "{{ xenserver_username }}"
      password: "{{ xenserver_password }}"
    # The same for xen_suppack itself, which the group may not list yet (meta/runtime.yml).
    xenserver.openstack.xen_suppack:
      url: "{{ xenserver_url }}"
      username: "{{ xenserver_username }}"
      password: "{{ xenserver_password }}"
  roles:
    - role: xenserver.openstack.dom0_suppack
"""


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory):
    home = str(tmp_path_factory.mktemp("gpg") / "home")
    yield home, gpgkey.signing_key(home, "role test")
    gpgkey.stop_agent(home)


def write_inventory(tmp_path, sim, gpg_key):
    vm = sim.scenario["vms"]["compute"]
    host = dict(
        ansible_connection="local",
        ansible_python_interpreter=sys.executable,
        xenserver_url=sim.url,
        xenserver_username=sim.scenario["credentials"]["username"],
        xenserver_password=sim.scenario["credentials"]["password"],
        dom0_suppack_vm_uuid=vm["uuid"],
        dom0_suppack_gpg_home=gpg_key[0],
        dom0_suppack_gpg_key=gpg_key[1],
        dom0_suppack_build_dir=str(tmp_path / "build"),
        dom0_suppack_remote_dir=str(tmp_path / "compute" / "var" / "tmp"),
        # Nova 21's Dom0 plugins (os-xenapi 0.3.4's) go in the pack; no nova is installed here to read it from.
        dom0_suppack_nova_version="21.2.4",
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"compute": {"hosts": {"compute-1": host}}}))
    playbook = tmp_path / "dom0_suppack.yml"
    playbook.write_text(PLAYBOOK)
    return str(inventory), str(playbook)


def play(inventory, playbook, *args):
    run = subprocess.run(
        ["ansible-playbook", playbook, "-i", inventory, *args],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        check=False,
    )
    report = json.loads(run.stdout[run.stdout.index("{") :])
    assert run.returncode == 0, failures(report) or run.stderr[-3000:]
    return report


def test_role_applies_the_pack_then_has_nothing_to_do(xapi_sim, tmp_path, gpg_key):
    sim = xapi_sim("xcpng-8.3")
    inventory, playbook = write_inventory(tmp_path, sim, gpg_key)

    check = play(inventory, playbook, "--check")
    (predicted,) = task_results(check, "compute-1", ROLE + "Apply the pack on the host")
    assert predicted["changed"] is True and predicted["uploaded"] is False
    assert PUT not in sim.counts() and sim.state()["updates"] == []

    first = play(inventory, playbook)
    (applied,) = task_results(first, "compute-1", ROLE + "Apply the pack on the host")
    assert applied["changed"] is True and applied["uploaded"] is True and applied["legacy"] is False
    assert first["stats"]["compute-1"]["changed"] >= 1
    assert sim.counts()[PUT] == 1 and sim.vdi_count() == 0
    assert [(u["name_label"], u["hosts"]) for u in sim.state()["updates"]] == [("xenserver-openstack", ["xcp-ng-83"])]
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password("root", sim.scenario["credentials"]["password"], "2.0", "test")
    answer = session.xenapi.host.call_plugin(session.xenapi.host.get_all()[0], "xenserver_openstack", "version", {})
    assert json.loads(answer)["plugin"] == "xenserver_openstack"
    # Nova's plugins came with it: the ones nova 21 calls at start among them.
    installed = set(os.listdir(sim.plugin_dir))
    assert {"dom0_plugin_version.py", "xenhost.py", "netwrap.py", "xenserver_openstack"} <= installed, installed

    sim.reset_counts()
    second = play(inventory, playbook)
    assert second["stats"]["compute-1"]["changed"] == 0, [
        t["task"]["name"] for p in second["plays"] for t in p["tasks"] if t["hosts"]["compute-1"].get("changed")
    ]
    assert PUT not in sim.counts()

    sim.reset_counts()
    off = play(inventory, playbook, "-e", "dom0_suppack_install=false")
    ran = [
        t["task"]["name"]
        for p in off["plays"]
        for t in p["tasks"]
        if not t["hosts"]["compute-1"].get("skipped") and "Validating arguments" not in t["task"]["name"]
    ]
    assert ran == [] and off["stats"]["compute-1"]["changed"] == 0, ran
    assert sim.counts() == {}, "a switched-off role must not even read XAPI"


def test_role_stops_on_an_lvm_default_sr_before_anything_changes(xapi_sim, tmp_path, gpg_key):
    sim = xapi_sim("lvm-sr")
    inventory, playbook = write_inventory(tmp_path, sim, gpg_key)
    run = subprocess.run(
        ["ansible-playbook", playbook, "-i", inventory], capture_output=True, text=True, env=ansible_env(), check=False
    )
    report = json.loads(run.stdout[run.stdout.index("{") :])
    assert run.returncode != 0 and "is of type lvm" in failures(report) and "default-SR" in failures(report)
    assert PUT not in sim.counts() and not os.path.exists(tmp_path / "build")


def test_every_task_file_of_the_role_passes_syntax_check(tmp_path):
    """The trust and legacy paths need a real Dom0 over SSH; here every task file is at least parsed (static
    imports, so that --syntax-check reads them all)."""
    files = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "roles", "dom0_suppack", "tasks")))
    assert {"main", "preflight", "build", "trust", "install", "legacy"} <= set(files)
    tasks = [
        {"name": "Import %s" % name, "ansible.builtin.import_role": {"name": ROLE_NAME, "tasks_from": name}}
        for name in files
    ]
    playbook = tmp_path / "all_paths.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Every path", "hosts": "all", "gather_facts": False, "tasks": tasks}]))
    run = subprocess.run(
        ["ansible-playbook", "--syntax-check", str(playbook), "-i", "localhost,"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def applied_updates(sim):
    return [(u["name_label"], u["version"], u["hosts"]) for u in sim.state()["updates"] if u["hosts"]]


def test_another_plugin_set_installs_on_the_next_run_and_then_nothing_changes(xapi_sim, tmp_path, gpg_key):
    """The operator changes the plugin set (here: nova 17's, os-xenapi 0.3.1): the next run builds a pack of the
    same collection version with a higher release and applies it; the run after changes nothing. No version edit."""
    sim = xapi_sim("xcpng-8.3")
    inventory, playbook = write_inventory(tmp_path, sim, gpg_key)
    play(inventory, playbook)
    ((_label, first, _hosts),) = applied_updates(sim)
    assert first.split("-")[1].startswith("1.")

    changed = play(inventory, playbook, "-e", "dom0_suppack_plugin_set=os-xenapi-0.3.1")
    assert changed["stats"]["compute-1"]["changed"] >= 1
    ((_label, second, _hosts),) = applied_updates(sim)
    assert second != first and second.split("-")[1].startswith("2.")
    with open(os.path.join(sim.plugin_dir, "dom0_plugin_version.py")) as handle:
        assert 'PLUGIN_VERSION = "2.1"' in handle.read()

    again = play(inventory, playbook, "-e", "dom0_suppack_plugin_set=os-xenapi-0.3.1")
    assert again["stats"]["compute-1"]["changed"] == 0
    assert applied_updates(sim) == [("xenserver-openstack", second, ["xcp-ng-83"])]


def test_no_nova_to_read_stops_before_anything_changes(xapi_sim, tmp_path, gpg_key):
    sim = xapi_sim("xcpng-8.3")
    inventory, playbook = write_inventory(tmp_path, sim, gpg_key)
    run = subprocess.run(
        [
            "ansible-playbook",
            playbook,
            "-i",
            inventory,
            "-e",
            "dom0_suppack_nova_version=",
            "-e",
            "dom0_suppack_nova_python=" + sys.executable,
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=False,
    )
    report = json.loads(run.stdout[run.stdout.index("{") :])
    assert run.returncode != 0 and "has no nova installed" in failures(report)
    assert "dom0_suppack_nova_version" in failures(report)
    assert PUT not in sim.counts() and sim.state()["updates"] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-e", "dom0_suppack_nova_version=22.0.0"], "nova 22.0.0: the collection has no Dom0 plugin set for it"),
        (["-e", "dom0_suppack_plugin_archives=EMPTY"], "is not in the offline archive directory"),
        (["-e", "dom0_suppack_plugin_archives=TAMPERED"], "not the pinned"),
    ],
    ids=["nova-without-a-set", "offline-archive-missing", "archive-not-the-pinned-one"],
)
def test_bad_plugin_set_inputs_stop_before_dom0_changes(xapi_sim, tmp_path, gpg_key, extra, message):
    sim = xapi_sim("xcpng-8.3")
    inventory, playbook = write_inventory(tmp_path, sim, gpg_key)
    offline = tmp_path / "archives"
    offline.mkdir()
    if "dom0_suppack_plugin_archives=TAMPERED" in extra:
        (offline / pluginsets.OS_XENAPI["file"]).write_bytes(pluginsets.archive() + b"\0")
    extra = [arg.replace("EMPTY", str(offline)).replace("TAMPERED", str(offline)) for arg in extra]
    run = subprocess.run(
        ["ansible-playbook", playbook, "-i", inventory, *extra],
        capture_output=True, text=True, env=ansible_env(), check=False,
    )  # fmt: skip
    report = json.loads(run.stdout[run.stdout.index("{") :])
    assert run.returncode != 0 and message in failures(report), failures(report)
    assert "The pack was not built, so nothing was installed" in failures(report)
    assert "Traceback" not in failures(report)
    assert PUT not in sim.counts() and sim.state()["updates"] == []
