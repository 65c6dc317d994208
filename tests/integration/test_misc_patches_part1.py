"""misc_patches part 1 on the namespace bed: noVNC through Dom0, Dom0 housekeeping through XenAPI (console log cron
entry, firewall chain, bridge module, conntrackd), the compute VM's housekeeping and the controller's console cache.

Dom0 starts as a XenServer Dom0 is: its own cron entries, the bridge module blacklisted, conntrack-tools' config, and
its firewall (RH-Firewall-1-INPUT ending in REJECT) live in its namespace and in /etc/sysconfig/iptables. Dom0 has
no init system on the bed: ``service`` in Dom0 is a stand-in on the simulator's PATH that records its arguments.
The compute VM gets a multipathd stand-in in its own /etc/init.d. Paths outside the bed hosts' own /etc entries
(multipath drop-in, cron file and script of the image cache job, the controller's nova.conf) are in a directory of
the test.

The steps share one bed and run in file order: check mode on the fresh bed, the run, the second run.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest
from bedlib import ROOT, Bed, ns, task_results

pytestmark = pytest.mark.root

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "misc_patches_part1.yml")
PLUGIN = os.path.join(ROOT, "dom0", "etc", "xapi.d", "plugins", "xenserver_openstack")
STANDINS = os.path.join(ROOT, "tests", "bed", "standins")
DOM0, COMPUTE, CTL = ns("dom0-1"), ns("compute-1"), ns("ctl")
COMPUTE_MGMT = "198.18.1.11"
CHAIN = "xenserver-openstack-neutron"

DOM0_FIREWALL = """\
# Firewall configuration written by system-config-firewall
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:RH-Firewall-1-INPUT - [0:0]
-A INPUT -j RH-Firewall-1-INPUT
-A FORWARD -j RH-Firewall-1-INPUT
-A RH-Firewall-1-INPUT -i lo -j ACCEPT
-A RH-Firewall-1-INPUT -p icmp -j ACCEPT
-A RH-Firewall-1-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A RH-Firewall-1-INPUT -i xenapi -p udp -m udp --dport 67 -j ACCEPT
-A RH-Firewall-1-INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 22 -j ACCEPT
-A RH-Firewall-1-INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 80 -j ACCEPT
-A RH-Firewall-1-INPUT -p tcp -m conntrack --ctstate NEW -m tcp --dport 443 -j ACCEPT
-A RH-Firewall-1-INPUT -j REJECT --reject-with icmp-host-prohibited
COMMIT
"""
DOM0_FILES = {
    "cron.d/xapi-logrotate": "*/5 * * * * root /opt/xensource/libexec/logrotate.sh\n",
    "cron.d/sysstat": "*/10 * * * * root /usr/lib64/sa/sa1 1 1\n",
    "modprobe.d/blacklist-bridge.conf": "# Open vSwitch is the network backend\nblacklist bridge\n",
    "conntrackd/conntrackd.conf": "# conntrack-tools' conntrackd.conf\nSync {\n\tMode FTFW {\n\t}\n}\n",
    "sysconfig/iptables": DOM0_FIREWALL,
}
COMPUTE_NOVA = "[DEFAULT]\n# nova on the compute VM\n[xenserver]\nconnection_url = http://169.254.0.1\n"
CONTROLLER_NOVA = """\
# nova.conf as puppet wrote it
[DEFAULT]
# the API
osapi_compute_listen=198.18.1.2

[keystone_authtoken]
# memcached of the controllers
memcached_servers=198.18.1.2:11211,198.18.1.3:11211
auth_type=password
"""
FAKE_SERVICE = '#!/bin/sh\necho "$*" >> %s\n'
XAPI = textwrap.dedent(
    """
    import sys, XenAPI
    session = XenAPI.Session("http://169.254.0.1")
    session.xenapi.login_with_password("root", sys.argv[1], "2.0", "test")
    x = session.xenapi
    """
)
LIST_VDIS = XAPI + 'print(sorted(r["name_label"] for r in x.VDI.get_all_records().values()))\n'
CREATE_VDIS = XAPI + textwrap.dedent(
    """
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    def vdi(name, parent=None, image=None):
        return x.VDI.create(dict(SR=sr, name_label=name, virtual_size="1", type="user", sharable=False,
                                 read_only=False, other_config={"image-id": image} if image else {},
                                 sm_config={"vhd-parent": x.VDI.get_uuid(parent)} if parent else {}))
    base = vdi("base of image 1")
    vdi("cached image 1", base, "image-1")
    vdi("instance disk", base)
    vdi("cached image 2", vdi("base of image 2"), "image-2")
    """
)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("the bed's service stand-ins are sysvinit scripts: this machine runs systemd")
    work = tmp_path_factory.mktemp("part1")
    fake_bin = work / "bin"
    fake_bin.mkdir()
    (fake_bin / "service").write_text(FAKE_SERVICE % (work / "dom0-service.log"))
    (fake_bin / "service").chmod(0o755)
    # The simulator, and the Dom0 plugin it runs, find ``service`` on this PATH.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", "%s:%s" % (fake_bin, os.environ["PATH"]))
        bed = Bed(str(work / "bed"))
    try:
        bed.work = work
        seed(bed)
        yield bed
    finally:
        bed.down()


def seed(bed):
    dom0 = os.path.join(bed.root("dom0-1"), "etc")
    for path, text in DOM0_FILES.items():
        with open(os.path.join(dom0, path), "w") as handle:
            handle.write(text)
    shutil.copy(PLUGIN, os.path.join(dom0, "xapi.d", "plugins"))
    restore(bed, DOM0, DOM0_FIREWALL)
    compute = os.path.join(bed.root("compute-1"), "etc")
    with open(os.path.join(compute, "nova", "nova.conf"), "w") as handle:
        handle.write(COMPUTE_NOVA + "connection_username = root\nconnection_password = %s\n" % password(bed))
    standin(bed, "multipath-tools", str(bed.work / "compute" / "multipath" / "conf.d" / "xenserver-openstack.conf"))
    for directory in ("compute/cron.d", "compute/sbin", "controller"):
        (bed.work / directory).mkdir(parents=True)
    (bed.work / "controller" / "nova.conf").write_text(CONTROLLER_NOVA)


def restore(bed, netns, rules):
    subprocess.run(["ip", "netns", "exec", netns, "iptables-restore"], input=rules, text=True, check=True)


def password(bed):
    with open(os.path.join(bed.state_dir, "inventory.yml")) as handle:
        return re.search(r"xenserver_password: (\S+)", handle.read()).group(1)


def standin(bed, name, config):
    """A service stand-in in the compute VM's own /etc/init.d, as the bed makes them, started."""
    with open(os.path.join(STANDINS, "init-script.in")) as handle:
        text = handle.read()
    for key, value in (
        ("@NAME@", name),
        ("@RUN_DIR@", os.path.join(bed.state_dir, "compute-1")),
        ("@CONFIGS@", config),
        ("@STANDIN@", os.path.join(STANDINS, "standin.sh")),
    ):
        text = text.replace(key, value)
    script = os.path.join(bed.root("compute-1"), "etc", "init.d", name)
    with open(script, "w") as handle:
        handle.write(text)
    os.chmod(script, 0o755)
    bed.run(COMPUTE, "/etc/init.d/" + name, "start")


def extra_vars(bed):
    work = bed.work
    return json.dumps(
        {
            "misc_patches_multipath_conf_dir": str(work / "compute" / "multipath" / "conf.d"),
            "misc_patches_image_cache_script": str(work / "compute" / "sbin" / "xenserver-openstack-image-cache"),
            "misc_patches_image_cache_cron_file": str(work / "compute" / "cron.d" / "xenserver-openstack-image-cache"),
            "misc_patches_nova_conf": str(work / "controller" / "nova.conf"),
            # The bed's controller has no nova services: the test sees the handler notified, and skipped.
            "misc_patches_novnc_restart": False,
            "ansible_pipelining": True,
        }
    )


def play(bed, *args, himn_network=False):
    """Run the playbook; the HIMN forwarding (with the noVNC port forward) only when asked."""
    code, report, output = bed.playbook(
        PLAYBOOK, "-e", extra_vars(bed), "-e", "part1_himn_network=%s" % himn_network, *args
    )
    assert code == 0, output[-4000:]
    return report


def snapshot(bed):
    """Everything the playbook may change: files of Dom0, the compute VM and the test, rules, service logs."""
    files = {}
    for top in (bed.root("dom0-1"), bed.root("compute-1"), str(bed.work / "compute"), str(bed.work / "controller")):
        for folder, _dirs, names in os.walk(top):
            for name in names:
                path = os.path.join(folder, name)
                if not name.endswith(".lock"):
                    with open(path, "rb") as handle:
                        files[path] = (handle.read(), stat.S_IMODE(os.lstat(path).st_mode))
    rules = {
        netns: [line for line in bed.run(netns, "iptables-save").stdout.splitlines() if line[:1] not in "#:"]
        for netns in (DOM0, COMPUTE)
    }
    return dict(files=files, rules=rules, services=(dom0_services(bed), multipath_starts(bed)))


def dom0_services(bed):
    log = bed.work / "dom0-service.log"
    return log.read_text().splitlines() if log.exists() else []


def multipath_starts(bed):
    with open(os.path.join(bed.state_dir, "compute-1", "multipath-tools.log")) as handle:
        return [line for line in handle if " started pid=" in line]


def dom0_file(bed, path):
    return os.path.join(bed.root("dom0-1"), "etc", path)


def console_log_jobs(bed):
    """Every line of Dom0's cron.d that schedules the console log job."""
    folder = dom0_file(bed, "cron.d")
    return [
        line
        for name in sorted(os.listdir(folder))
        for line in open(os.path.join(folder, name)).read().splitlines()
        if "rotate-console-logs" in line and not line.startswith("#")
    ]


def test_check_mode_on_the_fresh_bed_reports_changes_and_changes_nothing(bed):
    assert not bed.tcp_ok(CTL, COMPUTE_MGMT, 80)
    before = snapshot(bed)
    report = play(bed, "--check", "--diff")
    assert report["stats"]["compute-1"]["changed"] > 0
    assert report["stats"]["controller-1"]["changed"] > 0
    assert snapshot(bed) == before
    assert not bed.tcp_ok(CTL, COMPUTE_MGMT, 80)


def test_the_run_does_each_part(bed):
    listener = bed.listen(DOM0, 6640)
    try:
        assert not bed.tcp_ok(COMPUTE, "169.254.0.1", 6640), "Dom0's firewall of the fixture lets OVSDB in"
        report = play(bed, himn_network=True)
        # The neutron agent's OVSDB connection now gets through Dom0's firewall; the chain is there once.
        assert bed.tcp_ok(COMPUTE, "169.254.0.1", 6640)
    finally:
        listener.terminate()
        listener.wait()
    rules = bed.run(DOM0, "iptables", "-S", "INPUT").stdout.splitlines()
    assert rules[1:3] == ["-A INPUT -j %s" % CHAIN, "-A INPUT -j RH-Firewall-1-INPUT"]
    assert "-A %s -p udp -m udp --dport 4789 -j ACCEPT" % CHAIN in bed.run(DOM0, "iptables", "-S", CHAIN).stdout
    with open(dom0_file(bed, "sysconfig/iptables")) as handle:
        saved = handle.read()
    assert saved.count("-A INPUT -j %s\n" % CHAIN) == 1 and "--dport 4789 -j ACCEPT" in saved

    # noVNC: from the controller, the compute VM's management address port 80 is Dom0's xapi.
    assert bed.http(CTL, "http://%s/_sim/health" % COMPUTE_MGMT) == "ok"

    # Guest console logs: a cron.d file of its own, no mail; Dom0's other entries as they were.
    assert len(console_log_jobs(bed)) == 1
    with open(dom0_file(bed, "cron.d/xenserver-openstack-console-logs")) as handle:
        text = handle.read()
    assert 'MAILTO=""' in text.splitlines() and text.endswith("\n")
    for path in ("cron.d/xapi-logrotate", "cron.d/sysstat"):
        with open(dom0_file(bed, path)) as handle:
            assert handle.read() == DOM0_FILES[path]

    # bridge no longer blacklisted; conntrackd in statistics mode, the original kept, restarted once.
    assert not os.path.exists(dom0_file(bed, "modprobe.d/blacklist-bridge.conf"))
    with open(dom0_file(bed, "conntrackd/conntrackd.conf.back")) as handle:
        assert handle.read() == DOM0_FILES["conntrackd/conntrackd.conf"]
    with open(dom0_file(bed, "conntrackd/conntrackd.conf")) as handle:
        assert "Stats {" in handle.read()
    with open(dom0_file(bed, "logrotate.d/conntrackd")) as handle:
        assert "/var/log/conntrackd-stats.log" in handle.read()
    assert dom0_services(bed) == ["conntrackd restart"]

    # The compute VM: multipathd keeps off xvd disks and was restarted once; the image cache job is scheduled.
    dropin = bed.work / "compute" / "multipath" / "conf.d" / "xenserver-openstack.conf"
    assert 'devnode "^xvd[a-z]"' in dropin.read_text()
    assert len(multipath_starts(bed)) == 2  # started by the fixture, restarted by the handler
    cron = (bed.work / "compute" / "cron.d" / "xenserver-openstack-image-cache").read_text()
    assert 'MAILTO=""' in cron.splitlines() and cron.endswith("\n")  # cron ignores a last line without newline
    script = bed.work / "compute" / "sbin" / "xenserver-openstack-image-cache"
    assert (
        "5 3 * * * root %s %s --config-file /etc/nova/nova.conf --config-file /etc/nova/nova-compute.conf"
        % (sys.executable, script)
        in cron.splitlines()
    )
    assert stat.S_IMODE(script.stat().st_mode) == 0o700

    # The controller: nova.conf edited in place (comments and keys kept), the console services notified.
    conf = (bed.work / "controller" / "nova.conf").read_text()
    remaining = iter(conf.splitlines())
    assert all(line in remaining for line in CONTROLLER_NOVA.splitlines()), conf  # every line kept, in order
    assert "memcached_servers = 198.18.1.2:11211,198.18.1.3:11211" in conf.split("[DEFAULT]")[1].split("[")[0]
    section = conf.split("[cache]")[1]
    assert "enabled = True" in section and "memcache_servers = 198.18.1.2:11211,198.18.1.3:11211" in section
    assert "backend = oslo_cache.memcache_pool" in section
    notified = task_results(
        report, "controller-1", "xenserver.openstack.misc_patches : Restart the nova console services"
    )
    assert len(notified) == 1 and notified[0].get("skipped"), notified


def test_the_second_run_changes_nothing_and_schedules_the_job_once(bed):
    before = snapshot(bed)
    report = play(bed)
    for host, stats in report["stats"].items():
        assert stats["changed"] == 0, (host, stats)
    assert snapshot(bed) == before
    assert (
        task_results(report, "controller-1", "xenserver.openstack.misc_patches : Restart the nova console services")
        == []
    )
    assert len(console_log_jobs(bed)) == 1
    assert dom0_services(bed) == ["conntrackd restart"]


def test_the_image_cache_job_destroys_unused_cached_images_through_xenapi(bed):
    bed.run(COMPUTE, sys.executable, "-c", CREATE_VDIS, password(bed))
    before = bed.run(COMPUTE, sys.executable, "-c", LIST_VDIS, password(bed)).stdout
    assert "'cached image 1'" in before and "'cached image 2'" in before
    script = str(bed.work / "compute" / "sbin" / "xenserver-openstack-image-cache")
    dry = bed.run(COMPUTE, sys.executable, script, "--dry-run").stdout
    assert dry.startswith("Would destroy 1 cached VDIs: ") and "(image image-2)" in dry
    assert bed.run(COMPUTE, sys.executable, "-c", LIST_VDIS, password(bed)).stdout == before
    done = bed.run(COMPUTE, sys.executable, script).stdout
    assert done.startswith("Destroyed 1 cached VDIs: ") and "(image image-2)" in done
    after = bed.run(COMPUTE, sys.executable, "-c", LIST_VDIS, password(bed)).stdout
    assert "'cached image 2'" not in after and "'cached image 1'" in after and "'instance disk'" in after
    assert bed.run(COMPUTE, sys.executable, script).stdout.strip() == "Destroyed 0 cached VDIs"
