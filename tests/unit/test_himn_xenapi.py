"""The HIMN bootstrap's XenAPI install (role himn_network, tasks/xenapi.yml) as Ansible runs it, on localhost (no bed):
the messages that stop it name the host, the Python, what failed and the fix. The install itself, from the Fuel
plugin's wheel on Python 2.7, is tests/integration/test_fuel_site.py's; check mode is test_fresh_vm.py's."""

import json
import os
import subprocess
import sys
import venv

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# This checkout's collections, the json callback, and no warning about the implicit localhost.
ANSIBLE = dict(
    ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
    ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
    ANSIBLE_LOCALHOST_WARNING="False",
    ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
)
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    __himn_network_himn: {python: {executable: "%s", version: "3", xenapi: false}}
  tasks:
    - name: Install XenAPI
      ansible.builtin.include_role:
        name: xenserver.openstack.himn_network
        tasks_from: xenapi
"""


@pytest.fixture(scope="module")
def pythons(tmp_path_factory):
    """{"without pip": a venv's Python without pip, "with pip": one with pip, neither with XenAPI}."""
    work = tmp_path_factory.mktemp("pythons")
    found = {}
    for name, with_pip in (("without pip", False), ("with pip", True)):
        directory = work / name.replace(" ", "-")
        venv.create(directory, with_pip=with_pip)
        found[name] = str(directory / "bin" / "python")
    return found


def install(tmp_path, python, package, env=None):
    """Run tasks/xenapi.yml for ``python`` with himn_network_xenapi_package ``package``; (rc, the failure's message)."""
    playbook = tmp_path / "xenapi.yml"
    playbook.write_text(PLAYBOOK % python)
    run = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            str(playbook),
            "-e",
            json.dumps({"himn_network_xenapi_package": package}),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, **ANSIBLE, **(env or {})),
        cwd=str(tmp_path),
        check=False,
    )
    report = json.loads(run.stdout[run.stdout.index("{") :])
    failed = [
        task["hosts"]["localhost"]["msg"]
        for play in report["plays"]
        for task in play["tasks"]
        if task["hosts"].get("localhost", {}).get("failed")
    ]
    return run.returncode, " ".join(" ".join(failed).split())


def test_a_python_without_pip_stops_naming_the_host_the_python_and_the_fix(tmp_path, pythons):
    code, message = install(tmp_path, pythons["without pip"], "XenAPI")
    assert code != 0
    assert "The XenAPI library does not import in %s (Python 3) on localhost" % pythons["without pip"] in message
    assert "pip does not run in it: " in message and "No module named pip" in message
    assert "Install pip for that Python (python-pip on Ubuntu 14.04" in message


def test_a_requirement_without_a_package_index_names_the_package_file_fix(tmp_path, pythons):
    code, message = install(tmp_path, pythons["with pip"], "XenAPI", env=dict(PIP_NO_INDEX="1"))
    assert code != 0
    assert "On localhost, '%s -m pip install XenAPI' failed (exit 1)" % pythons["with pip"] in message, message
    assert "set himn_network_xenapi_package to the path of a XenAPI wheel on the controller" in message


def test_a_package_file_that_pip_refuses_is_named(tmp_path, pythons):
    (tmp_path / "XenAPI-2.14-py2.py3-none-any.whl").write_text("not a wheel")
    code, message = install(tmp_path, pythons["with pip"], "XenAPI-2.14-py2.py3-none-any.whl")  # relative: the cwd
    assert code != 0
    assert "-m pip install --no-index " in message and "/XenAPI-2.14-py2.py3-none-any.whl' failed" in message, message
    assert "Check that the file is a XenAPI wheel or sdist that this Python installs offline" in message
    assert not list(tmp_path.glob("xenserver-openstack-xenapi.*"))  # the copy on the node is removed


def test_a_package_file_missing_on_the_controller_is_named(tmp_path, pythons):
    code, message = install(tmp_path, pythons["with pip"], str(tmp_path / "XenAPI-2.14.tar.gz"))
    assert code != 0
    assert "himn_network_xenapi_package is %s, a package file" % (tmp_path / "XenAPI-2.14.tar.gz") in message
    assert "which is not a file on this controller" in message
