"""Secrets (issue 10): the whole flow with -vvv, watched for the XenServer and the OpenStack passwords.

playbooks/site.yml runs on a bed whose host has a password of its own, with a primary controller that puts TestVM in
a real Glance through an OpenStack connection with a password of its own (keystoneauth's http_basic: Glance has no
Keystone here). While it runs, a thread reads the arguments of every process (/proc/*/cmdline) every 50 ms. Both
passwords must appear 0 times in the output, 0 times in any process's arguments, and in no file except the service
configuration files that must hold the XenServer password (nova, the neutron agent, ceilometer), none readable by
others. The inventory and the bed's description of its host hold them as a vault would, and are not counted.
"""

import os
import secrets
import subprocess
import sys
import threading
import time

import pytest
from bedlib import ROOT, Bed
from sitelib import SITE, NsGlance, bed_pids, controller_vars, extra_inventory, leftovers, tracebacks

pytestmark = pytest.mark.root

SERVICE_CONFIGS = ("nova", "neutron", "ceilometer")
BED_FILES = {"inventory.yml", "scenario.yml"}
MAX_SCANNED = 64 * 1024 * 1024


class ArgvSampler(threading.Thread):
    """Reads /proc/*/cmdline of every process every ``interval`` seconds; records the processes whose arguments
    hold one of ``secrets`` (by name, never the secret itself)."""

    def __init__(self, watched, interval=0.05):
        super().__init__(daemon=True)
        self.watched = {name: value.encode() for name, value in watched.items()}
        self.interval, self.halt = interval, threading.Event()
        self.samples, self.seen, self.hits = 0, set(), []

    def run(self):
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def sample(self):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as handle:
                    argv = handle.read()
            except OSError:
                continue
            self.seen.add(argv[:200])
            for name, value in self.watched.items():
                if value in argv:
                    self.hits.append((name, pid, argv.replace(value, b"<" + name.encode() + b">")[:300]))
        self.samples += 1

    def stop(self):
        self.halt.set()
        self.join(10)

    def named(self, name):
        return [hit for hit in self.hits if hit[0] == name]


def files_holding(roots, secret, since, skip):
    """{path: mode} of every regular file under ``roots`` changed since ``since`` that holds ``secret``."""
    found = {}
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if path in skip or not os.path.isfile(path) or os.path.islink(path):
                    continue
                if info.st_mtime < since or info.st_size > MAX_SCANNED:
                    continue
                try:
                    with open(path, "rb") as handle:
                        if secret in handle.read():
                            found[path] = info.st_mode & 0o777
                except OSError:
                    continue
    return found


def test_passwords_never_in_output_process_arguments_or_files(tmp_path):
    xenserver_password = "xs-" + secrets.token_hex(12)
    openstack_password = "os-" + secrets.token_hex(12)
    canary = "canary-" + secrets.token_hex(8)
    scenario = tmp_path / "secret-host.yml"
    scenario.write_text(
        "description: XCP-ng 8.3 with a password of its own\nextends: %s\ncredentials: {username: root, password: %s}\n"
        % (os.path.join(ROOT, "tests", "scenarios", "xcpng-8.3.yml"), xenserver_password)
    )
    started = time.time() - 1
    bed = Bed(str(tmp_path / "bed"), "--scenario", str(scenario))
    pids, glance = bed_pids(bed), None
    sampler = ArgvSampler({"XenServer password": xenserver_password, "OpenStack password": openstack_password})
    sampler.watched["canary"] = canary.encode()
    try:
        glance = NsGlance(tmp_path / "glance")
        glance.start()
        cloud = {
            "auth_type": "http_basic",
            "auth": {"endpoint": glance.endpoint + "/v2", "username": "admin", "password": openstack_password},
        }
        inventory = extra_inventory(
            tmp_path / "controller.yml", primary_controller=controller_vars(glance, tmp_path, cloud)
        )
        sampler.start()
        # The sampler sees a process that has a watched string in its arguments.
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)", canary], check=True)

        code, report, output = bed.playbook(SITE, "-i", inventory, "-vvv")

        sampler.stop()
        assert code == 0, output[-3000:]
        assert tracebacks(report, output) == []
        assert glance.images(bed)["TestVM"]["disk_format"] == "vhd"  # the OpenStack connection was used
        holders = files_holding(
            [str(tmp_path), "/tmp", "/var/tmp", os.path.expanduser("~/.ansible"), ROOT],
            xenserver_password.encode(),
            started,
            skip={str(scenario), inventory}
            | {os.path.join(bed.state_dir, name) for name in BED_FILES}
            | {os.path.join(bed.state_dir, "dom0-1", "scenario.yml")},
        )
        openstack_holders = files_holding(
            [str(tmp_path), "/tmp", "/var/tmp", os.path.expanduser("~/.ansible"), ROOT],
            openstack_password.encode(),
            started,
            skip={inventory},
        )
    finally:
        sampler.stop()
        if glance is not None:
            glance.stop()
        bed.down()
    assert leftovers(pids) == ([], [])

    assert sampler.named("canary"), "the sampler did not see the canary process"
    assert sampler.samples > 100 and any(b"ansible-playbook" in argv for argv in sampler.seen), sampler.samples
    # It saw the module runs on the hosts: `ip netns exec HOST /bin/sh -c PYTHON` (pipelining: the module and its
    # arguments go on stdin), or the AnsiballZ wrapper when a run does not pipeline.
    assert any(b"AnsiballZ" in argv or (b"netns" in argv and b"/bin/sh" in argv) for argv in sampler.seen)
    assert sampler.named("XenServer password") == []
    assert sampler.named("OpenStack password") == []
    assert output.count(xenserver_password) == 0
    assert output.count(openstack_password) == 0
    assert openstack_holders == {}
    config = os.path.join(bed.state_dir, "compute-1", "root", "etc")
    assert os.path.join(config, "nova", "nova-compute.conf") in holders, holders
    for path, mode in holders.items():
        assert os.path.relpath(path, config).split(os.sep)[0] in SERVICE_CONFIGS, "password written to %s" % path
        assert mode & 0o007 == 0 and mode & 0o020 == 0, "%s is mode %o" % (path, mode)
