"""The operator's inputs to playbooks/site.yml on the bed: every bad input named with its fix, all at once, with
nothing changed (tunnel networking too, refused with its reason); the password from the controller's environment;
a role variable of the inventory honoured; every boolean given as an -e string; a refused platform refused by the
preflight. One bed, runs in file order.
"""

import configparser
import json
import os

import pytest
import yaml
from bedlib import ROOT, Bed, task_results
from sitelib import SITE, Simulator, differences, message_of, snapshot, tracebacks, with_software

pytestmark = pytest.mark.root

COMPUTE = "compute-1"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("inputs")
    bed = Bed(str(work / "bed"))
    bed.work = work
    try:
        yield bed
    finally:
        bed.down()


def inventory(bed, name, drop=(), **compute):
    """A copy of the bed's inventory without the compute VM variables in ``drop``, with ``compute`` set."""
    with open(bed.inventory) as handle:
        data = yaml.safe_load(handle)
    host = data["all"]["children"]["compute"]["hosts"][COMPUTE]
    for key in drop:
        host.pop(key)
    host.update(compute)
    path = bed.work / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def password(bed):
    with open(bed.inventory) as handle:
        return yaml.safe_load(handle)["all"]["children"]["compute"]["hosts"][COMPUTE]["xenserver_password"]


def booleans():
    """Every boolean variable of the roles, as the string -e gives, with the value site.yml runs with on the bed."""
    found = {}
    for role in sorted(os.listdir(os.path.join(ROOT, "roles"))):
        with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")) as handle:
            specs = yaml.safe_load(handle)["argument_specs"]
        for entry in specs.values():
            for name, option in (entry.get("options") or {}).items():
                if option.get("type") == "bool":
                    default = option.get("default")
                    # Defaults taken from inventory-level settings: true for the certificates, false otherwise.
                    value = default if isinstance(default, bool) else name.endswith("validate_certs")
                    found[name] = "true" if value else "false"
    assert len(found) >= 20, found
    # The inventory-level booleans, and the ceilometer switch the inventory of the run before turned on.
    found.update(openstack_public_ssl="false", xenserver_validate_certs="true", nova_xenapi_ceilometer_enabled="true")
    return found


def test_every_bad_input_is_named_with_its_fix_at_once_and_nothing_changes(bed):
    before = snapshot(bed, 1)
    bad = inventory(
        bed,
        "bad.yml",
        xenserver_password="",
        openstack_public_vip="",
        openstack_tenant_nic="eth9",
        nova_xenapi_public_vp="198.18.1.2",
        himn_network_routes=["198.18.1.1/24", "198.18.2.0/33"],
    )

    code, report, output = bed.playbook(
        SITE, "-e", "nova_xenapi_public_ssl=ture", "-e", "misc_patches_multipath=maybe", inventory=bad
    )

    assert code != 0
    assert tracebacks(report, output) == []
    message = message_of(report, COMPUTE)
    assert "xenserver.openstack preflight: 8 problem(s) on compute-1; nothing was changed" in message
    for words in (
        "The XenServer password is not set",
        "export XENSERVER_PASSWORD",
        "nova_xenapi_public_vip (default from openstack_public_vip) is not set",
        "nova_xenapi_neutron_physnet_interface (default from openstack_tenant_nic) is 'eth9', which is not an "
        "interface of compute-1",
        "nova_xenapi_public_ssl (default from openstack_public_ssl) is 'ture', not true or false",
        "misc_patches_multipath is 'maybe', not true or false",
        "nova_xenapi_public_vp is not a variable of the role nova_xenapi",
        "himn_network_routes[0] '198.18.1.1/24' has host bits set: the network is 198.18.1.0/24",
        "himn_network_routes[1] '198.18.2.0/33' is not an IPv4 network in CIDR form",
    ):
        assert words in message, words
    # Stopped in the preflight play before the host was read: nothing of the pair changed.
    assert task_results(report, COMPUTE, "Read the host") == []
    assert report["stats"][COMPUTE]["changed"] == 0
    assert differences(before, snapshot(bed, 1)) == {}


def test_tunnel_networking_is_refused_with_the_reason_among_the_other_problems_and_nothing_changes(bed):
    """Fuel's tun (VXLAN) segmentation: XenAPI computes in this design are VLAN-only."""
    before = snapshot(bed, 1)
    tunnels = inventory(bed, "tun.yml", openstack_segmentation_type="tun", openstack_public_vip="")

    code, report, output = bed.playbook(SITE, inventory=tunnels)

    assert code != 0
    assert tracebacks(report, output) == []
    message = message_of(report, COMPUTE)
    assert "xenserver.openstack preflight: 2 problem(s) on compute-1; nothing was changed" in message
    assert "nova_xenapi_neutron_network_type (default from openstack_segmentation_type) is tunnel: XenAPI " in message
    assert "VLAN-only" in message and "set openstack_segmentation_type to vlan" in message
    assert "nova_xenapi_public_vip (default from openstack_public_vip) is not set" in message
    assert report["stats"][COMPUTE]["changed"] == 0
    assert differences(before, snapshot(bed, 1)) == {}


def test_the_password_from_the_environment_and_an_inventory_role_variable_are_honoured(bed):
    secret = password(bed)
    env_only = inventory(bed, "env-password.yml", drop=["xenserver_password"], nova_xenapi_ceilometer_enabled=True)

    code, _report, output = bed.playbook(SITE, inventory=env_only, env={"XENSERVER_PASSWORD": secret})

    assert code == 0, output[-3000:]
    assert secret not in output
    root = bed.root(COMPUTE)
    ceilometer = configparser.ConfigParser(interpolation=None)
    ceilometer.read(os.path.join(root, "etc", "ceilometer", "ceilometer.conf"))
    # openstack_options.ceilometer is false on the bed: the role variable set in the inventory won.
    assert ceilometer.get("DEFAULT", "hypervisor_inspector") == "xenapi"
    assert ceilometer.get("xenapi", "connection_password") == secret
    nova = configparser.ConfigParser(interpolation=None)
    nova.read(os.path.join(root, "etc", "nova", "nova-compute.conf"))
    assert nova.get("xenserver", "connection_password") == secret


def test_every_boolean_given_as_an_e_string_changes_nothing_on_a_converged_cloud(bed):
    env_only = str(bed.work / "env-password.yml")
    extra = []
    for name, value in sorted(booleans().items()):
        extra += ["-e", "%s=%s" % (name, value)]

    code, report, output = bed.playbook(SITE, *extra, inventory=env_only, env={"XENSERVER_PASSWORD": password(bed)})

    assert code == 0, output[-3000:]
    for host, stats in report["stats"].items():
        assert stats["changed"] == 0, (host, stats, json.dumps(report["stats"]))


def test_a_refused_platform_is_refused_by_the_preflight_and_nothing_changes(bed):
    sim = Simulator(bed, 1)
    sim.load(with_software(sim.scenario(), "xenserver-6.5-hotfix"))
    try:
        before = snapshot(bed, 1)
        code, report, output = bed.playbook(SITE)
        after = snapshot(bed, 1)
    finally:
        sim.restore()
    assert code != 0
    assert tracebacks(report, output) == []
    message = message_of(report, COMPUTE)
    assert "1 problem(s) on compute-1; nothing was changed" in message
    assert "XenServer 6.5.0 (platform 1.9.0) on host dom0-1 is refused: its Dom0 is CentOS 5 with Python 2.4" in message
    assert differences(before, after) == {}
