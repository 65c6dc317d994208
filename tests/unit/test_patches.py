"""The patch bookkeeping of the misc_patches role (which patches to apply, keep, leave alone or revert), and the
patch data it ships. The patches against a real nova tree are in tests/integration/test_misc_patches_part2.py."""

import io
import os
import pickle
import re
import xmlrpc.client

import pluginsets
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.xenserver.openstack.plugins.filter import misc_patches as filters
from ansible_collections.xenserver.openstack.plugins.plugin_utils import _patches

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, "roles", "misc_patches")
with open(os.path.join(ROLE, "defaults", "main.yml")) as _handle:
    DEFAULTS = yaml.safe_load(_handle)

SETS = dict(
    ussuri=[
        dict(name="one", file="patches/one.patch", dir="", strip=1, services=["nova-compute"]),
        dict(name="off", file="patches/off.patch", enabled=False),
    ]
)


def test_the_plan_is_the_release_set_then_the_extras_with_absolute_directories():
    extra = [dict(name="rootwrap", file="/srv/rootwrap.patch", dir="/usr/bin", strip=2, services=["neutron-agent"])]

    plan = filters.patch_plan(SETS, "ussuri", extra, "/usr/lib/python3/dist-packages")

    assert plan == [
        dict(name="one", file="patches/one.patch", basedir="/usr/lib/python3/dist-packages", strip=1,
             services=["nova-compute"]),
        dict(name="rootwrap", file="/srv/rootwrap.patch", basedir="/usr/bin", strip=2, services=["neutron-agent"]),
    ]  # fmt: skip
    assert filters.patch_plan(SETS, "victoria", [], "/x") == []


def test_every_problem_of_the_patch_data_is_reported_at_once():
    bad = [
        dict(name="a b", file="x.patch"),
        dict(name="dup", file="x.patch", strip="-1"),
        dict(name="dup", services="nova-compute", colour="red"),
        "just a string",
        dict(name="rel", file="y.patch", dir="nova"),
    ]
    with pytest.raises(AnsibleFilterError) as caught:
        filters.patch_plan({"r": bad}, "r", [], "")
    message = str(caught.value)
    for word in ("name must be", "strip must be", "used twice", "services must be a list", "unknown keys colour",
                 "file is missing", "patch 4: expected a mapping", "site directory is unknown"):  # fmt: skip
        assert word in message


def test_dry_runs_decide_apply_keep_distribution_or_conflict():
    plan = filters.patch_plan(
        {"r": [dict(name=n, file=n + ".patch") for n in ("new", "mine", "theirs", "broken")]}, "r", [], "/site"
    )
    dry = [
        dict(changed=True),
        dict(changed=False),
        dict(changed=False),
        dict(changed=False, failed=False, failed_when_result=False, msg="1 out of 1 hunk FAILED"),
    ]

    actions = filters.patch_actions(plan, dry, ["mine"])

    assert [a["action"] for a in actions] == ["apply", "keep", "distribution", "conflict"]
    conflicts = filters.patch_conflicts(actions)
    assert len(conflicts) == 1
    assert conflicts[0].startswith("Patch broken (broken.patch) in /site with -p1 does not apply")
    assert "1 out of 1 hunk FAILED" in conflicts[0] and "Nothing was changed" in conflicts[0]
    assert "cannot be reverted" in filters.patch_conflicts(actions, "absent")[0]
    with pytest.raises(AnsibleFilterError):
        filters.patch_actions(plan, dry[:2], [])


def test_the_index_records_the_origin_and_keeps_older_entries_and_absent_reverts_only_this_roles():
    plan = filters.patch_plan({"r": [dict(name=n, file=n + ".patch") for n in ("new", "theirs", "broken")]}, "r",
                              [], "/site")  # fmt: skip
    actions = filters.patch_actions(plan, [dict(changed=True), {}, dict(msg="FAILED")], [])
    previous = dict(old=dict(origin="role", file="old.patch", basedir="/elsewhere", strip=0, services=[]))

    index = filters.patch_index(previous, actions, "ussuri")

    assert sorted(index) == ["new", "old", "theirs"]
    assert index["new"] == dict(origin="role", file="new.patch", basedir="/site", strip=1, services=[],
                                release="ussuri")  # fmt: skip
    assert index["theirs"]["origin"] == "distribution"
    assert [p["name"] for p in filters.patch_revert_plan(index)] == ["new", "old"]
    assert [p["name"] for p in filters.patch_revert_plan(index, ["old"])] == ["old"]


def test_each_service_of_the_changed_patches_is_restarted_once():
    results = [
        dict(changed=True, item=dict(services=["nova-compute"])),
        dict(changed=False, item=dict(services=["ceilometer-polling"])),
        dict(changed=True, item=dict(services=["nova-compute", "neutron-openvswitch-agent"])),
    ]
    assert filters.patch_restart_services(results) == ["nova-compute", "neutron-openvswitch-agent"]
    assert filters.patch_restart_services([]) == []


def test_the_shipped_patch_sets_are_valid_and_their_files_are_unified_diffs_for_their_strip_level():
    sets = DEFAULTS["misc_patches_patch_sets"]
    assert {"train", "ussuri"} <= set(sets)
    for release in sets:
        plan = _patches.patch_plan(sets, release, [], "/usr/lib/python3/dist-packages")
        assert plan, release
        for patch in plan:
            path = os.path.join(ROLE, "files", patch["file"])
            with open(path) as handle:
                text = handle.read()
            targets = re.findall(r"^\+\+\+ (\S+)", text, re.M)
            assert targets, path
            for target in targets:
                stripped = target.split("/", patch["strip"])[-1]
                assert stripped.startswith(("nova/virt/xenapi/", "os_xenapi/client/")), target
            assert "nova-compute" in patch["services"]


def test_the_os_xenapi_patch_applies_to_os_xenapi_0_3_4_and_lets_python_3_talk_to_python_2_plugins(tmp_path):
    """The patch applies (patch --dry-run, then for real) to os-xenapi 0.3.4's session.py from PyPI; the patched
    call_plugin_serialized then sends a Python 2 plugin (os-xenapi's own utils.py pickling, run by Python 2.7) text it
    reads, and reads its answer, where the unpatched code sends bytes and cannot read the answer."""
    import subprocess
    import sys
    import zipfile

    wheel = pluginsets.archive()
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        archive.extract("os_xenapi/client/session.py", str(tmp_path))
    patch = os.path.join(ROLE, "files", "patches", "os-xenapi", "python3-plugin-calls.patch")
    for extra in (["--dry-run"], []):
        subprocess.run(["patch", "-p1", "--forward", "-s", *extra, "-i", patch], cwd=str(tmp_path), check=True)
    patched = (tmp_path / "os_xenapi" / "client" / "session.py").read_text()
    start = patched.index("    def call_plugin_serialized(")
    method = patched[start : patched.index("\n    def ", start + 10)]
    # The method, alone, on a stand-in session whose call_plugin runs a Python 2.7 "plugin" the way xapi would:
    # the args map's string values in, the plugin's pickled answer (a string) out.
    plugin = (  # a pickled plugin function as os-xenapi's utils.py wraps it, under Python 2.7, XML-RPC in and out
        "import cPickle as pickle, sys, xmlrpclib\n"
        "(session, args), fn = xmlrpclib.loads(sys.argv[1])\n"
        "value = pickle.dumps({'got': repr(pickle.loads(args['params'])), 'text': 'caf\\xc3\\xa9'})\n"
        "sys.stdout.write(xmlrpclib.dumps(({'Status': 'Success', 'Value': value},), methodresponse=True))\n"
    )
    pyenv_root = subprocess.check_output(["pyenv", "root"], text=True).strip()
    python27 = os.path.join(pyenv_root, "versions", "2.7.18", "bin", "python")
    namespace = {"pickle": pickle, "re": re, "sys": sys}

    class Session:
        def call_plugin(self, plugin_name, fn, args):
            assert all(isinstance(v, str) and v.isascii() for v in args.values()), args
            call = xmlrpc.client.dumps(("OpaqueRef:session", args), methodname=fn)
            proc = subprocess.run([python27, "-c", plugin, call], capture_output=True, text=True, check=True)
            ((result,), _method) = xmlrpc.client.loads(proc.stdout)
            return result["Value"]

    exec(compile("class Patched(object):\n" + method, "session.py", "exec"), namespace)
    answer = namespace["Patched"].call_plugin_serialized(Session(), "dom0_plugin_version.py", "get_version", "é", k=2)
    # What Python 2 unpickled (its repr), and a UTF-8 str of Python 2 read back as text.
    assert answer == {"got": "{u'args': (u'\\xe9',), u'kwargs': {u'k': 2}}", "text": "café"}
