"""misc_patches part 1 on the namespace bed: noVNC through Dom0, Dom0 housekeeping through XenAPI (console log cron
entry, firewall chain, bridge module, conntrackd), the compute VM's housekeeping and the controller's console cache.

The bed gives each host what a deployed node has (tests/bed/README.md): Dom0 its own cron entries, the bridge module
blacklisted, conntrack-tools' configuration, its firewall (RH-Firewall-1-INPUT ending in REJECT) loaded and in
/etc/sysconfig/iptables, and a ``service`` stand-in that records what the Dom0 plugin restarts; the compute VM a
multipath-tools stand-in, and the image cache job's paths in its own root; the controller nova.conf and the console
services' stand-ins. The test adds only the Dom0 plugin (the pack's job in site.yml) and the compute VM's nova.conf.

The steps share one bed and run in file order: check mode on the fresh bed, the run, the second run.
"""

import hashlib
import json
import os
import re
import stat
import sys
import textwrap

import pytest
from bedlib import ROOT, Bed, failures, ns
from xapisim.dom0 import install_collection_files

pytestmark = pytest.mark.root

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "misc_patches_part1.yml")
DOM0, COMPUTE, CTL = ns("dom0-1"), ns("compute-1"), ns("ctl")
COMPUTE_MGMT = "198.18.1.11"
CHAIN = "xenserver-openstack-neutron"
# Dom0's files as the bed seeds them, read before the first run: they must stay, or go, as each part says.
DOM0_SEEDED = ("cron.d/0hourly", "cron.d/sysstat", "conntrackd/conntrackd.conf", "modprobe.d/blacklist-bridge.conf")
IMAGE_CACHE = "usr/local/sbin/xenserver-openstack-image-cache"
COMPUTE_NOVA = "[DEFAULT]\n# nova on the compute VM\n[xenserver]\nconnection_url = http://169.254.0.1\n"
NOVNC = ("nova-novncproxy", "nova-consoleauth")
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
    # The pre-leased compute VM: its check run reads Dom0 through XAPI, which a fresh VM reaches only after the
    # HIMN bootstrap has really run (test_fresh_vm.py covers that VM).
    bed = Bed(str(tmp_path_factory.mktemp("part1") / "bed"), "--himn-lease")
    try:
        install_collection_files(bed.root("dom0-1"))
        with open(compute_file(bed, "etc/nova/nova.conf"), "w") as handle:
            handle.write(COMPUTE_NOVA + "connection_username = root\nconnection_password = %s\n" % password(bed))
        bed.seeded = {path: read(dom0_file(bed, path)) for path in DOM0_SEEDED}
        bed.controller_nova = read(controller_nova(bed))
        yield bed
    finally:
        bed.down()


def read(path):
    with open(path) as handle:
        return handle.read()


def password(bed):
    return re.search(r"xenserver_password: (\S+)", read(os.path.join(bed.state_dir, "inventory.yml"))).group(1)


def dom0_file(bed, path):
    return os.path.join(bed.root("dom0-1"), "etc", path)


def compute_file(bed, path):
    return os.path.join(bed.root("compute-1"), path)


def controller_nova(bed):
    return os.path.join(bed.root("controller"), "etc", "nova", "nova.conf")


def play(bed, *args, himn_network=False):
    """Run the playbook on the bed as it is; the HIMN forwarding (with the noVNC port forward) only when asked."""
    code, report, output = bed.playbook(
        PLAYBOOK, "-e", json.dumps({"ansible_pipelining": True, "part1_himn_network": himn_network}), *args
    )
    assert code == 0, output[-4000:]
    return report


def snapshot(bed):
    """Everything the playbook may change: files of Dom0, the compute VM and the controller, rules, service logs."""
    files = {}
    for top in (bed.root("dom0-1"), bed.root("compute-1"), bed.root("controller")):
        for folder, _dirs, names in os.walk(top):
            for name in names:
                path = os.path.join(folder, name)
                if not name.endswith(".lock") and os.path.isfile(path):  # not xapi's socket in Dom0's /var/lib/xcp
                    with open(path, "rb") as handle:
                        files[path] = (handle.read(), stat.S_IMODE(os.lstat(path).st_mode))
    rules = {
        netns: [line for line in bed.run(netns, "iptables-save").stdout.splitlines() if line[:1] not in "#:"]
        for netns in (DOM0, COMPUTE)
    }
    services = [dom0_services(bed)] + [starts(bed, host, name) for host, name in services_of_the_bed()]
    return dict(files=files, rules=rules, services=services)


def services_of_the_bed():
    return [("compute-1", "multipath-tools")] + [("controller", name) for name in NOVNC]


def dom0_services(bed):
    """What the Dom0 plugin asked Dom0's ``service`` to do, one "NAME ACTION" per call."""
    return read(os.path.join(bed.state_dir, "dom0-1", "service.log")).splitlines()


def starts(bed, host, name):
    """The stand-in's "started" lines: the bed's start, then one per restart."""
    return [
        line for line in read(os.path.join(bed.state_dir, host, name + ".log")).splitlines() if " started pid=" in line
    ]


def console_log_jobs(bed):
    """Every line of Dom0's cron.d that schedules the console log job."""
    folder = dom0_file(bed, "cron.d")
    return [
        line
        for name in sorted(os.listdir(folder))
        for line in read(os.path.join(folder, name)).splitlines()
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
        assert not bed.tcp_ok(COMPUTE, "169.254.0.1", 6640), "Dom0's own firewall lets OVSDB in"
        play(bed, himn_network=True)
        # The neutron agent's OVSDB connection now gets through Dom0's firewall; the chain is there once.
        assert bed.tcp_ok(COMPUTE, "169.254.0.1", 6640)
    finally:
        listener.terminate()
        listener.wait()
    rules = bed.run(DOM0, "iptables", "-S", "INPUT").stdout.splitlines()
    assert rules[1:3] == ["-A INPUT -j %s" % CHAIN, "-A INPUT -j RH-Firewall-1-INPUT"]
    assert "-A %s -p udp -m udp --dport 4789 -j ACCEPT" % CHAIN in bed.run(DOM0, "iptables", "-S", CHAIN).stdout
    saved = read(dom0_file(bed, "sysconfig/iptables"))
    assert saved.count("-A INPUT -j %s\n" % CHAIN) == 1 and "--dport 4789 -j ACCEPT" in saved

    # noVNC: from the controller, the compute VM's management address port 80 is Dom0's xapi.
    assert bed.http(CTL, "http://%s/_sim/health" % COMPUTE_MGMT) == "ok"

    # Guest console logs: a cron.d file of its own, no mail, running the job's own file; Dom0's other entries as
    # they were.
    (job,) = console_log_jobs(bed)
    assert " root /usr/libexec/xenserver-openstack/rotate-console-logs --" in job, job
    text = read(dom0_file(bed, "cron.d/xenserver-openstack-console-logs"))
    assert 'MAILTO=""' in text.splitlines() and text.endswith("\n")
    for path in ("cron.d/0hourly", "cron.d/sysstat"):
        assert read(dom0_file(bed, path)) == bed.seeded[path]

    # bridge no longer blacklisted; conntrackd in statistics mode, the original kept, restarted once.
    assert "blacklist bridge" in bed.seeded["modprobe.d/blacklist-bridge.conf"]
    blacklist = read(dom0_file(bed, "modprobe.d/blacklist-bridge.conf")).splitlines()
    assert (
        "# Commented out by xenserver.openstack: blacklist bridge" in blacklist and "blacklist bridge" not in blacklist
    )
    assert read(dom0_file(bed, "conntrackd/conntrackd.conf.back")) == bed.seeded["conntrackd/conntrackd.conf"]
    assert "Stats {" in read(dom0_file(bed, "conntrackd/conntrackd.conf"))
    assert "/var/log/conntrackd-stats.log" in read(dom0_file(bed, "logrotate.d/conntrackd"))
    assert dom0_services(bed) == ["conntrackd restart"]

    # The compute VM: multipathd keeps off xvd disks and was restarted once; the image cache job is scheduled.
    dropin = read(compute_file(bed, "etc/multipath/conf.d/xenserver-openstack.conf"))
    assert 'devnode "^xvd[a-z]"' in dropin
    multipath = starts(bed, "compute-1", "multipath-tools")
    assert len(multipath) == 2  # started by the bed, restarted by the handler after the drop-in was written
    assert "/etc/multipath/conf.d/xenserver-openstack.conf=%s" % digest(dropin) in multipath[-1]
    cron = read(compute_file(bed, "etc/cron.d/xenserver-openstack-image-cache"))
    assert 'MAILTO=""' in cron.splitlines() and cron.endswith("\n")  # cron ignores a last line without newline
    script = compute_file(bed, IMAGE_CACHE)
    assert (
        "5 3 * * * root %s %s --config-file /etc/nova/nova.conf --config-file /etc/nova/nova-compute.conf"
        % (sys.executable, script)
        in cron.splitlines()
    )
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o700

    # The controller: nova.conf edited in place (comments and keys kept), the console services restarted once.
    conf = read(controller_nova(bed))
    remaining = iter(conf.splitlines())
    assert all(line in remaining for line in bed.controller_nova.splitlines()), conf  # every line kept, in order
    # The bed's controller is Ussuri (misc_patches_openstack_release), whose nova has no [DEFAULT] memcached_servers.
    assert "memcached_servers" not in conf.split("[DEFAULT]")[1].split("[")[0]
    section = conf.split("[cache]")[1]
    assert "enabled = True" in section and "memcache_servers = 198.18.1.2:11211,198.18.1.3:11211" in section
    assert "backend = oslo_cache.memcache_pool" in section
    for name in NOVNC:
        started = starts(bed, "controller", name)
        assert len(started) == 2, started  # started by the bed, restarted once after nova.conf was written
        assert "/etc/nova/nova.conf=%s" % digest(conf) in started[-1]


def digest(text):
    """The checksum a service stand-in records for a configuration file it started with."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_the_second_run_changes_nothing_and_schedules_the_job_once(bed):
    before = snapshot(bed)
    report = play(bed)
    for host, stats in report["stats"].items():
        assert stats["changed"] == 0, (host, stats)
    assert snapshot(bed) == before  # the service logs too: nothing restarted
    assert len(console_log_jobs(bed)) == 1
    assert dom0_services(bed) == ["conntrackd restart"]


def test_the_image_cache_job_destroys_unused_cached_images_through_xenapi(bed):
    bed.run(COMPUTE, sys.executable, "-c", CREATE_VDIS, password(bed))
    before = bed.run(COMPUTE, sys.executable, "-c", LIST_VDIS, password(bed)).stdout
    assert "'cached image 1'" in before and "'cached image 2'" in before
    script = compute_file(bed, IMAGE_CACHE)
    dry = bed.run(COMPUTE, sys.executable, script, "--dry-run").stdout
    assert dry.startswith("Would destroy 1 cached VDIs: ") and "(image image-2)" in dry
    assert bed.run(COMPUTE, sys.executable, "-c", LIST_VDIS, password(bed)).stdout == before
    done = bed.run(COMPUTE, sys.executable, script).stdout
    assert done.startswith("Destroyed 1 cached VDIs: ") and "(image image-2)" in done
    after = bed.run(COMPUTE, sys.executable, "-c", LIST_VDIS, password(bed)).stdout
    assert "'cached image 2'" not in after and "'cached image 1'" in after and "'instance disk'" in after
    assert bed.run(COMPUTE, sys.executable, script).stdout.strip() == "Destroyed 0 cached VDIs"


def test_the_controller_part_names_a_missing_memcached_and_never_shows_other_keys(bed):
    """nova.conf without memcached_servers in [keystone_authtoken] stops the part with the fix; with the servers
    given, --check --diff shows the [cache] keys that would change, and not the file's other keys (a database URL
    with its password)."""
    path = controller_nova(bed)
    original = read(path)
    database = "[database]\nconnection = mysql+pymysql://nova:db-Secret-7@198.18.1.2/nova\n"
    text = original.replace("memcached_servers=198.18.1.2:11211,198.18.1.3:11211\n", "") + database
    limit = ("-e", json.dumps({"part1_himn_network": False}), "--limit", "controller-1")
    try:
        with open(path, "w") as handle:
            handle.write(text)
        code, report, output = bed.playbook(PLAYBOOK, *limit)
        assert code != 0, output[-3000:]
        assert (
            "/etc/nova/nova.conf has no memcached_servers in [keystone_authtoken]: set misc_patches_memcached_servers"
            in failures(report)
        )
        code, report, output = bed.playbook(
            PLAYBOOK, *limit, "-e", "misc_patches_memcached_servers=198.18.1.9:11211", "--check", "--diff"
        )
        assert code == 0, output[-3000:]
        (result,) = [
            task["hosts"]["controller-1"]
            for play in report["plays"]
            for task in play["tasks"]
            if task["task"]["name"].endswith("Keep console tokens in memcached ([cache] of nova.conf)")
        ]
        (diff,) = result["diff"]
        assert "memcache_servers = 198.18.1.2:11211,198.18.1.3:11211\n" in diff["before"]
        assert "memcache_servers = 198.18.1.9:11211\n" in diff["after"]
        assert "db-Secret-7" not in output and read(path) == text
    finally:
        with open(path, "w") as handle:
            handle.write(original)


def test_a_mitaka_controller_also_gets_default_memcached_servers(bed):
    """nova 12 and 13 read [DEFAULT] memcached_servers (Newton removed it): only for them is it written."""
    play(bed, "--limit", "controller-1", "-e", "misc_patches_openstack_release=mitaka")
    conf = read(controller_nova(bed))
    assert "memcached_servers = 198.18.1.2:11211,198.18.1.3:11211" in conf.split("[DEFAULT]")[1].split("[")[0]
