"""Every key the nova_xenapi role writes into the neutron OVS agent's file is an option of the neutron that runs it,
with a value that neutron reads, checked with that neutron itself: neutron 15.3.4 on Python 2.7 (Train) and 16.4.2 on
Python 3.8 (Ussuri), from the real-client venvs (scripts/setup-realclients.sh).

tests/unit/test_nova_options.py rebuilds neutron 16's option lists from its source with ast; here the lists are the
ones neutron's own ``neutron.opts`` functions return (what oslo-config-generator documents for the agent), imported
in the venv with every requirement of that release, so an option that moved, a group that changed or a type check
(an IP address, a choice) comes from neutron itself. The keys are what the role's tasks pass to ini_settings
(test_nova_options.role_keys renders them with Ansible), for each way the role can configure that release. Needs no
root and no bed.
"""

import importlib.util
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "test_nova_options", os.path.join(os.path.dirname(HERE), "unit", "test_nova_options.py")
)
nova_options = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nova_options)

# The neutron.opts functions whose lists hold the agent file's sections: [agent] (root helper), [ovs] (with the
# native OVSDB options), [securitygroup], [xenapi].
NEUTRON_LISTS = [
    ("neutron.opts", "list_agent_opts"),
    ("neutron.opts", "list_ovs_opts"),
    ("neutron.opts", "list_xenapi_opts"),
]
# venv -> (nova major the role sees there, the root helper modes the role can write for it)
RELEASES = {"train-py2.7": (20, (False, True)), "ussuri-py3.8": (21, (False,))}
CASES = [(venv, rootwrap) for venv, (_, modes) in sorted(RELEASES.items()) for rootwrap in modes]

# Values that name code: the root helper token and the firewall driver's alias, read from that neutron.
CODE = """
import json, pkg_resources
from neutron.agent.linux import xenapi_root_helper
drivers = sorted(e.name for e in pkg_resources.iter_entry_points("neutron.agent.firewall_drivers"))
print(json.dumps({"token": xenapi_root_helper.ROOT_HELPER_DAEMON_TOKEN, "firewall_drivers": drivers}))
"""


def agent_keys(venv, rootwrap):
    return nova_options.role_keys(RELEASES[venv][0], __nova_xenapi_rootwrap=rootwrap)["agent"]


def python(realclients, venv):
    return os.path.join(realclients[venv], "bin", "python")


@pytest.mark.parametrize(
    ("venv", "rootwrap"), CASES, ids=["%s-%s" % (v, "rootwrap" if r else "daemon") for v, r in CASES]
)
def test_agent_keys_are_options_of_the_neutron_that_runs_them(realclients, venv, rootwrap):
    keys = agent_keys(venv, rootwrap)
    written = {(section, option) for section, option, state, _ in keys if state == "present"}
    # What the agent needs to work Dom0's Open vSwitch from the compute VM is all there.
    assert {("ovs", "ovsdb_connection"), ("ovs", "of_listen_address"), ("ovs", "integration_bridge")} <= written
    assert ("ovs", "bridge_mappings") in written
    problems = nova_options.check(None, keys, python=python(realclients, venv), mode="installed", lists=NEUTRON_LISTS)
    assert problems == [], problems


@pytest.mark.parametrize("venv", sorted(RELEASES))
def test_values_that_name_code_name_code_of_that_neutron(realclients, venv):
    found = subprocess.run(
        [python(realclients, venv), "-c", CODE], capture_output=True, text=True, check=False, env=dict(os.environ)
    )
    assert found.returncode == 0, found.stderr[-2000:]
    code = json.loads(found.stdout)
    values = {(section, option): value for section, option, _, value in agent_keys(venv, False)}
    assert values[("agent", "root_helper_daemon")] == code["token"]
    assert values[("agent", "root_helper")] == ""
    assert values[("securitygroup", "firewall_driver")] in code["firewall_drivers"]
    assert values[("ovs", "ovsdb_connection")] == "tcp:169.254.0.1:6640"


@pytest.mark.parametrize("venv", sorted(RELEASES))
def test_the_check_finds_an_unknown_key_and_a_bad_value(realclients, venv):
    """The check itself, with the same neutron: a key of another section, a misspelt key and a value that is no IP
    address are each reported."""
    problems = nova_options.check(
        None,
        [
            ("agent", "ovsdb_connection", "present", "tcp:169.254.0.1:6640"),
            ("ovs", "of_listen_adress", "present", "169.254.0.2"),
            ("ovs", "of_listen_address", "present", "the-himn"),
        ],
        python=python(realclients, venv),
        mode="installed",
        lists=NEUTRON_LISTS,
    )
    assert len(problems) == 3, problems
