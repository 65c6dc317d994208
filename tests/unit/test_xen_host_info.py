"""xen_host_info against the XAPI simulator, through the real XenAPI client over HTTP.

Expected values come from the scenario files, never from constants here.
"""

import pytest
import XenAPI
from ansible_collections.xenserver.openstack.plugins.modules import xen_host_info
from xapisim.pytest_plugin import scenario_names

FACT_SCENARIOS = [n for n in scenario_names() if n != "pool-member"]


def _version(text):
    return tuple(int(part) for part in str(text).split("."))


def expected_facts(scenario):
    """What xen_host_info must report for the compute VM of a scenario, derived from the scenario alone."""
    vm = scenario["vms"]["compute"]
    host_key = vm["resident_on"]
    host = scenario["hosts"][host_key]
    master = scenario["hosts"][scenario["pool"]["master"]]
    software = {k: str(v) for k, v in host["software_version"].items()}
    modern = _version(software["platform_version"]) >= (2, 2, 0)
    networks = scenario["networks"]
    himn_key = next(
        k for k, n in networks.items() if n.get("other_config", {}).get("is_host_internal_management_network")
    )
    sr = scenario["srs"].get(scenario["pool"].get("default_sr") or "", None)
    return dict(
        host=dict(
            uuid=host["uuid"],
            name_label=host["name_label"],
            product_brand=software["product_brand"],
            product_version=software["product_version"],
            platform_version=software["platform_version"],
            api_version="%s.%s" % (master["API_version_major"], master["API_version_minor"]),
            software_version=software,
            is_master=host_key == scenario["pool"]["master"],
        ),
        updates=sorted(
            (u["name_label"], str(u["version"]), host_key in u.get("applied_on", []))
            for u in scenario.get("updates", [])
        )
        if modern
        else [],
        hotfixes=[]
        if modern
        else sorted(
            (p["name_label"], str(p["version"]), host_key in p.get("applied_on", []))
            for p in scenario.get("patches", [])
        ),
        legacy_packs=sorted(k for k in software if ":" in k),
        default_sr=dict(uuid=sr["uuid"], type=sr["type"]) if sr else {},
        himn_uuid=networks[himn_key]["uuid"],
        himn_ips=sorted(v["ip"] for v in vm.get("vifs", []) if v["network"] == himn_key and v.get("ip")),
        vifs=sorted(
            (
                str(v["device"]),
                v["MAC"].lower(),
                networks[v["network"]]["uuid"],
                bool(v.get("currently_attached", True)),
            )
            for v in vm.get("vifs", [])
        ),
        vm=dict(uuid=vm["uuid"], name_label=vm["name_label"], resident_on=host["uuid"]),
    )


def pool_uuid(sim):
    """The pool's UUID, asked of XAPI with the real client (the simulator makes a random one per pool)."""
    args = sim.module_args()
    session = XenAPI.Session(args["url"])
    session.xenapi.login_with_password(args["username"], args["password"], "1.0", "test")
    try:
        return next(record["uuid"] for record in session.xenapi.pool.get_all_records().values())
    finally:
        session.xenapi.session.logout()


@pytest.mark.parametrize("name", FACT_SCENARIOS)
def test_facts_match_the_scenario(name, xapi_sim, run_module):
    sim = xapi_sim(name)
    result = run_module(xen_host_info, sim.module_args())
    want = expected_facts(sim.scenario)

    assert result["changed"] is False
    assert not result.get("failed"), result
    for key, value in want["host"].items():
        assert result["host"][key] == value, key
    assert result["host"]["pool_uuid"] == pool_uuid(sim)  # the role serializes the applies of one pool by it
    assert sorted((u["name_label"], u["version"], u["applied"]) for u in result["updates"]) == want["updates"]
    assert sorted((h["name_label"], h["version"], h["applied"]) for h in result["hotfixes"]) == want["hotfixes"]
    assert sorted(p["key"] for p in result["legacy_packs"]) == want["legacy_packs"]
    assert {k: result["default_sr"].get(k) for k in want["default_sr"]} == want["default_sr"]
    assert result["himn"]["uuid"] == want["himn_uuid"]
    assert result["himn"]["bridge"] == "xenapi"
    assert result["himn"]["assigned_ips"] == want["himn_ips"]
    for key, value in want["vm"].items():
        assert result["vm"][key] == value, key
    got_vifs = sorted((v["device"], v["mac"].lower(), v["network"], v["attached"]) for v in result["vm"]["vifs"])
    assert got_vifs == want["vifs"]
    himn_vifs = [v for v in result["vm"]["vifs"] if v["himn"]]
    assert [v.get("ip") for v in himn_vifs if v.get("ip")] == want["himn_ips"]


def test_one_login_and_at_most_one_call_per_class(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    sim.reset_counts()
    result = run_module(xen_host_info, sim.module_args())
    assert not result.get("failed"), result

    counts = sim.counts()
    assert counts.get("session.login_with_password") == 1
    assert counts.get("session.logout") == 1
    per_class = {}
    for method, n in counts.items():
        if not method.startswith("session."):
            per_class[method.split(".")[0]] = per_class.get(method.split(".")[0], 0) + n
    assert per_class, counts
    assert all(n == 1 for n in per_class.values()), counts
    assert {"host", "pool", "network", "VM", "VIF", "SR", "pool_update"} <= set(per_class)


def test_legacy_host_reads_hotfixes_not_updates(xapi_sim, run_module):
    sim = xapi_sim("xenserver-6.5-hotfix")
    sim.reset_counts()
    result = run_module(xen_host_info, sim.module_args())
    counts = sim.counts()
    assert not any(m.startswith("pool_update.") for m in counts), counts
    assert counts.get("pool_patch.get_all_records") == 1
    assert any(h["applied"] for h in result["hotfixes"])


def test_without_a_vm_describes_the_session_host(xapi_sim, run_module, monkeypatch):
    monkeypatch.setattr(xen_host_info, "read_local_vm_uuid", lambda: None)
    sim = xapi_sim("xcpng-8.3")
    args = sim.module_args()
    del args["vm_uuid"]
    result = run_module(xen_host_info, args)
    master = sim.scenario["hosts"][sim.scenario["pool"]["master"]]
    assert result["vm"] == {}
    assert result["host"]["uuid"] == master["uuid"]


def test_vm_uuid_is_read_from_sys_hypervisor_inside_a_xen_guest(xapi_sim, run_module, monkeypatch, tmp_path):
    sim = xapi_sim("xcpng-8.3")
    vm_uuid = sim.scenario["vms"]["compute"]["uuid"]
    (tmp_path / "type").write_text("xen\n")
    (tmp_path / "uuid").write_text(vm_uuid + "\n")
    real = xen_host_info.read_local_vm_uuid
    monkeypatch.setattr(
        xen_host_info, "read_local_vm_uuid", lambda: real(str(tmp_path / "uuid"), str(tmp_path / "type"))
    )
    args = sim.module_args()
    del args["vm_uuid"]
    assert run_module(xen_host_info, args)["vm"]["uuid"] == vm_uuid


def test_unknown_vm_uuid_is_a_clear_error(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_host_info, sim.module_args(vm_uuid="00000000-1111-2222-3333-444444444444"))
    assert result["failed"]
    assert "No VM with UUID 00000000-1111-2222-3333-444444444444" in result["msg"]
    assert sim.counts().get("session.logout") == 1


def test_check_mode_is_supported(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    result = run_module(xen_host_info, sim.module_args(), check_mode=True)
    assert not result.get("failed") and not result.get("skipped"), result
    assert result["host"]["product_brand"] == sim.scenario["hosts"]["host1"]["software_version"]["product_brand"]
