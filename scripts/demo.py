"""The demo: playbooks/site.yml on the namespace test bed, with a real Glance on the controller.

    . scripts/env.sh && python scripts/demo.py [ANSIBLE-PLAYBOOK-ARGS...]     (as root; `make demo` runs it)

Brings up the test bed (tests/bed: PAIRS Dom0 / compute VM pairs, 1 unless set, and a controller), starts Glance
(tests/glancebed) in the controller's namespace, makes the controller the primary controller with a small
TestVM image, and runs site.yml with Ansible's usual output. Then it shows what a user would check: each Dom0's
routes through its compute VM, nova's driver, and TestVM in Glance in XenServer format. Everything is taken down
at the end; KEEP_BED=1 leaves the bed and Glance up and says how to stop them.
"""

import configparser
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from bedlib import Bed, ansible_env, ns  # noqa: E402
from sitelib import SITE, NsGlance, controller_vars, extra_inventory  # noqa: E402


def show(bed, glance, pairs):
    """Print, per pair, Dom0's routes through the HIMN and nova's driver; then the images in Glance."""
    print("\nWhat site.yml left on the bed:")
    for i in range(1, pairs + 1):
        routes = bed.run(ns("dom0-%d" % i), "ip", "-4", "route").stdout.splitlines()
        print(
            "dom0-%d routes through compute-%d: %s"
            % (i, i, "; ".join(r.strip() for r in routes if " via " in r and "dev xenapi" in r))
        )
        nova = configparser.ConfigParser(interpolation=None)
        nova.read(os.path.join(bed.root("compute-%d" % i), "etc", "nova", "nova-compute.conf"))
        print("compute-%d nova compute_driver: %s" % (i, nova.get("DEFAULT", "compute_driver", fallback="(none)")))
    for name, image in sorted(glance.images(bed).items()):
        print(
            "Glance image %s: container_format=%s disk_format=%s vm_mode=%s"
            % (name, image["container_format"], image["disk_format"], image.get("vm_mode", ""))
        )


def main():
    pairs = int(os.environ.get("PAIRS", "1"))
    keep = os.environ.get("KEEP_BED") == "1"
    work = tempfile.mkdtemp(prefix="xenserver-openstack-demo-")
    bed = Bed(os.path.join(work, "bed"), "--pairs", str(pairs))
    glance = None
    code = 1
    try:
        glance = NsGlance(os.path.join(work, "glance"))
        glance.start()
        controller = controller_vars(glance, work)
        extra = extra_inventory(os.path.join(work, "controller.yml"), primary_controller=controller)
        env = dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
        env.pop("ANSIBLE_NOCOLOR")
        argv = ["ansible-playbook", SITE, "-i", bed.inventory, "-i", extra, "--forks", str(max(pairs, 5))]
        print("$ " + " ".join(argv + sys.argv[1:]), flush=True)
        code = subprocess.run(argv + sys.argv[1:], env=env, cwd=ROOT, check=False).returncode
        if code == 0:
            show(bed, glance, pairs)
    finally:
        if keep:
            print(
                "bed and Glance kept: python tests/bed/bed.py down --state-dir %s; kill -INT -%s"
                % (bed.state_dir, glance.pid if glance else "?")
            )
        else:
            if glance is not None:
                glance.stop()
            bed.down()
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as error:  # the bed or Glance did not come up: bedlib says why
        sys.exit("demo: %s" % error)
