"""site.yml reached as a sudo user (issue 17): the bed's compute VM has a user ``stack`` with sudo (NOPASSWD) and
the inventory connects as it (``bed.py up --sudo-user stack``); site.yml becomes root where root is needed. The
other tests connect as root (the bed's default), where become is skipped as the same user.
"""

import os

import pytest
from bedlib import Bed, ns
from sitelib import SITE, tracebacks

pytestmark = pytest.mark.root

USER = "stack"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = Bed(str(tmp_path_factory.mktemp("become") / "bed"), "--sudo-user", USER)
    try:
        yield bed
    finally:
        bed.down()
    assert not os.path.exists(home()), "down left the sudo user's home"


def home():
    return "/tmp/%s-home-%s" % (ns("compute-1"), USER)


def test_the_bed_connects_as_the_sudo_user(bed):
    assert bed.run(ns("compute-1"), "runuser", "-u", USER, "--", "sudo", "-n", "id", "-u").stdout.strip() == "0"
    with open(bed.inventory) as handle:
        assert "ansible_user: %s" % USER in handle.read()


def test_site_converges_as_a_sudo_user_becoming_root(bed):
    code, report, output = bed.playbook(SITE)

    assert code == 0, output[-3000:]
    assert tracebacks(report, output) == []
    assert os.path.isdir(os.path.join(home(), ".ansible")), "Ansible did not work as %s" % USER
    root = bed.root("compute-1")
    for written in ("etc/network/interfaces.d/xenserver-himn", "etc/nova/nova-compute.conf", "etc/iptables/rules.v4"):
        assert os.stat(os.path.join(root, written)).st_uid == 0, written
    assert "169.254.0.2/16" in bed.run(ns("compute-1"), "ip", "-4", "-o", "address", "show", "dev", "eth2").stdout
