"""playbooks/site.yml against the namespace test bed, through Ansible as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
import yaml

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
BED = [sys.executable, os.path.join(TESTS, "bed", "bed.py")]

pytestmark = pytest.mark.root


def ansible_env():
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_CONNECTION_PLUGINS=os.path.join(TESTS, "bed", "connection_plugins"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
    )
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return env


def recorded_pids(state_dir):
    with open(os.path.join(state_dir, "state.json")) as handle:
        return [pid for pid, _started in json.load(handle)["processes"].values()]


def alive(pid):
    """Whether a process runs (a zombie has ended; this sandbox's init may never reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def leftovers(pids):
    """The bed's namespaces that still exist, and the given processes that still run."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in names.splitlines() if line.startswith("xs-")], [p for p in pids if alive(p)]


@pytest.fixture
def bed(tmp_path):
    state_dir = str(tmp_path / "bed")
    subprocess.run([*BED, "up", "--state-dir", state_dir], check=True, capture_output=True, text=True)
    try:
        inventory = subprocess.run(
            [*BED, "inventory", "--state-dir", state_dir], check=True, capture_output=True, text=True
        ).stdout.strip()
        yield state_dir, inventory
    finally:
        subprocess.run([*BED, "down", "--state-dir", state_dir], check=True, capture_output=True, text=True)


def test_site_yml_reads_the_host_through_the_himn(bed):
    state_dir, inventory = bed
    with open(os.path.join(state_dir, "dom0-1", "scenario.yml")) as handle:
        scenario = yaml.safe_load(handle)

    run = subprocess.run(
        ["ansible-playbook", os.path.join(ROOT, "playbooks", "site.yml"), "-i", inventory, "-vvv"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        check=False,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(run.stdout[run.stdout.index("{") :])
    facts = next(
        t["hosts"]["compute-1"]
        for play in report["plays"]
        for t in play["tasks"]
        if t["task"]["name"].startswith("Read the host")
    )
    vm = scenario["vms"]["compute"]
    host = scenario["hosts"][vm["resident_on"]]
    assert facts["host"]["product_version"] == str(host["software_version"]["product_version"])
    assert facts["vm"]["uuid"] == vm["uuid"]
    assert facts["himn"]["bridge"] == "xenapi"
    assert scenario["credentials"]["password"] not in run.stdout + run.stderr


def test_bed_down_leaves_nothing_behind(tmp_path):
    state_dir = str(tmp_path / "bed")
    subprocess.run([*BED, "up", "--state-dir", state_dir], check=True, capture_output=True, text=True)
    pids = recorded_pids(state_dir)
    namespaces, running = leftovers(pids)
    assert namespaces and running == pids, "the bed did not come up"
    subprocess.run([*BED, "down", "--state-dir", state_dir], check=True, capture_output=True, text=True)
    assert leftovers(pids) == ([], [])
