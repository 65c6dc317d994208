"""The Fuel plugin wrapper in fuel/: its build, fuel-plugin-builder's own schemas, and its tasks run as Fuel runs them.

fuel-plugin-builder 4.2.0 is downloaded from PyPI at test time (into .build/, never committed); the test fails
when PyPI cannot be reached. Its validators need distutils, which Python 3.12 no longer has, so only its schema
modules and format checker are loaded, and its two checks that are not schemas are repeated here.
"""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import types
import warnings

import jsonschema
import pytest
import yaml
from conftest import ROOT, TESTS

FPB = "fuel-plugin-builder==4.2.0"
SIX = "six==1.17.0"
CACHE = os.path.join(ROOT, ".build", "fuel-plugin-builder")
SAMPLES = os.path.join(TESTS, "fuel", "cloud-9.0-1ctl-2cmp")
PLAYBOOK = "ansible_collections/xenserver/openstack/playbooks/site.yml"
# What each task runs, and a node of the sample cloud that has its first role.
TASK_TAGS = {
    "xenserver-openstack-compute-preflight": ("preflight", "2.yaml"),
    "xenserver-openstack-compute": ("compute", "2.yaml"),
    "xenserver-openstack-controller": ("controller", "1.yaml"),
    "xenserver-openstack-primary-controller": ("images", "1.yaml"),
}


def _load(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The plugin folder that `python fuel/build.py` makes, and the RPM with --rpm when rpmbuild is installed."""
    output = tmp_path_factory.mktemp("fuel")
    rpm = ["--rpm"] if shutil.which("rpmbuild") else []
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "fuel", "build.py"), "--output", str(output), *rpm],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    folder, *rpm = result.stdout.split()
    return folder, rpm[0] if rpm else None


@pytest.fixture(scope="module")
def fpb():
    """fuel-plugin-builder's schemas (SchemaV4) and format checker class, from the package on PyPI."""
    source = os.path.join(CACHE, FPB.replace("==", "-"))
    if not os.path.isdir(source):
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", CACHE, FPB, SIX],
            capture_output=True,
            text=True,
            check=False,
        )
        if download.returncode:
            pytest.fail("cannot download %s and %s from PyPI:\n%s" % (FPB, SIX, download.stderr))
        with tarfile.open(source + ".tar.gz") as archive:
            archive.extractall(CACHE, filter="data")
    sys.path.insert(0, os.path.join(CACHE, "%s-py2.py3-none-any.whl" % SIX.replace("==", "-")))
    package = os.path.join(source, "fuel_plugin_builder")
    for name, path in (("fuel_plugin_builder", package), ("fuel_plugin_builder.validators", package + "/validators")):
        stand_in = types.ModuleType(name)
        stand_in.__path__ = [path]
        sys.modules.setdefault(name, stand_in)
    with warnings.catch_warnings():  # its Python 2 era regular expressions and sre_constants import
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        schemas = importlib.import_module("fuel_plugin_builder.validators.schemas")
        checker = importlib.import_module("fuel_plugin_builder.validators.formatchecker").FormatChecker
    schema = schemas.SchemaV4()
    return schema, checker(role_patterns=[schema.role_pattern])


def _validate(fpb, data, schema):
    jsonschema.validate(data, schema, format_checker=fpb[1])


# --- the package ------------------------------------------------------------------------------------------------


def _package(metadata):
    return "%s-%s" % (metadata["name"], ".".join(metadata["version"].split(".")[:2]))


def test_build_makes_the_plugin_folder(built):
    folder = built[0]
    metadata = _load(os.path.join(folder, "metadata.yaml"))
    assert os.path.basename(folder) == _package(metadata)
    assert metadata["version"] == _load(os.path.join(ROOT, "galaxy.yml"))["version"]
    scripts = os.path.join(folder, "deployment_scripts")
    assert os.access(os.path.join(scripts, "run-playbook.sh"), os.X_OK)
    assert os.path.isfile(os.path.join(scripts, PLAYBOOK))
    assert os.path.isfile(os.path.join(scripts, "ansible_collections/xenserver/openstack/plugins/inventory/fuel.py"))


def test_build_makes_the_rpm_that_installs_the_folder_on_the_master(built):
    folder, rpm = built
    if rpm is None:
        pytest.skip("rpmbuild is not installed (Debian package rpm)")
    metadata = _load(os.path.join(folder, "metadata.yaml"))
    package = _package(metadata)
    query = ["rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}\n", rpm]
    assert subprocess.run(query, capture_output=True, text=True, check=True).stdout.split() == [
        package,
        metadata["version"],
        "noarch",
    ]
    files = subprocess.run(["rpm", "-qpl", rpm], capture_output=True, text=True, check=True).stdout.split()
    for name in ("metadata.yaml", "deployment_tasks.yaml", "deployment_scripts/run-playbook.sh"):
        assert "/var/www/nailgun/plugins/%s/%s" % (package, name) in files


def test_fuel_plugin_builder_schemas_accept_the_package(built, fpb):
    folder = built[0]
    schema = fpb[0]
    metadata = _load(os.path.join(folder, "metadata.yaml"))
    _validate(fpb, metadata, schema.metadata_schema)
    environment = _load(os.path.join(folder, "environment_config.yaml"))
    _validate(fpb, environment, schema.attr_root_schema)
    for name, attribute in environment["attributes"].items():
        _validate(fpb, attribute, schema.attr_meta_schema if name == "metadata" else schema.attr_element_schema)
    _validate(fpb, _load(os.path.join(folder, "components.yaml")), schema.components_schema)
    tasks = _load(os.path.join(folder, "deployment_tasks.yaml"))
    _validate(fpb, tasks, schema.deployment_task_schema)
    for task in tasks:
        _validate(fpb, task, getattr(schema, "%s_task" % task["type"]))
    # fuel-plugin-builder's checks that are not schemas: the release paths exist, and every Fuel version is one
    # that package_version 4.0.0 supports (8.0 or later).
    for release in metadata["releases"]:
        assert os.path.isdir(os.path.join(folder, release["deployment_scripts_path"]))
        assert os.path.isdir(os.path.join(folder, release["repository_path"]))
    assert all(tuple(map(int, version.split("."))) >= (8, 0) for version in metadata["fuel_version"])


def test_fuel_plugin_builder_schemas_do_check(fpb):
    schema = fpb[0]
    metadata = _load(os.path.join(ROOT, "fuel", "metadata.yaml"))
    del metadata["is_hotpluggable"]
    with pytest.raises(jsonschema.ValidationError, match="'is_hotpluggable' is a required property"):
        _validate(fpb, metadata, schema.metadata_schema)
    task = dict(_load(os.path.join(ROOT, "fuel", "deployment_tasks.yaml"))[0], role=["no such role!"])
    errors = importlib.import_module("fuel_plugin_builder.errors")
    with pytest.raises(errors.TaskFieldError, match="Role field should be"):
        _validate(fpb, task, schema.shell_task)


def test_settings_form():
    attributes = _load(os.path.join(ROOT, "fuel", "environment_config.yaml"))["attributes"]
    assert (attributes["username"]["type"], attributes["username"]["value"]) == ("text", "root")
    assert (attributes["install_xapi"]["type"], attributes["install_xapi"]["value"]) == ("checkbox", True)
    assert attributes["install_xapi"]["label"] == "Install Nova Plugins"
    password = attributes["password"]
    assert (password["type"], password["value"]) == ("password", "")
    accepts = [bool(re.search(password["regex"]["source"], value)) for value in ("", "  \t", "s3cret")]
    assert accepts == [False, False, True]
    conditions = [restriction["condition"] for restriction in attributes["metadata"]["restrictions"]]
    assert conditions == [
        "settings:common.libvirt_type.value == 'kvm'",
        "settings:common.use_vcenter.value == true",
        "settings:storage.volumes_ceph.value == true",
        "settings:storage.ephemeral_ceph.value == true",
        "settings:additional_components.sahara.value == true",
        "settings:additional_components.murano.value == true",
        "settings:additional_components.mongo.value == true",
        "settings:additional_components.ironic.value == true",
        "networking_parameters:segmentation_type != 'vlan'",
    ]
    tunnels = attributes["metadata"]["restrictions"][-1]["message"]
    assert "VLAN-only" in tunnels and "VXLAN, GRE" in tunnels


def _strings(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_no_braces_where_nailgun_formats_strings():
    """Nailgun runs settings strings (but regex) and task parameters through str.format: braces would break."""
    attributes = _load(os.path.join(ROOT, "fuel", "environment_config.yaml"))["attributes"]
    settings = [{k: v for k, v in attribute.items() if k != "regex"} for attribute in attributes.values()]
    parameters = [task["parameters"] for task in _load(os.path.join(ROOT, "fuel", "deployment_tasks.yaml"))]
    assert [text for text in _strings([settings, parameters]) if set(text) & set("{}")] == []


def test_components():
    (component,) = _load(os.path.join(ROOT, "fuel", "components.yaml"))
    assert component["name"] == "hypervisor:xenserver"
    assert {item["name"] for item in component["incompatible"]} == {
        "hypervisor:qemu",
        "hypervisor:vmware",
        "storage:block:ceph",
        "storage:ephemeral:ceph",
        "additional_service:sahara",
        "additional_service:murano",
        "additional_service:ironic",
        "network:neutron:ml2:tun",
    }
    assert "network:neutron:ml2:tun" not in {item["name"] for item in component["compatible"]}


def test_tasks_follow_the_original_order():
    tasks = {task["id"]: task for task in _load(os.path.join(ROOT, "fuel", "deployment_tasks.yaml"))}
    assert list(tasks) == list(TASK_TAGS)
    preflight, compute, controller, primary = tasks.values()
    assert (preflight["role"], preflight["requires"]) == (["compute"], ["netconfig"])
    assert (compute["role"], compute["requires"], compute["required_for"]) == (
        ["compute"],
        ["post_deployment_start"],
        ["post_deployment_end"],
    )
    assert controller["role"] == ["primary-controller", "controller"]
    assert controller["requires"] == ["post_deployment_start"]
    assert primary["id"] in controller["required_for"]
    assert (primary["role"], primary["requires"]) == (["primary-controller"], [controller["id"]])
    for task in tasks.values():
        assert (task["type"], task["version"], task["parameters"]["retries"]) == ("shell", "2.0.0", 0)
        assert task["parameters"]["cmd"] == "./run-playbook.sh %s" % TASK_TAGS[task["id"]][0]


# --- a task run as Fuel runs it -----------------------------------------------------------------------------------


def _fake_ansible_playbook(directory, record):
    """An ansible-playbook that records its arguments, working directory and Ansible environment."""
    fake = directory / "ansible-playbook"
    fake.write_text(
        "#!%s\nimport json, os, sys\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith(('ANSIBLE_', 'FUEL_')) or k == 'HOME'}\n"
        "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': env}, open(%r, 'w'))\n" % (sys.executable, record)
    )
    fake.chmod(0o755)


def _run_as_fuel(folder, command, tmp_path, astute):
    """Run a task's command the way Fuel 9 does: `cd <plugin folder on the node> && <cmd>` in bash, as root with a
    minimal environment. The folder on the node holds what deployment_scripts/ holds."""
    _fake_ansible_playbook(tmp_path, str(tmp_path / "record.json"))
    env = {"PATH": "%s:%s:/usr/bin:/bin" % (tmp_path, os.path.dirname(sys.executable)), "FUEL_ASTUTE_YAML": astute}
    cwd = os.path.join(folder, "deployment_scripts")
    return subprocess.run(
        ["/bin/bash", "-c", "cd %s && %s" % (cwd, command)], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("task_id", list(TASK_TAGS))
def test_task_runs_the_play_for_its_node_only(built, tmp_path, task_id):
    folder = built[0]
    task = {t["id"]: t for t in _load(os.path.join(folder, "deployment_tasks.yaml"))}[task_id]
    tag, sample = TASK_TAGS[task_id]
    astute = os.path.join(SAMPLES, sample)
    node = _load(astute)["fqdn"].split(".")[0]
    result = _run_as_fuel(folder, task["parameters"]["cmd"], tmp_path, astute)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    cwd = os.path.join(folder, "deployment_scripts")
    assert record["argv"] == [
        "-i",
        "fuel_inventory.yml",
        "--limit",
        node,
        "--tags",
        tag,
        "--connection",
        "local",
        PLAYBOOK,
    ]
    assert record["cwd"] == cwd
    assert record["env"]["ANSIBLE_COLLECTIONS_PATH"].split(":")[0] == cwd
    assert record["env"]["ANSIBLE_CONFIG"] == os.path.join(cwd, "ansible.cfg")
    assert record["env"]["FUEL_ASTUTE_YAML"] == astute
    assert record["env"]["HOME"] == "/root"


def test_the_limit_selects_exactly_the_node_in_the_inventory_it_builds(built, tmp_path):
    """ansible-inventory, in the environment and with the inventory and limit the wrapper gave ansible-playbook."""
    folder = built[0]
    astute = os.path.join(SAMPLES, "2.yaml")
    assert _run_as_fuel(folder, "./run-playbook.sh compute", tmp_path, astute).returncode == 0
    record = json.loads((tmp_path / "record.json").read_text())
    inventory, limit = record["argv"][1], record["argv"][3]
    env = dict(record["env"], PATH=os.path.dirname(sys.executable) + ":/usr/bin:/bin")
    graph = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-inventory"),
            "-i",
            inventory,
            "--limit",
            limit,
            "--list",
        ],
        cwd=record["cwd"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = json.loads(graph.stdout)
    assert list(listed["_meta"]["hostvars"]) == [limit]
    assert listed["compute"]["hosts"] == [limit]


def test_broken_node_data_stops_the_task_before_ansible_runs(built, tmp_path):
    astute = os.path.join(TESTS, "fuel", "broken", "no-network-scheme.yaml")
    result = _run_as_fuel(built[0], "./run-playbook.sh compute", tmp_path, astute)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "%s: network_scheme is missing. It must be a node's deployment data as Fuel 8.0 or 9.x writes it "
        "(astute.yaml)." % astute
    )
    assert not (tmp_path / "record.json").exists()
