# Runs with nova's own Python (a nova 20 venv on Python 2.7, a nova 21 venv on Python 3.8) inside a compute VM of
# the bed, after playbooks/site.yml: what nova-compute does with the XenAPI driver before it serves, with nova's
# code and the configuration files the role wrote, read through nova's own options.
#   argv: the configuration files, in nova-compute's order (nova.conf, then nova-compute.conf)
#   prints one JSON object: each step's result, or the step that failed and nova's exception.
# Python 2.7 and 3: no f-strings.
import json
import sys
import traceback


def main(config_files):
    done = {}
    step = "configuration"
    try:
        import nova.conf
        from nova import config

        # nova-compute's own start: its options, its config files (RPC initialised as the service does: the
        # transport connects only when used, and nothing here sends).
        config.parse_args(["nova-compute"] + ["--config-file=%s" % path for path in config_files], configure_db=False)
        conf = nova.conf.CONF
        done["compute_driver"] = conf.compute_driver
        done["connection_url"] = conf.xenserver.connection_url
        if conf.compute_driver != "xenapi.XenAPIDriver":
            raise RuntimeError("compute_driver is %s, not xenapi.XenAPIDriver" % conf.compute_driver)

        # nova-compute runs privileged helpers (xenstore-read, when /sys/hypervisor/uuid is absent) through its
        # privsep daemon; this process is root already, so they run in it.
        import nova.privsep

        nova.privsep.sys_admin_pctxt.set_client_mode(False)

        step = "XenAPIDriver()"  # the session: logins, the Dom0 plugins' version check, the host record
        from nova.virt import virtapi
        from nova.virt.xenapi import driver

        xenapi = driver.XenAPIDriver(virtapi.VirtAPI(), read_only=False)
        done["product_version"] = list(xenapi._session.product_version)

        step = "init_host"  # this VM found in XAPI (check_host), stale VDIs cleaned
        xenapi.init_host(conf.host)

        step = "get_available_nodes"  # xenhost.py host_data through the Dom0 plugins, SR and VM reads
        nodes = xenapi.get_available_nodes(refresh=True)
        done["nodes"] = nodes

        step = "get_available_resource"
        resources = xenapi.get_available_resource(nodes[0])
        done["resources"] = dict(
            (key, resources[key]) for key in ("vcpus", "memory_mb", "local_gb", "hypervisor_type", "cpu_info")
        )

        step = "update_provider_tree"  # what the resource tracker reports to placement
        from nova.compute import provider_tree

        tree = provider_tree.ProviderTree()
        tree.new_root(nodes[0], "00000000-0000-0000-0000-000000000001")
        xenapi.update_provider_tree(tree, nodes[0])
        done["inventory"] = sorted(tree.data(nodes[0]).inventory)

        step = "get_host_uptime"  # xenhost.py host_uptime
        done["uptime"] = xenapi.get_host_uptime()

        step = "list_instances"
        done["instances"] = xenapi.list_instances()
        step = "get_host_ip_addr"
        done["host_ip"] = xenapi.get_host_ip_addr()
    except Exception as error:  # the test shows nova's own exception and where it happened
        return dict(
            ok=False,
            step=step,
            done=done,
            error="%s: %s" % (type(error).__name__, error),
            traceback=traceback.format_exc()[-4000:],
        )
    return dict(ok=True, done=done)


print(json.dumps(main(sys.argv[1:]), default=str))
