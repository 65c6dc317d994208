"""playbooks/site.yml end to end on N >= 5 Dom0 / compute VM pairs (forks = N), then a node unreachable.

Run 1, from a fresh bed whose pairs run every platform the preflight accepts and the bed can complete (PLATFORMS):
per pair, the host read as its scenario describes it, the pack applied on the host, Dom0
routing the management and storage networks via its compute VM, packets from Dom0 reaching the controller through
that compute VM, the noVNC port reaching xapi, nova on XenAPI; and TestVM in Glance in XenServer format.
Run 2, the same with one compute VM unreachable (its SSH port closed): that host alone fails, the others finish.
Run 3, again on that host once it answers: it converges.
"""

import configparser
import os

import pytest
from bedlib import Bed, ns, task_results
from sitelib import (
    CONTROLLER_MGMT,
    MGMT,
    SITE,
    STORAGE,
    NsGlance,
    PeerListener,
    Simulator,
    bed_pids,
    controller_vars,
    differences,
    extra_inventory,
    host_failures,
    leftovers,
    local_host,
    message_of,
    messages,
    novnc_ok,
    snapshot,
    tracebacks,
    with_software,
)

pytestmark = pytest.mark.root

PAIRS = 5
UNREACHABLE = 3
# Pair -> the platform its host runs (the others: the bed's default, XCP-ng 8.3). With pair 1's XCP-ng 8.3, every
# entry of misc_patches_supported_platforms that installs the pack through XenAPI; XenServer 7.0 (legacy pack over
# SSH to Dom0) is not on the bed (docs/supported-platforms.md).
PLATFORMS = {2: "xcpng-8.2.1", 4: "citrix-8.2", 5: "xenserver-7.1"}
# Pairs whose hosts say they are of one pool (each simulator has its own pool otherwise): the role applies the pack on
# the hosts of a pool one at a time, the others side by side.
SHARED_POOL = (1, 3)
SHARED_POOL_UUID = "5ba7ed00-0000-4000-8000-000000000001"
# How long each host's pool_update.apply takes here: long enough that applies side by side overlap for certain.
APPLY_SECONDS = 3
PORT = 5679


def compute(i):
    return "compute-%d" % i


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    bed = Bed(str(work / "bed"), "--pairs", str(PAIRS))
    pids, glance = bed_pids(bed), None
    try:
        for i in range(1, PAIRS + 1):
            sim = Simulator(bed, i)
            scenario = with_software(sim.scenario(), PLATFORMS[i]) if i in PLATFORMS else sim.scenario()
            if i in SHARED_POOL:
                scenario["pool"]["uuid"] = SHARED_POOL_UUID
            scenario.setdefault("behaviour", {})["apply_seconds"] = APPLY_SECONDS
            sim.load(scenario)
        glance = NsGlance(work / "glance")
        glance.start()
        controller = controller_vars(glance, work)
        bed.extra = extra_inventory(work / "controller.yml", primary_controller=controller)
        bed.work, bed.glance = work, glance
        yield bed
    finally:
        if glance is not None:
            glance.stop()
        bed.down()
    assert leftovers(pids) == ([], [])


@pytest.fixture(scope="module")
def first_run(bed):
    return bed.playbook(SITE, "-i", bed.extra, "--forks", str(PAIRS))


def apply_span(sim):
    """When the host's pack went up and was applied: the first upload to the last pool_update.apply, in its XAPI
    (the apply takes APPLY_SECONDS)."""
    times = sim.times()
    return times["PUT /import_raw_vdi"][0], times["pool_update.apply:end"][1]


def test_the_hosts_of_a_pool_apply_in_turn_and_the_other_hosts_beside_them(bed, first_run):
    """dom0_suppack's throttle: 1 for the hosts that share a pool (they share its pool_update and temporary VDI), none
    for a host alone in its pool among the play's hosts, so that ten pools do not wait for each other."""
    assert first_run[0] == 0, first_run[2][-3000:]
    spans = {i: apply_span(Simulator(bed, i)) for i in range(1, PAIRS + 1)}
    first, second = sorted((spans[i] for i in SHARED_POOL), key=lambda span: span[0])
    assert first[1] <= second[0], "the hosts of one pool applied at the same time: %s" % spans
    # Ansible queues the hosts in inventory order, and a host that takes turns holds the queue until its turn: the
    # hosts alone in their pools after pair 3 start together once pair 1 is done, and overlap.
    alone = [spans[i] for i in range(1, PAIRS + 1) if i not in SHARED_POOL]
    overlapping = [(a, b) for a in alone for b in alone if a < b and a[0] < b[1] and b[0] < a[1]]
    assert overlapping, "the hosts alone in their pools applied one after the other: %s" % spans


def test_n_pairs_end_to_end(bed, first_run):
    code, report, output = first_run
    assert code == 0, output[-3000:]
    assert tracebacks(report, output) == []
    assert set(report["stats"]) == {compute(i) for i in range(1, PAIRS + 1)} | {"controller-1"}
    for host, stats in report["stats"].items():
        assert stats["failures"] == 0 and stats["unreachable"] == 0, (host, stats)
    mgmt, storage = PeerListener(ns("ctl"), CONTROLLER_MGMT, PORT), PeerListener(ns("ctl"), STORAGE + ".2", PORT)
    try:
        for i in range(1, PAIRS + 1):
            sim, dom0 = Simulator(bed, i), ns("dom0-%d" % i)
            facts = task_results(report, compute(i), "Read the host")[0]
            assert facts["host"]["name_label"] == "dom0-%d" % i and facts["himn"]["bridge"] == "xenapi"
            software = with_software(sim.scenario(), PLATFORMS.get(i, "xcpng-8.3"))
            platform = software["hosts"][local_host(software)]["software_version"]["platform_version"]
            assert facts["host"]["platform_version"] == str(platform)
            assert facts["vm"]["uuid"] == sim.scenario()["vms"]["compute"]["uuid"]
            applied = [
                result
                for result in task_results(report, compute(i), "xenserver.openstack.dom0_suppack : Apply the pack")
                if result["action"] == "xenserver.openstack.xen_suppack"
            ]
            assert [result["changed"] for result in applied] == [True], "the pack was not applied on dom0-%d" % i
            updates = sim.objects()["updates"]
            assert [u["hosts"] for u in updates if u["name_label"] == "xenserver-openstack"] == [["dom0-%d" % i]]
            plugin = os.path.join(bed.root("dom0-%d" % i), "etc", "xapi.d", "plugins", "xenserver_openstack")
            assert os.path.exists(plugin)
            routes = bed.run(dom0, "ip", "-4", "route").stdout
            for network in (MGMT, STORAGE):
                assert "%s.0/24 via 169.254.0.2 dev xenapi" % network in routes, (i, routes)
            # Packets from Dom0 i reach the controller from compute VM i's addresses: through it, masqueraded.
            assert mgmt.source_of(bed, dom0) == "%s.%d" % (MGMT, 10 + i)
            assert storage.source_of(bed, dom0) == "%s.%d" % (STORAGE, 10 + i)
            assert novnc_ok(bed, i), "noVNC: port 80 of compute-%d does not reach xapi in dom0-%d" % (i, i)
            nova = configparser.ConfigParser(interpolation=None)
            nova.read(os.path.join(bed.root(compute(i)), "etc", "nova", "nova-compute.conf"))
            assert nova.get("DEFAULT", "compute_driver") == "xenapi.XenAPIDriver"
            assert nova.get("xenserver", "connection_url") == "http://169.254.0.1"
    finally:
        mgmt.stop()
        storage.stop()
    image = bed.glance.images(bed)["TestVM"]
    assert (image["container_format"], image["disk_format"], image["vm_mode"]) == ("ovf", "vhd", "hvm")


@pytest.fixture(scope="module")
def unreachable_run(bed, first_run):
    """Run 2, compute VM UNREACHABLE with its SSH port closed (as when it is down or firewalled); the snapshot of
    its pair before and after."""
    assert first_run[0] == 0, "the first run failed: see test_n_pairs_end_to_end"
    before = snapshot(bed, UNREACHABLE)
    closed = {compute(UNREACHABLE): {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}}
    inventory = extra_inventory(bed.work / "unreachable.yml", closed)
    run = bed.playbook(SITE, "-i", bed.extra, "-i", inventory, "--forks", str(PAIRS))
    return run, before, snapshot(bed, UNREACHABLE)


def test_a_node_unreachable_the_other_computes_finish_then_it_converges(bed, unreachable_run):
    (code, report, output), before, after = unreachable_run

    assert code == 4, output[-3000:]  # ansible-playbook: some host unreachable
    assert tracebacks(report, output) == []
    assert set(report["stats"]) == {compute(i) for i in range(1, PAIRS + 1)} | {"controller-1"}
    for i in range(1, PAIRS + 1):
        stats = report["stats"][compute(i)]
        if i == UNREACHABLE:
            # Only the controller-side include of the preflight's first role counts as ok: nothing ran on the host.
            assert stats["unreachable"] == 1 and stats["changed"] == 0 and stats["failures"] == 0, stats
        else:
            problems = [messages(result) for _task, result in host_failures(report, compute(i))]
            assert stats["failures"] == 0 and stats["unreachable"] == 0 and stats["ok"] > 0, (i, stats, problems)
            assert task_results(report, compute(i), "xenserver.openstack.nova_xenapi"), "compute-%d stopped" % i
    message = message_of(report, compute(UNREACHABLE))
    # Without pipelining Ansible says "Failed to connect to the host via ssh", with it "Data could not be sent to
    # remote host"; either way the cause is the refused connection to the closed port.
    assert "ssh" in message and "127.0.0.1 port 1: Connection refused" in message
    assert differences(before, after) == {}

    code, report, output = bed.playbook(SITE, "-i", bed.extra, "--limit", compute(UNREACHABLE))

    assert code == 0, output[-3000:]
    assert report["stats"][compute(UNREACHABLE)]["failures"] == 0


def test_a_node_unreachable_the_images_play_still_runs(unreachable_run):
    (_code, report, _output), _before, _after = unreachable_run
    problems = [messages(result) for _task, result in host_failures(report, "controller-1")]
    assert report["stats"]["controller-1"]["failures"] == 0, problems
