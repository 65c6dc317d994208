"""The XAPI calls nova's XenAPI driver (20.6.1, 21.2.4) and ceilometer's XenAPI inspector make before they serve,
in their order, through the real XenAPI client (nova: os_xenapi/client/session.py, nova/virt/xenapi/driver.py,
host.py, vm_utils.py; ceilometer/compute/virt/xenapi/inspector.py)."""

import textwrap

import pytest
import XenAPI
from xapisim.pytest_plugin import scenario_path

COMPUTE = "afcf0613-b81a-46ac-bedf-c13183f5de28"
GiB = 1024**3
DISKS = """\
    extends: {base}
    vdis:
      root: {{sr: local, name_label: compute-1 root, virtual_size: {root}, physical_utilisation: {root_used}}}
      spare: {{sr: local, name_label: spare, virtual_size: {spare}, physical_utilisation: {spare_used}}}
    vms:
      compute:
        VCPUs_max: 4
        memory_static_max: 8589934592
        vbds:
          - {{vdi: root, device: xvda, userdevice: "0", bootable: true, currently_attached: true}}
          - {{userdevice: "3", type: CD, mode: RO}}
        data_sources: {{cpu0: "0.25", cpu1: "0.5", memory: "8589934592", memory_internal_free: "4194304"}}
      installer:
        name_label: Other install media
        is_a_template: true
        power_state: Halted
"""


@pytest.fixture
def nova_sim(xapi_sim, tmp_path):
    path = tmp_path / "disks.yml"
    sizes = dict(root=20 * GiB, root_used=5 * GiB, spare=10 * GiB, spare_used=GiB)
    path.write_text(textwrap.dedent(DISKS).format(base=scenario_path("xcpng-8.3"), **sizes))
    sim = xapi_sim(str(path))
    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password("root", "xenroot", "2.1", "nova")  # os-xenapi's login
    return sim, session, sizes


def failure(call, *args):
    with pytest.raises(XenAPI.Failure) as info:
        call(*args)
    return info.value.details


def test_nova_starts(nova_sim):
    _sim, session, sizes = nova_sim
    x = session.xenapi
    # XenAPISession: the API version of the pool master, this host, its software version
    pool = x.pool.get_all()[0]
    host = x.pool.get_master(pool)
    assert (x.host.get_API_version_major(host), x.host.get_API_version_minor(host)) == ("2", "21")
    assert x.session.get_this_host(session.handle) == host
    assert x.host.get_software_version(host)["product_version"] == "8.3.0"
    # ResourcePool
    record = x.host.get_record(host)
    assert (record["uuid"], record["hostname"], record["address"]) == (x.host.get_uuid(host), "xcp-ng-83", "192.0.2.10")
    # init_host: ensure_correct_host, cleanup_attached_vdis
    vm = x.VM.get_by_uuid(COMPUTE)
    assert failure(x.VM.get_by_uuid, "0b2b3a86-4bd4-4d56-a2b4-6d1c0b4d3c01") == [
        "UUID_INVALID",
        "VM",
        "0b2b3a86-4bd4-4d56-a2b4-6d1c0b4d3c01",
    ]
    vbds = {x.VBD.get_userdevice(vbd): vbd for vbd in x.VM.get_VBDs(vm)}
    root = x.VBD.get_VDI(vbds["0"])
    assert x.VDI.get_record(root)["name_label"] == "compute-1 root" and x.VDI.get_record(root)["other_config"] == {}
    assert x.VBD.get_VDI(vbds["3"]) == "OpaqueRef:NULL" and x.VBD.get_record(vbds["3"])["empty"] is True
    # HostState.update_status: scan_default_sr, the SR's size, get_disk_used
    sr = x.pool.get_default_SR(pool)
    assert x.SR.scan(sr) == ""
    assert int(x.SR.get_record(sr)["physical_size"]) == 500000000000
    physical = virtual = 0
    for vdi in x.SR.get_VDIs(sr):
        physical += int(x.VDI.get_physical_utilisation(vdi))
        for vbd in x.VDI.get_VBDs(vdi):
            assert x.VBD.get_VM(vbd) == vm
            if x.VBD.get_currently_attached(vbd):
                virtual += int(x.VDI.get_virtual_size(vdi))
    assert (physical, virtual) == (sizes["root_used"] + sizes["spare_used"], sizes["root"])
    # list_vms (also list_instances, get_per_instance_usage): the guests resident here, no Dom0, no template
    where = 'field "is_control_domain"="false" and field "is_a_template"="false" and field "resident_on"="%s"'
    vms = x.VM.get_all_records_where(where % host)
    assert list(vms) == [vm]
    compute = vms[vm]
    assert (compute["VCPUs_max"], compute["memory_static_max"], compute["power_state"]) == (
        "4",
        "8589934592",
        "Running",
    )
    assert (compute["name_label"], compute["domid"], len(compute["VIFs"])) == ("compute-1", "1", 3)


def test_ceilometer_inspects(nova_sim):
    _sim, session, _sizes = nova_sim
    x = session.xenapi
    (vm,) = x.VM.get_by_name_label("compute-1")
    vcpus = int(x.VM.get_VCPUs_max(vm))
    usage = [x.VM.query_data_source(vm, "cpu%d" % n) for n in range(vcpus) if n < 2]
    assert usage == [0.25, 0.5] and all(isinstance(u, float) for u in usage)
    assert x.VM.query_data_source(vm, "memory") - x.VM.query_data_source(vm, "memory_internal_free") * 1024 == 4 * GiB
    assert failure(x.VM.query_data_source, vm, "cpu3") == [
        "INTERNAL_ERROR",
        "Rrd_interface.Rrdd_error([S(Datasource_missing);S(cpu3)])",
    ]
    (template,) = x.VM.get_by_name_label("Other install media")
    assert failure(x.VM.query_data_source, template, "cpu0")[1].endswith("S(VM: %s)])" % x.VM.get_uuid(template))
    assert [x.VIF.get_record(vif)["device"] for vif in x.VM.get_VIFs(vm)] == ["0", "1", "9"]
    assert [x.VBD.get_record(vbd)["device"] for vbd in x.VM.get_VBDs(vm)] == ["xvda", ""]
