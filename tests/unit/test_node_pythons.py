"""The code that runs on managed nodes is Python 2.7, 3.6 and 3.8 code, not only 3.9+.

Modules and module_utils run on the compute VMs' and controllers' Python (Mitaka-Train on 2.7, CentOS 8 on 3.6,
Ussuri on 3.8); so do the files that roles run with the node's Python. Static checks here (vermin, and the
compiler of each old interpreter); tests/unit/test_modules_on_old_pythons.py runs the modules there.
"""

import glob
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from pythons import OLD_TARGETS, ROOT, target_python

NODE_FILES = sorted(
    glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))
    + glob.glob(os.path.join(ROOT, "plugins", "module_utils", "*.py"))
    + glob.glob(os.path.join(ROOT, "roles", "*", "files", "*.py"))
    + [os.path.join(ROOT, "roles", "misc_patches", "files", "xenserver-openstack-image-cache")]
)
# Python run inline on the nodes by roles (ansible.builtin.command with "python -c").
INLINE = {
    "misc_patches _misc_patches_read_node": ("roles/misc_patches/vars/main.yml", "_misc_patches_read_node"),
    "dom0_suppack __dom0_suppack_versions_script": (
        "roles/dom0_suppack/vars/main.yml",
        "__dom0_suppack_versions_script",
    ),
}
COMPILE = "import sys\nfor path in sys.argv[1:]:\n    compile(open(path).read(), path, 'exec')\n"


@pytest.fixture(scope="module")
def inline_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("inline")
    paths = []
    for name, (source, key) in INLINE.items():
        with open(os.path.join(ROOT, source)) as handle:
            code = yaml.safe_load(handle)[key]
        path = directory / (name.replace(" ", "-") + ".py")
        path.write_text(code)
        paths.append(str(path))
    return paths


def test_every_node_file_is_found():
    names = [os.path.relpath(path, ROOT) for path in NODE_FILES]
    assert "plugins/module_utils/_xenapi.py" in names and "roles/nova_xenapi/files/probe.py" in names
    assert len([n for n in names if n.startswith("plugins/modules/")]) >= 8


def test_vermin_finds_nothing_newer_than_python_2_7_and_3_6(inline_files, tmp_path):
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    argv = [vermin, "-t=2.7-", "-t=3.6-", "--violations", "--no-tips"]
    check = subprocess.run(argv + NODE_FILES + inline_files, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # The check is not blind to what breaks Python 2.7: an f-string in a module_utils-like file fails it.
    broken = tmp_path / "broken.py"
    broken.write_text("NAME = 'x'\nMESSAGE = f'{NAME}'\n")
    assert subprocess.run([*argv, str(broken)], capture_output=True, check=False).returncode != 0


@pytest.mark.parametrize("version", OLD_TARGETS)
def test_node_files_compile_on_the_old_pythons(version, inline_files):
    python = target_python(version)
    run = subprocess.run(
        [python, "-c", COMPILE, *NODE_FILES, *inline_files], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, "Python %s cannot compile the node code:\n%s" % (version, run.stderr)
