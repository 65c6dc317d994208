"""xen_dom0_config against the XAPI simulator: the real XenAPI client, host.call_plugin running the real Dom0 plugin.

The plugin runs in the simulator's Dom0 (root only: its /etc is the simulator's root, tests/xapisim/dom0.py);
``service`` is a stand-in first on its PATH that records its arguments. Operations that need a network namespace of
their own (the iptables chain) are tested in test_dom0_plugin_housekeeping.py and on the bed.
"""

import os
import stat
from pathlib import Path

import pytest
from ansible_collections.xenserver.openstack.plugins.modules import xen_dom0_config
from xapisim.dom0 import install_collection_files

CRON = "etc/cron.d/xenserver-openstack-console-logs"
CONNTRACKD = dict(hash_size=32768, hash_limit=131072)
FAKE_SERVICE = '#!/bin/sh\necho "$*" >> %s\n[ ! -e %s.fail ]\n'

pytestmark = pytest.mark.root


@pytest.fixture
def dom0(xapi_sim, tmp_path):
    """Start a simulator for a scenario with the plugin installed; return (sim, Dom0 root, service log)."""

    def start(scenario="xcpng-8.3", plugin=True):
        bin_dir, log = tmp_path / "bin", tmp_path / "service.log"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "service").write_text(FAKE_SERVICE % (log, log))
        (bin_dir / "service").chmod(0o755)
        sim = xapi_sim(scenario, bin_dirs=[str(bin_dir)])
        if plugin:
            install_collection_files(sim.root)
        return sim, Path(sim.root), log

    return start


def restarts(log):
    return log.read_text().splitlines() if log.exists() else []


def test_console_log_rotation_is_one_cron_file_of_its_own_and_idempotent(dom0, run_module):
    sim, root, _log = dom0()
    other = root / "etc" / "cron.d" / "xapi-logrotate"
    other.write_text("*/5 * * * * root /usr/sbin/logrotate /etc/logrotate.conf\n")
    job = dict(max_size=65536, keep_size=4096)

    checked = run_module(xen_dom0_config, sim.module_args(console_log_rotation=job), check_mode=True)
    assert checked["changed"] is True
    assert not (root / CRON).exists()

    result = run_module(xen_dom0_config, sim.module_args(console_log_rotation=job))
    assert result["changed"] is True, result
    text = (root / CRON).read_text()
    assert 'MAILTO=""' in text.splitlines()
    jobs = [line for line in text.splitlines() if line and not line.startswith(("#", "MAILTO"))]
    assert jobs == [
        "* * * * * root /usr/libexec/xenserver-openstack/rotate-console-logs "
        "--grace-minutes 10 --keep-size 4096 --max-size 65536"
    ]
    assert stat.S_IMODE(os.stat(root / CRON).st_mode) == 0o644
    assert result["diff"][0]["after_header"] == "Dom0 /" + CRON
    assert other.read_text() == "*/5 * * * * root /usr/sbin/logrotate /etc/logrotate.conf\n"

    again = run_module(xen_dom0_config, sim.module_args(console_log_rotation=job))
    assert again["changed"] is False and again["diff"] == []

    gone = run_module(xen_dom0_config, sim.module_args(console_log_rotation=dict(state="absent")))
    assert gone["changed"] is True and not (root / CRON).exists() and other.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            dict(conntrackd=dict(log_maxsize="1M\n\tpostrotate")),
            'log_maxsize "1M\\n\\tpostrotate" is not a logrotate size',
        ),
        (dict(conntrackd=dict(hash_size=10)), "hash_size must be an integer from 1024 to 16777216, not 10"),
        (dict(console_log_rotation=dict(schedule="* * * *")), "schedule '* * * *' is not five cron fields"),
        (
            dict(console_log_rotation=dict(max_size=8192, keep_size=8192)),
            "options.keep_size must be smaller than options.max_size",
        ),
        (dict(firewall=dict(ports=[dict(protocol="tcp", port=70000)])), "rules[0].port must be an integer from 1"),
    ],
)
def test_refusals_are_the_plugins_message_as_is_and_change_nothing(dom0, run_module, extra, message):
    sim, root, _log = dom0()
    result = run_module(xen_dom0_config, sim.module_args(**extra))
    assert result["failed"] is True
    assert result["msg"].startswith("Dom0 refused host.call_plugin on %s: " % sim.url), result["msg"]
    assert message in result["msg"]
    assert result["xapi_error"][:2] == ["XENAPI_PLUGIN_FAILURE", result["xapi_error"][1]]
    assert result["xapi_error"][2] == "PluginError"
    assert os.listdir(root / "etc" / "cron.d") == []


def test_a_service_outside_the_list_is_refused_by_the_module_and_by_the_plugin(dom0, run_module, tmp_path):
    sim, _root, log = dom0()
    result = run_module(xen_dom0_config, sim.module_args(restart_services=["sshd"]))
    assert result["failed"] and "value of restart_services must be one or more of: conntrackd" in result["msg"]
    # The plugin refuses it too, for any caller.
    import XenAPI

    session = XenAPI.Session(sim.url)
    session.xenapi.login_with_password("root", sim.scenario["credentials"]["password"], "2.0", "test")
    host = session.xenapi.host.get_all()[0]
    with pytest.raises(XenAPI.Failure) as failure:
        session.xenapi.host.call_plugin(
            host, "xenserver_openstack", "service_restart", {"params": '{"service": "sshd"}'}
        )
    assert failure.value.details == [
        "XENAPI_PLUGIN_FAILURE",
        "service_restart",
        "PluginError",
        "service 'sshd' is not one of: conntrackd",
    ]
    assert restarts(log) == []


def test_restart_services_restarts_and_check_mode_does_not(dom0, run_module):
    sim, _root, log = dom0()
    checked = run_module(xen_dom0_config, sim.module_args(restart_services=["conntrackd"]), check_mode=True)
    assert checked["changed"] is True and restarts(log) == []
    result = run_module(xen_dom0_config, sim.module_args(restart_services=["conntrackd"]))
    assert result["changed"] is True and restarts(log) == ["conntrackd restart"]


def test_conntrackd_backs_up_once_and_restarts_only_on_change(dom0, run_module):
    sim, root, log = dom0()
    conf = root / "etc" / "conntrackd" / "conntrackd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("# the distribution's conntrackd.conf\n")
    options = dict(conntrackd=CONNTRACKD)

    checked = run_module(xen_dom0_config, sim.module_args(**options), check_mode=True)
    assert checked["changed"] is True and restarts(log) == []
    assert sorted(os.listdir(conf.parent)) == ["conntrackd.conf"]

    result = run_module(xen_dom0_config, sim.module_args(**options))
    assert result["changed"] is True, result
    assert result["operations"]["conntrackd"]["backed_up"] is True
    assert (conf.parent / "conntrackd.conf.back").read_text() == "# the distribution's conntrackd.conf\n"
    assert "\tHashSize 32768\n\tHashLimit 131072\n" in conf.read_text()
    assert "    maxsize 50M\n    rotate 7\n" in (root / "etc" / "logrotate.d" / "conntrackd").read_text()
    assert restarts(log) == ["conntrackd restart"]
    assert result["diff"][0]["before"] == "# the distribution's conntrackd.conf\n"

    again = run_module(xen_dom0_config, sim.module_args(**options))
    assert again["changed"] is False and restarts(log) == ["conntrackd restart"]

    # A new configuration: restarted again, the original backup kept as it was.
    changed = dict(conntrackd=dict(CONNTRACKD, hash_limit=262144))
    result = run_module(xen_dom0_config, sim.module_args(**changed))
    assert result["changed"] and restarts(log) == ["conntrackd restart"] * 2
    assert (conf.parent / "conntrackd.conf.back").read_text() == "# the distribution's conntrackd.conf\n"


def test_a_failed_conntrackd_restart_is_retried_on_the_next_run(dom0, run_module, tmp_path):
    sim, root, log = dom0()
    conf = root / "etc" / "conntrackd" / "conntrackd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("# original\n")
    (tmp_path / "service.log.fail").write_text("")
    options = dict(conntrackd=CONNTRACKD)
    failed = run_module(xen_dom0_config, sim.module_args(**options))
    assert failed["failed"] and "'service conntrackd restart' failed (exit 1)" in failed["msg"]
    (tmp_path / "service.log.fail").unlink()
    result = run_module(xen_dom0_config, sim.module_args(**options))
    assert result["changed"] is True and result["operations"]["conntrackd"]["restarted"] is True
    assert restarts(log) == ["conntrackd restart"] * 2
    assert run_module(xen_dom0_config, sim.module_args(**options))["changed"] is False


def test_conntrackd_is_skipped_with_the_reason_where_dom0_has_no_conntrack_tools(dom0, run_module):
    """No conntrackd.conf (the file conntrack-tools installs): nothing written, nothing restarted, the reason said;
    the other operations of the same run still run."""
    sim, root, log = dom0()
    options = dict(conntrackd=CONNTRACKD, console_log_rotation=dict())
    for check_mode in (True, False):
        result = run_module(xen_dom0_config, sim.module_args(**options), check_mode=check_mode)
        assert not result.get("failed"), result
        assert result["not_run"] == {
            "conntrackd": "conntrack-tools is not installed in Dom0 (no /etc/conntrackd/conntrackd.conf): conntrackd "
            "is left alone. To have it configured, install conntrack-tools in Dom0 (yum install conntrack-tools) and "
            "run again"
        }
        assert "conntrackd" not in result["operations"] and "console_log_rotation" in result["operations"]
    assert restarts(log) == []
    assert os.listdir(root / "etc" / "conntrackd") == []
    assert not (root / "etc" / "logrotate.d" / "conntrackd").exists()


def test_conntrackd_is_skipped_on_xenserver_6_5(dom0, run_module):
    sim, root, log = dom0("xenserver-6.5")
    result = run_module(xen_dom0_config, sim.module_args(conntrackd=CONNTRACKD, console_log_rotation=dict()))
    assert result["changed"] is True, result
    assert result["not_run"] == {
        "conntrackd": "XenServer 6.5.0 (platform 1.9.0) has no conntrack: conntrackd is left alone"
    }
    assert "conntrackd" not in result["operations"]
    assert os.listdir(root / "etc" / "conntrackd") == [] and restarts(log) == []
    assert (root / CRON).exists()


def test_bridge_blacklist_is_commented_out_and_other_lines_kept(dom0, run_module):
    sim, root, _log = dom0()
    modprobe = root / "etc" / "modprobe.d"
    modprobe.mkdir(parents=True, exist_ok=True)
    (modprobe / "blacklist-bridge.conf").write_text("# no Linux bridges with openvswitch\nblacklist bridge\n")
    (modprobe / "local.conf").write_text("options foo bar=1\ninstall bridge /bin/true\nblacklist bridge2\n")
    result = run_module(xen_dom0_config, sim.module_args(unblacklist_modules=["bridge"]))
    assert result["changed"] is True
    assert sorted(os.listdir(modprobe)) == ["blacklist-bridge.conf", "local.conf"]
    assert (modprobe / "local.conf").read_text() == (
        "options foo bar=1\n# Commented out by xenserver.openstack: install bridge /bin/true\nblacklist bridge2\n"
    )
    assert {d["before_header"] for d in result["diff"]} == {
        "Dom0 /etc/modprobe.d/blacklist-bridge.conf",
        "Dom0 /etc/modprobe.d/local.conf",
    }
    assert run_module(xen_dom0_config, sim.module_args(unblacklist_modules=["bridge"]))["changed"] is False


def test_by_host_uuid(dom0, run_module):
    sim, root, _log = dom0()
    host_uuid = sim.scenario["hosts"]["host1"]["uuid"]
    args = sim.module_args(console_log_rotation=dict(), host_uuid=host_uuid)
    del args["vm_uuid"]
    result = run_module(xen_dom0_config, args)
    assert result["changed"] is True and result["host"] == host_uuid
    assert (root / CRON).exists()
    assert run_module(xen_dom0_config, args)["changed"] is False


def test_free_text_options_are_gone(dom0, run_module):
    """Finding 1 of issue 18 at the module: no option carries text into a Dom0 file."""
    sim, root, _log = dom0()
    files = [dict(path="/etc/logrotate.d/evil", content="/x {\n postrotate\n  touch /x\n endscript\n}\n")]
    for options in (
        dict(files=files, console_log_rotation=dict()),
        dict(conntrackd=dict(config="General {\n}\n", logrotate=files[0]["content"])),
    ):
        result = run_module(xen_dom0_config, sim.module_args(**options))
        assert result["failed"] and "Unsupported parameters" in result["msg"], result
    assert os.listdir(root / "etc" / "logrotate.d") == []  # Dom0 has the directory, nothing went into it


def test_without_the_plugin_the_module_says_to_install_it(dom0, run_module):
    sim, _root, _log = dom0(plugin=False)
    result = run_module(xen_dom0_config, sim.module_args(console_log_rotation=dict()))
    assert (
        result["failed"] and "Install the Dom0 plugins first (role xenserver.openstack.dom0_suppack)" in result["msg"]
    )


def test_all_operations_are_one_plugin_call_and_report_in_order(dom0, run_module):
    sim, root, log = dom0()
    conf = root / "etc" / "conntrackd" / "conntrackd.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("# original\n")
    (root / "etc" / "modprobe.d").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "modprobe.d" / "blacklist-bridge.conf").write_text("blacklist bridge\n")
    options = dict(
        unblacklist_modules=["bridge"],
        conntrackd=CONNTRACKD,
        console_log_rotation=dict(),
        restart_services=["conntrackd"],
    )
    sim.reset_counts()
    result = run_module(xen_dom0_config, sim.module_args(**options))
    assert result["changed"] is True, result
    assert sim.counts()["host.call_plugin"] == 1
    assert sorted(result["operations"]) == [
        "conntrackd",
        "console_log_rotation",
        "restart_services",
        "unblacklist_modules",
    ]
    assert result["operations"]["restart_services"] == [{"changed": True, "service": "conntrackd", "restarted": True}]
    # conntrackd restarted for its new configuration, then by restart_services (which runs last).
    assert restarts(log) == ["conntrackd restart"] * 2
    assert [diff["after_header"] for diff in result["diff"]] == [
        "Dom0 /etc/modprobe.d/blacklist-bridge.conf",
        "Dom0 /etc/conntrackd/conntrackd.conf",
        "Dom0 /" + CRON,
    ]

    sim.reset_counts()
    del options["restart_services"]
    again = run_module(xen_dom0_config, sim.module_args(**options))
    assert again["changed"] is False and again["diff"] == [], again
    # One read of the host (its record) and one plugin call.
    calls = sim.counts()
    assert {name: n for name, n in calls.items() if name.startswith("host.")} == {
        "host.get_record": 1,
        "host.call_plugin": 1,
    }, calls


def test_finding_9_no_file_mode_of_the_callers_choosing_reaches_dom0(dom0, run_module):
    """Issue 18, finding 9: YAML reads an unquoted 0644 as the integer 420, which Ansible turned into the string
    "420" of the files option, and the plugin wrote mode 0420. There is no such option any more: the plugin writes
    only files it renders, each with its fixed mode."""
    sim, root, _log = dom0()
    files = [dict(path="/etc/logrotate.d/openvswitch-extra", content="/var/log/x.log {\n}\n", mode=420)]
    result = run_module(xen_dom0_config, sim.module_args(files=files, console_log_rotation=dict()))
    assert result["failed"] is True and "Unsupported parameters" in result["msg"] and "files" in result["msg"]
    assert os.listdir(root / "etc" / "logrotate.d") == []  # Dom0 has the directory, nothing went into it
    assert not (root / CRON).exists()
    run_module(xen_dom0_config, sim.module_args(console_log_rotation=dict()))
    assert stat.S_IMODE(os.stat(root / CRON).st_mode) == 0o644


def test_xapi_pending_predicts_every_operation_without_any_xapi_call(dom0, run_module):
    sim, root, _log = dom0(plugin=False)
    firewall = dict(ports=[dict(protocol="tcp", port=6640)])
    args = sim.module_args(conntrackd=CONNTRACKD, unblacklist_modules=["bridge"], firewall=firewall, xapi_pending=True)
    before = sorted((str(path), path.stat().st_mtime) for path in root.rglob("*") if path.is_file())
    result = run_module(xen_dom0_config, args, check_mode=True)
    assert result["changed"] and result["predicted"], result
    # conntrackd planned although the platform is unknown; the platform is named as not checked.
    assert sorted(result["operations"]) == ["conntrackd", "firewall", "unblacklist_modules"], result
    assert result["not_run"] == {} and result["host"] == ""
    assert any("platform" in what for what in result["not_checked"]), result
    assert sim.counts() == {}
    assert sorted((str(path), path.stat().st_mtime) for path in root.rglob("*") if path.is_file()) == before
