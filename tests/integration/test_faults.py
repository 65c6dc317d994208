"""The fault suite (issue 10): each fault injected into a run of playbooks/site.yml on the namespace bed.

For each fault the product must show one clear message (it names the object, the problem and the fix), no
traceback, nothing half-applied (a snapshot of the pair's Dom0 and compute VM files, routes, iptables, ip_forward
and XAPI objects before and after), and a re-run after the fault is removed must converge (rc 0).

To keep the runtime down, one bed of PAIRS Dom0 / compute VM pairs and a controller with a real Glance takes every
fault at once, each pair its own, in three runs of site.yml (forks = PAIRS):

| run | pair | fault | how it is injected |
|---|---|---|---|
| 1 | 1 | XAPI down | the pair's simulator is stopped (SIGTERM), started again after the run |
| 1 | 2 | wrong password | the host's password changes (simulator seeded again from its scenario, other password) |
| 1 | 3 | HOST_IS_SLAVE | the host becomes a pool member (also on its HIMN) whose master 192.0.2.10 is unreachable |
| 1 | 4 | sessions expire | every session XAPI hands out is invalid at once (``/_sim/always_expire``) |
| 1 | 5 | unsupported platform, non-file SR, no HIMN VIF | XCP-ng 8.1, default SR lvm, HIMN VIF removed (one list) |
| 1 | 6 | refused platform | the host runs XenServer 6.5 SP1 with hotfix XS65ESP1013 (Dom0 Python 2.4) |
| 1 | 7 | none | stopped by the others' preflight problems: nothing changes anywhere |
| 2 | 2 | pack upload cut midway | XAPI resets the pack upload's connection after 48 KiB (``/_sim/cut_upload``) |
| 2 | 4 | session expired mid-run | the sessions are dropped when the pack is introduced (``/_sim/expire_at``) |
| 2 | — | Glance down | Glance stopped during run 2, started again before run 3 |
| 2→3 | 7 | Dom0 reboot between two runs | ``/_sim/reboot``: sessions dropped, routes flushed, udev hooks run |
| 3 | 2, 3, 7 | none | every fault removed: a re-run on the hosts that failed (and the rebooted one) converges |

Pairs 1 and 3 to 6 converge in run 2, once their run-1 fault is gone; pair 2 in run 3. A malformed input (a
malformed CIDR, say) is a preflight problem that stops every host before anything changes: test_site_inputs.py.

A node unreachable in an N-node run is in test_e2e.py (its bed has N healthy pairs). Module-level tests of the same
faults (tests/unit/test_xenapi_base.py, test_xen_suppack.py, test_preflight.py, test_xen_route.py ...) check the
modules alone; these check what an operator running site.yml sees.
"""

import copy
import json
import os
import re
import time

import pytest
from bedlib import Bed, ns
from sitelib import (
    MGMT,
    SITE,
    STORAGE,
    NsGlance,
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
    snapshot,
    tracebacks,
    with_software,
)

pytestmark = pytest.mark.root

PAIRS = 7
HEALTHY = 7
UNREACHABLE_MASTER = "192.0.2.10"
# The call that finds its session dropped: in the middle of xen_suppack, after the upload, before the apply.
EXPIRE_AT = "Async.pool_update.introduce"
CUT_AFTER_BYTES = 48 * 1024
# What applying the pack changes: in the compute VM, its copy of the ISO; in Dom0, the plugins, the update's stamp and
# the trust database of xapi's keyring (the signature check).
PACK_COPY = r"var/tmp/xenserver-openstack/[^/]+\.iso"
PACK_FILES = r"etc/xapi\.d/plugins/[^/]+|var/update/applied/[^/]+|opt/xensource/gpg/trustdb\.gpg"
PACK_TASK = "xenserver.openstack.dom0_suppack : Apply the pack on the host"
# The pairs that converge in run 2 (their fault was in run 1 only) and in run 3 (re-run with --limit).
CONVERGED_IN = {1: 2, 3: 2, 4: 2, 5: 2, 6: 2, 2: 3, 7: 3}


def compute(i):
    return "compute-%d" % i


# --- the faults of run 1: changes of a pair's host, all met before anything changes ------------------------


def wrong_password(scenario):
    scenario["credentials"]["password"] = "not-" + scenario["credentials"]["password"]
    return scenario


def pool_member(scenario):
    """The host becomes a member of a pool whose master (192.0.2.10) the compute VM cannot reach."""
    host = local_host(scenario)
    master = copy.deepcopy(scenario["hosts"][host])
    master.update(
        uuid="5f0e4c1a-9d8b-4b7e-a1c2-3d4e5f6a7b8c",
        name_label="pool-master",
        hostname="pool-master",
        address=UNREACHABLE_MASTER,
    )
    scenario["hosts"]["pool-master"] = master
    scenario["pool"]["master"], scenario["local_host"] = "pool-master", host
    scenario.setdefault("behaviour", {})["host_is_slave_on_himn"] = True
    return scenario


def unsupported_platform_lvm_sr_no_himn_vif(scenario):
    software = scenario["hosts"][local_host(scenario)]["software_version"]
    software.update(
        product_brand="XCP-ng",
        product_version="8.1.0",
        product_version_text="8.1",
        product_version_text_short="8.1",
        platform_version="3.1.0",
    )
    scenario["srs"][scenario["pool"]["default_sr"]]["type"] = "lvm"
    himn = {name for name, network in scenario["networks"].items() if network["bridge"] == "xenapi"}
    vm = scenario["vms"]["compute"]
    vm["vifs"] = [vif for vif in vm["vifs"] if vif["network"] not in himn]
    vm.get("xenstore_data", {}).pop("vm-data/himn_mac", None)
    return scenario


def refused_platform(scenario):
    return with_software(scenario, "xenserver-6.5-hotfix")


# pair -> how its host changes (a scenario change, or a control of the simulator)
RUN1_SCENARIOS = {2: wrong_password, 3: pool_member, 5: unsupported_platform_lvm_sr_no_himn_vif, 6: refused_platform}
# (fault, pair, what the pair's message must say: the object, the problem, the fix)
RUN1 = [
    ("XAPI down", 1, ["Cannot reach XAPI at http://169.254.0.1", "Connection refused", "Check the url"]),
    (
        "wrong password",
        2,
        ["XAPI at http://169.254.0.1 refused the login of user 'root'", "wrong user name or password", "password"],
    ),
    (
        "HOST_IS_SLAVE",
        3,
        [
            "http://169.254.0.1 is a pool member whose master is %s" % UNREACHABLE_MASTER,
            "the master cannot be reached",
            "Set url to https://%s, or to another address of the master" % UNREACHABLE_MASTER,
        ],
    ),
    (
        "sessions expire",
        4,
        ["XAPI at http://169.254.0.1 kept invalidating the session", "run again when the host is up"],
    ),
    (
        "unsupported platform",
        5,
        [
            "3 problem(s) on compute-5",
            "XCP-ng 8.1.0 (platform 3.1.0) on host dom0-5 is not a supported version",
            "misc_patches_supported_platforms",
        ],
    ),
    (
        "non-file default SR",
        5,
        ["The default SR 'Local storage'", "host dom0-5 is of type lvm", "file-based default SR", "default-SR="],
    ),
    (
        "compute VM without HIMN VIF",
        5,
        ["VM compute-5 has no VIF on the Host Internal Management Network", "xe vif-create"],
    ),
    (
        "refused platform",
        6,
        ["1 problem(s) on compute-6", "XenServer 6.5.0 (platform 1.9.0) on host dom0-6 is refused", "Python 2.4"],
    ),
]
PREFLIGHT_STOP = "nothing was changed. Fix them and run again"


class Flow:
    """The runs and the snapshots taken around them; filled by the ``flow`` fixture."""

    def __init__(self):
        self.runs, self.snapshots, self.notes = {}, {}, {}

    def snap(self, bed, label):
        self.snapshots[label] = {i: snapshot(bed, i) for i in range(1, PAIRS + 1)}


BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks", "himn_bootstrap.yml")


def run_site(bed, flow, number, *args):
    flow.runs[number] = bed.playbook(SITE, "--forks", str(PAIRS), *args)


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    work = tmp_path_factory.mktemp("faults")
    bed = Bed(str(work / "bed"), "--pairs", str(PAIRS))
    flow, restarted, glance = Flow(), [], None
    flow.pids = bed_pids(bed)
    try:
        glance = NsGlance(work / "glance")
        controller = controller_vars(glance, work)
        sims = {i: Simulator(bed, i) for i in range(1, PAIRS + 1)}

        # The bed's compute VMs are fresh: site.yml's preflight brings their HIMN up (and keeps it for boot) before
        # anything can reach XAPI, so every fault below is met after that step. Take it first, alone, so that the
        # snapshots compare what the run does once XAPI is in reach (test_fresh_vm.py proves the bootstrap itself).
        code, _report, output = bed.playbook(BOOTSTRAP)
        assert code == 0, output

        # Run 1: the faults the first reads of each host meet.
        flow.snap(bed, "before 1")
        killed = sims[1].kill()
        for pair, change in RUN1_SCENARIOS.items():
            sims[pair].load(change(sims[pair].scenario()))
        sims[4].control("always_expire?on=1")
        glance.start()
        run_site(bed, flow, 1, "-i", extra_inventory(work / "run1.yml", primary_controller=controller))
        flow.snap(bed, "after 1")

        # Run 2: those faults removed; the faults that strike later in the flow.
        restarted.append(sims[1].restart(*killed))
        for pair in (2, 3, 4, 5, 6):
            sims[pair].restore()
        glance.stop()
        sims[2].control("cut_upload?after=%d" % CUT_AFTER_BYTES)
        for pair in (4, HEALTHY):
            sims[pair].control("reset_counts")
        sims[4].control("expire_at?method=%s" % EXPIRE_AT)
        flow.snap(bed, "before 2")
        run_site(bed, flow, 2, "-i", extra_inventory(work / "run2.yml", primary_controller=controller))
        flow.snap(bed, "after 2")
        flow.notes["counts 2"] = {pair: sims[pair].counts() for pair in (4, HEALTHY)}

        # Between runs 2 and 3: Glance comes back, Dom0 7 reboots.
        glance.start()
        flow.notes["images before 3"] = glance.images(bed)
        flow.notes["reboot hooks"] = sims[HEALTHY].control("reboot")
        flow.notes["routes after reboot"] = wait_for_routes(bed, HEALTHY)

        # Run 3: no fault left; again on the hosts that failed, and the rebooted one.
        limit = ",".join([compute(2), compute(3), compute(HEALTHY), "controller-1"])
        inventory = extra_inventory(work / "run3.yml", primary_controller=controller)
        run_site(bed, flow, 3, "-i", inventory, "--limit", limit)
        flow.snap(bed, "after 3")
        flow.notes["images after 3"] = glance.images(bed)
        save_messages(flow, work / "messages.json")
        yield flow
    finally:
        if glance is not None:
            glance.stop()
        bed.down()
        for process in restarted:
            process.wait(10)
    assert leftovers(flow.pids) == ([], [])


def save_messages(flow, path):
    """Every failure message of the runs, by run and host, for the post-mortem (and docs/troubleshooting.md)."""
    found = {
        number: {host: [messages(result) for _name, result in host_failures(report, host)] for host in report["stats"]}
        for number, (_code, report, _output) in flow.runs.items()
    }
    path.write_text(json.dumps(found, indent=1))
    for number, (_code, report, output) in flow.runs.items():
        (path.parent / ("run%d.json" % number)).write_text(json.dumps(report, indent=1))
        (path.parent / ("run%d.out" % number)).write_text(output)


def wait_for_routes(bed, i, timeout=10):
    """Dom0 i's routes once the udev hook replayed them (it runs in a child process), or what is there then."""
    deadline = time.monotonic() + timeout
    while True:
        routes = bed.run(ns("dom0-%d" % i), "ip", "-4", "route").stdout
        if routed(routes) or time.monotonic() > deadline:
            return routes
        time.sleep(0.1)


def routed(routes):
    return all("%s.0/24 via 169.254.0.2 dev xenapi" % net in routes for net in (MGMT, STORAGE))


def pack_hosts(pair_snapshot):
    """The hosts XAPI says the collection's pack is applied on."""
    updates = pair_snapshot["dom0 xapi"]["updates"]
    return [host for update in updates if update["name_label"] == "xenserver-openstack" for host in update["hosts"]]


def assert_converged(flow, i):
    """Pair i after the run where it converged: no failure, its pack applied, Dom0 routing via the compute VM."""
    run = CONVERGED_IN[i]
    report, pair = flow.runs[run][1], flow.snapshots["after %d" % run][i]
    assert host_failures(report, compute(i)) == []
    stats = report["stats"][compute(i)]
    assert stats["failures"] == 0 and stats["unreachable"] == 0 and stats["ok"] > 0, stats
    assert routed(pair["dom0 routes"]), pair["dom0 routes"]
    assert pack_hosts(pair) == ["dom0-%d" % i], pair["dom0 xapi"]


def assert_clear(message, expected):
    for fragment in expected:
        assert fragment in message, "%r is not in the message: %s" % (fragment, message)
    assert "Traceback" not in message and "MODULE FAILURE" not in message, message


# --- run 1 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "pair", "expected"), RUN1, ids=[fault for fault, _, _ in RUN1])
def test_fault_met_before_anything_changes_then_rerun_converges(flow, fault, pair, expected):
    code, report, _output = flow.runs[1]
    assert code != 0
    assert_clear(message_of(report, compute(pair)), expected)
    before, after = flow.snapshots["before 1"][pair], flow.snapshots["after 1"][pair]
    if fault == "XAPI down":  # XAPI's objects cannot be read while it is down; the files and network can
        assert after["dom0 xapi"] is None
        after = dict(after, **{"dom0 xapi": before["dom0 xapi"]})
    assert differences(before, after) == {}
    assert_converged(flow, pair)


def test_a_preflight_problem_stops_every_host_before_anything_changes(flow):
    report = flow.runs[1][1]
    assert host_failures(report, compute(HEALTHY)) == []
    # Only the preflight play ran (its checks, and the HIMN interface's DHCP, which the bed's VMs have already).
    ran = [play["play"]["name"] for play in report["plays"] if any(task["hosts"] for task in play["tasks"])]
    assert [name.split(" - ")[0] for name in ran] == ["Preflight"], ran
    assert differences(flow.snapshots["before 1"][HEALTHY], flow.snapshots["after 1"][HEALTHY]) == {}
    assert PREFLIGHT_STOP in message_of(report, compute(6))


# --- run 2 ------------------------------------------------------------------------------------------------


def test_pack_upload_cut_midway_leaves_nothing_then_rerun_converges(flow):
    report = flow.runs[2][1]
    message = message_of(report, compute(2))
    assert_clear(
        message,
        [
            "to http://169.254.0.1/import_raw_vdi failed",
            "Nothing was installed and no uploaded copy was left on the SR",
            "check the connection to XAPI and run again",
        ],
    )
    assert re.search(r"Uploading \S+xenserver-openstack\S*\.iso \(\d+ bytes\)", message), message
    assert [name.startswith(PACK_TASK) for name, _ in host_failures(report, compute(2))] == [True]
    changed = differences(flow.snapshots["before 2"][2], flow.snapshots["after 2"][2])
    # Dom0 and XAPI as they were (no VDI, no update, no plugin); the compute VM has its copy of the ISO to upload.
    assert set(changed) <= {"compute files"}, changed
    assert all(
        re.fullmatch(r"var/tmp/xenserver-openstack/[^/]+\.iso", path) for path in changed.get("compute files", [])
    )
    assert flow.snapshots["after 2"][2]["dom0 xapi"]["vdis"] == []
    assert_converged(flow, 2)


def test_session_expired_mid_run_is_taken_in_stride(flow):
    assert host_failures(flow.runs[2][1], compute(4)) == []
    counts = flow.notes["counts 2"]
    # The introduce met SESSION_INVALID and was made again (the healthy host's run made it once) ...
    assert counts[4][EXPIRE_AT] == 2 and counts[HEALTHY][EXPIRE_AT] == 1, counts
    # ... after xen_suppack logged in again, where the same flow on an untouched host did not.
    assert counts[4]["session.login_with_password"] == counts[HEALTHY]["session.login_with_password"] + 1, counts
    assert_converged(flow, 4)


def test_glance_down_then_up(flow):
    assert_clear(
        message_of(flow.runs[2][1], "controller-1"),
        ["Glance at http://127.0.0.1:9292 did not answer within 5 s", "Check that it runs", "raise wait_timeout"],
    )
    assert flow.notes["images before 3"] == {}  # nothing half-made in Glance
    image = flow.notes["images after 3"]["TestVM"]
    assert (image["container_format"], image["disk_format"]) == ("ovf", "vhd")
    assert host_failures(flow.runs[3][1], "controller-1") == []


def test_dom0_reboot_between_two_runs(flow):
    hooks = flow.notes["reboot hooks"]
    assert hooks and all(code == 0 for _argv, code in hooks), hooks
    # The pack's udev rule runs the plugin's job, its own file: the flushed routes come back.
    assert any(argv == ["/usr/libexec/xenserver-openstack/replay-routes"] for argv, _code in hooks), hooks
    assert routed(flow.notes["routes after reboot"]), flow.notes["routes after reboot"]
    assert_converged(flow, HEALTHY)


# --- every run ----------------------------------------------------------------------------------------------


def test_no_traceback_in_any_run_and_the_last_one_converges(flow):
    for number in (1, 2, 3):
        code, report, output = flow.runs[number]
        assert tracebacks(report, output) == [], number
    code, report, output = flow.runs[3]
    assert code == 0, output[-3000:]
    assert set(report["stats"]) == {compute(2), compute(3), compute(HEALTHY), "controller-1"}
