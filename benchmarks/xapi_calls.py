"""XAPI calls per module run, from the XAPI simulator's counters: logins, and calls per class.

    . scripts/env.sh && python benchmarks/xapi_calls.py [--pairs 1] [--runs 1] [--keep-bed] [-- PLAYBOOK-ARGS]

On a namespace test bed (tests/bed, as root; namespaces prefixed with XS_BED_PREFIX, ``xsb-`` unless set), each
measurement resets the counters of every simulated Dom0 (``POST /_sim/reset_counts``), runs one thing, and
reads them back (``GET /_sim/counts``, from inside the Dom0 namespace):

- playbooks/site.yml on the fresh bed, then again (converged): the calls of the whole flow, per host;
- one ad-hoc ``ansible`` run of each XenAPI module on compute-1 of the converged bed: xen_host_info, himn_info,
  xen_route (converged, then a removal and an addition that change Dom0), and xen_suppack with the pack ISO that
  site.yml copied to the compute VM (already applied: a converged run), and xen_dom0_config with three of the
  misc_patches Dom0 parts as site.yml left them (converged);
- in this process, against a ``Simulator`` on loopback (no bed needed): xen_suppack applying a freshly built pack
  (upload, introduce, precheck, apply, clean up), and xen_host_info on a XenServer 6.5 host (hotfixes).

A class is the part of the call name before the dot (``Async.`` dropped); ``PUT /import_raw_vdi`` counts as class
``HTTP``; sessions are counted as logins only. "reads" is the largest number of ``get_*`` calls to one class in
the run. ``--runs`` repeats each module run and keeps the largest count of each call. The ratio printed last is
the largest number of reads of one class by one converged module run: 1.00 means every class is read once.
Not a timed test: it prints figures.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("XS_BED_PREFIX", "xsb-")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from bedlib import Bed, ansible_env, bed_benchmark_options, end_benchmark_bed, failures, ns  # noqa: E402
from xapisim.pytest_plugin import scenario_path  # noqa: E402
from xapisim.server import Simulator  # noqa: E402

SITE = os.path.join(ROOT, "playbooks", "site.yml")
SIM = "http://169.254.0.1"
PASSWORD = "{{ xenserver_password }}"
VM_UUID = "{{ xenserver_vm_uuid }}"
ROUTES = ["{{ bed_mgmt_cidr }}", "{{ bed_storage_cidr }}"]
# Three of the four Dom0 housekeeping parts of misc_patches, with the role's defaults (in place after site.yml).
DOM0_CONFIG = {
    "console_log_rotation": {},
    "firewall": {"ports": [{"protocol": "tcp", "port": 6640}, {"protocol": "udp", "port": 4789}]},
    "unblacklist_modules": ["bridge"],
}
MODULE_RUN = """
import json, sys
from ansible.module_utils.testing import patch_module_args
from importlib import import_module
module = import_module("ansible_collections.xenserver.openstack.plugins.modules." + sys.argv[1])
with patch_module_args(json.loads(sys.argv[2])):
    module.main()
"""


def class_of(call):
    if call.startswith("PUT "):
        return "HTTP"
    return call[len("Async.") :].split(".")[0] if call.startswith("Async.") else call.split(".")[0]


def per_class(counts, reads_only=False):
    """Calls per class (sessions aside); with reads_only, only the get_* calls."""
    classes = {}
    for call, number in counts.items():
        if class_of(call) == "session" or (reads_only and ".get_" not in call):
            continue
        classes[class_of(call)] = classes.get(class_of(call), 0) + number
    return classes


def merged(samples):
    """The largest count of each call over several runs of the same thing."""
    out = {}
    for counts in samples:
        for call, number in counts.items():
            out[call] = max(out.get(call, 0), number)
    return out


class Counters:
    """The simulators of a bed's Dom0s, reset and read through their control endpoints."""

    def __init__(self, bed, pairs):
        self.bed, self.dom0s = bed, [ns("dom0-%d" % i) for i in range(1, pairs + 1)]

    def reset(self):
        for dom0 in self.dom0s:
            self.bed.http(dom0, SIM + "/_sim/reset_counts", "POST")

    def read(self):
        return {dom0: json.loads(self.bed.http(dom0, SIM + "/_sim/counts")) for dom0 in self.dom0s}


def site_run(bed, counters, args):
    counters.reset()
    code, report, output = bed.playbook(SITE, *args)
    if code != 0 or report is None:
        raise SystemExit("site.yml failed (rc %d): %s" % (code, failures(report) if report else output[-3000:]))
    return counters.read(), report


def adhoc(bed, counters, module, args, runs):
    """Run a module ad hoc on compute-1, ``runs`` times; return the largest counts of Dom0 1 and the result."""
    samples = []
    for _ in range(runs):
        counters.reset()
        command = ["ansible", "compute-1", "-i", bed.inventory, "-m", "xenserver.openstack." + module]
        run = subprocess.run(
            [*command, "-a", json.dumps(args)],
            capture_output=True,
            text=True,
            env=dict(ansible_env(), ANSIBLE_LOAD_CALLBACK_PLUGINS="1"),
            cwd=ROOT,
            check=False,
        )
        report = json.loads(run.stdout[run.stdout.find("{") :]) if "{" in run.stdout else None
        result = report["plays"][0]["tasks"][0]["hosts"]["compute-1"] if report else {}
        if run.returncode != 0 or result.get("failed"):
            raise SystemExit("%s failed: %s" % (module, result.get("msg") or (run.stdout + run.stderr)[-3000:]))
        samples.append(counters.read()[ns("dom0-1")])
    return merged(samples), result


def suppack_args_from(report):
    """xen_suppack's options for the pack site.yml applied on compute-1 (the ISO it copied there), or None."""
    results = [task["hosts"].get("compute-1", {}) for play in report["plays"] for task in play["tasks"]]
    ran = any(r.get("action", "").endswith("xen_suppack") and not r.get("skipped") for r in results)
    isos = [r["dest"] for r in results if str(r.get("dest", "")).endswith(".iso") and not r.get("skipped")]
    return {"iso": isos[-1], "vm_uuid": VM_UUID} if ran and isos else None


def in_process(module, scenario, args, runs, work):
    """Run a module in a process of its own against a fresh Simulator each time; return the largest counts."""
    samples = []
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".build", "collections"))
    for _ in range(runs):
        sim = Simulator(scenario_path(scenario), root=tempfile.mkdtemp(prefix="sim-", dir=work))
        sim.start()
        try:
            creds = sim.scenario["credentials"]
            full = dict(args, url=sim.url, username=creds["username"], password=creds["password"])
            full.setdefault("vm_uuid", sim.scenario["vms"]["compute"]["uuid"])
            run = subprocess.run(
                [sys.executable, "-c", MODULE_RUN, module, json.dumps(full)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            try:
                result = json.loads(run.stdout)
            except ValueError:
                raise SystemExit("%s printed no JSON: %s" % (module, (run.stdout + run.stderr)[-2000:])) from None
            if result.get("failed"):
                raise SystemExit("%s failed: %s" % (module, result.get("msg")))
            samples.append(sim.counts())
        finally:
            sim.stop()
            shutil.rmtree(sim.root, ignore_errors=True)
    return merged(samples)


def build_pack(work):
    """The collection's update pack, signed with a throw-away key (as benchmarks/suppack_memory.py does)."""
    home = os.path.join(work, "gpg")
    os.makedirs(home, mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", home]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", "xapi-calls", "rsa2048", "sign", "never"],
        capture_output=True,
        check=True,
    )
    listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], capture_output=True, text=True, check=True)
    fingerprint = next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr:"))
    argv = [sys.executable, os.path.join(ROOT, "tools", "build_pack.py"), "--output", os.path.join(work, "pack.iso")]
    built = subprocess.run(
        [*argv, "--gpg-home", home, "--key", fingerprint], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise SystemExit("building the pack failed: %s" % built.stderr[-2000:])
    return json.loads(built.stdout)["iso"]


def row(label, counts, changed=None):
    """Print one line of the table; return (label, calls per class, reads per class)."""
    classes, reads = per_class(counts), per_class(counts, reads_only=True)
    flag = "" if changed is None else (" (changed)" if changed else " (ok)")
    print(
        "%-46s %6d %6d %5d  %s"
        % (
            label + flag,
            counts.get("session.login_with_password", 0),
            sum(counts.values()),
            max(reads.values(), default=0),
            " ".join("%s=%d" % item for item in sorted(classes.items())),
        )
    )
    return label + flag, classes, reads


def worst(rows, which):
    """(count, run, class) of the class with the most calls (which=1) or reads (which=2) in one run."""
    return max(((n, r[0], c) for r in rows for c, n in r[which].items()), default=(0, "", ""))


def main():
    options, work, state_dir = bed_benchmark_options(
        __doc__, "runs of each module; the largest counts are kept", "xapi-calls-"
    )
    bed = Bed(state_dir, "--pairs", str(options.pairs))
    counters = Counters(bed, options.pairs)
    try:
        first, report = site_run(bed, counters, options.playbook_args)
        again, _report = site_run(bed, counters, options.playbook_args)
        suppack = suppack_args_from(report)
        print("%-46s %6s %6s %5s  %s" % ("run", "logins", "calls", "reads", "calls per class (sessions aside)"))
        for label, per_dom0 in (("site.yml, first run", first), ("site.yml, re-run", again)):
            for dom0, counts in sorted(per_dom0.items()):
                row("%s (%s)" % (label, dom0), counts)
        steady, changing = [], []
        cases = [
            ("xen_host_info", {"password": PASSWORD, "vm_uuid": VM_UUID}),
            ("himn_info", {"password": PASSWORD, "vm_uuid": VM_UUID}),
            ("xen_route", {"password": PASSWORD, "vm_uuid": VM_UUID, "networks": ROUTES}),
            ("xen_route", {"password": PASSWORD, "vm_uuid": VM_UUID, "networks": ROUTES, "state": "absent"}),
            ("xen_route", {"password": PASSWORD, "vm_uuid": VM_UUID, "networks": ROUTES}),
            ("xen_dom0_config", dict(DOM0_CONFIG, password=PASSWORD, vm_uuid=VM_UUID)),
        ]
        if suppack:
            cases.append(("xen_suppack", dict(suppack, password=PASSWORD)))
        for module, args in cases:
            counts, result = adhoc(bed, counters, module, args, options.runs)
            label = module + (" state=%s" % args["state"] if "state" in args else "")
            (changing if result.get("changed") else steady).append(row(label, counts, result.get("changed")))
        pack = build_pack(work)
        label = "xen_suppack, new pack (loopback)"
        changing.append(row(label, in_process("xen_suppack", "xcpng-8.3", {"iso": pack}, options.runs, work), True))
        label = "xen_host_info, XenServer 6.5 (loopback)"
        steady.append(row(label, in_process("xen_host_info", "xenserver-6.5", {}, options.runs, work), False))
        if not suppack:
            print("(site.yml ran no xen_suppack: no converged xen_suppack run on the bed)")
        measured = {module for module, _args in cases} | {"xen_suppack", "xen_host_info"}
        others = sorted(
            name[:-3]
            for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
            if name.startswith("xen_") and name.endswith(".py") and name[:-3] not in measured
        )
        if others:
            print("not measured on their own (in the site.yml rows when site.yml runs them): %s" % ", ".join(others))
        for which, what in ((1, "calls"), (2, "reads")):
            for runs, kind in ((changing + steady, "any run"), (steady, "converged runs")):
                print("max %s per class, %s: %d (%s, class %s)" % (what, kind, *worst(runs, which)))
        print("ratio: %.2f" % worst(steady, 2)[0])
    finally:
        if os.path.isdir(os.path.join(work, "gpg")):
            subprocess.run(["gpgconf", "--homedir", os.path.join(work, "gpg"), "--kill", "gpg-agent"], check=False)
        end_benchmark_bed(bed, options, work)


if __name__ == "__main__":
    main()
