# Run by tests/realclients/test_neutron.py in a compute VM's namespace, with the Python of neutron's venv there
# (neutron 15 on Python 2.7, neutron 16 on Python 3.8), as ``python neutron_agent.py AGENT_INI STEP``: what the
# neutron OVS agent does against Dom0's Open vSwitch, with neutron's own code and the agent configuration that
# site.yml wrote (nothing else is set). Prints one JSON object: {"ok": true, "done": {...}} or {"ok": false,
# "step": ..., "error": ..., "traceback": ...}. Python 2.7 and 3.
#
# Steps:
#   root_helper  neutron's execute(run_as_root=True), which the agent's root_helper_daemon = xenapi_root_helper
#                turns into Dom0's netwrap.py run_command: ovs-vsctl lists the bridges, adds a port to the physnet
#                bridge, lists its ports, deletes the port.
#   ovsdb        neutron's native OVSDB library (ovs_lib over ovsdbapp) with the agent's [ovs] ovsdb_connection:
#                its first connection makes Dom0's ovsdb-server listen there (set-manager, through the root
#                helper), then it creates the integration bridge as the agent does at start, reads it back and
#                deletes it.
import json
import os
import sys
import traceback

STEP = {"name": "configuration"}


def load(path):
    from neutron.agent.common import ovs_lib  # noqa: F401 (registers [agent] root helper and [ovs] OVSDB options)
    from neutron.conf.plugins.ml2.drivers import ovs_conf
    from oslo_config import cfg

    ovs_conf.register_ovs_agent_opts()
    cfg.CONF(["--config-file", path], project="neutron")
    return cfg.CONF


def root_helper(conf):
    from neutron.agent.linux import utils

    def vsctl(*args):
        STEP["name"] = "ovs-vsctl " + " ".join(args)
        return utils.execute(["ovs-vsctl", "--timeout=10"] + list(args), run_as_root=True)  # noqa: RUF005 (Python 2.7)

    physnet, bridge = conf.OVS.bridge_mappings[0].split(":")
    port = "tap-neutron-test"
    done = {"daemon": conf.AGENT.root_helper_daemon, "physnet": physnet}
    done["bridges"] = vsctl("list-br").split()
    vsctl("--may-exist", "add-port", bridge, port)
    done["ports_after_add"] = vsctl("list-ports", bridge).split()
    vsctl("del-port", bridge, port)
    done["ports_after_delete"] = vsctl("list-ports", bridge).split()
    done["bridge"] = bridge
    return done


def ovsdb(conf):
    from neutron.agent.common import ovs_lib

    STEP["name"] = "connect to " + conf.OVS.ovsdb_connection
    base = ovs_lib.BaseOVS()
    name = conf.OVS.integration_bridge
    STEP["name"] = "create " + name
    bridge = ovs_lib.OVSBridge(name, datapath_type=conf.OVS.datapath_type)
    bridge.create(secure_mode=True)
    done = {"connection": conf.OVS.ovsdb_connection, "bridge": name, "created": base.bridge_exists(name)}
    done["bridges"] = sorted(base.get_bridges())
    done["fail_mode"] = bridge.db_get_val("Bridge", name, "fail_mode")
    STEP["name"] = "delete " + name
    bridge.destroy()
    done["deleted"] = not base.bridge_exists(name)
    return done


def main():
    path, step = sys.argv[1], sys.argv[2]
    try:
        conf = load(path)
        done = {"root_helper": root_helper, "ovsdb": ovsdb}[step](conf)
    except BaseException as error:  # the report names any failure, as the agent's log would
        result = {"ok": False, "step": STEP["name"], "error": "%s: %s" % (type(error).__name__, error)}
        result["traceback"] = traceback.format_exc()
    else:
        result = {"ok": True, "done": done}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # not waiting for ovsdbapp's connection thread


main()
