"""The preflight verdicts of the misc_patches role: xen_host_info against the simulator, then the role's checks.

The expected verdict of a scenario is derived from the scenario file alone (an oracle independent of
xen_host_info and of the checks); the named scenarios of the issue are also checked for the exact words.
"""

import os
import pathlib

import pytest
import yaml
from ansible_collections.xenserver.openstack.plugins.filter import misc_patches as filters
from ansible_collections.xenserver.openstack.plugins.modules import xen_host_info
from ansible_collections.xenserver.openstack.plugins.plugin_utils import _preflight
from tlscert import certificate
from xapisim.pytest_plugin import SCENARIO_DIR, scenario_names, scenario_path
from xapisim.scenario import load_scenario

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "roles", "misc_patches", "defaults", "main.yml")) as _handle:
    DEFAULTS = yaml.safe_load(_handle)
PLATFORMS = DEFAULTS["misc_patches_supported_platforms"]
REFUSED = DEFAULTS["misc_patches_refused_platforms"]
HOTFIXES = DEFAULTS["misc_patches_required_hotfixes"]
SR_TYPES = DEFAULTS["misc_patches_sr_types"]


def _version(text):
    return tuple(int(part) for part in str(text).split("."))


def oracle(scenario):
    """The checks a scenario must fail, from the scenario file: (check names, words the messages must hold)."""
    vm = scenario["vms"]["compute"]
    host_key = vm["resident_on"]
    host = scenario["hosts"][host_key]
    software = {k: str(v) for k, v in host["software_version"].items()}
    failed, words = set(), []
    platform = _version(software["platform_version"])
    supported = any(
        platform[: len(_version(p["platform_version"]))] == _version(p["platform_version"]) for p in PLATFORMS
    )
    if not supported:
        failed.add("platform")
        words.append(software["platform_version"])
        refused = [p for p in REFUSED if software["platform_version"].startswith(p["platform_version"])]
        words.extend(p["reason"].split(",")[0] for p in refused)
    applied = {
        p["name_label"]
        for p in scenario.get("patches", []) + scenario.get("updates", [])
        if host_key in p.get("applied_on", [])
    }
    for entry in HOTFIXES if supported else []:  # a refused platform gets no hotfix advice
        if entry["product_version"] == software["product_version"]:
            for hotfix in entry["hotfixes"]:
                if hotfix["name"] not in applied:
                    failed.add("hotfix")
                    words.append(hotfix["name"])
    sr = scenario["srs"].get(scenario["pool"].get("default_sr") or "")
    if not sr or sr["type"] not in SR_TYPES:
        failed.add("default_sr")
        words.append("type %s" % sr["type"] if sr else "no default SR")
    himn = {
        k
        for k, n in scenario["networks"].items()
        if n.get("other_config", {}).get("is_host_internal_management_network")
    }
    vifs = [v for v in vm.get("vifs", []) if v["network"] in himn]
    if not vifs:
        failed.add("himn")
        words.append("xe vif-create")
    elif not any(v.get("currently_attached", True) for v in vifs):
        failed.add("himn")
        words.append("xe vif-plug")
    return failed, words


@pytest.fixture(autouse=True)
def restore_ssl_cert_file():
    """read_host trusts a pool master's certificate through SSL_CERT_FILE: put it back after each test."""
    saved = os.environ.get("SSL_CERT_FILE")
    yield
    if saved is None:
        os.environ.pop("SSL_CERT_FILE", None)
    else:
        os.environ["SSL_CERT_FILE"] = saved


def read_host(xapi_sim, run_module, name, **start):
    """Start the simulator of a scenario (and the master of a pool member, over https with a certificate this
    process trusts) and run xen_host_info on it."""
    sim = xapi_sim(name, **start)
    if sim.scenario.get("local_host") and sim.scenario["local_host"] != sim.scenario["pool"]["master"]:
        master = sim.scenario["hosts"][sim.scenario["pool"]["master"]]["address"]
        folder = pathlib.Path(sim.root) / "master-tls"
        folder.mkdir(parents=True)
        tls = certificate(folder, master)
        os.environ["SSL_CERT_FILE"] = tls[0]  # restored by restore_ssl_cert_file
        port = int(sim.url.rsplit(":", 1)[1])
        xapi_sim(os.path.join(SCENARIO_DIR, "pool-master.yml"), host=master, port=port, tls=tls)
    creds = sim.scenario["credentials"]
    args = dict(url=sim.url, username=creds["username"], password=creds["password"])
    args["vm_uuid"] = sim.scenario["vms"]["compute"]["uuid"]
    return sim, run_module(xen_host_info, args)


def verdict(host_info, options=None, password_given=True):
    return filters.preflight_problems(
        host_info,
        options=options,
        password_given=password_given,
        platforms=PLATFORMS,
        refused_platforms=REFUSED,
        hotfix_table=HOTFIXES,
        sr_types=SR_TYPES,
    )


@pytest.mark.parametrize("name", scenario_names())
def test_every_scenario_gets_the_verdict_its_data_calls_for(xapi_sim, run_module, name):
    if "compute" not in load_scenario(scenario_path(name)).get("vms", {}):
        pytest.skip("no compute VM in this scenario")
    sim, info = read_host(xapi_sim, run_module, name)
    expected_checks, words = oracle(sim.scenario)

    problems = verdict(info)

    assert {p["check"] for p in problems} == expected_checks, problems
    text = " ".join(p["message"] for p in problems)
    for word in words:
        assert word in text


@pytest.mark.parametrize(
    ("name", "checks", "words"),
    [
        # XenServer 6.5 is refused with its reason, hotfix or not (docs/supported-platforms.md).
        ("xenserver-6.5", {"platform"}, ["XenServer 6.5.0 (platform 1.9.0)", "is refused", "Python 2.4"]),
        ("xenserver-6.5-hotfix", {"platform"}, ["XenServer 6.5.0 (platform 1.9.0)", "is refused", "Python 2.4"]),
        ("xenserver-7.1", set(), []),
        ("citrix-8.2", set(), []),
        ("xcpng-8.2.1", set(), []),
        ("xcpng-8.3", set(), []),
        ("lvm-sr", {"default_sr"}, ["is of type lvm", "ext or nfs", "xe pool-param-set"]),
        ("no-himn-vif", {"himn"}, ["no VIF on the Host Internal Management Network", "xe vif-create", "himn_mac"]),
        ("no-himn-mac", set(), []),
    ],
)
def test_the_named_scenarios(xapi_sim, run_module, name, checks, words):
    _sim, info = read_host(xapi_sim, run_module, name)

    problems = verdict(info)

    assert {p["check"] for p in problems} == checks
    for word in words:
        assert word in problems[0]["message"]
    if name.startswith("xenserver-6.5"):
        assert "Upgrade the host to a supported version (XenServer 7.0 (platform 2.1)" in problems[0]["message"]


def test_a_refused_platform_that_an_operator_supports_again_gets_its_hotfix_checks(xapi_sim, run_module):
    """The tables are data: a supported entry wins over a refused one, and the hotfix table then applies (the message
    names the hotfix, not the version: the original printed "6.5.0" in its place)."""
    _sim, info = read_host(xapi_sim, run_module, "xenserver-6.5")
    platforms = [*PLATFORMS, dict(platform_version="1.9", products="XenServer 6.5")]

    problems = filters.preflight_problems(
        info, platforms=platforms, refused_platforms=REFUSED, hotfix_table=HOTFIXES, sr_types=SR_TYPES
    )

    assert [p["check"] for p in problems] == ["hotfix"]
    message = problems[0]["message"]
    assert "Hotfix XS65ESP1013 is not applied" in message and "xe patch-upload" in message and "LP#1508474" in message
    assert "6.5.0" in message and message.count("XS65ESP1013") >= 2


def write_scenario(tmp_path, base, body):
    """A scenario file that extends a scenario of tests/scenarios by absolute path."""
    path = tmp_path / "scenario.yml"
    path.write_text(yaml.safe_dump(dict(extends=os.path.join(SCENARIO_DIR, base + ".yml"), **body)))
    return str(path)


def software(**values):
    return dict(hosts=dict(host1=dict(software_version=values)))


def test_an_older_platform_is_refused_naming_the_version_found(tmp_path, xapi_sim, run_module):
    path = write_scenario(
        tmp_path,
        "xenserver-6.5",
        dict(
            description="XenServer 6.2 (platform 1.8.0)",
            hosts=dict(
                host1=dict(
                    API_version_minor=2, software_version=dict(product_version="6.2.0", platform_version="1.8.0")
                )
            ),
        ),
    )
    _sim, info = read_host(xapi_sim, run_module, path)

    problems = verdict(info)

    assert [p["check"] for p in problems] == ["platform"]
    message = problems[0]["message"]
    assert "XenServer 6.2.0 (platform 1.8.0)" in message
    assert "older than every supported version" in message and "XenServer 7.0 (platform 2.1)" in message


def test_an_unknown_newer_platform_is_refused_until_it_is_added_to_the_table(tmp_path, xapi_sim, run_module):
    path = write_scenario(
        tmp_path, "xcpng-8.3", software(product_version="9.0.0", platform_version="3.9.0", product_brand="XCP-ng")
    )
    _sim, info = read_host(xapi_sim, run_module, path)

    problems = verdict(info)

    assert [p["check"] for p in problems] == ["platform"]
    assert "XCP-ng 9.0.0 (platform 3.9.0)" in problems[0]["message"]
    assert "misc_patches_supported_platforms" in problems[0]["message"]
    extended = [*PLATFORMS, dict(platform_version="3.9", products="XCP-ng 9.0")]
    assert not _preflight.platform_problems(info["host"], extended)


def test_several_problems_of_one_host_are_all_reported_at_once(tmp_path, xapi_sim, run_module):
    path = write_scenario(
        tmp_path,
        "xenserver-6.5",
        dict(
            srs=dict(local=dict(type="lvm")),
            vms=dict(
                compute=dict(vifs=[dict(device="0", network="mgmt", MAC="ba:1d:6d:13:2c:de", currently_attached=True)])
            ),
        ),
    )
    _sim, info = read_host(xapi_sim, run_module, path)

    problems = verdict(info, options=dict(hypervisor="qemu", ephemeral_ceph=True, murano=True))

    assert [p["check"] for p in problems] == ["options", "options", "options", "platform", "default_sr", "himn"]
    text = " ".join(p["message"] for p in problems)
    for word in ("hypervisor is 'qemu'", "ephemeral_ceph", "murano", "Python 2.4", "type lvm", "xe vif-create"):
        assert word in text


def test_an_unreachable_or_refusing_xapi_is_one_problem_among_the_others(xapi_sim, run_module):
    sim = xapi_sim("xcpng-8.3")
    info = run_module(xen_host_info, dict(url=sim.url, password="wrong"))
    assert info.get("failed")

    problems = verdict(info, options=dict(sahara=True))

    assert [p["check"] for p in problems] == ["options", "xapi"]
    assert "refused the login" in problems[1]["message"]


def test_an_empty_password_is_refused_and_the_host_is_not_read():
    problems = verdict({"skipped": True}, password_given=False)

    assert [p["check"] for p in problems] == ["password"]
    assert "xenserver_password is empty" in problems[0]["message"]


# --- The host checks on hand-made facts -------------------------------------------------------------------

HOST = dict(
    uuid="cb0b80d0-55eb-4154-a747-62a4a2cbccca",
    name_label="xs",
    product_brand="XenServer",
    product_version="6.5.0",
    platform_version="1.9.0",
)
MODERN = dict(HOST, product_version="7.1.0", platform_version="2.2.0")


def test_a_hotfix_uploaded_but_not_applied_gets_the_apply_command():
    hotfixes = [
        dict(uuid="0c3f9d1e-6c51-4f5b-9d2a-1e3f5a7b9c01", name_label="XS65ESP1013", version="1.0", applied=False)
    ]

    problems = _preflight.hotfix_problems(HOST, hotfixes, [], HOTFIXES)

    assert len(problems) == 1
    assert "uploaded to the pool but not applied on host xs" in problems[0]["message"]
    assert (
        "xe patch-apply uuid=0c3f9d1e-6c51-4f5b-9d2a-1e3f5a7b9c01 host-uuid=%s" % HOST["uuid"] in problems[0]["message"]
    )


def test_updates_of_modern_hosts_are_read_and_their_commands_are_the_update_ones():
    table = [dict(product_version="7.1.0", hotfixes=["XS71ECU1009", dict(name="XS71ECU1050", reason="it matters")])]
    updates = [dict(uuid="abc85ed8-7f82-47bc-a858-2b218e510fd8", name_label="XS71ECU1009", version="1.0", applied=True)]

    problems = _preflight.hotfix_problems(MODERN, [], updates, table)

    assert len(problems) == 1
    message = problems[0]["message"]
    assert "Hotfix XS71ECU1050 is not applied" in message and "It is needed because it matters." in message
    assert "xe update-upload file-name=XS71ECU1050.iso" in message and "update-apply" in message


def test_a_superseding_hotfix_counts_and_the_brand_must_match():
    table = [dict(product_version="6.5.0", hotfixes=[dict(name="XS65ESP1013", superseded_by=["XS65ESP1099"])])]
    hotfixes = [dict(uuid="u", name_label="XS65ESP1099", version="1.0", applied=True)]
    assert not _preflight.hotfix_problems(HOST, hotfixes, [], table)
    other_brand = [dict(product_brand="XCP-ng", product_version="6.5.0", hotfixes=["XS65ESP1013"])]
    assert not _preflight.hotfix_problems(HOST, [], [], other_brand)


def test_an_unplugged_himn_vif_gets_the_plug_command():
    vm = dict(
        uuid="afcf0613-b81a-46ac-bedf-c13183f5de28",
        name_label="compute-1",
        vifs=[dict(uuid="2f3e", device="9", mac="a6:4d:ca:18:25:30", himn=True, attached=False)],
    )

    problems = _preflight.himn_problems(HOST, vm)

    assert "not plugged" in problems[0]["message"] and "xe vif-plug uuid=2f3e" in problems[0]["message"]


def test_an_unknown_vm_and_a_pool_without_default_sr_are_problems():
    assert "xenserver_vm_uuid" in _preflight.himn_problems(HOST, {})[0]["message"]
    assert "has no default SR" in _preflight.sr_problems(HOST, {}, SR_TYPES)[0]["message"]


def test_the_himn_check_can_be_switched_off():
    info = dict(host=MODERN, hotfixes=[], updates=[], default_sr=dict(type="ext"), vm={})
    assert _preflight.host_problems(info, PLATFORMS, HOTFIXES, SR_TYPES, check_himn=False) == []
    assert [p["check"] for p in _preflight.host_problems(info, PLATFORMS, HOTFIXES, SR_TYPES)] == ["himn"]


# --- The OpenStack options ------------------------------------------------------------------------------------

REASONS = dict(
    volumes_ceph="iSCSI only",
    ephemeral_ceph="no RBD image backend",
    sahara="Sahara",
    murano="Murano",
    mongo="MongoDB",
    ironic="Ironic",
)


@pytest.mark.parametrize("option", sorted(REASONS))
def test_each_forbidden_option_is_refused_with_its_reason(option):
    problems = _preflight.option_problems({option: True})

    assert len(problems) == 1
    message = problems[0]["message"]
    assert message.startswith("openstack_options.%s is true, refused:" % option)
    assert REASONS[option] in message and "Set openstack_options.%s to false" % option in message
    assert not _preflight.option_problems({option: False})


@pytest.mark.parametrize(
    ("hypervisor", "reason"),
    [
        ("kvm", "no hardware virtualisation"),
        ("qemu", "emulate guests"),
        ("vcenter", "vSphere"),
        ("hyperv", "not XenServer"),
    ],
)
def test_a_hypervisor_other_than_xenserver_is_refused_with_its_reason(hypervisor, reason):
    problems = _preflight.option_problems(dict(hypervisor=hypervisor))

    assert len(problems) == 1
    assert "hypervisor is '%s', refused" % hypervisor in problems[0]["message"]
    assert reason in problems[0]["message"]


def test_xenserver_and_the_compatible_options_pass():
    for options in (None, {}, dict(hypervisor="xen"), dict(hypervisor="XenServer", ceilometer=True, images_ceph="yes")):
        assert _preflight.option_problems(options) == [], options


def test_malformed_options_are_refused():
    assert "unknown key 'volume_ceph'" in _preflight.option_problems(dict(volume_ceph=True))[0]["message"]
    assert "not true or false" in _preflight.option_problems(dict(sahara="maybe"))[0]["message"]
    assert "not a mapping" in _preflight.option_problems(["kvm"])[0]["message"]
