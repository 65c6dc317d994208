# Copyright (c) xenserver.openstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the Fuel plugin that runs the xenserver.openstack collection: the plugin folder, and with --rpm its RPM.

The folder NAME-X.Y/ is both what fuel-plugin-builder takes as source (`fpb --check`, `fpb --build`) and what the
RPM installs on the Fuel master, in /var/www/nailgun/plugins/: metadata.yaml, environment_config.yaml,
components.yaml, deployment_tasks.yaml (no task: nothing runs on the nodes), an empty deployment_scripts/ and
repositories/ubuntu/, and controller/ for the machine that runs Ansible: the collection as `ansible-galaxy
collection build` makes it, and that machine's ansible.cfg, inventory configuration fuel.yml and requirements.txt,
and the XenAPI wheel for the computes' Python 2.7 (fuel.yml's xenapi_package: the HIMN bootstrap installs it there
offline), which pip downloads (or --xenapi-wheel gives).
The master serves the folder at http://MASTER:8080/plugins/NAME-X.Y/, so the controller can install from there.

Run it from a checkout, with ansible-galaxy on PATH (or beside this Python): python fuel/build.py [--rpm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

FUEL = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUEL)
PLUGIN_FILES = ("metadata.yaml", "environment_config.yaml", "components.yaml", "deployment_tasks.yaml")
# What the plugin gives the machine that runs Ansible, besides the collection's tarball.
CONTROLLER_FILES = ("ansible.cfg", "fuel.yml", "requirements.txt")
# The XenAPI the computes' Python gets (OpenStack's upper-constraints pin it for Train and Ussuri): a wheel for Python
# 2 and 3, which pip installs without building anything.
XENAPI = "XenAPI==2.14"
RPM_SPEC = """\
Name: %(package)s
Version: %(version)s
Release: %(release)s
Summary: %(title)s: Fuel plugin
License: %(license)s
URL: %(homepage)s
BuildArch: noarch
AutoReqProv: no
%%global __os_install_post %%{nil}
%%global _build_id_links none

%%description
%(description)s

%%install
mkdir -p %%{buildroot}/var/www/nailgun/plugins
cp -a %(folder)s %%{buildroot}/var/www/nailgun/plugins/%(package)s

%%files
/var/www/nailgun/plugins/%(package)s
"""


class BuildError(Exception):
    """The plugin cannot be built; the message says why and what to do."""


def _read_yaml(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def plugin_metadata():
    """Return fuel/metadata.yaml, after checking that its version is the collection's."""
    metadata = _read_yaml(os.path.join(FUEL, "metadata.yaml"))
    collection = _read_yaml(os.path.join(ROOT, "galaxy.yml"))["version"]
    if metadata["version"] != collection:
        raise BuildError(
            "fuel/metadata.yaml has version %s and galaxy.yml %s: set the same version in both."
            % (metadata["version"], collection)
        )
    return metadata


def package_name(metadata):
    """Return NAME-X.Y, the name of the plugin folder and RPM, and of its folder on the nodes."""
    return "%s-%s" % (metadata["name"], ".".join(metadata["version"].split(".")[:2]))


def _tool(name):
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    found = beside_python if os.access(beside_python, os.X_OK) else shutil.which(name)
    if not found:
        raise BuildError("%s is not installed: install it (and put it on PATH) to build the Fuel plugin." % name)
    return found


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode:
        raise BuildError("%s failed:\n%s%s" % (" ".join(command), result.stdout, result.stderr))
    return result


def xenapi_wheel(directory, given=None):
    """Put the XenAPI wheel into C(directory): C(given), or pip's download of XENAPI; return its file name."""
    if given:
        if not (os.path.isfile(given) and os.path.basename(given).endswith(".whl")):
            raise BuildError("--xenapi-wheel %s is not a wheel file: give the path of a XenAPI .whl." % given)
        return os.path.basename(shutil.copy(given, directory))
    with tempfile.TemporaryDirectory() as download:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", download, XENAPI]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = [name for name in os.listdir(download) if name.endswith(".whl")]
        if result.returncode or len(wheels) != 1:
            raise BuildError(
                "pip could not download the %s wheel for the computes (%s): give one with --xenapi-wheel FILE "
                "(pip download %s --no-deps on a machine that reaches PyPI)."
                % (XENAPI, (result.stderr.strip().splitlines() or ["no wheel"])[-1], XENAPI)
            )
        return os.path.basename(shutil.copy(os.path.join(download, wheels[0]), directory))


def add_controller_files(folder, wheel=None):
    """Build the collection with ansible-galaxy into controller/, beside the controller's inventory and requirements,
    and the XenAPI wheel that the inventory gives the computes."""
    controller = os.path.join(folder, "controller")
    os.makedirs(controller)
    _run([_tool("ansible-galaxy"), "collection", "build", ROOT, "--output-path", controller, "--force"])
    for name in CONTROLLER_FILES:
        shutil.copy(os.path.join(FUEL, "controller", name), controller)
    with open(os.path.join(controller, "fuel.yml"), "a") as handle:
        handle.write(
            "\n# XenAPI for the computes' Python 2.7, which has none: the HIMN bootstrap installs this file offline.\n"
            "xenapi_package: %s\n" % xenapi_wheel(controller, wheel)
        )


def build_folder(metadata, output, wheel=None):
    """Write the plugin folder in C(output) and return its path."""
    folder = os.path.join(output, package_name(metadata))
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for name in PLUGIN_FILES:
        shutil.copy(os.path.join(FUEL, name), folder)
    for release in metadata["releases"]:
        # Fuel copies deployment_scripts/ to the nodes and serves the repository to them: both stay empty.
        for path in (release["deployment_scripts_path"], release["repository_path"]):
            os.makedirs(os.path.join(folder, path), exist_ok=True)
    add_controller_files(folder, wheel)
    return folder


def build_rpm(metadata, folder, output):
    """Build the RPM that installs the plugin folder on a Fuel master; return its path."""
    with tempfile.TemporaryDirectory() as top:
        spec = os.path.join(top, "plugin.spec")
        with open(spec, "w") as handle:
            handle.write(
                RPM_SPEC
                % dict(
                    package=package_name(metadata),
                    version=metadata["version"],
                    release=metadata.get("build_version", "1"),
                    title=metadata["title"],
                    license=" and ".join(metadata["licenses"]),
                    homepage=metadata["homepage"],
                    description=metadata["description"],
                    folder=folder,
                )
            )
        _run([_tool("rpmbuild"), "-bb", "--define", "_topdir " + top, spec])
        (rpm,) = [
            os.path.join(directory, name)
            for directory, _dirs, names in os.walk(os.path.join(top, "RPMS"))
            for name in names
            if name.endswith(".rpm")
        ]
        return shutil.copy(rpm, output)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--output", default=os.path.join(ROOT, ".build", "fuel"), help="default: %(default)s")
    parser.add_argument("--rpm", action="store_true", help="also build the RPM (needs rpmbuild)")
    parser.add_argument(
        "--xenapi-wheel", metavar="FILE", help="the XenAPI wheel for the computes (default: pip downloads %s)" % XENAPI
    )
    args = parser.parse_args(argv)
    try:
        metadata = plugin_metadata()
        os.makedirs(args.output, exist_ok=True)
        folder = build_folder(metadata, os.path.abspath(args.output), args.xenapi_wheel)
        print(folder)
        if args.rpm:
            print(build_rpm(metadata, folder, args.output))
    except BuildError as error:
        sys.exit("fuel/build.py: %s" % error)


if __name__ == "__main__":
    main()
