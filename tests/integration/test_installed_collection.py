"""The installed-collection user (issue 17): docs/quickstart.md's steps with the collection built as a tarball and
installed, offline, into an empty collections path with the three collections the docs name, then its playbook
``xenserver.openstack.site`` run against the test bed with the example inventory's way of working: nothing from the
checkout but the bed.

The dependencies' tarballs stand in for ``ansible-galaxy collection download`` (no Galaxy here): they are packed from
the collections scripts/setup.sh takes from the PyPI ansible package. That package leaves out the collections' CI and
test files but keeps their FILES.json, so FILES.json is narrowed to the files there (their checksums as they are) and
MANIFEST.json given its new checksum; ansible-galaxy then checks every file as it checks a downloaded artifact.
"""

import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest
from bedlib import ROOT, Bed, ansible_env, ns

pytestmark = pytest.mark.root

DEPENDENCIES = ("ansible/posix", "community/general", "community/library_inventory_filtering_v1")
BUILT = os.path.join(ROOT, ".build", "collections", "ansible_collections")


def isolated_env(collections):
    """Ansible seeing only ``collections`` (not the checkout's .build/collections, nor site-packages)."""
    env = ansible_env()
    env.update(ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="False")
    return env


def run(argv, env, cwd):
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, "%s failed:\n%s" % (" ".join(argv), (result.stdout + result.stderr)[-3000:])
    return result.stdout


def pack(collection, offline):
    """A collection artifact (tarball) of an installed collection, as Galaxy's: MANIFEST.json, FILES.json, files."""
    source = os.path.join(BUILT, collection)
    with open(os.path.join(source, "MANIFEST.json")) as handle:
        manifest = json.load(handle)
    with open(os.path.join(source, "FILES.json")) as handle:
        files = json.load(handle)
    files["files"] = [f for f in files["files"] if f["name"] == "." or os.path.lexists(os.path.join(source, f["name"]))]
    files_json = json.dumps(files, indent=4).encode()
    manifest["file_manifest_file"]["chksum_sha256"] = hashlib.sha256(files_json).hexdigest()
    version = manifest["collection_info"]["version"]
    path = os.path.join(offline, "%s-%s.tar.gz" % (collection.replace("/", "-"), version))
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("MANIFEST.json", json.dumps(manifest, indent=4).encode()), ("FILES.json", files_json)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
        for entry in files["files"][1:]:
            archive.add(os.path.join(source, entry["name"]), arcname=entry["name"], recursive=False)
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(work directory, collections path) after the quickstart's install step."""
    work = str(tmp_path_factory.mktemp("installed"))
    offline, collections = os.path.join(work, "offline"), os.path.join(work, "collections")
    os.makedirs(offline)
    os.makedirs(collections)
    env = isolated_env(collections)
    run(["ansible-galaxy", "collection", "build", "--output-path", offline, ROOT], env, work)
    for collection in DEPENDENCIES:
        pack(collection, offline)
    # docs/quickstart.md, step 2, offline: every tarball of the directory at once, into a path of one's own.
    run(["ansible-galaxy", "collection", "install", "--offline", "-p", collections, *glob.glob(offline + "/*.tar.gz")],
        env, work)  # fmt: skip
    return work, collections


def test_the_offline_install_puts_the_four_collections_in_the_empty_path(installed):
    work, collections = installed
    listing = run(["ansible-galaxy", "collection", "list", "--format", "json"], isolated_env(collections), work)
    found = {name for path in json.loads(listing).values() for name in path}
    assert found == {
        "xenserver.openstack",
        "ansible.posix",
        "community.general",
        "community.library_inventory_filtering_v1",
    }


def test_the_example_inventory_copied_as_documented_has_what_site_needs(installed):
    work, collections = installed
    source = os.path.join(collections, "ansible_collections", "xenserver", "openstack", "inventory", "example")
    shutil.copytree(source, os.path.join(work, "my-cloud"))
    inventory = json.loads(run(["ansible-inventory", "-i", "my-cloud", "--list"], isolated_env(collections), work))
    assert set(inventory["compute"]["hosts"]) == {"compute-01.example.com", "compute-02.example.com"}
    assert inventory["primary_controller"]["hosts"] == ["controller-01.example.com"]
    host = inventory["_meta"]["hostvars"]["compute-01.example.com"]
    for required in ("openstack_public_vip", "openstack_tenant_nic", "xenserver_url"):
        assert host.get(required), required


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = Bed(str(tmp_path_factory.mktemp("installed-bed") / "bed"))
    try:
        yield bed
    finally:
        bed.down()


def test_the_installed_playbook_converges_on_the_bed(installed, bed):
    work, collections = installed
    env = dict(isolated_env(collections), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    # docs/quickstart.md, step 5, with the bed's inventory for my-cloud (its hosts are the bed's namespaces).
    output = run(["ansible-playbook", "xenserver.openstack.site", "-i", bed.inventory], env, work)
    assert "compute-1                  : ok=" in output and "failed=0" in output.split("PLAY RECAP")[1]
    assert "169.254.0.2/16" in bed.run(ns("compute-1"), "ip", "-4", "-o", "address", "show", "dev", "eth2").stdout
