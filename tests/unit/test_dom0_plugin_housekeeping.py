"""The Dom0 plugin's housekeeping operations and its console log job, run the way xapi and cron run them, under
Dom0's Pythons (2.7 and 3.6).

Files go to a temporary root (XENSERVER_OPENSTACK_ROOT); ``service`` and the xenstore tools are stand-ins on PATH
that record what they are asked. The iptables chain is tested in a network namespace of its own (root only).
"""

import json
import os
import stat
import subprocess
import time

import pytest
from dom0harness import CHAIN, INTERPRETERS, LIBRARY, STOCK_RULES, Dom0, firewalled_dom0, load_plugin

RULES = [{"protocol": "tcp", "port": 6640}, {"protocol": "udp", "port": 4789}]
# Dom0's Pythons; the venv's runs the plugin in test_xen_dom0_config.py (through the simulator) and on the bed.
PYTHONS = pytest.mark.parametrize("python", ["python2.7", "python3.6"])
CONNTRACKD = {"hash_size": 32768, "hash_limit": 131072, "log_maxsize": "50M", "log_rotate": 7}
# What the misc_patches role's templates wrote with the role's defaults (collection 0.1.0): the plugin renders the
# same bytes, so a converged Dom0 stays converged (no conntrackd restart) after the upgrade.
CONNTRACKD_CONF = """\
# conntrackd in statistics mode, for the neutron security groups that run in Dom0.
# Written by the xenserver.openstack misc_patches role through its Dom0 plugin. The configuration conntrack-tools
# installed is kept in /etc/conntrackd/conntrackd.conf.back.
General {
\tNice -1
\tHashSize 32768
\tHashLimit 131072
\tLogFile on
\tLockFile /var/lock/conntrack.lock
\tUNIX {
\t\tPath /var/run/conntrackd.ctl
\t\tBacklog 20
\t}
\tNetlinkBufferSize 2097152
\tNetlinkBufferSizeMaxGrowth 8388608
\tFilter From Userspace {
\t\tAddress Ignore {
\t\t\tIPv4_address 127.0.0.1 # loopback
\t\t}
\t}
}

Stats {
\t# Destroyed connections go to /var/log/conntrackd-stats.log (rotated: /etc/logrotate.d/conntrackd).
\tLogFile on
}
"""
CONNTRACKD_LOGROTATE = """\
# conntrackd's logs in Dom0 (written by the xenserver.openstack misc_patches role through its Dom0 plugin).
/var/log/conntrackd.log /var/log/conntrackd-stats.log {
    daily
    maxsize 50M
    rotate 7
    copytruncate
    missingok
    notifempty
    compress
    delaycompress
}
"""


@pytest.fixture
def dom0(tmp_path):
    return Dom0(tmp_path)


# --- typed parameters and refusals ----------------------------------------------------------------------


@PYTHONS
def test_every_refusal_has_xapis_failure_shape_and_changes_nothing(dom0, python):
    assert INTERPRETERS[python], "%s is not installed" % python
    before = dom0.listing()
    for function, params, message in [
        ("cron_job", {"job": "anything"}, "job 'anything' is not one of: console-logs"),
        ("cron_job", {"job": "console-logs", "schedule": "* * * * * root rm -rf /"}, "is not five cron fields"),
        ("cron_job", {"job": "console-logs", "schedule": "* * * * ;"}, "is not five cron fields"),
        ("cron_job", {"job": "console-logs", "options": {"command": "x"}}, "unknown parameter(s) options.command"),
        ("cron_job", {"job": "console-logs", "options": {"max_size": "big"}}, "options.max_size must be an integer"),
        ("cron_job", {"job": "console-logs", "check": "yes"}, "check must be true or false"),
        ("cron_job", {"job": "console-logs", "check": 1}, "check must be true or false"),
        ("cron_job", {"schedule": "* * * * *"}, "job is required"),
        ("service_restart", {"service": "sshd"}, "service 'sshd' is not one of: conntrackd"),
        ("service_restart", {"service": "conntrackd; reboot"}, "is not one of: conntrackd"),
        ("modprobe_unblacklist", {"modules": ["nf_conntrack"]}, "modules[0] 'nf_conntrack' is not one of: bridge"),
        ("modprobe_unblacklist", {"modules": []}, "modules must have at least 1 item"),
        ("iptables_chain", {"rules": [{"protocol": "icmp", "port": 1}]}, "rules[0].protocol 'icmp' is not one of"),
        ("iptables_chain", {"rules": [{"protocol": "tcp", "port": 0}]}, "rules[0].port must be an integer from 1"),
        ("iptables_chain", {"rules": [{"protocol": "tcp", "port": 22.0}]}, "rules[0].port must be an integer from 1"),
        ("iptables_chain", {"rules": [{"protocol": "tcp", "port": 22, "jump": "DROP"}]}, "unknown parameter(s)"),
        ("iptables_chain", {"rules": []}, "rules must name at least one port"),
        ("conntrackd_config", {"content": "x"}, "unknown parameter(s) content"),
        ("conntrackd_config", {"log_maxsize": "50M; touch /x"}, "log_maxsize '50M; touch /x' is not a logrotate size"),
        ("conntrackd_config", {"hash_size": 1}, "hash_size must be an integer from 1024"),
        ("conntrackd_config", {"restart": "no"}, "restart must be true or false"),
        ("version", {"check": True}, "unknown parameter(s) check"),
    ]:
        assert message in dom0.refused(function, params, python), (function, params)
    assert dom0.listing() == before
    assert dom0.logged("service") == []


@PYTHONS
def test_command_output_that_is_not_ascii_is_read_in_the_c_locale(dom0, python):
    """Dom0's Python 3.6 runs plugins in the C locale: a command's non-ASCII output is not a traceback."""
    dom0.log.with_name("log.fail").write_bytes("conntrackd: caf\u00e9 \u2013 failed\n".encode() + b"\xff\n")
    message = dom0.refused("service_restart", {"service": "conntrackd"}, python, env={"LC_ALL": "C", "LANG": "C"})
    assert "'service conntrackd restart' failed (exit 1): conntrackd: caf\\xe9 \\u2013 failed" in message


def test_a_symlink_in_a_managed_directory_is_not_written_through(dom0, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("precious\n")
    dom0.file("etc/conntrackd").mkdir(parents=True)
    dom0.file("etc/conntrackd/conntrackd.conf").write_text("# conntrack-tools' file\n")
    dom0.file("etc/logrotate.d").mkdir(parents=True)
    dom0.file("etc/logrotate.d/conntrackd").symlink_to(outside)
    message = dom0.refused("conntrackd_config", {})
    assert "/etc/logrotate.d/conntrackd is a symbolic link: refusing to write through it" in message
    assert outside.read_text() == "precious\n"
    assert dom0.file("etc/conntrackd/conntrackd.conf").read_text() == "# conntrack-tools' file\n"


# --- the cron entry ---------------------------------------------------------------------------------------


@PYTHONS
def test_cron_entry_is_a_file_of_its_own_scheduled_once_and_other_entries_survive(dom0, python):
    others = {"xapi-logrotate": "*/5 * * * * root /usr/sbin/logrotate\n", "sysstat": "*/10 * * * * root sa1 1 1\n"}
    for name, text in others.items():
        dom0.file("etc/cron.d/" + name).write_text(text)
    job = {"job": "console-logs", "schedule": "*/1 * * * *", "options": {"max_size": 65536}}
    assert dom0.ok("cron_job", job, python)["changed"] is True
    assert dom0.ok("cron_job", job, python)["changed"] is False
    cron = dom0.file("etc/cron.d/xenserver-openstack-console-logs")
    lines = [line for line in cron.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == [
        'MAILTO=""',
        "*/1 * * * * root /usr/libexec/xenserver-openstack/rotate-console-logs "
        "--grace-minutes 10 --keep-size 5120 --max-size 65536",
    ]
    assert stat.S_IMODE(cron.stat().st_mode) == 0o644
    assert {name: dom0.file("etc/cron.d/" + name).read_text() for name in others} == others
    assert sorted(os.listdir(dom0.file("etc/cron.d"))) == sorted([*others, cron.name])
    assert json.loads(dom0.file("etc/sysconfig/xenserver-openstack-files.json").read_text()) == [
        "etc/cron.d/xenserver-openstack-console-logs"
    ]
    assert dom0.ok("cron_job", {"job": "console-logs", "state": "absent"}, python)["changed"] is True
    assert sorted(os.listdir(dom0.file("etc/cron.d"))) == sorted(others)
    assert json.loads(dom0.file("etc/sysconfig/xenserver-openstack-files.json").read_text()) == []


@PYTHONS
def test_cron_entry_absent_removes_only_the_plugins_own_file(dom0, python):
    cron = dom0.file("etc/cron.d/xenserver-openstack-console-logs")
    # A file of that name the plugin did not write stays.
    cron.write_text("* * * * * root /usr/local/bin/mine\n")
    result = dom0.ok("cron_job", {"job": "console-logs", "state": "absent"}, python)
    assert (result["changed"], result["after"]) == (False, "* * * * * root /usr/local/bin/mine\n")
    assert cron.read_text() == "* * * * * root /usr/local/bin/mine\n"
    # The file an older plugin wrote (without recording it) is recognised by its header, and goes.
    cron.write_text(
        "# xenserver.openstack: job console-logs of the Dom0 plugin /etc/xapi.d/plugins/xenserver_openstack.\n"
        'MAILTO=""\n* * * * * root /etc/xapi.d/plugins/xenserver_openstack rotate-console-logs\n'
    )
    assert dom0.ok("cron_job", {"job": "console-logs", "state": "absent"}, python)["changed"] is True
    assert not cron.exists()


# --- batch: several functions in one call --------------------------------------------------------------


def seed_conntrackd(dom0, text="# conntrack-tools' conntrackd.conf\nSync {\n}\n"):
    conf = dom0.file("etc/conntrackd/conntrackd.conf")
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(text)
    return conf


@PYTHONS
def test_batch_runs_the_calls_in_order_with_one_check_flag_and_reports_each(dom0, python):
    seed_conntrackd(dom0)
    job = {"job": "console-logs", "options": {"max_size": 65536}}
    calls = [
        {"function": "cron_job", "params": job},
        {"function": "conntrackd_config", "params": dict(CONNTRACKD, restart=False)},
        {"function": "service_restart", "params": {"service": "conntrackd"}},
    ]
    before = dom0.listing()
    checked = dom0.ok("batch", {"calls": calls, "check": True}, python)
    assert checked["changed"] is True
    assert [result["changed"] for result in checked["results"]] == [True, True, True]
    assert checked["results"][2]["restarted"] is False
    assert dom0.listing() == before and dom0.logged("service") == []

    done = dom0.ok("batch", {"calls": calls}, python)
    assert [result.get("path") for result in done["results"]] == [
        "/etc/cron.d/xenserver-openstack-console-logs",
        "/etc/conntrackd/conntrackd.conf",
        None,
    ]
    assert dom0.file("etc/logrotate.d/conntrackd").read_text() == CONNTRACKD_LOGROTATE
    assert dom0.logged("service") == ["conntrackd restart"]
    again = dom0.ok("batch", {"calls": calls[:2]}, python)
    assert again == {"changed": False, "results": again["results"]}
    assert [result["changed"] for result in again["results"]] == [False, False]


@PYTHONS
def test_batch_checks_every_call_before_it_runs_any(dom0, python):
    seed_conntrackd(dom0)
    before = dom0.listing()
    for params, message in [
        ({"calls": []}, "calls must be a non-empty list"),
        ({"calls": [{"function": "route_ensure", "params": {}}]}, "calls[0].function 'route_ensure' is not one of"),
        ({"calls": [{"function": "batch", "params": {}}]}, "calls[0].function 'batch' is not one of"),
        ({"calls": [{"function": "file_ensure", "params": {}}]}, "calls[0].function 'file_ensure' is not one of"),
        ({"calls": [{"function": "cron_job", "args": {}}]}, "unknown parameter(s) calls[0].args"),
        ({"calls": [{"function": "cron_job", "params": []}]}, "calls[0].params must be a JSON object"),
        (
            {"calls": [{"function": "service_restart", "params": {"service": "conntrackd", "check": True}}]},
            "calls[0].params must not have check",
        ),
        (
            {
                "calls": [
                    {"function": "conntrackd_config", "params": CONNTRACKD},
                    {"function": "cron_job", "params": {"job": "console-logs", "schedule": "* * *"}},
                    {"function": "service_restart", "params": {"service": "conntrackd"}},
                ]
            },
            "calls[1] (cron_job): schedule '* * *' is not five cron fields of digits and '*/,-'; no call of the batch "
            "was run",
        ),
    ]:
        assert message in dom0.refused("batch", params, python), params
    # Not even the calls before the refused one ran.
    assert dom0.listing() == before
    assert dom0.logged("service") == []


@PYTHONS
def test_a_batch_call_that_fails_stops_the_batch_and_names_what_was_done(dom0, python):
    seed_conntrackd(dom0)
    dom0.log.with_name("log.fail").write_text("conntrackd: no such service\n")
    calls = [
        {"function": "cron_job", "params": {"job": "console-logs"}},
        {"function": "service_restart", "params": {"service": "conntrackd"}},
        {"function": "modprobe_unblacklist", "params": {"modules": ["bridge"]}},
    ]
    message = dom0.refused("batch", {"calls": calls}, python)
    assert message == (
        "service_restart: 'service conntrackd restart' failed (exit 1): conntrackd: no such service "
        "(done before it: cron_job)"
    )
    assert dom0.file("etc/cron.d/xenserver-openstack-console-logs").exists()


# --- services, modprobe, conntrackd -------------------------------------------------------------------


@PYTHONS
def test_service_restart(dom0, python):
    assert dom0.ok("service_restart", {"service": "conntrackd", "check": True}, python)["restarted"] is False
    assert dom0.logged("service") == []
    assert dom0.ok("service_restart", {"service": "conntrackd"}, python)["restarted"] is True
    assert dom0.logged("service") == ["conntrackd restart"]


@PYTHONS
def test_bridge_is_no_longer_blacklisted_and_no_file_is_removed(dom0, python):
    modprobe = dom0.file("etc/modprobe.d")
    modprobe.mkdir(parents=True)
    (modprobe / "blacklist-bridge.conf").write_text(
        "# XenServer: openvswitch\nblacklist bridge\ninstall bridge /bin/true\n"
    )
    (modprobe / "dist.conf").write_text("alias bridge off\nblacklist bridgex\noptions bonding max_bonds=0\n")
    (modprobe / "other.conf").write_bytes(b"# caf\xe9 (Latin-1)\nblacklist floppy\n")
    (modprobe / "notes.txt").write_text("blacklist bridge\n")  # not a .conf file: modprobe does not read it
    before = dom0.listing()
    result = dom0.ok("modprobe_unblacklist", {"modules": ["bridge"], "check": True}, python)
    assert result["changed"] is True and dom0.listing() == before
    result = dom0.ok("modprobe_unblacklist", {"modules": ["bridge"]}, python)
    assert sorted(result["files"]) == ["/etc/modprobe.d/blacklist-bridge.conf", "/etc/modprobe.d/dist.conf"]
    assert sorted(os.listdir(modprobe)) == ["blacklist-bridge.conf", "dist.conf", "notes.txt", "other.conf"]
    assert (modprobe / "notes.txt").read_text() == "blacklist bridge\n"
    assert (modprobe / "blacklist-bridge.conf").read_text() == (
        "# XenServer: openvswitch\n# Commented out by xenserver.openstack: blacklist bridge\n"
        "# Commented out by xenserver.openstack: install bridge /bin/true\n"
    )
    assert (modprobe / "dist.conf").read_text() == (
        "# Commented out by xenserver.openstack: alias bridge off\nblacklist bridgex\noptions bonding max_bonds=0\n"
    )
    assert (modprobe / "other.conf").read_bytes() == b"# caf\xe9 (Latin-1)\nblacklist floppy\n"
    assert dom0.ok("modprobe_unblacklist", {"modules": ["bridge"]}, python)["changed"] is False


def test_conntrackd_files_are_what_the_role_templates_wrote():
    plugin = load_plugin()
    assert plugin.CONNTRACKD_TEXT % CONNTRACKD == CONNTRACKD_CONF
    assert plugin.LOGROTATE_TEXT % CONNTRACKD == CONNTRACKD_LOGROTATE


@PYTHONS
def test_conntrackd_stats_mode_backup_once_logrotate_restart_on_change(dom0, python):
    conf = seed_conntrackd(dom0)
    before = dom0.listing()
    assert dom0.ok("conntrackd_config", dict(CONNTRACKD, check=True), python)["changed"] is True
    assert dom0.listing() == before and dom0.logged("service") == []

    result = dom0.ok("conntrackd_config", CONNTRACKD, python)
    assert (result["changed"], result["backed_up"], result["restarted"]) == (True, True, True)
    assert (
        dom0.file("etc/conntrackd/conntrackd.conf.back").read_text()
        == "# conntrack-tools' conntrackd.conf\nSync {\n}\n"
    )
    assert conf.read_text() == CONNTRACKD_CONF
    assert dom0.file("etc/logrotate.d/conntrackd").read_text() == CONNTRACKD_LOGROTATE
    assert dom0.logged("service") == ["conntrackd restart"]
    assert sorted(os.listdir(conf.parent)) == ["conntrackd.conf", "conntrackd.conf.back"]  # no marker left

    again = dom0.ok("conntrackd_config", CONNTRACKD, python)
    assert (again["changed"], again["restarted"]) == (False, False)
    assert dom0.logged("service") == ["conntrackd restart"]

    # A logrotate change alone does not restart conntrackd; the backup is never replaced.
    result = dom0.ok("conntrackd_config", dict(CONNTRACKD, log_rotate=14, log_maxsize="1G"), python)
    assert (result["changed"], result["restarted"], result["backed_up"]) == (True, False, False)
    assert "    maxsize 1G\n    rotate 14\n" in dom0.file("etc/logrotate.d/conntrackd").read_text()
    assert (
        dom0.file("etc/conntrackd/conntrackd.conf.back").read_text()
        == "# conntrack-tools' conntrackd.conf\nSync {\n}\n"
    )
    # New table sizes: restarted again.
    assert dom0.ok("conntrackd_config", dict(CONNTRACKD, hash_size=65536), python)["restarted"] is True
    assert "\tHashSize 65536\n" in conf.read_text()


def test_conntrackd_restart_failure_is_retried_next_time(dom0):
    seed_conntrackd(dom0, "# original\n")
    dom0.log.with_name("log.fail").write_text("")
    assert "'service conntrackd restart' failed (exit 1)" in dom0.refused("conntrackd_config", {})
    dom0.log.with_name("log.fail").unlink()
    assert dom0.ok("conntrackd_config", {})["restarted"] is True
    assert dom0.ok("conntrackd_config", {})["restarted"] is False
    assert dom0.logged("service") == ["conntrackd restart"] * 2


def test_files_are_fsynced_with_their_directory(tmp_path, monkeypatch):
    library = load_plugin(LIBRARY, "xenserver_openstack_library")
    monkeypatch.setattr(library, "ROOT", str(tmp_path))
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        library.os, "fsync", lambda fd: synced.append(os.readlink("/proc/self/fd/%d" % fd)) or real_fsync(fd)
    )
    library.write_text("etc/cron.d/job", "* * * * * root true\n", 0o644)
    target = tmp_path / "etc" / "cron.d" / "job"
    assert target.read_text() == "* * * * * root true\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    # The temporary file (renamed over the target afterwards), then the directory that holds the new name.
    assert [os.path.dirname(synced[0]), synced[1]] == [str(target.parent)] * 2
    assert os.listdir(target.parent) == ["job"]


# --- the console log job ----------------------------------------------------------------------------------


def boot_time():
    with open("/proc/stat") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("btime "))


@PYTHONS
def test_console_log_job_keeps_logging_on_trims_and_deletes(dom0, tmp_path, python):
    logs = tmp_path / "guest"
    logs.mkdir()
    for domid in (0, 1, 4):
        (dom0.store / "local" / "domain" / str(domid)).mkdir()
    line = b"console output of a busy guest, line %06d\n"
    (logs / "console.1").write_bytes(b"".join(line % n for n in range(2000)))  # live, 84 kB: trimmed
    (logs / "console.2").write_bytes(b"old guest\n")  # gone, old: deleted
    (logs / "console.3").write_bytes(b"just stopped\n")  # gone, recent: kept for the grace period
    (logs / "console.4").write_bytes(b"previous boot's guest 4\n")  # live id, written before this boot: emptied
    (logs / "notes.txt").write_bytes(b"not a console log\n")
    old = time.time() - 3600
    os.utime(logs / "console.2", (old, old))
    os.utime(logs / "console.4", (boot_time() - 60, boot_time() - 60))

    argv = dom0.job(python, "rotate-console-logs", "--log-dir", str(logs), "--max-size", "65536", "--keep-size", "4096")
    run = subprocess.run([*argv, "--no-syslog"], capture_output=True, text=True, env=dom0.env, check=False)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report == {
        "log_dir": str(logs),
        "logging": "turned on",
        "deleted": ["console.2"],
        "emptied": ["console.4"],
        "trimmed": ["console.1"],
    }
    assert (dom0.store / "local" / "logconsole" / "@").read_text() == "%s/console.%%d" % logs
    assert sorted(n for n in os.listdir(logs) if not n.startswith(".")) == [
        "console.1",
        "console.3",
        "console.4",
        "notes.txt",
    ]
    trimmed = (logs / "console.1").read_bytes()
    assert len(trimmed) <= 4096 and trimmed.endswith(line % 1999) and trimmed.startswith(b"console output")
    assert (logs / "console.4").read_bytes() == b""
    assert (logs / "console.3").read_bytes() == b"just stopped\n"

    # Every minute after: logging is left as it is (no xenstore write), nothing else to do.
    run = subprocess.run([*argv, "--no-syslog"], capture_output=True, text=True, env=dom0.env, check=True)
    again = json.loads(run.stdout)
    assert (again["logging"], again["deleted"], again["emptied"], again["trimmed"]) == ("kept", [], [], [])
    assert dom0.logged("xenstore") == ["/local/logconsole/@=%s/console.%%d" % logs]


def test_console_log_job_deletes_nothing_when_it_cannot_list_domains(dom0, tmp_path):
    logs = tmp_path / "guest"
    logs.mkdir()
    (logs / "console.7").write_bytes(b"x\n")
    os.utime(logs / "console.7", (0, 0))
    (dom0.bin / "xenstore-list").write_text("#!/bin/sh\necho 'xenstored is not running' >&2\nexit 1\n")
    argv = dom0.job("venv", "rotate-console-logs", "--log-dir", str(logs), "--no-syslog")
    run = subprocess.run(argv, capture_output=True, text=True, env=dom0.env, check=False)
    assert run.returncode == 1 and "xenstored is not running" in run.stderr
    assert [n for n in os.listdir(logs) if not n.startswith(".")] == ["console.7"]


@PYTHONS
def test_the_cron_file_of_an_older_pack_still_works_until_cron_job_rewrites_it(dom0, tmp_path, python):
    """An older pack's cron file runs ``xenserver_openstack rotate-console-logs ...``: the plugin runs the job's own
    file for it (same arguments, same answer) until the next cron_job rewrites the file, once."""
    logs = tmp_path / "guest"
    logs.mkdir()
    (dom0.store / "local" / "domain" / "1").mkdir()
    (logs / "console.1").write_bytes(b"x" * 9000)
    argv = dom0.argv(python, "rotate-console-logs", "--log-dir", str(logs), "--max-size", "8192", "--keep-size", "0")
    run = subprocess.run([*argv, "--no-syslog"], capture_output=True, text=True, env=dom0.env, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["trimmed"] == ["console.1"] and (logs / "console.1").read_bytes() == b""

    cron = dom0.file("etc/cron.d/xenserver-openstack-console-logs")
    older = (
        "# xenserver.openstack: job console-logs of the Dom0 plugin /etc/xapi.d/plugins/xenserver_openstack.\n"
        'MAILTO=""\n* * * * * root /etc/xapi.d/plugins/xenserver_openstack rotate-console-logs '
        "--grace-minutes 10 --keep-size 5120 --max-size 1048576\n"
    )
    cron.write_text(older)
    cron.chmod(0o644)
    result = dom0.ok("cron_job", {"job": "console-logs"}, python)
    assert (result["changed"], result["before"]) == (True, older)
    assert "root /usr/libexec/xenserver-openstack/rotate-console-logs --grace-minutes" in cron.read_text()
    assert dom0.ok("cron_job", {"job": "console-logs"}, python)["changed"] is False


# --- the iptables chain, in a network namespace ------------------------------------------------------------


def test_saved_rules_are_edited_in_place_and_restored_by_absent():
    plugin = load_plugin()
    wanted = plugin.wanted_rules(RULES)
    edited = plugin.edit_saved_rules(STOCK_RULES, wanted, True)
    lines = edited.splitlines()
    assert lines.index(":%s - [0:0]" % CHAIN) == lines.index(":RH-Firewall-1-INPUT - [0:0]") + 1
    assert lines.index("-A INPUT -j %s" % CHAIN) == lines.index("-A INPUT -j RH-Firewall-1-INPUT") - 1
    assert lines[-3:] == [
        "-A %s -p tcp -m tcp --dport 6640 -j ACCEPT" % CHAIN,
        "-A %s -p udp -m udp --dport 4789 -j ACCEPT" % CHAIN,
        "COMMIT",
    ]
    assert [line for line in lines if CHAIN not in line] == STOCK_RULES.splitlines()
    assert plugin.edit_saved_rules(edited, wanted, True) is edited
    assert plugin.edit_saved_rules(edited, wanted, False) == STOCK_RULES
    doubled = edited.replace("-A INPUT -j RH", "-A INPUT -j %s\n-A INPUT -j RH" % CHAIN)
    assert plugin.edit_saved_rules(doubled, wanted, True) == edited
    fresh = plugin.edit_saved_rules(None, wanted, True)
    assert fresh.splitlines()[0] == "*filter" and fresh.count("-A INPUT -j %s" % CHAIN) == 1


@pytest.fixture
def netns_dom0(tmp_path):
    with firewalled_dom0(tmp_path, "hk-plugin-") as dom0:
        yield dom0


def live_rules(dom0):
    out = subprocess.run(
        ["ip", "netns", "exec", dom0.netns, "iptables", "-S"], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


@pytest.mark.root
@PYTHONS
def test_iptables_chain_now_and_at_boot_once_and_removed(netns_dom0, python):
    dom0 = netns_dom0
    before, saved = live_rules(dom0), dom0.file("etc/sysconfig/iptables")
    checked = dom0.ok("iptables_chain", {"rules": RULES, "check": True}, python)
    assert checked["changed"] is True and live_rules(dom0) == before and saved.read_text() == STOCK_RULES

    result = dom0.ok("iptables_chain", {"rules": RULES}, python)
    assert result["changed"] is True and result["saved_changed"] is True
    rules = live_rules(dom0)
    assert rules.count("-A INPUT -j %s" % CHAIN) == 1
    assert rules.index("-A INPUT -j %s" % CHAIN) < rules.index("-A INPUT -j RH-Firewall-1-INPUT")
    assert "-A %s -p tcp -m tcp --dport 6640 -j ACCEPT" % CHAIN in rules
    assert "-A %s -p udp -m udp --dport 4789 -j ACCEPT" % CHAIN in rules
    # What Dom0's iptables service loads at boot gives the same rules.
    reloaded = subprocess.run(
        ["ip", "netns", "exec", dom0.netns, "iptables-restore", "--test"],
        input=saved.read_text(),
        text=True,
        check=False,
    )
    assert reloaded.returncode == 0
    assert saved.read_text().count("-A INPUT -j %s" % CHAIN) == 1

    assert dom0.ok("iptables_chain", {"rules": RULES}, python)["changed"] is False

    # A second jump (someone ran the old script by hand) and a stray rule in the chain are put right.
    subprocess.run(["ip", "netns", "exec", dom0.netns, "iptables", "-A", "INPUT", "-j", CHAIN], check=True)
    subprocess.run(["ip", "netns", "exec", dom0.netns, "iptables", "-A", CHAIN, "-j", "ACCEPT"], check=True)
    assert dom0.ok("iptables_chain", {"rules": RULES}, python)["changed"] is True
    assert sorted(live_rules(dom0)) == sorted(rules)

    assert dom0.ok("iptables_chain", {"state": "absent"}, python)["changed"] is True
    assert live_rules(dom0) == before and saved.read_text() == STOCK_RULES
    assert dom0.ok("iptables_chain", {"state": "absent"}, python)["changed"] is False
