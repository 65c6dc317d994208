"""The real-client layer's bed, shared by its tests (the fixtures that make it are in conftest.py): one bed of six
hosts, XCP-ng 8.2.1, Citrix Hypervisor 8.2 and XCP-ng 8.3, each with a compute VM running the Train clients (nova
20.6.1, neutron 15.3.4) on Python 2.7 and one running the Ussuri clients (nova 21.2.4, neutron 16.4.2) on Python 3.8,
with os-xenapi 0.3.4, from scripts/setup-realclients.sh; and how a test runs a script in a compute VM."""

import json
import os
import subprocess

import yaml
from bedlib import ROOT, ns

SITE = os.path.join(ROOT, "playbooks", "site.yml")
SCENARIOS = ["xcpng-8.2.1", "citrix-8.2", "xcpng-8.3"]
# compute-(2i+1): Train on Python 2.7 and compute-(2i+2): Ussuri on Python 3.8, on the i-th platform
HOSTS = {
    "compute-%d" % (2 * i + n + 1): (scenario, venv)
    for i, scenario in enumerate(SCENARIOS)
    for n, venv in enumerate(["train-py2.7", "ussuri-py3.8"])
}


def compute_vars(bed, host):
    with open(bed.inventory) as handle:
        return yaml.safe_load(handle)["all"]["children"]["compute"]["hosts"][host]


def nova_file(bed, host):
    return os.path.join(bed.root(host), "etc", "nova", "nova-compute.conf")


def run_in_compute(bed, host, python, script, *args, stdin=None):
    """Run a Python script of the tests with ``python`` in the compute VM's namespace, its guest tools on PATH."""
    tools = os.path.dirname(compute_vars(bed, host)["bed_xenstore_read"])
    env = dict(os.environ, PATH=tools + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(
        ["ip", "netns", "exec", ns(host), python, script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return json.loads(proc.stdout)
