# Run by tests/realclients/test_ceilometer.py in a compute VM's namespace, with the Python of ceilometer's venv there
# (ceilometer 13 on Python 2.7, 14 on Python 3.8), as ``python ceilometer_inspect.py CEILOMETER_CONF``: what
# ceilometer-polling does at start on a XenServer compute, with ceilometer's own code and the configuration site.yml
# wrote. It loads the configuration as the service does (prepare_service), loads the inspector that
# [DEFAULT] hypervisor_inspector names (ceilometer's own stevedore loader, which falls back to a no-op inspector when
# the driver does not import), which opens its XenAPI session from [xenapi], then reads the host's instance list
# with it and looks one instance up by name as inspect_instance does. Prints one JSON object: {"ok": true, "done":
# {...}} or {"ok": false, "step", "error", "traceback"}. Python 2.7 and 3.
import json
import os
import sys
import traceback

STEP = {"name": "configuration"}


def inspect(path):
    from ceilometer import service
    from ceilometer.compute.virt import inspector as virt_inspector

    conf = service.prepare_service([sys.argv[0]], [path])
    STEP["name"] = "inspector " + conf.hypervisor_inspector
    inspector = virt_inspector.get_hypervisor_inspector(conf)
    done = {"inspector": "%s.%s" % (type(inspector).__module__, type(inspector).__name__)}
    STEP["name"] = "instance list"
    records = inspector.session.VM.get_all_records()
    done["instances"] = sorted(
        record["name_label"]
        for record in records.values()
        if not record["is_a_template"] and not record["is_control_domain"]
    )
    STEP["name"] = "look up " + done["instances"][0]
    done["found"] = inspector._lookup_by_name(done["instances"][0]) in records
    return done


def main():
    try:
        result = {"ok": True, "done": inspect(sys.argv[1])}
    except BaseException as error:  # the report names any failure, as the service's log would
        result = {"ok": False, "step": STEP["name"], "error": "%s: %s" % (type(error).__name__, error)}
        result["traceback"] = traceback.format_exc()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # not waiting for the threads prepare_service started


main()
