"""The operator's inputs, checked before anything changes: plugin_utils._preflight.input_problems (types, choices,
misspelt names, each role's own checks) and the roles' ``inputs`` entry points as Ansible runs them.

The playbook tests run ansible-playbook on localhost (no bed): they prove that each role's inputs.yml sees the role's
defaults, the inventory and -e as a play resolves them, and that -e strings are read as booleans.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from ansible_collections.xenserver.openstack.plugins.filter import misc_patches as filters
from ansible_collections.xenserver.openstack.plugins.plugin_utils import _preflight

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
ROLES = ("dom0_suppack", "himn_network", "misc_patches", "nova_xenapi")


def specs(role):
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")) as handle:
        return yaml.safe_load(handle)


def defaults(role):
    with open(os.path.join(ROOT, "roles", role, "defaults", "main.yml")) as handle:
        return yaml.safe_load(handle)


NOVA_GOOD = dict(
    nova_xenapi_connection_password="secret",
    nova_xenapi_public_vip="203.0.113.10",
    nova_xenapi_neutron_enabled=True,
    nova_xenapi_neutron_network_type="vlan",
    nova_xenapi_neutron_physnet="physnet1",
    nova_xenapi_neutron_physnet_interface="eth1",
    nova_xenapi_mgmt_interface="br-mgmt",
    nova_xenapi_vnc_proxyclient_address="",
)
VM = dict(
    interfaces=["br-mgmt", "br-storage", "eth0", "eth1", "eth2", "lo"],
    networks={"br-mgmt": ["198.18.1.0/24"], "br-storage": ["198.18.2.0/24"], "eth2": ["169.254.0.0/16"]},
    host="compute-1",
)


def problems(role, values, **context):
    return filters.input_problems(values, role, specs(role), **context)


def messages(found):
    return [p["message"] for p in found]


# --- types -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, "true", "false", "yes", "no", "on", "off", "1", "0", 1, 0, "True"])
def test_every_boolean_spelling_ansible_accepts_passes(value):
    assert problems("himn_network", dict(himn_network_persist=value, himn_network_configure_dhcp=value)) == []


@pytest.mark.parametrize("value", ["ture", "enabled", "", 2, [True]])
def test_a_boolean_that_is_none_names_the_variable_and_the_fix(value):
    found = problems("himn_network", dict(himn_network_persist=value))
    assert [p["check"] for p in found] == ["inputs"]
    message = found[0]["message"]
    assert message.startswith("himn_network_persist is ") and "not true or false" in message
    assert "-e himn_network_persist=true" in message


def test_lists_mappings_numbers_and_choices_are_checked():
    found = messages(
        problems(
            "misc_patches",
            dict(
                misc_patches_sr_types="ext,nfs",
                misc_patches_host_info="none",
                misc_patches_console_log_max_size="1 MiB",
                misc_patches_state="removed",
                misc_patches_console_log_keep_size="5120",  # a number from -e is a string: fine
            ),
        )
    )
    assert len(found) == 4, found
    assert any(
        m.startswith("misc_patches_sr_types is 'ext,nfs', not a list") and '-e \'{"misc_patches_sr_types"' in m
        for m in found
    )
    assert any(m.startswith("misc_patches_host_info is 'none', not a mapping") for m in found)
    assert any(m.startswith("misc_patches_console_log_max_size is '1 MiB', not a whole number") for m in found)
    assert any(m.startswith("misc_patches_state is 'removed'; it must be one of: present, absent") for m in found)


def test_a_misspelt_variable_of_a_role_is_named_with_the_likely_one():
    found = messages(problems("nova_xenapi", dict(NOVA_GOOD, nova_xenapi_public_vp="203.0.113.10"), **VM))
    assert found == [
        "nova_xenapi_public_vp is not a variable of the role nova_xenapi, so it changes nothing: correct its name "
        "(nova_xenapi_public_vip?), or remove it."
    ]


def test_a_password_is_never_shown():
    found = messages(problems("nova_xenapi", dict(NOVA_GOOD, nova_xenapi_connection_password=["s3cret-value"])))
    assert found and all("s3cret-value" not in m for m in found)


# --- each role's own checks ----------------------------------------------------------------------------------------


def test_good_nova_settings_pass():
    assert problems("nova_xenapi", NOVA_GOOD, **VM) == []


def test_every_missing_or_wrong_nova_setting_is_reported_at_once():
    values = dict(
        NOVA_GOOD,
        nova_xenapi_connection_password="",
        nova_xenapi_public_vip="",
        nova_xenapi_public_ssl="ture",
        nova_xenapi_neutron_physnet_interface="eth9",
        nova_xenapi_mgmt_interface="br-ex",
    )
    found = problems("nova_xenapi", values, **VM)
    text = " | ".join(messages(found))
    assert [p["check"] for p in found].count("password") == 1
    assert "nova_xenapi_connection_password (default from xenserver_password) is empty" in text
    assert "export XENSERVER_PASSWORD" in text
    assert "nova_xenapi_public_vip (default from openstack_public_vip) is not set" in text
    assert "Set openstack_public_vip in the inventory" in text
    assert "nova_xenapi_public_ssl (default from openstack_public_ssl) is 'ture', not true or false" in text
    assert (
        "nova_xenapi_neutron_physnet_interface (default from openstack_tenant_nic) is 'eth9', which is not an "
        "interface of compute-1 (it has br-mgmt, br-storage, eth0, eth1, eth2, lo)" in text
    )
    assert "nova_xenapi_mgmt_interface (default from openstack_management_interface) is 'br-ex', which is not" in text
    assert len(found) == 5


def test_the_vlan_nic_is_required_and_tunnels_are_refused_with_the_reason():
    text = " ".join(messages(problems("nova_xenapi", dict(NOVA_GOOD, nova_xenapi_neutron_physnet_interface=""))))
    assert "is not set: with VLAN segmentation" in text and "Set openstack_tenant_nic" in text
    tunnel = dict(NOVA_GOOD, nova_xenapi_neutron_network_type="tunnel")
    text = " ".join(messages(problems("nova_xenapi", tunnel)))
    assert "nova_xenapi_neutron_network_type (default from openstack_segmentation_type) is tunnel:" in text
    assert "XenAPI computes in this design are VLAN-only" in text and "set openstack_segmentation_type to vlan" in text
    # Listed with the other problems, all at once.
    assert len(problems("nova_xenapi", dict(tunnel, nova_xenapi_public_vip=""))) == 2
    # Without neutron neither is needed; an unknown segmentation type is refused by its choices.
    assert (
        problems(
            "nova_xenapi",
            dict(NOVA_GOOD, nova_xenapi_neutron_enabled="false", nova_xenapi_neutron_physnet_interface=""),
        )
        == []
    )
    text = " ".join(messages(problems("nova_xenapi", dict(NOVA_GOOD, nova_xenapi_neutron_network_type="vlna"))))
    assert "nova_xenapi_neutron_network_type (default from openstack_segmentation_type) is 'vlna'; it must be" in text


def test_the_management_interface_needs_an_address_unless_the_proxy_address_is_given():
    values = dict(NOVA_GOOD, nova_xenapi_mgmt_interface="eth0")
    assert "which has no IPv4 address on compute-1" in " ".join(messages(problems("nova_xenapi", values, **VM)))
    assert problems("nova_xenapi", dict(values, nova_xenapi_vnc_proxyclient_address="198.18.1.11"), **VM) == []
    # Interfaces unknown (the role runs alone): its own read checks them later.
    assert problems("nova_xenapi", dict(values, nova_xenapi_neutron_physnet_interface="eth9")) == []


def test_himn_network_routes_forwarded_interfaces_and_port_forwards():
    values = dict(
        himn_network_routes=[],
        himn_network_forward_interfaces=["br-mgmt", "br-nope", "eth0"],
        himn_network_port_forwards=[{"interface": "br-ex", "protocol": "tcp", "port": 80}],
    )
    text = " | ".join(messages(problems("himn_network", values, **VM)))
    assert "himn_network_forward_interfaces is 'br-nope', which is not an interface of compute-1" in text
    assert "himn_network_forward_interfaces is 'eth0', which has no IPv4 address" in text
    assert "himn_network_port_forwards[0].interface is 'br-ex', which is not an interface" in text
    routes = dict(values, himn_network_routes=["198.18.1.1/24", "198.18.2.0/33", "198.18.3.0/24"])
    text = " | ".join(messages(problems("himn_network", routes, **VM)))
    assert "himn_network_routes[0] '198.18.1.1/24' has host bits set: the network is 198.18.1.0/24" in text
    assert "himn_network_routes[1] '198.18.2.0/33' is not an IPv4 network in CIDR form" in text
    assert "'198.18.3.0/24'" not in text
    assert "br-nope" not in text  # given routes, the forwarded interfaces' networks are not needed


# dom0_suppack's variables as a host with a signing key and its Dom0 in the inventory has them.
SUPPACK_VALUES = dict(
    dom0_suppack_install=True,
    dom0_suppack_trust_key=False,
    dom0_suppack_dom0_host="dom0-1",
    dom0_suppack_min_platform_version="2.1.0",
    dom0_suppack_gpg_key="0123456789ABCDEF0123456789ABCDEF01234567",
    dom0_suppack_iso="",
)


def test_a_legacy_host_or_the_trust_step_needs_its_dom0_in_the_inventory():
    legacy = dict(host=dict(name_label="xs70", platform_version="2.1.0"))
    modern = dict(host=dict(name_label="xs83", platform_version="3.4.0"))
    values = dict(SUPPACK_VALUES, dom0_suppack_dom0_host="")
    # Older than the pack supports at all (XenServer 6.5): the platform check speaks for it, not this one.
    too_old = dict(host=dict(name_label="xs65", platform_version="1.9.0"))
    assert problems("dom0_suppack", values, host_info=too_old, hosts=["compute-1"]) == []
    text = " ".join(messages(problems("dom0_suppack", values, host_info=legacy, hosts=["compute-1"])))
    assert "xs70 runs platform 2.1.0, which has no pool_update" in text
    assert "dom0_suppack_dom0_host is not set" in text and "group dom0" in text
    named = dict(values, dom0_suppack_dom0_host="dom0-9")
    text = " ".join(messages(problems("dom0_suppack", named, host_info=legacy, hosts=["compute-1"])))
    assert "names 'dom0-9', which is not in the inventory" in text
    assert problems("dom0_suppack", named, host_info=legacy, hosts=["compute-1", "dom0-9"]) == []
    assert problems("dom0_suppack", values, host_info=modern, hosts=["compute-1"]) == []
    trust = dict(values, dom0_suppack_trust_key="yes")
    text = " ".join(messages(problems("dom0_suppack", trust, host_info=modern, hosts=["compute-1"])))
    assert "dom0_suppack_trust_key is true" in text and "trust the key by hand" in text
    # Not installing the pack: nothing to check; the host not read yet: nothing to check either.
    assert problems("dom0_suppack", dict(values, dom0_suppack_install="false"), host_info=legacy) == []
    assert problems("dom0_suppack", values) == []


def test_a_modern_host_needs_a_signing_key_or_a_ready_pack():
    """XAPI refuses an unsigned update (INVALID_UPDATE): without a key the preflight says so before any change."""
    modern = dict(host=dict(name_label="xs83", platform_version="3.4.0"))
    legacy = dict(host=dict(name_label="xs70", platform_version="2.1.0"))
    values = dict(SUPPACK_VALUES, dom0_suppack_gpg_key=" ")
    (text,) = messages(problems("dom0_suppack", values, host_info=modern, hosts=["compute-1", "dom0-1"]))
    assert text.startswith("xs83 runs platform 3.4.0, whose XAPI applies signed update packs only")
    assert "dom0_suppack_gpg_key is empty" in text and "'Pack signing key'" in text
    signed = dict(values, dom0_suppack_gpg_key="xenserver.openstack packs")
    assert problems("dom0_suppack", signed, host_info=modern, hosts=["compute-1", "dom0-1"]) == []
    ready = dict(values, dom0_suppack_iso="/srv/packs/signed.iso")
    assert problems("dom0_suppack", ready, host_info=modern, hosts=["compute-1", "dom0-1"]) == []
    # A legacy pack (xe-install-supplemental-pack) is not an update: no signature needed.
    assert problems("dom0_suppack", values, host_info=legacy, hosts=["compute-1", "dom0-1"]) == []
    assert problems("dom0_suppack", dict(values, dom0_suppack_install=False), host_info=modern) == []
    # Before the host is read: with a Dom0 over SSH the host may be a legacy one (checked once read); without, only
    # an update can be installed, so the missing key is said before anything (the HIMN bootstrap too) changes.
    assert problems("dom0_suppack", values, hosts=["compute-1", "dom0-1"]) == []
    no_dom0 = dict(values, dom0_suppack_dom0_host="")
    (text,) = messages(problems("dom0_suppack", no_dom0, hosts=["compute-1"]))
    assert text.startswith("dom0_suppack_gpg_key is empty and no ready pack is given (dom0_suppack_iso)")
    assert "'Pack signing key'" in text
    assert problems("dom0_suppack", dict(no_dom0, dom0_suppack_gpg_key="ABCD"), hosts=["compute-1"]) == []


# --- the tables are the roles' -------------------------------------------------------------------------------------


def test_each_inventory_name_is_what_the_role_default_reads():
    for name, inventory in _preflight.INVENTORY_NAMES.items():
        role = next(r for r in ROLES if name.startswith(r + "_"))
        default = json.dumps(defaults(role)[name])
        assert re.search(r"\b%s\b" % re.escape(inventory.split(".")[0]), default), (name, default)
    # And every role default that reads an inventory-level variable is in the table (so its message names it).
    for role in ROLES:
        for name, value in defaults(role).items():
            if re.search(
                r"\b(openstack_[a-z_]+|xenserver_(url|username|password|vm_uuid|validate_certs))\b", json.dumps(value)
            ) and not name.startswith("misc_patches_"):
                assert name in _preflight.INVENTORY_NAMES, name


def test_every_role_option_has_a_type_the_check_knows():
    for role in ROLES:
        for name, option in _preflight.spec_options(specs(role)).items():
            assert option.get("type", "str") in ("str", "path", "bool", "int", "list", "dict", "raw"), (role, name)


# --- as Ansible runs the roles' inputs entry points ---------------------------------------------------------------

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Check each role's inputs
      ansible.builtin.include_role:
        name: xenserver.openstack.{{ item }}
        tasks_from: inputs
      loop: [dom0_suppack, himn_network, misc_patches, nova_xenapi]
    - name: Print them
      ansible.builtin.debug:
        msg: "PROBLEMS {{ (__dom0_suppack_input_problems + __himn_network_input_problems + __misc_patches_input_problems
               + __nova_xenapi_input_problems) | to_json }}"
"""


def run_inputs(tmp_path, *args, env=None):
    playbook = tmp_path / "inputs.yml"
    playbook.write_text(PLAYBOOK)
    environ = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
    )
    environ.pop("XENSERVER_PASSWORD", None)
    environ.update(env or {})
    run = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=str(tmp_path),
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if "PROBLEMS " in line)
    return [p["message"] for p in json.loads(line.split("PROBLEMS ", 1)[1].rstrip('"').replace('\\"', '"'))]


def test_the_roles_see_their_defaults_the_inventory_and_e_strings(tmp_path):
    found = run_inputs(
        tmp_path,
        "-e",
        "openstack_public_vip=203.0.113.10",
        "-e",
        "openstack_tenant_nic=eth1",
        "-e",
        "xenserver_password=secret",
        "-e",
        "himn_network_persist=false",
        "-e",
        "nova_xenapi_ceilometer_enabled=true",
        "-e",
        "dom0_suppack_install=no",
        "-e",
        "misc_patches_multipath=off",
    )
    assert found == []


def test_the_password_may_come_from_the_environment_and_bad_inputs_come_all_at_once(tmp_path):
    found = run_inputs(
        tmp_path,
        "-e",
        "openstack_public_vip=x",
        "-e",
        "openstack_tenant_nic=eth1",
        "-e",
        "dom0_suppack_gpg_key=xenserver.openstack packs",
        env={"XENSERVER_PASSWORD": "from-the-environment"},
    )
    assert found == []
    found = run_inputs(
        tmp_path,
        "-e",
        "openstack_public_ssl=ture",
        "-e",
        "misc_patches_multipath=maybe",
        "-e",
        "himn_network_forward_interface=br-mgmt",
    )
    text = " | ".join(found)
    assert "The XenServer password is not set" in text
    assert "nova_xenapi_public_vip (default from openstack_public_vip) is not set" in text
    assert "nova_xenapi_public_ssl (default from openstack_public_ssl) is 'ture'" in text
    assert "nova_xenapi_neutron_physnet_interface (default from openstack_tenant_nic) is not set" in text
    assert "misc_patches_multipath is 'maybe', not true or false" in text
    assert "himn_network_forward_interface is not a variable of the role himn_network" in text
    assert "(himn_network_forward_interfaces?)" in text
    assert "dom0_suppack_gpg_key is empty and no ready pack is given" in text
    assert len(found) == 7, found
