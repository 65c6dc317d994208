"""The Fuel plugin wrapper in fuel/: its build, and fuel-plugin-builder 4.2.0's check of it.

fuel-plugin-builder 4.2.0 is downloaded from PyPI at test time (into .build/, never committed); the test fails
when PyPI cannot be reached. Its own `fpb --check` runs on Python 2.7 (the old fleet's, scripts/setup-pythons.sh),
in a virtualenv made once; its schemas are also loaded here on this Python (its validators need distutils, which
Python 3.12 no longer has), to show what each file is checked against.
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
import zipfile

import jsonschema
import pytest
import yaml
from conftest import ROOT
from pythons import BUILD, target_python

FPB = "fuel-plugin-builder==4.2.0"
SIX = "six==1.17.0"
CACHE = os.path.join(ROOT, ".build", "fuel-plugin-builder")
FPB_VENV = os.path.join(CACHE, "py2.7")


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


@pytest.fixture(scope="module")
def fpb_tool():
    """fuel-plugin-builder 4.2.0's fpb, installed from PyPI into a virtualenv of Python 2.7 (made once)."""
    tool = os.path.join(FPB_VENV, "bin", "fpb")
    if not os.access(tool, os.X_OK):
        virtualenv = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "targets", "virtualenv"))
        for command, env in (
            ([target_python("2.7"), "-m", "virtualenv", "-q", FPB_VENV], virtualenv),
            ([os.path.join(FPB_VENV, "bin", "pip"), "install", "-q", "--disable-pip-version-check", FPB], None),
        ):
            made = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if made.returncode:
                shutil.rmtree(FPB_VENV, ignore_errors=True)
                pytest.fail("cannot install %s on Python 2.7:\n%s" % (FPB, made.stderr[-2000:]))
    return tool


def test_fuel_plugin_builders_own_check_accepts_the_plugin(built, fpb_tool, tmp_path):
    checked = subprocess.run([fpb_tool, "--check", built[0]], capture_output=True, text=True, check=False)
    assert (checked.returncode, checked.stdout.strip().splitlines()[-1:]) == (0, ["Plugin is valid"]), (
        checked.stdout + checked.stderr
    )
    # And it does check: the same plugin without a field package_version 4.0.0 requires is refused.
    broken = str(tmp_path / os.path.basename(built[0]))
    shutil.copytree(built[0], broken)
    metadata = _load(os.path.join(broken, "metadata.yaml"))
    del metadata["is_hotpluggable"]
    with open(os.path.join(broken, "metadata.yaml"), "w") as handle:
        yaml.safe_dump(metadata, handle)
    refused = subprocess.run([fpb_tool, "--check", broken], capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "is_hotpluggable" in refused.stdout + refused.stderr, refused.stderr


def _validate(fpb, data, schema):
    jsonschema.validate(data, schema, format_checker=fpb[1])


# --- the package ------------------------------------------------------------------------------------------------


def _package(metadata):
    return "%s-%s" % (metadata["name"], ".".join(metadata["version"].split(".")[:2]))


def test_build_makes_the_plugin_folder(built):
    folder = built[0]
    metadata = _load(os.path.join(folder, "metadata.yaml"))
    assert os.path.basename(folder) == _package(metadata)
    version = _load(os.path.join(ROOT, "galaxy.yml"))["version"]
    assert metadata["version"] == version
    # What Fuel copies to the nodes and serves them as a repository: nothing.
    assert os.listdir(os.path.join(folder, "deployment_scripts")) == []
    assert os.listdir(os.path.join(folder, "repositories", "ubuntu")) == []
    # For the machine that runs Ansible: the collection as ansible-galaxy builds it, its inventory and requirements,
    # and the XenAPI wheel the inventory gives the computes' Python 2.7 (the HIMN bootstrap installs it offline).
    controller = os.path.join(folder, "controller")
    wheel = "XenAPI-2.14-py2.py3-none-any.whl"
    assert sorted(os.listdir(controller)) == sorted(
        ["ansible.cfg", "fuel.yml", "requirements.txt", "xenserver-openstack-%s.tar.gz" % version, wheel]
    )
    with zipfile.ZipFile(os.path.join(controller, wheel)) as archive:
        assert "XenAPI/XenAPI.py" in archive.namelist()
    with tarfile.open(os.path.join(controller, "xenserver-openstack-%s.tar.gz" % version)) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
        names = archive.getnames()
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("xenserver", "openstack", version)
    assert {"playbooks/site.yml", "plugins/inventory/fuel.py", "tools/build_pack.py"} <= set(names)
    inventory = _load(os.path.join(controller, "fuel.yml"))
    assert (inventory["plugin"], inventory["nailgun_url"]) == ("xenserver.openstack.fuel", "https://10.20.0.2:8443")
    assert inventory["xenapi_package"] == wheel


def test_build_takes_the_xenapi_wheel_given_and_refuses_what_is_not_one(built, tmp_path):
    wheel = os.path.join(built[0], "controller", "XenAPI-2.14-py2.py3-none-any.whl")
    for given, code in ((wheel, 0), (str(tmp_path / "XenAPI.tar.gz"), 1)):
        build = [sys.executable, os.path.join(ROOT, "fuel", "build.py"), "--output", str(tmp_path)]
        result = subprocess.run(
            [*build, "--xenapi-wheel", given],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == code, result.stderr
    assert "is not a wheel file: give the path of a XenAPI .whl" in result.stderr


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
    for name in ("metadata.yaml", "deployment_tasks.yaml", "controller/fuel.yml"):
        assert "/var/www/nailgun/plugins/%s/%s" % (package, name) in files


@pytest.mark.root
def test_the_rpm_installs_the_folder_where_a_fuel_master_keeps_plugins(built, tmp_path):
    """Installed into an empty root (rpm --root, as yum on the master): the folder as fuel-plugin-builder's own spec
    lays it (v3+: NAME-X.Y under /var/www/nailgun/plugins/), whole, with its empty deployment_scripts/ and
    repositories/ubuntu/, which Nailgun serves and copies to the nodes."""
    folder, rpm = built
    if rpm is None:
        pytest.skip("rpmbuild is not installed (Debian package rpm)")
    master = tmp_path / "master"
    for command in (["--initdb"], ["-i", "--nodeps", "--noscripts", rpm]):
        installed = subprocess.run(
            ["rpm", "--root", str(master), *command], capture_output=True, text=True, check=False
        )
        assert installed.returncode == 0, installed.stderr
    plugins = master / "var" / "www" / "nailgun" / "plugins"
    package = os.path.basename(folder)
    assert os.listdir(plugins) == [package]
    laid = plugins / package

    def tree(root):
        return {
            os.path.relpath(os.path.join(directory, name), root)
            for directory, dirs, files in os.walk(root)
            for name in dirs + files
        }

    assert tree(laid) == tree(folder)
    for name in ("metadata.yaml", "deployment_tasks.yaml", "environment_config.yaml", "components.yaml"):
        assert (laid / name).read_bytes() == open(os.path.join(folder, name), "rb").read()
    metadata = _load(str(laid / "metadata.yaml"))
    for release in metadata["releases"]:
        assert (laid / release["deployment_scripts_path"]).is_dir() and (laid / release["repository_path"]).is_dir()
    query = subprocess.run(["rpm", "--root", str(master), "-q", package], capture_output=True, text=True, check=False)
    assert query.stdout.startswith(package + "-" + metadata["version"]), query.stdout + query.stderr


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
    task = dict(
        id="a-task",
        version="2.0.0",
        type="shell",
        role=["no such role!"],
        requires=["post_deployment_start"],
        parameters=dict(cmd="true", timeout=60),
    )
    errors = importlib.import_module("fuel_plugin_builder.errors")
    with pytest.raises(errors.TaskFieldError, match="Role field should be"):
        _validate(fpb, task, schema.shell_task)


def test_settings_form():
    attributes = _load(os.path.join(ROOT, "fuel", "environment_config.yaml"))["attributes"]
    assert (attributes["username"]["type"], attributes["username"]["value"]) == ("text", "root")
    assert (attributes["install_xapi"]["type"], attributes["install_xapi"]["value"]) == ("checkbox", True)
    assert attributes["install_xapi"]["label"] == "Install Nova Plugins"
    # The pack's signing key: named, with its keyring, on the machine that runs Ansible; no secret in the form.
    assert (attributes["signing_key"]["type"], attributes["signing_key"]["value"]) == ("text", "")
    assert (attributes["signing_gnupg_home"]["type"], attributes["signing_gnupg_home"]["value"]) == ("text", "~/.gnupg")
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


def test_no_task_needs_a_runtime_on_the_nodes():
    """Fuel's nodes (Ubuntu 14.04) and master (CentOS 7) have Python 2.7 only, and ansible-core 2.16, the last line
    that manages Python 2.7, needs 3.10+ where it runs: Ansible runs outside Fuel, so the plugin adds no task."""
    assert _load(os.path.join(ROOT, "fuel", "deployment_tasks.yaml")) == []
