"""ceilometer's own XenAPI inspector starts with the configuration nova_xenapi wrote, against the bed's Dom0.

The bed is the real-client layer's (realbed.py, conftest.py). After the default site.yml, site.yml runs once more on
the XCP-ng 8.2.1 pair with ceilometer turned on (the Fuel setting ``openstack_options.ceilometer``, here its role
variable); then, in each compute VM's namespace, ceilometer 13.1.2 on Python 2.7 and 14.1.0 on Python 3.8
(tests/realclients/ceilometer_inspect.py) load that ceilometer.conf as ceilometer-polling does, load the inspector
it names (xenapi), which builds its XenAPI session, and read the host's instance list through it.
"""

import os

import pytest
import yaml
from realbed import HOSTS, SITE, compute_vars, run_in_compute

pytestmark = pytest.mark.root

INSPECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ceilometer_inspect.py")
TESTED = sorted(host for host, (scenario, _venv) in HOSTS.items() if scenario == "xcpng-8.2.1")


@pytest.fixture(scope="module")
def with_ceilometer(bed, converged):
    assert converged["first"][0] == 0
    code, _report, output = bed.playbook(
        SITE, "--limit", ",".join(TESTED), "--tags", "preflight,nova", "-e", "nova_xenapi_ceilometer_enabled=true"
    )
    assert code == 0, output[-3000:]


@pytest.mark.parametrize("host", TESTED)
def test_ceilometer_s_xenapi_inspector_reads_the_instances_with_the_role_s_configuration(bed, with_ceilometer, host):
    python = compute_vars(bed, host)["nova_xenapi_python"]
    answer = run_in_compute(bed, host, python, INSPECT, "/etc/ceilometer/ceilometer.conf")
    assert answer["ok"], "%s (%s): %s at %s\n%s" % (
        host, HOSTS[host], answer["error"], answer["step"], answer["traceback"],
    )  # fmt: skip
    done = answer["done"]
    assert done["inspector"] == "ceilometer.compute.virt.xenapi.inspector.XenapiInspector"
    with open(os.path.join(bed.state_dir, host.replace("compute", "dom0"), "scenario.yml")) as handle:
        scenario = yaml.safe_load(handle)
    guests = sorted(
        vm["name_label"]
        for vm in scenario["vms"].values()
        if not vm.get("is_control_domain") and not vm.get("is_a_template")
    )
    assert done["instances"] == guests and done["found"]
