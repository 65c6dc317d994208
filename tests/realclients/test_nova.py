"""nova's own XenAPI driver starts against the Dom0 that the default playbooks/site.yml prepared.

One bed of six hosts (realbed.py; conftest.py makes it once for the real-client layer): XCP-ng 8.2.1, Citrix
Hypervisor 8.2 and XCP-ng 8.3, each with a compute VM running nova 20.6.1 on Python 2.7 (Train) and one running nova
21.2.4 on Python 3.8 (Ussuri), with os-xenapi 0.3.4, each from PyPI at OpenStack's pins
(scripts/setup-realclients.sh). The simulator runs the Dom0 plugins the pack installed with the
Python each platform's xapi would (2.7), with Dom0's XenAPI, XenAPIPlugin and six, and an `xe` of its own.

First, on one compute, what an operator without nova's plugins gets: nova_xenapi stops before the driver switch,
naming the plugin (pack without nova's set) or the versions (the Ocata set, plugin version 2.0); nothing of nova is
written. Then the default site.yml on all six; then, in each compute VM's namespace, nova's own code loads the
configuration the role wrote through nova's options, builds XenAPIDriver and makes the calls nova-compute makes
before it serves (tests/realclients/nova_start.py). (That a second site.yml changes nothing is test_e2e's.)
"""

import json
import os

import pytest
import yaml
from bedlib import ROOT, failures
from realbed import HOSTS, compute_vars, run_in_compute

pytestmark = pytest.mark.root

NOVA_START = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nova_start.py")
START_CHECK = os.path.join(ROOT, "roles", "nova_xenapi", "files", "start_check.py")
PRODUCT = {"xcpng-8.2.1": [8, 2, 1], "citrix-8.2": [8, 2, 0], "xcpng-8.3": [8, 3, 0]}


def test_nova_xenapi_stops_before_the_switch_without_nova_s_plugins(converged):
    code, report, output = converged["missing"]
    assert code != 0, output[-3000:]
    message = failures(report)
    assert "nova-compute on compute-2 would stop at start" in message, message
    assert "the Dom0 plugin dom0_plugin_version.py, which os-xenapi" in message and "dom0_suppack" in message
    code, report, output = converged["old"]
    assert code != 0, output[-3000:]
    message = failures(report)
    assert "needs Dom0 plugin version 2.1" in message and "Expected 2.1, got 2.0" in message, message
    assert not converged["nova_written_before"], "nova-compute.conf was written although nova would not start"


def test_the_default_site_yml_converges_on_every_platform_and_nova(converged):
    code, report, output = converged["first"]
    assert code == 0, output[-4000:]
    assert sorted(host for host in report["stats"] if host.startswith("compute")) == sorted(HOSTS)


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_nova_s_own_driver_starts(bed, converged, host):
    """nova-compute's start with nova's own code: its config, XenAPIDriver (session, plugin version check, host
    record), init_host (this VM in XAPI), the host stats (xenhost.py host_data through Dom0's xe), the resource
    tracker's calls, uptime (xenhost.py host_uptime) and the instance list."""
    assert converged["first"][0] == 0
    scenario, venv = HOSTS[host]
    python = compute_vars(bed, host)["nova_xenapi_python"]
    started = run_in_compute(bed, host, python, NOVA_START, "/etc/nova/nova-compute.conf")
    assert started["ok"], "%s (%s, %s) failed at %s: %s\n%s" % (
        host, scenario, venv, started["step"], started["error"], started.get("traceback", ""),
    )  # fmt: skip
    done = started["done"]
    assert done["compute_driver"] == "xenapi.XenAPIDriver" and done["connection_url"] == "http://169.254.0.1"
    assert done["product_version"] == PRODUCT[scenario]
    with open(os.path.join(bed.state_dir, host.replace("compute", "dom0"), "scenario.yml")) as handle:
        dom0 = yaml.safe_load(handle)
    hostname = dom0["hosts"][dom0["pool"]["master"]]["hostname"]
    assert done["nodes"] == [hostname]  # the node is the host's hostname, as xenhost.py host_data reads it via xe
    assert done["resources"]["hypervisor_type"] == "XenServer" and done["resources"]["vcpus"] > 0
    assert done["inventory"] == ["DISK_GB", "MEMORY_MB", "VCPU"]
    assert " up " in done["uptime"] and "load average" in done["uptime"]


def test_os_xenapi_without_the_collection_s_patch_cannot_start_nova_21(bed, converged, realclients):
    """The evidence for the os-xenapi patch: the pristine venv (the shared copy, which the role never patches) makes
    nova's session against the same Dom0 and fails in the plugin version check (xapi refuses the <base64> pickle)."""
    assert converged["first"][0] == 0
    variables = compute_vars(bed, "compute-2")
    wanted = dict(url="http://169.254.0.1", username=variables["xenserver_username"],
                  password=variables["xenserver_password"], timeout=30)  # fmt: skip
    pristine = os.path.join(realclients["ussuri-py3.8"], "bin", "python")
    answer = run_in_compute(bed, "compute-2", pristine, START_CHECK, stdin=json.dumps(wanted))
    assert answer["ok"] is False and answer["kind"] == "client_python3", answer
    patched = run_in_compute(bed, "compute-2", variables["nova_xenapi_python"], START_CHECK, stdin=json.dumps(wanted))
    assert patched == dict(ok=True, client="os-xenapi", required="2.1"), patched
