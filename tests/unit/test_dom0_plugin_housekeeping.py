"""The Dom0 plugin's housekeeping operations and its console log job, run the way xapi and cron run them, under
Dom0's Pythons (2.7 and 3.6).

Files go to a temporary root (XENSERVER_OPENSTACK_ROOT); ``service`` and the xenstore tools are stand-ins on PATH
that record what they are asked. The iptables chain is tested in a network namespace of its own (root only).
"""

import importlib.machinery
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
import xmlrpc.client

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = os.path.join(os.path.dirname(TESTS), "dom0", "etc", "xapi.d", "plugins", "xenserver_openstack")
DOM0LIB = os.path.join(TESTS, "xapisim", "dom0lib")
CHAIN = "xenserver-openstack-neutron"
RULES = [{"protocol": "tcp", "port": 6640}, {"protocol": "udp", "port": 4789}]


def pyenv_python(version):
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False).stdout.strip()
    short = ".".join(version.split(".")[:2])
    candidate = os.path.join(root, "versions", version, "bin", "python" + short) if root else ""
    return candidate if os.access(candidate, os.X_OK) else shutil.which("python" + short)


INTERPRETERS = {"python2.7": pyenv_python("2.7.18"), "python3.6": pyenv_python("3.6.15"), "venv": sys.executable}
# Dom0's Pythons; the venv's runs the plugin in test_xen_dom0_config.py (through the simulator) and on the bed.
PYTHONS = pytest.mark.parametrize("python", ["python2.7", "python3.6"])

STANDINS = {
    # service NAME restart: logged; fails while <log>.fail exists.
    "service": '#!/bin/sh\necho "$*" >> "$FAKE_LOG.service"\n[ ! -e "$FAKE_LOG.fail" ]\n',
    # xenstore: one file per key under $FAKE_XENSTORE; /local/domain/<id> directories are the domains.
    "xenstore-read": '#!/bin/sh\ncat "$FAKE_XENSTORE$1" 2>/dev/null || { echo "could not read $1" >&2; exit 1; }\n',
    "xenstore-write": '#!/bin/sh\nmkdir -p "$(dirname "$FAKE_XENSTORE$1")"\nprintf %s "$2" > "$FAKE_XENSTORE$1"\n'
    'echo "$1=$2" >> "$FAKE_LOG.xenstore"\n',
    "xenstore-list": '#!/bin/sh\nls "$FAKE_XENSTORE$1"\n',
}


class Dom0:
    """A Dom0 file root with stand-in commands; ``call`` runs a plugin function as xapi does."""

    def __init__(self, tmp_path, netns=None):
        self.root = tmp_path / "root"
        self.log = tmp_path / "log"
        self.store = tmp_path / "xenstore"
        self.bin = tmp_path / "bin"
        self.netns = netns
        for directory in (self.root / "etc" / "cron.d", self.store / "local" / "domain", self.bin):
            directory.mkdir(parents=True, exist_ok=True)
        for name, text in STANDINS.items():
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.env = dict(
            os.environ,
            PYTHONPATH=DOM0LIB,
            XENSERVER_OPENSTACK_ROOT=str(self.root),
            FAKE_LOG=str(self.log),
            FAKE_XENSTORE=str(self.store),
            PATH="%s:%s" % (self.bin, os.environ["PATH"]),
        )

    def argv(self, python, *args):
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*prefix, INTERPRETERS[python], PLUGIN, *args]

    def call(self, function, params=None, python="venv"):
        """Return (Status, Value or ErrorDescription)."""
        args = {"params": json.dumps(params)} if params is not None else {}
        call = xmlrpc.client.dumps(("OpaqueRef:session", args), methodname=function)
        run = subprocess.run(self.argv(python, call), capture_output=True, text=True, env=self.env, check=True)
        answer = xmlrpc.client.loads(run.stdout)[0][0]
        if answer["Status"] == "Success":
            return "Success", json.loads(answer["Value"])
        return "Failure", answer["ErrorDescription"]

    def ok(self, function, params, python="venv"):
        status, result = self.call(function, params, python)
        assert status == "Success", result
        return result

    def refused(self, function, params, python="venv"):
        status, error = self.call(function, params, python)
        assert status == "Failure", error
        assert error[:3] == ["XENAPI_PLUGIN_FAILURE", function, "PluginError"], error
        return error[3]

    def file(self, relative):
        return self.root / relative

    def listing(self):
        """Every file under the root with its content (to show that nothing changed)."""
        return {
            os.path.join(folder, name): open(os.path.join(folder, name), "rb").read()
            for folder, _dirs, names in os.walk(self.root)
            for name in names
            if not name.endswith(".lock")
        }

    def logged(self, what):
        path = self.log.with_name(self.log.name + "." + what)
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def dom0(tmp_path):
    return Dom0(tmp_path)


# --- typed parameters and refusals ----------------------------------------------------------------------


@PYTHONS
def test_every_refusal_has_xapis_failure_shape_and_changes_nothing(dom0, python):
    assert INTERPRETERS[python], "%s is not installed" % python
    before = dom0.listing()
    for function, params, message in [
        ("file_ensure", {"path": "/etc/passwd", "content": "x"}, '"/etc/passwd" is not a file this plugin manages'),
        ("file_ensure", {"path": "/etc/logrotate.d/../passwd"}, "is not a file this plugin manages"),
        ("file_ensure", {"path": "/etc/logrotate.d/sub/x"}, "only files directly in /etc/logrotate.d"),
        ("file_ensure", {"path": "etc/logrotate.d/x"}, "is not a file this plugin manages"),
        ("file_ensure", {"path": "/etc/cron.d/x"}, "is not a file this plugin manages"),
        ("file_ensure", {"path": "/etc/logrotate.d/x", "mode": "0755"}, "without execute or special bits"),
        ("file_ensure", {"path": "/etc/logrotate.d/x", "owner": "root"}, "unknown parameter(s) owner"),
        ("cron_job", {"job": "anything"}, "job 'anything' is not one of: console-logs"),
        ("cron_job", {"job": "console-logs", "schedule": "* * * * * root rm -rf /"}, "is not five cron fields"),
        ("cron_job", {"job": "console-logs", "schedule": "* * * * ;"}, "is not five cron fields"),
        ("cron_job", {"job": "console-logs", "options": {"command": "x"}}, "options of job console-logs are"),
        ("cron_job", {"job": "console-logs", "options": {"max_size": "big"}}, "options.max_size must be an integer"),
        ("service_restart", {"service": "sshd"}, '"sshd" is not a service this plugin restarts (only conntrackd)'),
        ("service_restart", {"service": "conntrackd; reboot"}, "is not a service this plugin restarts"),
        ("modprobe_unblacklist", {"modules": ["nf_conntrack"]}, "modules must be a list of: bridge"),
        ("iptables_chain", {"rules": [{"protocol": "icmp", "port": 1}]}, "rules[0].protocol 'icmp' is not one of"),
        ("iptables_chain", {"rules": [{"protocol": "tcp", "port": 0}]}, "rules[0].port must be an integer from 1"),
        ("iptables_chain", {"rules": [{"protocol": "tcp", "port": 22, "jump": "DROP"}]}, "must be an object with"),
        ("iptables_chain", {"rules": []}, "rules must name at least one port"),
        ("conntrackd_config", {"content": "x", "path": "/etc/passwd"}, "unknown parameter(s) path"),
        ("conntrackd_config", {"content": "Stats {}\n"}, "conntrackd is not installed in Dom0"),
        ("cron_job", {"job": "console-logs", "check": "yes"}, "check must be true or false"),
    ]:
        assert message in dom0.refused(function, params, python), (function, params)
    assert dom0.listing() == before
    assert dom0.logged("service") == []


@PYTHONS
def test_a_file_is_written_idempotently_with_its_mode_and_removed(dom0, python):
    params = {"path": "/etc/logrotate.d/neutron-dom0", "content": "/var/log/n.log {\n\tdaily # caf\u00e9\n}\n"}
    assert dom0.ok("file_ensure", dict(params, check=True), python)["changed"] is True
    assert not dom0.file("etc/logrotate.d/neutron-dom0").exists()
    result = dom0.ok("file_ensure", params, python)
    assert (result["changed"], result["before"], result["after"]) == (True, None, params["content"])
    target = dom0.file("etc/logrotate.d/neutron-dom0")
    assert target.read_text(encoding="utf-8") == params["content"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert dom0.ok("file_ensure", params, python)["changed"] is False
    assert dom0.ok("file_ensure", dict(params, mode="0600"), python)["changed"] is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["neutron-dom0"]  # no temporary file left
    assert dom0.ok("file_ensure", {"path": params["path"], "state": "absent"}, python)["changed"] is True
    assert not target.exists()
    assert dom0.ok("file_ensure", {"path": params["path"], "state": "absent"}, python)["changed"] is False


def test_a_symlink_in_a_managed_directory_is_not_written_through(dom0, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("precious\n")
    dom0.file("etc/logrotate.d").mkdir(parents=True)
    dom0.file("etc/logrotate.d/link").symlink_to(outside)
    message = dom0.refused("file_ensure", {"path": "/etc/logrotate.d/link", "content": "x"})
    assert "/etc/logrotate.d/link is a symbolic link: refusing to write through it" in message
    assert outside.read_text() == "precious\n"


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
        "*/1 * * * * root /etc/xapi.d/plugins/xenserver_openstack rotate-console-logs "
        "--grace-minutes 10 --keep-size 5120 --max-size 65536",
    ]
    assert stat.S_IMODE(cron.stat().st_mode) == 0o644
    assert {name: dom0.file("etc/cron.d/" + name).read_text() for name in others} == others
    assert sorted(os.listdir(dom0.file("etc/cron.d"))) == sorted([*others, cron.name])
    assert dom0.ok("cron_job", {"job": "console-logs", "state": "absent"}, python)["changed"] is True
    assert sorted(os.listdir(dom0.file("etc/cron.d"))) == sorted(others)


# --- batch: several functions in one call --------------------------------------------------------------


@PYTHONS
def test_batch_runs_the_calls_in_order_with_one_check_flag_and_reports_each(dom0, python):
    job = {"job": "console-logs", "options": {"max_size": 65536}}
    logrotate = {"path": "/etc/logrotate.d/neutron-dom0", "content": "/var/log/n.log {\n\tdaily\n}\n"}
    calls = [
        {"function": "cron_job", "params": job},
        {"function": "file_ensure", "params": logrotate},
        {"function": "service_restart", "params": {"service": "conntrackd"}},
    ]
    checked = dom0.ok("batch", {"calls": calls, "check": True}, python)
    assert checked["changed"] is True
    assert [result["changed"] for result in checked["results"]] == [True, True, True]
    assert checked["results"][2]["restarted"] is False
    assert not dom0.file("etc/cron.d/xenserver-openstack-console-logs").exists()
    assert not dom0.file("etc/logrotate.d/neutron-dom0").exists() and dom0.logged("service") == []

    done = dom0.ok("batch", {"calls": calls}, python)
    assert [result.get("path") for result in done["results"]] == [
        "/etc/cron.d/xenserver-openstack-console-logs",
        "/etc/logrotate.d/neutron-dom0",
        None,
    ]
    assert dom0.file("etc/logrotate.d/neutron-dom0").read_text() == logrotate["content"]
    assert dom0.logged("service") == ["conntrackd restart"]
    again = dom0.ok("batch", {"calls": calls[:2]}, python)
    assert again == {"changed": False, "results": again["results"]}
    assert [result["changed"] for result in again["results"]] == [False, False]


@PYTHONS
def test_batch_refuses_what_it_does_not_run_and_stops_at_a_refused_call(dom0, python):
    before = dom0.listing()
    for params, message in [
        ({"calls": []}, "calls must be a non-empty list"),
        ({"calls": [{"function": "route_ensure", "params": {}}]}, "calls[0].function 'route_ensure' is not one of"),
        ({"calls": [{"function": "batch", "params": {}}]}, "calls[0].function 'batch' is not one of"),
        ({"calls": [{"function": "cron_job", "args": {}}]}, "calls[0] must be an object with function and params"),
        (
            {"calls": [{"function": "service_restart", "params": {"service": "conntrackd", "check": True}}]},
            "calls[0].params must be an object without check",
        ),
    ]:
        assert message in dom0.refused("batch", params, python), params
    assert dom0.listing() == before
    logrotate = {"path": "/etc/logrotate.d/neutron-dom0", "content": "x\n"}
    calls = [
        {"function": "file_ensure", "params": logrotate},
        {"function": "cron_job", "params": {"job": "console-logs", "schedule": "* * *"}},
        {"function": "service_restart", "params": {"service": "conntrackd"}},
    ]
    message = dom0.refused("batch", {"calls": calls}, python)
    assert (
        message
        == "cron_job: schedule '* * *' is not five cron fields of digits and '*/,-' (done before it: file_ensure)"
    )
    # The call before the refused one is complete, the ones after it did not run.
    assert dom0.file("etc/logrotate.d/neutron-dom0").read_text() == "x\n"
    assert dom0.logged("service") == []


# --- services, modprobe, conntrackd -------------------------------------------------------------------


@PYTHONS
def test_service_restart(dom0, python):
    assert dom0.ok("service_restart", {"service": "conntrackd", "check": True}, python)["restarted"] is False
    assert dom0.logged("service") == []
    assert dom0.ok("service_restart", {"service": "conntrackd"}, python)["restarted"] is True
    assert dom0.logged("service") == ["conntrackd restart"]


@PYTHONS
def test_bridge_is_no_longer_blacklisted(dom0, python):
    modprobe = dom0.file("etc/modprobe.d")
    modprobe.mkdir(parents=True)
    (modprobe / "blacklist-bridge.conf").write_text(
        "# XenServer: openvswitch\nblacklist bridge\ninstall bridge /bin/true\n"
    )
    (modprobe / "dist.conf").write_text("alias bridge off\nblacklist bridgex\noptions bonding max_bonds=0\n")
    (modprobe / "other.conf").write_text("blacklist floppy\n")
    result = dom0.ok("modprobe_unblacklist", {"modules": ["bridge"], "check": True}, python)
    assert result["changed"] is True and (modprobe / "blacklist-bridge.conf").exists()
    result = dom0.ok("modprobe_unblacklist", {"modules": ["bridge"]}, python)
    assert sorted(result["files"]) == ["/etc/modprobe.d/blacklist-bridge.conf", "/etc/modprobe.d/dist.conf"]
    assert result["files"]["/etc/modprobe.d/blacklist-bridge.conf"]["after"] is None
    assert sorted(os.listdir(modprobe)) == ["dist.conf", "other.conf"]
    assert (modprobe / "dist.conf").read_text() == "blacklist bridgex\noptions bonding max_bonds=0\n"
    assert (modprobe / "other.conf").read_text() == "blacklist floppy\n"
    assert dom0.ok("modprobe_unblacklist", {"modules": ["bridge"]}, python)["changed"] is False


@PYTHONS
def test_conntrackd_stats_mode_backup_once_logrotate_restart_on_change(dom0, python):
    conf = dom0.file("etc/conntrackd/conntrackd.conf")
    conf.parent.mkdir(parents=True)
    conf.write_text("# distribution config\nSync {\n}\n")
    wanted = {"content": "Stats {\n\tLogFile on\n}\n", "logrotate": "/var/log/conntrackd*.log {\n\tdaily\n}\n"}
    assert dom0.ok("conntrackd_config", dict(wanted, check=True), python)["changed"] is True
    assert sorted(os.listdir(conf.parent)) == ["conntrackd.conf"] and dom0.logged("service") == []

    result = dom0.ok("conntrackd_config", wanted, python)
    assert (result["changed"], result["backed_up"], result["restarted"]) == (True, True, True)
    assert dom0.file("etc/conntrackd/conntrackd.conf.back").read_text() == "# distribution config\nSync {\n}\n"
    assert conf.read_text() == wanted["content"]
    assert dom0.file("etc/logrotate.d/conntrackd").read_text() == wanted["logrotate"]
    assert dom0.logged("service") == ["conntrackd restart"]

    again = dom0.ok("conntrackd_config", wanted, python)
    assert (again["changed"], again["restarted"]) == (False, False)
    assert dom0.logged("service") == ["conntrackd restart"]

    # A logrotate change alone does not restart conntrackd; the backup is never replaced.
    result = dom0.ok("conntrackd_config", dict(wanted, logrotate="/var/log/conntrackd*.log {\n\tweekly\n}\n"), python)
    assert (result["changed"], result["restarted"], result["backed_up"]) == (True, False, False)
    assert dom0.file("etc/conntrackd/conntrackd.conf.back").read_text() == "# distribution config\nSync {\n}\n"


def test_conntrackd_restart_failure_is_retried_next_time(dom0):
    conf = dom0.file("etc/conntrackd/conntrackd.conf")
    conf.parent.mkdir(parents=True)
    conf.write_text("# original\n")
    dom0.log.with_name("log.fail").write_text("")
    assert "'service conntrackd restart' failed (exit 1)" in dom0.refused(
        "conntrackd_config", {"content": "Stats {}\n"}
    )
    dom0.log.with_name("log.fail").unlink()
    assert dom0.ok("conntrackd_config", {"content": "Stats {}\n"})["restarted"] is True
    assert dom0.ok("conntrackd_config", {"content": "Stats {}\n"})["restarted"] is False
    assert dom0.logged("service") == ["conntrackd restart"] * 2


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

    argv = dom0.argv(
        python, "rotate-console-logs", "--log-dir", str(logs), "--max-size", "65536", "--keep-size", "4096"
    )
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
    argv = dom0.argv("venv", "rotate-console-logs", "--log-dir", str(logs), "--no-syslog")
    run = subprocess.run(argv, capture_output=True, text=True, env=dom0.env, check=False)
    assert run.returncode == 1 and "xenstored is not running" in run.stderr
    assert [n for n in os.listdir(logs) if not n.startswith(".")] == ["console.7"]


# --- the iptables chain, in a network namespace ------------------------------------------------------------

# Dom0's stock firewall (RH-Firewall-1-INPUT ending in REJECT), as the bed seeds it.
with open(os.path.join(TESTS, "bed", "dom0-firewall.iptables")) as _rules:
    STOCK_RULES = _rules.read()


def load_plugin():
    loader = importlib.machinery.SourceFileLoader("xenserver_openstack_plugin", PLUGIN)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_saved_rules_are_edited_in_place_and_restored_by_absent():
    plugin = load_plugin()
    wanted = plugin.get_rules({"rules": RULES})
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
    """A Dom0-like namespace whose INPUT ends in Dom0's REJECT, and its /etc/sysconfig/iptables."""
    if os.geteuid() != 0:
        pytest.skip("needs root and network namespaces")
    name = "x7-plugin-%s" % uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        saved = tmp_path / "root" / "etc" / "sysconfig" / "iptables"
        saved.parent.mkdir(parents=True)
        saved.write_text(STOCK_RULES)
        subprocess.run(["ip", "netns", "exec", name, "iptables-restore"], input=STOCK_RULES, text=True, check=True)
        yield Dom0(tmp_path, netns=name)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


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
