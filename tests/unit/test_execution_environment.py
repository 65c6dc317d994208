"""execution-environment.yml is accepted by ansible-builder, and carries the collection and its requirements.

ansible-builder is installed from PyPI into a virtualenv of its own under .build (kept for the next run). The
collection tarball is built here, as the definition's comment says, and ``ansible-builder create`` writes the
build context in a temporary directory. No container is built.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, ".build", "ansible-builder-venv")
BUILDER = os.path.join(VENV, "bin", "ansible-builder")


def requirement_lines(path):
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip() and not line.startswith("#")]


def galaxy_version():
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        return yaml.safe_load(handle)["version"]


def collection_env():
    """The environment for ansible-galaxy, without the checkout's collections path (it holds this collection)."""
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_COLLECTIONS_PATH"}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def builder():
    if not os.path.exists(BUILDER):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        pip = subprocess.run(
            [os.path.join(VENV, "bin", "python"), "-m", "pip", "install", "--quiet", "ansible-builder"],
            capture_output=True,
            text=True,
            check=False,
        )
        if pip.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            pytest.fail("pip could not install ansible-builder from PyPI: %s" % pip.stderr[-2000:])
    return BUILDER


@pytest.fixture(scope="module")
def context(builder, tmp_path_factory):
    """The definition, its requirement files and the collection tarball laid out as in the checkout; the context."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(os.path.join(ROOT, "execution-environment.yml"), work)
    os.makedirs(work / "meta")
    for name in ("ee-requirements.txt", "ee-bindep.txt"):
        shutil.copy(os.path.join(ROOT, "meta", name), work / "meta")
    subprocess.run(
        ["ansible-galaxy", "collection", "build", ROOT, "--output-path", str(work / ".build" / "ee")],
        capture_output=True,
        check=True,
        env=collection_env(),
    )
    created = subprocess.run(
        [
            builder,
            "create",
            "-f",
            "execution-environment.yml",
            "--context",
            "context",
            "--output-filename",
            "Containerfile",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert "WARNING" not in created.stdout + created.stderr, created.stdout + created.stderr
    return work / "context"


def test_containerfile_installs_the_python_and_system_requirements(context):
    containerfile = (context / "Containerfile").read_text()
    assert "COPY _build/requirements.txt requirements.txt" in containerfile
    assert "COPY _build/bindep.txt bindep.txt" in containerfile
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    python = requirement_lines(context / "_build" / "requirements.txt")
    assert python == requirement_lines(os.path.join(ROOT, "meta", "ee-requirements.txt"))
    assert any(line.startswith("XenAPI") for line in python)
    assert any(line.startswith("openstacksdk") for line in python)
    system = requirement_lines(context / "_build" / "bindep.txt")
    assert system == requirement_lines(os.path.join(ROOT, "meta", "ee-bindep.txt"))


def test_containerfile_installs_this_collection_and_a_matching_ansible_core(context):
    containerfile = (context / "Containerfile").read_text()
    tarball = context / "_build" / "collections" / ("xenserver-openstack-%s.tar.gz" % galaxy_version())
    assert tarball.is_file()
    assert "ansible-galaxy collection install --offline" in containerfile
    assert "/build/collections/xenserver-openstack-*.tar.gz" in containerfile
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as handle:
        requires = SpecifierSet(yaml.safe_load(handle)["requires_ansible"])
    pin = SpecifierSet(re.search(r"ansible-core([<>=!~][^'\"\s]*)", containerfile).group(1))
    # Every ansible-core the environment can get is one the collection supports, and one that still manages the
    # Python 3.8 of Ussuri's computes: 2.18 and 2.19 do, 2.17 does not take the newest controllers, 2.20+ refuse 3.8.
    releases = ["2.%d.%d" % (minor, patch) for minor in range(14, 24) for patch in range(30)]
    allowed = [release for release in releases if release in pin]
    assert allowed, "the environment's ansible-core pin %s allows no release" % pin
    assert all(release in requires for release in allowed), (pin, requires)
    assert {release.rsplit(".", 1)[0] for release in allowed} <= {"2.18", "2.19"}, pin
    with open(os.path.join(ROOT, "galaxy.yml")) as handle:
        dependencies = yaml.safe_load(handle)["dependencies"]
    with open(context / "_build" / "requirements.yml") as handle:
        galaxy = {c["name"]: c["version"] for c in yaml.safe_load(handle)["collections"]}
    assert galaxy == dependencies


def test_the_installed_collection_declares_its_requirements_to_ansible_builder(context, tmp_path):
    """What an environment that installs the collection from a server gets: meta/execution-environment.yml."""
    tarball = next((context / "_build" / "collections").glob("*.tar.gz"))
    subprocess.run(
        ["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", str(tmp_path), str(tarball)],
        capture_output=True,
        check=True,
        env=dict(collection_env(), ANSIBLE_GALAXY_DISABLE_GPG_VERIFY="1"),
    )
    introspect = subprocess.run(
        [
            os.path.join(VENV, "bin", "python"),
            str(context / "_build" / "scripts" / "introspect.py"),
            "introspect",
            tmp_path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = yaml.safe_load(introspect.stdout[introspect.stdout.index("---") :])
    ours = "  # from collection xenserver.openstack"
    assert found["python"] == [
        line + ours for line in requirement_lines(os.path.join(ROOT, "meta", "ee-requirements.txt"))
    ]
    assert found["system"] == [line + ours for line in requirement_lines(os.path.join(ROOT, "meta", "ee-bindep.txt"))]
