"""misc_patches part 2 through ansible-playbook on localhost: the preflight stops every host before anything
changes, and the code patches against a real nova tree (nova 21.2.4 from PyPI, cached under .build).

The services the patches restart are stand-in init scripts: as root, each playbook runs in a private mount
namespace (unshare) where a temporary directory is bind-mounted over /etc/init.d, so the machine's own
services are never touched. Without root the restart assertions are skipped (XO_REQUIRE_ROOT=1 fails them).
"""

import ast
import hashlib
import io
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pluginsets
import pytest
import yaml
from bedlib import ROOT, ansible_env
from xapisim.pytest_plugin import scenario_path

NOVA_VERSION = "21.2.4"
CACHE = os.path.join(ROOT, ".build", "cache", "pypi")
ROLE_PATCH = os.path.join(ROOT, "roles", "misc_patches", "files", "patches", "nova", "xenapi-config-drive.patch")
OS_XENAPI_PATCH = os.path.join(
    ROOT, "roles", "misc_patches", "files", "patches", "os-xenapi", "python3-plugin-calls.patch"
)
PATCHED = ("nova/virt/xenapi/vm_utils.py", "nova/virt/xenapi/volume_utils.py")
AS_ROOT = os.geteuid() == 0
PLAY_HEADER = """
- name: Preflight, then a change
  hosts: all
  gather_facts: false
  module_defaults:
    group/xenserver.openstack.xenapi:
      url: "{{ xenserver_url }}"
      username: root
      password: "{{ xenserver_password }}"
"""


def write(path, text):
    with open(path, "w") as handle:
        handle.write(textwrap.dedent(text))
    return str(path)


def playbook(play, inventory, *args, init_d=None):
    """Run ansible-playbook; return (returncode, json report, output). With ``init_d`` (root only) the run
    sees that directory as /etc/init.d, in a mount namespace of its own."""
    argv = ["ansible-playbook", play, "-i", inventory, *args]
    if init_d:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/init.d && exec "$@"', init_d, *argv]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), cwd=ROOT, check=False)
    start = run.stdout.find("{")
    report = json.loads(run.stdout[start:]) if start >= 0 else None
    return run.returncode, report, run.stdout + run.stderr


def task_results(report, host, fragment, play=None):
    """The results of ``host`` for each task whose name (after the role's prefix) starts with ``fragment``,
    in every play or in the play of that index."""
    plays = report["plays"] if play is None else [report["plays"][play]]
    return [
        task["hosts"][host]
        for one in plays
        for task in one["tasks"]
        if task["task"]["name"].split(" : ", 1)[-1].startswith(fragment) and host in task["hosts"]
    ]


def changed_tasks(report, host, play):
    """Names of the tasks that changed something on ``host`` in the play of that index."""
    return [
        task["task"]["name"] for task in report["plays"][play]["tasks"] if task["hosts"].get(host, {}).get("changed")
    ]


def failed(report):
    """Every failed task result, by host and task, for assertion messages."""
    return [
        (host, task["task"]["name"], result.get("msg"))
        for play in report["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
        if result.get("failed")
    ]


def messages(report, host):
    """The problem messages of the preflight's stop task on ``host``."""
    return task_results(report, host, "Stop on every host")[0].get("msg", [])


# --- Preflight ----------------------------------------------------------------------------------------------


def sim_host(sim, **more):
    vm = sim.scenario["vms"]["compute"]
    return dict(xenserver_url=sim.url, xenserver_password=sim.scenario["credentials"]["password"],
                xenserver_vm_uuid=vm["uuid"], **more)  # fmt: skip


def inventory(tmp_path, hosts):
    common = dict(ansible_connection="local", ansible_python_interpreter=sys.executable)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(dict(all=dict(hosts=hosts, vars=common))))
    return str(path)


def preflight_play(tmp_path):
    return write(
        tmp_path / "preflight.yml",
        PLAY_HEADER
        + """
  tasks:
    - name: Check before anything changes
      ansible.builtin.include_role:
        name: xenserver.openstack.misc_patches
        tasks_from: preflight

    - name: Change something on the node
      ansible.builtin.copy:
        content: changed
        dest: "{{ marker }}"
        mode: "0600"

- name: A later play, as in site.yml
  hosts: all
  gather_facts: false
  tasks:
    - name: Change something more on the node
      ansible.builtin.copy:
        content: changed
        dest: "{{ marker }}.later"
        mode: "0600"
""",
    )


def test_a_failing_preflight_shows_every_problem_and_nothing_changes_on_any_node(tmp_path, xapi_sim):
    refused = xapi_sim("xenserver-6.5-hotfix")
    many = tmp_path / "many.yml"
    many.write_text(yaml.safe_dump(dict(
        extends=scenario_path("xenserver-6.5"),
        srs=dict(local=dict(type="lvm")),
        vms=dict(compute=dict(vifs=[dict(device="0", network="mgmt", MAC="ba:1d:6d:13:2c:de")])),
    )))  # fmt: skip
    broken = xapi_sim(str(many))
    good = xapi_sim("xcpng-8.3")
    sims = dict(refused=refused, broken=broken, good=good, no_password=good)
    hosts = dict(
        refused=sim_host(refused),
        broken=sim_host(broken, openstack_options=dict(hypervisor="kvm", volumes_ceph=True, ironic=True)),
        good=sim_host(good),
        no_password=dict(sim_host(good), xenserver_password=None, openstack_options=dict(mongo=True)),
    )
    for name, host in hosts.items():
        host["marker"] = str(tmp_path / ("marker-" + name))
    before = {name: sim.state() for name, sim in sims.items()}

    code, report, output = playbook(preflight_play(tmp_path), inventory(tmp_path, hosts))

    assert code != 0
    header, platform = messages(report, "refused")
    assert header.startswith("xenserver.openstack preflight: 1 problem(s) on refused; nothing was changed")
    assert platform.startswith("XenServer 6.5.0 (platform 1.9.0) on host xenserver-65 is refused: its Dom0 is CentOS 5")
    broken_text = " ".join(messages(report, "broken"))
    assert messages(report, "broken")[0].startswith("xenserver.openstack preflight: 6 problem(s) on broken")
    for word in ("hypervisor is 'kvm'", "volumes_ceph is true", "ironic is true", "Python 2.4", "type lvm",
                 "xe vif-create"):  # fmt: skip
        assert word in broken_text
    assert any("xenserver_password is empty" in m for m in messages(report, "no_password"))
    assert any("mongo is true" in m for m in messages(report, "no_password"))
    # The good host passed its checks, yet any_errors_fatal stopped it too: no node changed, XAPI untouched.
    assert not task_results(report, "good", "Stop on every host")[0].get("failed")
    assert task_results(report, "good", "Change something") == []
    assert len(report["plays"]) == 1  # the play after it did not run either
    assert not [name for name in hosts if os.path.exists(hosts[name]["marker"])]
    assert {name: sim.state() for name, sim in sims.items()} == before
    assert good.scenario["credentials"]["password"] not in output


def test_a_passing_preflight_lets_the_play_go_on(tmp_path, xapi_sim):
    hosts = dict(
        hotfixed=sim_host(xapi_sim("xenserver-7.1"), marker=str(tmp_path / "hotfixed"), openstack_options=dict(
            hypervisor="xen", volumes_ceph=False, ephemeral_ceph=False, sahara=False, murano=False, mongo=False,
            ironic=False, ceilometer=True)),
    )  # fmt: skip

    code, _report, output = playbook(preflight_play(tmp_path), inventory(tmp_path, hosts))

    assert code == 0, output[-3000:]
    assert os.path.exists(hosts["hotfixed"]["marker"]) and os.path.exists(hosts["hotfixed"]["marker"] + ".later")


# --- Patches against a real nova tree -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def nova_tree(tmp_path_factory):
    """The nova package (without its unit tests) and its egg-info from the nova sdist on PyPI."""
    sdist = os.path.join(CACHE, "nova-%s.tar.gz" % NOVA_VERSION)
    if not os.path.exists(sdist):
        os.makedirs(CACHE, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*pip, "-d", CACHE, "nova==%s" % NOVA_VERSION], check=True, capture_output=True, text=True)
    target = tmp_path_factory.mktemp("nova")
    top = "nova-%s/" % NOVA_VERSION
    with tarfile.open(sdist) as archive:
        members = [
            m
            for m in archive.getmembers()
            if m.name.startswith((top + "nova/", top + "nova.egg-info/")) and not m.name.startswith(top + "nova/tests/")
        ]
        archive.extractall(target, members=members, filter="data")
    # os-xenapi next to it, as pip and the distributions install them: its client is patched too.
    with zipfile.ZipFile(io.BytesIO(pluginsets.archive())) as wheel:
        wheel.extractall(target / top, [n for n in wheel.namelist() if n.startswith("os_xenapi/")])
    return str(target / top)


def digest(tree):
    """SHA-256 of every file of a tree, by relative path."""
    out = {}
    for base, _dirs, files in os.walk(tree):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, tree)] = hashlib.sha256(handle.read()).hexdigest()
    return out


def changed_files(tree, pristine):
    now = digest(tree)
    return sorted(p for p in set(now) | set(pristine) if now.get(p) != pristine.get(p))


def stand_in_service(directory, name, log):
    """An init script that records every action in ``log`` and keeps its running state beside it."""
    os.makedirs(directory, exist_ok=True)
    state = log + ".running"
    path = write(
        os.path.join(directory, name),
        f"""\
        #!/bin/sh
        case "$1" in
          start|stop|restart) echo "$1" >> {log} ;;
        esac
        case "$1" in
          start|restart) touch {state} ;;
          stop) rm -f {state} ;;
          status) [ -f {state} ] && exit 0 || exit 3 ;;
          *) exit 2 ;;
        esac
        """,
    )
    os.chmod(path, 0o755)


def actions(log):
    if not os.path.exists(log):
        return []
    with open(log) as handle:
        return handle.read().split()


@pytest.fixture
def patch_bed(tmp_path, nova_tree):
    """Three nodes on localhost, each with its own copy of the nova tree and record directory:
    fresh (the original code, plus a patch of the operator's own for the same service), distro (already has the
    fix, as a distribution would ship it) and conflict (code the patch no longer fits: only the first file's
    hunk fails, so without a dry run the second file would be half-patched)."""
    if not AS_ROOT and os.environ.get("XO_REQUIRE_ROOT") == "1":
        pytest.fail("the service restarts need root (a mount namespace), and XO_REQUIRE_ROOT=1 forbids skipping them")
    trees = {name: str(tmp_path / name) for name in ("fresh", "distro", "conflict")}
    for tree in trees.values():
        shutil.copytree(nova_tree, tree)
    for fix in (ROLE_PATCH, OS_XENAPI_PATCH):  # a distribution that ships both fixes
        subprocess.run(["patch", "-s", "-p1", "-d", trees["distro"], "-i", fix], check=True)
    vm_utils = os.path.join(trees["conflict"], PATCHED[0])
    with open(vm_utils) as handle:
        text = handle.read()
    with open(vm_utils, "w") as handle:
        handle.write(text.replace("with open(vhd_file) as file_obj:", "with open(vhd_file, 'r') as file_obj:"))
    extra = write(tmp_path / "extra.patch", extra_patch(os.path.join(trees["fresh"], "nova/virt/xenapi/fake.py")))
    init_d, log = str(tmp_path / "init.d"), str(tmp_path / "nova-compute.log")
    stand_in_service(init_d, "nova-compute", log)
    hosts = {}
    for name, tree in trees.items():
        hosts[name] = dict(misc_patches_site_dir=tree, misc_patches_state_dir=str(tmp_path / ("state-" + name)),
                           misc_patches_python=sys.executable, misc_patches_restart_services=False)  # fmt: skip
    hosts["fresh"].update(
        misc_patches_restart_services=AS_ROOT,
        misc_patches_extra_patches=[dict(name="operator-fake", file=extra, dir="nova/virt/xenapi", strip=0,
                                         services=["nova-compute"])],
    )  # fmt: skip
    # Each run is two plays: check mode then apply (the conflict node only in the second), or apply again
    # then revert.
    play = write(
        tmp_path / "patches.yml",
        """
        - name: "{{ first_name }}"
          hosts: fresh:distro
          gather_facts: false
          check_mode: "{{ first_check_mode }}"
          tasks:
            - name: Apply the patch set
              ansible.builtin.include_role:
                name: xenserver.openstack.misc_patches
                tasks_from: patches

        - name: Look at the nodes between the two
          hosts: fresh:distro
          gather_facts: false
          tasks:
            - name: Hash the nova tree and see whether a record exists
              ansible.builtin.command:
                argv: ["{{ ansible_python_interpreter }}", -c, "{{ look }}", "{{ misc_patches_site_dir }}",
                       "{{ misc_patches_state_dir }}"]
              changed_when: false
              register: look_result

        - name: "{{ second_name }}"
          hosts: "{{ second_hosts }}"
          gather_facts: false
          tasks:
            - name: Apply or revert the patch set
              ansible.builtin.include_role:
                name: xenserver.openstack.misc_patches
                tasks_from: patches
              vars:
                misc_patches_state: "{{ second_state }}"
        """,
    )
    inv = inventory(tmp_path, hosts)

    def run(**extra_vars):
        extra_vars["look"] = LOOK
        return playbook(play, inv, "-e", json.dumps(extra_vars), init_d=init_d if AS_ROOT else None)

    return dict(
        trees=trees, hosts=hosts, run=run, log=log, tmp=tmp_path, pristine=digest(nova_tree), nova=nova_tree,
        distro=digest(trees["distro"]), conflict=digest(trees["conflict"]),
    )  # fmt: skip


def test_the_config_drive_patch_on_a_real_nova_tree(patch_bed):
    bed, trees, hosts = patch_bed, patch_bed["trees"], patch_bed["hosts"]

    code, report, output = bed["run"](first_name="Check mode", first_check_mode=True, second_name="Apply",
                                      second_hosts="all", second_state="present")  # fmt: skip

    assert code != 0 and len(report["plays"]) == 3, output[-3000:]  # the conflict node fails in the second play
    # Check mode: fresh would change, nothing was written anywhere.
    assert task_results(report, "fresh", "Apply the patches", play=0)[0]["changed"]
    assert looked(report, "fresh") == dict(digest=bed["pristine"], record=False)
    assert looked(report, "distro") == dict(digest=bed["distro"], record=False)
    # The conflicting tree: every file as it was (no half-applied patch), the patch named, nothing recorded.
    conflict = " ".join(task_results(report, "conflict", "Stop before changing any file")[0]["msg"])
    assert "Patch nova-xenapi-config-drive" in conflict and "Nothing was changed" in conflict
    assert digest(trees["conflict"]) == bed["conflict"]
    assert not os.path.exists(hosts["conflict"]["misc_patches_state_dir"])
    # The fresh tree: both patches, still compiling, recorded, one restart.
    assert changed_files(trees["fresh"], bed["pristine"]) == sorted(
        [*PATCHED, "nova/virt/xenapi/fake.py", "os_xenapi/client/session.py"]
    )
    for relative in PATCHED:
        py_compile.compile(os.path.join(trees["fresh"], relative), doraise=True, cfile=str(bed["tmp"] / "c.pyc"))
    index = read_index(hosts["fresh"])
    assert index["nova-xenapi-config-drive"]["origin"] == "role"
    assert index["nova-xenapi-config-drive"]["release"] == "ussuri"  # found from the tree's nova 21.2.4
    assert index["operator-fake"]["origin"] == "role"
    with open(record(hosts["fresh"]), "rb") as kept, open(ROLE_PATCH, "rb") as shipped:
        assert kept.read() == shipped.read()
    # The distribution's fix: found, recorded as theirs, left alone.
    assert digest(trees["distro"]) == bed["distro"]
    assert read_index(hosts["distro"])["nova-xenapi-config-drive"]["origin"] == "distribution"
    assert not os.path.exists(record(hosts["distro"]))
    if AS_ROOT:
        assert actions(bed["log"]) == ["stop", "start"]  # it was stopped: started, once for three patches
    patched_code_works(trees["fresh"], bed["nova"])

    code, report, output = bed["run"](first_name="Again", first_check_mode=False, second_name="Revert",
                                      second_hosts="fresh:distro", second_state="absent")  # fmt: skip

    assert code == 0, failed(report) if report else output[-3000:]
    assert looked(report, "fresh")["record"] and looked(report, "fresh")["digest"] != bed["pristine"]
    # Again: nothing changes, nothing restarts (the restarts are counted after the revert below).
    assert changed_tasks(report, "fresh", 0) == [] and changed_tasks(report, "distro", 0) == []
    # Revert: the original bytes where this role patched; the distribution's fix stays; no record left.
    assert digest(trees["fresh"]) == bed["pristine"]
    assert digest(trees["distro"]) == bed["distro"]
    assert not os.path.exists(hosts["fresh"]["misc_patches_state_dir"])
    if AS_ROOT:
        assert actions(bed["log"]) == ["stop", "start", "stop", "start"]


# Run on a node between the plays: the digest of its nova tree, and whether its record directory exists.
LOOK = """
import hashlib, json, os, sys
out = {}
for base, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(base, name)
        with open(path, "rb") as handle:
            out[os.path.relpath(path, sys.argv[1])] = hashlib.sha256(handle.read()).hexdigest()
print(json.dumps(dict(digest=out, record=os.path.exists(sys.argv[2]))))
"""


def looked(report, host):
    return json.loads(task_results(report, host, "Hash the nova tree", play=1)[0]["stdout"])


def record(host):
    return os.path.join(host["misc_patches_state_dir"], "nova-xenapi-config-drive.patch")


def extra_patch(path):
    """A -p0 patch (relative to the file's directory) that changes the first line of ``path``."""
    name = os.path.basename(path)
    with open(path) as handle:
        first = handle.readline().rstrip("\n")
    return f"--- {name}\n+++ {name}\n@@ -1 +1 @@\n-{first}\n+{first} (patched by the operator)\n"


def read_index(host):
    with open(os.path.join(host["misc_patches_state_dir"], "index.json")) as handle:
        return json.load(handle)


def function_source(path, name):
    with open(path) as handle:
        source = handle.read()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node), source
    raise AssertionError("%s not in %s" % (name, path))


def patched_code_works(tree, pristine_tree):
    """The patched writer streams a binary VHD byte for byte in 1 MiB blocks; the original could not read it."""
    vhd = bytes(range(256)) * 8192 + b"\xff" * 1000  # not text: 0xff never decodes
    path = os.path.join(tree, "..", "drive.vhd")
    with open(path, "wb") as handle:
        handle.write(vhd)
    code, module = function_source(os.path.join(tree, PATCHED[1]), "_stream_to_vdi")
    assert "CONFIGDRIVE_BLOCKSIZE = 1024 * 1024" in module
    generate, _ = function_source(os.path.join(tree, PATCHED[0]), "generate_configdrive")
    assert "open(vhd_file, 'rb')" in generate

    class Conn:
        def __init__(self):
            self.sent = []

        def request(self, *args, **kwargs):
            pass

        def send(self, data):
            self.sent.append(data)

        def getresponse(self):
            return type("Response", (), dict(status=200, reason="OK"))

    namespace = dict(CONFIGDRIVE_BLOCKSIZE=1024 * 1024, LOG=type("Log", (), dict(debug=lambda *a, **k: None)))
    exec(compile(code, "volume_utils.py", "exec"), namespace)
    conn = Conn()
    with open(path, "rb") as file_obj:
        namespace["_stream_to_vdi"](conn, "/import_raw_vdi", len(vhd), file_obj)
    assert b"".join(conn.sent) == vhd and max(len(c) for c in conn.sent) == 1024 * 1024
    original, _ = function_source(os.path.join(pristine_tree, PATCHED[0]), "generate_configdrive")
    assert "with open(vhd_file) as file_obj:" in original
    with pytest.raises(UnicodeDecodeError), open(path) as text_mode:  # what the original does on Python 3
        text_mode.read(16 * 1024)
